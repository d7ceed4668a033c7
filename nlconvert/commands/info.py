"""``nlconvert info``: what a checkpoint, model file or ONNX file holds; the zoo."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import click

from .options import arch_option, debug_option, existing_file, force_option, json_option, model_input


@click.command("info", short_help="Describe a checkpoint, .pt or .onnx file; list the zoo.")
@click.argument("model", type=model_input(), required=False)
@click.option("--predict-net", type=existing_file(), metavar="FILE",
              help="The predict_net.pb beside an init_net.pb.")
@arch_option(help="Check the blobs against this architecture.")
@click.option("--blobs", is_flag=True, help="List every blob with its shape.")
@click.option("--list-archs", is_flag=True,
              help="List the zoo's architectures and where each released checkpoint was published.")
@json_option
@force_option
@debug_option
def command(model: Path | None, predict_net: Path | None, arch: str | None, blobs: bool,
            list_archs: bool, json_path: str | None, force: bool) -> int:
    """Describe MODEL without converting it: a Caffe2 checkpoint (.pkl, init_net.pb: blobs,
    detected architecture, what is ignored), a converted .pt/.safetensors, a hub folder or an exported
    .onnx (architecture, head, classes, provenance). --list-archs prints the zoo."""
    from .._atomic import check_writable
    from ..convert.formats import ONNX_SUFFIX, is_model_path
    from ..errors import ArchitectureError

    if json_path and json_path != "-":
        check_writable(json_path, force)  # refused before anything is read or printed
    if list_archs:
        data: dict[str, Any] = {"architectures": _zoo()}
        lines = [f"{a['description']}\n    " + ("\n    ".join(
            f"{c['file']}.pkl  {c['url']}" for c in a["checkpoints"]) or "(no released checkpoint)")
            for a in data["architectures"]]
    elif model is None:
        raise ArchitectureError("info needs a model file (or --list-archs)")
    elif is_model_path(model):
        data, lines = _model_file(model)
    elif model.suffix.lower() == ONNX_SUFFIX:
        data, lines = _onnx_file(model)
    else:
        data, lines = _checkpoint(model, predict_net, arch, blobs)
    _emit(lines, data, json_path, force)
    return 0


def _emit(lines: list[str], data: dict[str, Any], json_path: str | None, force: bool) -> None:
    from .._atomic import atomic_write_text

    text = json.dumps(data, indent=2, default=str) + "\n"
    if json_path == "-":
        print(text, end="")
        return
    print("\n".join(lines))
    if json_path:
        atomic_write_text(json_path, text, force)
        print(f"wrote {json_path}")


def _zoo() -> list[dict[str, Any]]:
    from ..arch import arch_names, get_arch, published_accuracy

    return [{"name": name, "description": get_arch(name).describe(),
             "checkpoints": [{"file": c.file, "url": c.url, "top1": c.top1, "top5": c.top5}
                             for c in published_accuracy(name)]}
            for name in arch_names()]


def _model_file(path: Path) -> tuple[dict[str, Any], list[str]]:
    from ..convert.mapping import describe_initialised, recorded_initialised
    from ..convert.modelfile import read_model_info

    info = read_model_info(path)
    data = {"file": str(path), "kind": "nlconvert model", "arch": info.arch.to_dict(),
            "classes": len(info.class_names or []) or info.arch.num_classes,
            "class_names": info.class_names, "provenance": info.provenance}
    kind = "hub folder" if path.is_dir() else "nlconvert model file"
    initialised = recorded_initialised(info.provenance)
    lines = [f"file: {path}  ({kind})",
             f"architecture: {info.arch.describe()}",
             f"classes: {data['classes']}" + _names_note(info.class_names),
             *[f"provenance: {k} = {v}" for k, v in info.provenance.items()
               if k != "initialised"],
             *describe_initialised(initialised)]
    return data, lines


def _names_note(names: list[str] | None) -> str:
    from ..arch import kinetics400_names

    if not names:
        return ""
    if tuple(names) == kinetics400_names():
        return " (Kinetics-400 names)"
    shown = ", ".join(names[:8]) + (f", ... ({len(names) - 8} more)" if len(names) > 8 else "")
    return f" ({shown})"


def _onnx_file(path: Path) -> tuple[dict[str, Any], list[str]]:
    from ..runtime.onnx_session import OnnxModel

    model = OnnxModel(path, providers=["CPUExecutionProvider"], threads=1)
    meta = model.metadata
    shape = "dynamic" if model.static_shape is None else "x".join(
        "?" if d is None else str(d) for d in model.static_shape)
    data = {"file": str(path), "kind": "nlconvert ONNX", "arch": meta.arch.to_dict(),
            "head": meta.head, "outputs": model.output_names, "precision": meta.precision,
            "layout": meta.layout, "input_shape": shape, "version": meta.version,
            "class_names": meta.class_names, "provenance": meta.provenance}
    lines = [f"file: {path}  (nlconvert ONNX file, written by nlconvert {meta.version or '?'})",
             f"architecture: {meta.arch.describe()}",
             f"head: {meta.head}; outputs: {', '.join(model.output_names)}; {meta.precision}; "
             f"layout {meta.layout or '?'}; input {shape}",
             f"classes: {len(meta.class_names or []) or meta.arch.num_classes}"
             + _names_note(meta.class_names),
             *[f"provenance: {k} = {v}" for k, v in meta.provenance.items()
               if k != "initialised"]]
    return data, lines


def _checkpoint(path: Path, predict_net: Path | None, arch_name: str | None,
                list_blobs: bool) -> tuple[dict[str, Any], list[str]]:
    from ..arch.detect import blob_facts, filename_conflict, resolve_arch
    from ..errors import ArchitectureError
    from ..io.checkpoint import read_checkpoint

    ckpt = read_checkpoint(path, predict_net, allow_nonfinite=True)
    n_values = sum(int(a.size) for a in ckpt.blobs.values())
    reasons = Counter(ckpt.ignored.values())
    facts = blob_facts(ckpt.blobs).describe()
    try:
        arch, how = resolve_arch(ckpt.path, ckpt.blobs, arch_name, ckpt.predict_net)
        arch_line, arch_data = f"{arch.describe()} ({how})", {"name": arch.name, "how": how}
    except ArchitectureError as exc:
        if arch_name:  # the user's choice is wrong: an error, not a description
            raise
        arch_line, arch_data = f"undecided: {exc}", {"name": "", "how": str(exc)}
    if arch_name:  # --arch is checked against the blobs, as caffe2-to-torch would
        from ..reference.netdef_builder import blob_differences

        differences = blob_differences(arch, ckpt.blobs)
        if differences:
            raise ArchitectureError(f"{ckpt.path}: the blobs do not fit --arch {arch_name}: "
                                    f"{'; '.join(differences)}")
        arch_line += "; the blobs fit it"
        conflict = filename_conflict(ckpt.path, arch)
        if conflict:
            import sys

            print(f"nlconvert: warning: {conflict}", file=sys.stderr)
            arch_data["warning"] = conflict
    data = {"file": str(ckpt.path), "kind": ckpt.format, "sha256": ckpt.sha256,
            "blobs": len(ckpt.blobs), "values": n_values, "metadata": ckpt.meta,
            "ignored": dict(reasons), "blobs_say": facts, "arch": arch_data}
    lines = [f"file: {ckpt.path}  ({ckpt.format}, sha256 {ckpt.sha256[:16]}...)",
             f"weight blobs: {len(ckpt.blobs)} ({n_values / 1e6:.2f} M values)"]
    if ckpt.meta:
        lines.append("metadata: " + ", ".join(f"{k}={v}" for k, v in ckpt.meta.items()))
    if reasons:
        lines.append("ignored (not parameters): "
                     + ", ".join(f"{n} x {why}" for why, n in sorted(reasons.items())))
    lines += [f"blobs say: {facts}", f"architecture: {arch_line}"]
    if list_blobs:
        width = max((len(n) for n in ckpt.blobs), default=4)
        shapes = {name: list(arr.shape) for name, arr in ckpt.blobs.items()}
        data["blob_shapes"] = shapes
        lines += [f"  {name:<{width}} {'x'.join(map(str, arr.shape)) or 'scalar'} {arr.dtype}"
                  for name, arr in ckpt.blobs.items()]
    return data, lines
