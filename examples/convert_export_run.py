"""Convert a Caffe2 checkpoint, export it to ONNX, run the ONNX file on a clip.

    python examples/convert_export_run.py [CHECKPOINT.pkl] [--arch NAME] [--out DIR]

Without a checkpoint a seeded random one is generated in the official format first
(:func:`nlconvert.synthetic.write_synthetic_checkpoint`), so the whole chain runs anywhere.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import nlconvert
from nlconvert.arch import top_k
from nlconvert.synthetic import write_synthetic_checkpoint
from nlconvert.synthetic.clips import seeded_clip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", help="Caffe2 .pkl (default: generate one)")
    parser.add_argument("--arch", default="i3d_nonlocal_8x8", help="architecture name")
    parser.add_argument("--out", default="example_out", help="output directory")
    args = parser.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    # 1. Convert: Caffe2 .pkl -> nlconvert .pt (the checkpoint's blobs, strictly mapped).
    source = Path(args.checkpoint) if args.checkpoint else out_dir / f"{args.arch}.pkl"
    if not args.checkpoint:
        source.unlink(missing_ok=True)
        write_synthetic_checkpoint(args.arch, source)
    pt, conv = nlconvert.convert_file(source, out_dir / f"{source.stem}.pt", force=True,
                                      arch_name=None if args.checkpoint else args.arch)
    print(f"converted {source} -> {pt}: {conv.arch.describe()}")

    # 2. Export: dynamic batch/T/H/W, checked in ONNX Runtime at two sizes.
    model = nlconvert.load_model(pt)
    onnx_path = nlconvert.export_onnx(model, out_dir / f"{pt.stem}.onnx", force=True).path
    print(f"exported {onnx_path}")

    # 3. Run the ONNX file on a clip (here a seeded random one, normalised RGB N x 3 x T x H x W).
    backend = nlconvert.open_backend(onnx_path, backend="onnx")
    clip = seeded_clip((1, 3, backend.arch.frames, 224, 224), 0).numpy()
    outputs = backend.run(clip, "clip")  # logits, pool5, res4
    print(f"{backend.describe()}: top-5 of the clip")
    for rank, (index, name, score) in enumerate(top_k(outputs["logits"][0], 5, backend.class_names), 1):
        print(f"  {rank}. {name} ({index}) {score:.3f}")
    print(f"pool5 features: {outputs['pool5'].shape}")
    return 0 if np.isfinite(outputs["logits"]).all() else 1


if __name__ == "__main__":
    sys.exit(main())
