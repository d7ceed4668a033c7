"""Write a converted network as an mmaction2 config + checkpoint (``nlconvert export-mmaction2``).

mmaction2's own ``init_recognizer(config, checkpoint)`` builds the result from stock parts:
``Recognizer3D``, ``I3DHead`` and ``ActionDataPreprocessor`` (this model's mean/std), with
nlconvert's backbone (:mod:`.mmaction2_backbone`, registered in mmaction2's ``MODELS`` from
the config's ``custom_imports``) computing the Caffe2 network exactly. The checkpoint holds
the weights under mmaction2's key names (``weights_map/mmaction2.toml``) and ``meta`` with
the class names and provenance. Writing needs torch only.
"""

from __future__ import annotations

import datetime as _dt
import pprint
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .._atomic import atomic_output, check_writable
from .._version import __version__
from ..arch import INPUT_MEAN, INPUT_STD, ArchSpec
from ..errors import MappingError, OutputExistsError
from ..keymap import load_table

#: The key table of mmaction2 (``weights_map/``).
KEY_TABLE = "mmaction2.toml"
#: The name nlconvert's backbone has in mmaction2's MODELS registry.
BACKBONE_TYPE = "NLConvertResNet"
#: The module the config's ``custom_imports`` names (it registers the backbone).
BACKBONE_MODULE = "nlconvert.interop.mmaction2_backbone"
#: Test views of the official protocol: 10 clips x 3 crops of 256 (short side 256).
TEST_CLIPS, TEST_CROP = 10, 256


def to_mmaction2(param: str) -> tuple[str, str]:
    """nlconvert parameter name -> (the recognizer's child holding it, its key in that child)."""
    found = load_table(KEY_TABLE).to_right(param)
    if found is None:
        raise MappingError(f"parameter '{param}' has no mmaction2 key in weights_map/{KEY_TABLE}")
    rule, key = found
    return str(rule.get("module")), key


def from_mmaction2(module: str, key: str) -> str | None:
    """The nlconvert parameter name of `key` (relative to the recognizer's child `module`),
    or None if the table has no rule of that child for it."""
    table = load_table(KEY_TABLE)
    own = [r for r in table.rules if r.get("module") == module]
    found = table.to_left(key)
    return found[1] if found and found[0] in own else None


def mmaction2_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An nlconvert state dict under mmaction2's full keys (``backbone.layer2.1.conv1.conv.weight``)."""
    out: dict[str, torch.Tensor] = {}
    for param, tensor in state_dict.items():
        module, key = to_mmaction2(param)
        out[f"{module}.{key}"] = tensor.detach().cpu().contiguous()
    return out


def _safe_stem(name: str) -> str:
    """A config/checkpoint file stem: the model's name, file-system and Python-module safe
    (mmengine reads a config by importing it)."""
    return re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or "model"


