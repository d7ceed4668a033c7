"""Static int8 quantisation of an exported float32 ONNX file (ONNX Runtime CPU).

Convolutions get int8 weights (per output channel) and uint8 activations in QDQ form; the
ranges of the activations are calibrated (min/max) on seeded clips. On CPUs with AMX-INT8 or
VNNI, ONNX Runtime's MLAS kernels run these as integer GEMMs. The non-local attention
(MatMul, softmax), the classifier and the residual additions stay float32: quantised
attention logits cost most of the accuracy for little time. Approximate: check top-1
agreement (``nlconvert bench --int8`` reports it).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._atomic import atomic_output
from ..synthetic.clips import seeded_clip


def quantize_int8(src: str | Path, out: str | Path, shape: Sequence[int], clips: int = 3,
                  seed: int = 1000, force: bool = False) -> Path:
    """Write an int8 QDQ copy of the float32 nlconvert ONNX file `src` to `out`."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.i = 0

        def get_next(self) -> dict[str, Any] | None:
            if self.i >= clips:
                return None
            self.i += 1
            return {"clip": seeded_clip(tuple(shape), seed + self.i).numpy()}

    meta = {p.key: p.value for p in onnx.load(str(src), load_external_data=False)
            .metadata_props}
    with tempfile.TemporaryDirectory(prefix="nlconvert-int8-") as tmpdir, \
            atomic_output(out, force) as tmp:
        pre = Path(tmpdir) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        q = Path(tmpdir) / "q.onnx"
        quantize_static(
            str(pre), str(q), _Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            op_types_to_quantize=["Conv"],
            calibrate_method=CalibrationMethod.MinMax,
        )
        model = onnx.load(str(q))
        meta["nlconvert.precision"] = "int8"
        prov = json.loads(meta.get("nlconvert.provenance", "{}"))
        prov["int8_calibration"] = f"{clips} seeded clips {'x'.join(map(str, shape))}, min/max"
        meta["nlconvert.provenance"] = json.dumps(prov, sort_keys=True)
        onnx.helper.set_model_props(model, meta)
        onnx.save_model(model, str(tmp), save_as_external_data=False)
    return Path(out)
