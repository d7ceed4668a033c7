"""Float16 conversion of an exported float32 ONNX graph, with float32 where it matters.

Weights and activations become float16; the graph input and output stay float32 (Cast nodes
at the boundary). Each ``Softmax`` runs in float32 together with the ``MatMul`` and scaling
that compute its logits (the non-local affinity ``theta^T phi * Ci^-0.5`` sums hundreds of
products and could overflow half precision) and with the ``ReduceMean`` after the head's
softmax (the mean of 400 small probabilities). Cast nodes are inserted wherever a float16
value meets a float32 node and back.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_FLOAT = 1  # onnx.TensorProto.FLOAT
_FLOAT16 = 10  # onnx.TensorProto.FLOAT16
# Ops that may sit between the affinity MatMul and its Softmax.
_AFFINITY_OPS = {"Mul", "Div", "Add", "Sub"}


def _fp32_nodes(graph: Any, producers: dict[str, Any], consumers: dict[str, list[Any]]
                ) -> set[int]:
    keep: set[int] = set()
    for node in graph.node:
        if node.op_type != "Softmax":
            continue
        keep.add(id(node))
        # Walk up to the MatMul that makes the softmax logits.
        value = node.input[0]
        while value in producers:
            prev = producers[value]
            if prev.op_type == "MatMul":
                keep.add(id(prev))
                break
            if prev.op_type not in _AFFINITY_OPS:
                break
            keep.add(id(prev))
            # Follow the non-constant input.
            nxt = [v for v in prev.input if v in producers
                   and producers[v].op_type != "Constant"]
            if len(nxt) != 1:
                break
            value = nxt[0]
        # Walk down through a mean of the probabilities (the fully-convolutional head).
        out = node.output[0]
        while len(consumers.get(out, [])) == 1 and consumers[out][0].op_type == "ReduceMean":
            keep.add(id(consumers[out][0]))
            out = consumers[out][0].output[0]
    return keep


def convert_float16(model: Any) -> Any:
    """A float16 copy of the float32 ``onnx.ModelProto`` `model` (input/output kept float32)."""
    import onnx
    from onnx import helper, numpy_helper

    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    g = inferred.graph
    elem: dict[str, int] = {}
    for vi in list(g.value_info) + list(g.input) + list(g.output):
        elem[vi.name] = vi.type.tensor_type.elem_type
    for init in g.initializer:
        elem[init.name] = init.data_type
    producers = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list[Any]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    graph_outputs = {o.name for o in g.output}
    keep32 = _fp32_nodes(g, producers, consumers)

    def is_fp32_node(n: Any) -> bool:
        return id(n) in keep32

    # The type each float value has after conversion.
    new_type: dict[str, int] = {}
    for init in g.initializer:
        if init.data_type == _FLOAT:
            users = consumers.get(init.name, [])
            new_type[init.name] = _FLOAT if users and all(map(is_fp32_node, users)) else _FLOAT16
    for inp in g.input:
        if elem.get(inp.name) == _FLOAT:
            new_type[inp.name] = _FLOAT
    for n in g.node:
        for o in n.output:
            if elem.get(o) == _FLOAT:
                if n.op_type == "Constant":
                    users = consumers.get(o, [])
                    fp32 = bool(users) and all(map(is_fp32_node, users))
                    new_type[o] = _FLOAT if fp32 else _FLOAT16
                else:
                    new_type[o] = _FLOAT if is_fp32_node(n) else _FLOAT16

    new_inits = []
    for init in g.initializer:
        if new_type.get(init.name) == _FLOAT16:
            arr = numpy_helper.to_array(init).astype(np.float16)
            new_inits.append(numpy_helper.from_array(arr, init.name))
        else:
            new_inits.append(init)

    casts: dict[tuple[str, int], str] = {}
    nodes: list[Any] = []

    def cast(value: str, to: int) -> str:
        key = (value, to)
        if key not in casts:
            name = f"{value}__to_{'fp16' if to == _FLOAT16 else 'fp32'}"
            casts[key] = name
            nodes.append(helper.make_node("Cast", [value], [name], to=to, name=f"Cast_{name}"))
        return casts[key]

    for n in g.node:
        want = _FLOAT if is_fp32_node(n) else _FLOAT16
        if n.op_type == "Constant":
            for attr in n.attribute:
                if attr.name == "value" and attr.t.data_type == _FLOAT and \
                        new_type.get(n.output[0]) == _FLOAT16:
                    arr = numpy_helper.to_array(attr.t).astype(np.float16)
                    attr.t.CopyFrom(numpy_helper.from_array(arr))
        if n.op_type == "Cast":
            for attr in n.attribute:
                if attr.name == "to" and attr.i == _FLOAT and want == _FLOAT16:
                    attr.i = _FLOAT16
                    new_type[n.output[0]] = _FLOAT16
        if n.op_type not in ("Shape", "Cast"):
            for k, value in enumerate(n.input):
                have = new_type.get(value)
                if have is not None and have != want:
                    n.input[k] = cast(value, want)
        nodes.append(n)

    # Float32 graph outputs: rename the producer's output and cast back.
    for out in g.output:
        if new_type.get(out.name) == _FLOAT16:
            inner = f"{out.name}__fp16"
            for n in nodes:
                for k, o in enumerate(n.output):
                    if o == out.name:
                        n.output[k] = inner
                for k, i in enumerate(n.input):
                    if i == out.name:
                        n.input[k] = inner
            nodes.append(helper.make_node("Cast", [inner], [out.name], to=_FLOAT,
                                          name=f"Cast_{out.name}_fp32"))
    assert not (graph_outputs - {o.name for o in g.output})

    result = onnx.ModelProto()
    result.CopyFrom(model)
    del result.graph.node[:]
    result.graph.node.extend(nodes)
    del result.graph.initializer[:]
    result.graph.initializer.extend(new_inits)
    del result.graph.value_info[:]
    result = onnx.shape_inference.infer_shapes(result, strict_mode=True)
    return result