def mmaction2_config(arch: ArchSpec, *, source: str, sha256: str) -> str:
    """The mmaction2 config (Python source) of a network of `arch`."""
    model = {
        "type": "Recognizer3D",
        # fully_conv_test: in eval mode the backbone hands I3DHead the official fully-
        # convolutional head's positions, so mmaction2's view averaging is the official test.
        "backbone": {"type": BACKBONE_TYPE, "arch": arch.to_dict(), "fully_conv_test": True},
        "cls_head": {
            "type": "I3DHead", "num_classes": arch.num_classes, "in_channels": 2048,
            "spatial_type": "avg", "dropout_ratio": 0.5, "init_std": 0.01,
            # mmaction2 averages the views' softmaxes (the official test sums them: same ranking).
            "average_clips": "prob",
        },
        "data_preprocessor": {
            "type": "ActionDataPreprocessor", "mean": [INPUT_MEAN] * 3, "std": [INPUT_STD] * 3,
            "format_shape": "NCTHW",
        },
    }
    pipeline = [
        {"type": "DecordInit"},
        {"type": "SampleFrames", "clip_len": arch.frames, "frame_interval": arch.sample_rate,
         "num_clips": TEST_CLIPS, "test_mode": True},
        {"type": "DecordDecode"},
        {"type": "Resize", "scale": (-1, TEST_CROP)},
        {"type": "ThreeCrop", "crop_size": TEST_CROP},
        {"type": "FormatShape", "input_format": "NCTHW"},
        {"type": "PackActionInputs"},
    ]
    fmt = pprint.PrettyPrinter(indent=1, width=100, sort_dicts=False).pformat
    return "\n".join([
        f"# mmaction2 config written by nlconvert {__version__} (nlconvert export-mmaction2).",
        f"# Network: {arch.describe()}",
        f"# Weights: {source} (sha256 {sha256 or 'unknown'})",
        "# Load it with mmaction2's own API (pip install 'nlconvert[mmaction2]'):",
        "#   from mmaction.apis import init_recognizer",
        "#   model = init_recognizer('<this file>', '<the .pth beside it>', device='cpu')",
        "# The backbone is nlconvert's (the Caffe2 network exactly); recognizer, head and",
        "# preprocessing are mmaction2's own. The test pipeline is the official 30-view protocol",
        "# (10 clips x 3 crops of 256, short side 256) as mmaction2 samples it. In eval mode the",
        "# backbone (fully_conv_test=True) outputs the fully-convolutional head's pooled positions",
        "# as rows, so I3DHead's average_clips='prob' is the official mean of per-position",
        "# softmaxes; set it False to get res5 itself (then: clip-head softmax per view).",
        "default_scope = 'mmaction'",
        f"custom_imports = dict(imports=[{BACKBONE_MODULE!r}], allow_failed_imports=False)",
        f"model = {fmt(model)}",
        f"test_pipeline = {fmt(pipeline)}",
        "",
    ])


@dataclass(frozen=True)
class MMAction2Export:
    """What :func:`export_mmaction2` wrote."""

    config: Path
    checkpoint: Path
    arch: ArchSpec
    keys: int


def export_mmaction2(model_path: str | Path, out_dir: str | Path, *, name: str | None = None,
                     arch_name: str | None = None, force: bool = False) -> MMAction2Export:
    """Write ``<out_dir>/<name>.py`` (config) and ``<out_dir>/<name>.pth`` (checkpoint) for a
    model file (``.pt``/``.safetensors``, or an original Caffe2 checkpoint, converted first;
    `arch_name` as ``--arch`` for one whose name does not tell its architecture).

    `name` defaults to the model file's stem. Both files are written atomically; existing
    ones are replaced only with `force`.
    """
    from ..convert.pipeline import load_model

    source = Path(model_path)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a folder")
    stem = _safe_stem(name or source.stem)
    cfg_path, pth_path = out / f"{stem}.py", out / f"{stem}.pth"
    for p in (cfg_path, pth_path):
        check_writable(p, force)  # fail before the (long) read
    model = load_model(source, arch_name=arch_name) if arch_name else load_model(source)
    provenance = dict(model.provenance or {})
    sha = str(provenance.get("source_sha256") or "")
    meta: dict[str, Any] = {
        # mmengine keeps the class names of a checkpoint in dataset_meta['classes'].
        "dataset_meta": {"classes": list(model.class_names) if model.class_names else None},
        "arch": model.arch.to_dict(),
        "nlconvert": {
            **provenance,
            "exported_from": source.name,
            "exported_by": f"nlconvert {__version__}",
            "exported_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "key_table": f"weights_map/{KEY_TABLE}",
        },
    }
    state = mmaction2_state_dict(model.state_dict())
    config_text = mmaction2_config(model.arch, source=str(provenance.get("source_file") or source.name),
                                   sha256=sha)
    # The checkpoint first: a config is never left without its weights.
    with atomic_output(pth_path, force) as tmp:
        torch.save({"state_dict": state, "meta": meta}, tmp)
    with atomic_output(cfg_path, force) as tmp:
        tmp.write_text(config_text, encoding="utf-8")
    return MMAction2Export(cfg_path, pth_path, model.arch, len(state))
