"""``export-hub``: a converted network as a folder ready for the Hugging Face Hub.

The weights are checked against the numpy Caffe2 reference before anything is written (a
failed check writes nothing), the optional ONNX file is checked against PyTorch, and the
folder appears whole (written beside its target, then renamed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._atomic import atomic_folder, check_writable
from .._version import __version__
from ..arch import ArchSpec, ZooCheckpoint, kinetics400_names, published_accuracy
from ..convert import load_model
from ..errors import ParityError
from ..model import NLResNet
from ..model.hubfolder import CARD_NAME, ONNX_NAME, hub_config, write_config, write_weights
from ..parity import run_parity
from ..video.protocol import CROP, SCALE, Views
from .card import ZOO_LICENSE, model_card

#: What the card and config.json say about the reference the weights were checked against.
REFERENCE = ("the numpy Caffe2 reference of nlconvert executing the official network's NetDef "
             "(itself checked against outputs of the real Caffe2 runtime in nlconvert's tests)")


@dataclass
class HubExport:
    """What :func:`export_hub` wrote."""

    path: Path
    files: list[str]
    config: dict[str, Any]
    license: str
    parity_ok: bool | None  # None: not checked
    onnx_checks: list[str] = field(default_factory=list)


def official_checkpoint(arch: ArchSpec, provenance: dict[str, Any]) -> ZooCheckpoint | None:
    """The zoo checkpoint the weights were converted from, known by its released file name;
    None for weights that were trained after conversion (``create_model`` records it)."""
    if provenance.get("training"):
        return None  # fine-tuned: neither the published accuracy nor the zoo's licence applies
    source = Path(str(provenance.get("source_file") or "")).name
    stem = source.split(".")[0] if source else ""
    for ck in published_accuracy(arch.name):
        if ck.file == stem and arch.num_classes == 400:
            return ck
    return None


def export_hub(
    model: str | Path,
    out: str | Path,
    *,
    license: str | None = None,
    onnx: bool = False,
    arch_name: str | None = None,
    parity: bool = True,
    parity_frames: int | None = None,
    parity_size: int | None = None,
    force: bool = False,
    log: Callable[[str], None] | None = print,
) -> HubExport:
    """Write the hub folder `out` of `model` (a Caffe2 ``.pkl``/``.pb``, a ``.pt``/``.safetensors``
    or another hub folder; `arch_name` for a Caffe2 file whose name and blobs do not say it).

    `license`: the card's licence (default: ``cc-by-nc-4.0`` for a checkpoint of the official
    zoo, known by its released file name; ``other`` for anything else). `parity`: check the
    network against the Caffe2 reference on one seeded clip (`parity_frames` x `parity_size`,
    default the training clip) and refuse to write on a failure. `onnx`: add ``model.onnx``
    (fully-convolutional head) after checking it against PyTorch in ONNX Runtime.
    """
    source = Path(model)
    target = Path(out)
    if target.exists() and not force:
        check_writable(target, force)  # the one-line "output exists" error, before the work
    say = log or (lambda _m: None)
    convert_kw: dict[str, Any] = {"arch_name": arch_name} if arch_name else {}
    net = load_model(source, **convert_kw)
    zoo = official_checkpoint(net.arch, dict(net.provenance))
    chosen = license or (ZOO_LICENSE if zoo is not None else "other")
    names = net.class_names
    datasets = ["kinetics-400"] if names is not None and list(names) == list(kinetics400_names()) else []
    views = Views()
    extra: dict[str, Any] = {
        "test_size": SCALE,
        "test_protocol": {"scale": SCALE, "crop": CROP, "clips": views.clips, "crops": views.crops,
                          "head": "fully_conv", "score": "sum of the views' softmaxes",
                          "frames": net.arch.frames, "sample_rate": net.arch.sample_rate},
        "license": chosen,
        "published_accuracy": ({"file": zoo.file, "top1": zoo.top1, "top5": zoo.top5,
                                "protocol": "Kinetics-400 val, 30 views (official README)"}
                               if zoo is not None and zoo.top1 is not None else None),
        "parity": _parity(source, arch_name, parity, parity_frames, parity_size, say),
    }
    with atomic_folder(target, force) as tmp:
        if onnx:
            extra["onnx"] = _onnx(net, tmp / ONNX_NAME, say)
        config = hub_config(net.arch, names, net.provenance, extra)
        write_config(config, tmp)
        write_weights(net.state_dict(), tmp)
        protocol = extra["test_protocol"]
        (tmp / CARD_NAME).write_text(
            model_card(config, repo_name=target.name, license=chosen, datasets=datasets,
                       published=zoo, protocol=protocol), encoding="utf-8")
        files = sorted(p.name for p in tmp.iterdir())
    return HubExport(target, files, config, chosen, extra["parity"]["ok"] if parity else None,
                     extra.get("onnx", {}).get("checks", []))


def _parity(source: Path, arch_name: str | None, enabled: bool, frames: int | None,
            size: int | None, say: Callable[[str], None]) -> dict[str, Any]:
    """The parity entry of config.json; raises :class:`ParityError` when the check fails."""
    if not enabled:
        return {"checked": False}
    result = run_parity(source, arch_name=arch_name, frames=frames, size=size)
    worst = max(result.rows, key=lambda r: r.max_rel_err)
    final = [r for r in result.rows if r.name in ("pred", "softmax")] or result.rows[-1:]
    entry = {
        "checked": True,
        "ok": result.ok,
        "reference": REFERENCE,
        "nlconvert_version": __version__,
        "input": f"{'x'.join(map(str, result.input_shape))} {result.input_desc}",
        "head": result.head,
        "tolerance": result.tolerance.describe(),
        "layers_compared": len(result.rows),
        "top1_agree": result.top1_agree,
        "worst_layer": worst.name,
        "worst_rel_err": worst.max_rel_err,
        "outputs": [r.to_dict() for r in final],
    }
    say(f"parity vs the Caffe2 reference: {len(result.rows)} tensors, worst {worst.name} "
        f"rel err {worst.max_rel_err:.3g}: {'ok' if result.ok else 'FAILED'}")
    if not result.ok:
        raise ParityError(f"{source}: the network differs from the Caffe2 reference (worst "
                          f"{worst.name}, relative error {worst.max_rel_err:.3g}); nothing written")
    return entry


def _onnx(net: NLResNet, path: Path, say: Callable[[str], None]) -> dict[str, Any]:
    """``model.onnx`` with the fully-convolutional head, checked (ExportError/ParityError)."""
    from ..runtime.onnx_export import export_onnx

    report = export_onnx(net, path, head="fully_conv", force=True, log=None)
    checks = [c.describe() for c in report.checks]
    for check in checks:
        say(f"model.onnx vs pytorch at {check}")
    return {"file": ONNX_NAME, "head": report.head, "opset": report.opset, "layout": report.layout,
            "precision": report.precision, "tolerance_rel": report.tolerance, "checks": checks,
            "max_rel": max(c.max_rel for c in report.checks)}
