"""Convert a Caffe2 checkpoint, export it to ONNX, run the ONNX file on a clip.

    python examples/convert_export_run.py [CHECKPOINT.pkl] [--arch NAME] [--out DIR]

Without a checkpoint a seeded random one is generated in the official format first (the
blobs of nlconvert.reference.netdef_builder, written by nlconvert.io.py2pickle), so the
whole chain runs anywhere.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from nlconvert.convert import convert_file, load_model
from nlconvert.io.py2pickle import write_official_pkl
from nlconvert.onnx_export import export_onnx
from nlconvert.onnx_runtime import OnnxModel
from nlconvert.reference.netdef_builder import random_blobs
from nlconvert.zoo import get_arch


def make_checkpoint(arch_name: str, out_dir: Path) -> Path:
    """A generated official-format .pkl with seeded random weights."""
    arch = get_arch(arch_name)
    path = out_dir / f"{arch_name}.pkl"
    write_official_pkl(path, random_blobs(arch, seed=0), model_iter=400000, lr=1e-4, force=True)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", help="Caffe2 .pkl (default: generate one)")
    parser.add_argument("--arch", default="i3d_nonlocal_8x8", help="architecture name")
    parser.add_argument("--out", default="example_out", help="output directory")
    args = parser.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    # 1. Convert: Caffe2 .pkl -> nlconvert .pt (the checkpoint's blobs, strictly mapped).
    source = Path(args.checkpoint) if args.checkpoint else make_checkpoint(args.arch, out_dir)
    if source.suffix == ".pt":
        pt = source
    else:
        pt, conv = convert_file(source, out_dir / f"{source.stem}.pt",
                                arch_name=args.arch if not args.checkpoint else None, force=True)
        print(f"converted {source} -> {pt}: {conv.arch.describe()}")

    # 2. Export: dynamic batch/T/H/W, checked in ONNX Runtime at two sizes.
    model = load_model(pt)
    onnx_path = export_onnx(model, out_dir / f"{pt.stem}.onnx", force=True).path
    print(f"exported {onnx_path}")

    # 3. Run the ONNX file on a clip (here a seeded random one, normalised RGB N x 3 x T x H x W).
    onnx_model = OnnxModel(onnx_path)
    arch = onnx_model.arch
    clip = torch.randn((1, 3, arch.frames, 224, 224),
                       generator=torch.Generator().manual_seed(0)).numpy()
    scores = onnx_model(clip)
    print(f"{arch.name} on {onnx_model.provider}: top-5")
    for rank, (index, name, score) in enumerate(onnx_model.topk(scores, 5)[0], 1):
        print(f"  {rank}. {name} ({index}) {score:.3f}")
    return 0 if np.isfinite(scores).all() else 1


if __name__ == "__main__":
    sys.exit(main())
