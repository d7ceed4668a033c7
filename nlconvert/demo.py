"""The main job end to end on a generated checkpoint: write it in the official format,
convert it, export it to ONNX, and prove parity (``nlconvert demo``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ._atomic import atomic_write_text, check_writable
from .parity.run import ParityResult


@dataclass
class DemoResult:
    """The files the demo wrote and the parity verdict."""

    checkpoint: Path
    model: Path
    onnx: Path
    report_html: Path
    report_json: Path
    parity: ParityResult


def demo_paths(out_dir: str | Path, arch_name: str) -> dict[str, Path]:
    """The files a demo of `arch_name` writes into `out_dir`."""
    from .synthetic import release_file_name

    out = Path(out_dir)
    stem = release_file_name(arch_name)
    return {"checkpoint": out / f"{stem}.pkl", "model": out / f"{stem}.pt",
            "onnx": out / f"{stem}.onnx", "report_html": out / "parity.html",
            "report_json": out / "parity.json"}


def run_demo(out_dir: str | Path, *, arch_name: str = "i3d_nonlocal_8x8", size: int = 224,
             seed: int = 0, force: bool = False,
             log: Callable[[str], None] = print) -> DemoResult:
    """Generate, convert, export and check; every file is refused if it exists, unless `force`."""
    from .arch import get_arch
    from .convert import convert_file, load_model
    from .errors import ArchitectureError
    from .parity.report import to_html, to_json
    from .parity.run import run_parity
    from .runtime.onnx_export import export_onnx
    from .synthetic import write_synthetic_checkpoint

    if get_arch(arch_name).is_2d:  # refused before anything is written
        raise ArchitectureError(
            f"{arch_name} is a 2D ImageNet network: the demo converts, exports and checks a "
            "video model; choose a video architecture (see `nlconvert info --list-archs`); "
            "a 2D checkpoint is inflated by caffe2-to-torch --inflate")
    paths = demo_paths(out_dir, arch_name)
    for path in paths.values():
        check_writable(path, force)  # before anything is written
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    log(f"[1/4] writing a generated official-format checkpoint: {paths['checkpoint']}")
    paths["checkpoint"].unlink(missing_ok=True)
    write_synthetic_checkpoint(arch_name, paths["checkpoint"], seed=seed)
    log(f"[2/4] converting to PyTorch: {paths['model']}")
    convert_file(paths["checkpoint"], paths["model"], force=force)
    log(f"[3/4] exporting to ONNX: {paths['onnx']}")
    export_onnx(load_model(paths["model"]), paths["onnx"], force=force,
                log=lambda line: log(f"      {line}"))
    log("[4/4] parity: numpy Caffe2 reference vs PyTorch vs ONNX")
    result = run_parity(paths["checkpoint"], onnx_path=paths["onnx"], onnx_layers=True,
                        size=size, seed=seed)
    atomic_write_text(paths["report_html"], to_html(result), force)
    atomic_write_text(paths["report_json"], to_json(result), force)
    return DemoResult(paths["checkpoint"], paths["model"], paths["onnx"], paths["report_html"],
                      paths["report_json"], result)
