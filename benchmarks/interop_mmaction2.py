"""How far mmaction2 is from the Caffe2 network: stock mmaction2 backbones loaded with the
converted weights ("as shipped") vs the export-mmaction2 files, on seeded networks.

Run in a venv with nlconvert[mmaction2] (README, "Loading these checkpoints elsewhere"):

    .venv-mm/bin/python benchmarks/interop_mmaction2.py

Reported: max |logit difference| / max |logit| against nlconvert's network (the Caffe2
arithmetic) at the training clip 1 x 3 x T x 224 x 224 (clip head), and, at the official
test crop 256, the max difference of the 3-view mean probabilities between the official
fully-convolutional head and mmaction2's averaging of clip-head softmaxes.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import torch

from nlconvert.arch import INPUT_MEAN, INPUT_STD, ArchSpec
from nlconvert.arch.zoo import get_arch
from nlconvert.convert import save_model
from nlconvert.interop.mmaction2 import export_mmaction2, mmaction2_state_dict
from nlconvert.interop.mmaction2_check import mmaction2_logits
from nlconvert.model.resnet import NLResNet
from nlconvert.synthetic.clips import seeded_clip
from nlconvert.synthetic.models import synthetic_model

ARCHS = ["c2d_baseline_8x8", "i3d_baseline_8x8", "i3d_nonlocal_8x8", "i3d_nonlocal_32x2"]


def stock_backbone(arch: ArchSpec) -> dict[str, Any]:
    """The backbone config mmaction2 publishes for this layout (its C2D and I3D/I3D-NL configs)."""
    if arch.family == "c2d" and not arch.has_nonlocal and arch.stem == "short":
        return {"type": "C2D", "depth": 50, "pretrained": None, "norm_eval": False}
    blocks = arch.blocks_per_stage
    nonlocal_flags = tuple(
        tuple(int(i in arch.nonlocal_indices(stage)) for i in range(n))
        for stage, n in zip(("res2", "res3", "res4", "res5"), blocks, strict=True))
    cfg: dict[str, Any] = {
        "type": "ResNet3d", "depth": arch.depth, "pretrained": None, "pretrained2d": False,
        "conv1_kernel": (1 + 2 * arch.conv1_temporal, 7, 7),
        "conv1_stride_t": arch.conv1_temporal_stride, "pool1_stride_t": arch.pool1_stride[0],
        "conv_cfg": {"type": "Conv3d"}, "norm_eval": False, "with_pool2": True,
        "inflate": tuple(tuple(int(u > 0) for u in s) for s in arch.temporal_convs),
        "zero_init_residual": False,
    }
    if arch.has_nonlocal:
        # mmaction2's published non-local config (i3d ... r50-nl-embedded-gaussian).
        cfg["non_local"] = nonlocal_flags
        cfg["non_local_cfg"] = {"sub_sample": True, "use_scale": False, "mode": "embedded_gaussian",
                                "norm_cfg": {"type": "BN3d", "requires_grad": True}}
    return cfg


def stock_state(model: NLResNet, recognizer: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The converted weights under mmaction2's keys, fitted to a stock recognizer: the
    non-local output-conv bias (no slot there) folded into the BN mean after it, 1-frame
    kernels squeezed for the 2-D C2D backbone."""
    state = mmaction2_state_dict(model.state_dict())
    for key in [k for k in state if k.endswith("conv_out.conv.bias")]:
        bias = state.pop(key)
        mean_key = key.replace("conv_out.conv.bias", "conv_out.bn.running_mean")
        state[mean_key] = state[mean_key] - bias  # BN(Wy + b) = BN'(Wy) with mean - b
    target = recognizer.state_dict()
    for key, value in state.items():
        if key in target and target[key].dim() == 4 and value.dim() == 5:
            state[key] = value.squeeze(2)
    missing = [k for k in target if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in target]
    if missing or unexpected:
        raise SystemExit(f"stock layout mismatch: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return state


def _pixels(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Raw RGB values of a seeded clip (moving blobs: clips differ after pooling, unlike noise)."""
    return (seeded_clip(shape, seed) * INPUT_STD + INPUT_MEAN).clamp(0, 255)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", default=",".join(ARCHS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from mmaction.registry import MODELS
    from mmaction.utils import register_all_modules

    import nlconvert.interop.mmaction2_backbone  # noqa: F401  (the stand-in for the wheel's missing DRN)

    register_all_modules()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.archs.split(","):
            arch = get_arch(name)
            model = synthetic_model(arch, seed=args.seed, calib_shape=(arch.frames, 224, 224))
            pt = save_model(model, Path(tmp) / f"{name}.pt", force=True)
            done = export_mmaction2(pt, Path(tmp) / "mm", force=True)
            pixels = _pixels((1, 3, arch.frames, 224, 224), args.seed + 1)
            with torch.no_grad():
                want = model((pixels - INPUT_MEAN) / INPUT_STD)
            scale = float(want.abs().max())
            exported = mmaction2_logits(done.config, done.checkpoint, pixels)
            stock = MODELS.build({
                "type": "Recognizer3D", "backbone": stock_backbone(arch),
                "cls_head": {"type": "I3DHead", "num_classes": arch.num_classes, "in_channels": 2048},
                "data_preprocessor": {"type": "ActionDataPreprocessor", "mean": [INPUT_MEAN] * 3,
                                      "std": [INPUT_STD] * 3, "format_shape": "NCTHW"}}).eval()
            stock.load_state_dict(stock_state(model, stock), strict=False)

            def error(stock: torch.nn.Module = stock, pixels: torch.Tensor = pixels,
                      want: torch.Tensor = want, scale: float = scale) -> float:
                with torch.no_grad():
                    got = stock.cls_head(stock.backbone((pixels - INPUT_MEAN) / INPUT_STD))
                return float((got - want).abs().max()) / scale

            # As shipped; then with the fixes one at a time, to show where the gap comes from.
            errors = {"as shipped": error()}
            if hasattr(stock.backbone, "maxpool"):
                # ResNet3d pads pool1 and pools 1 frame (taking every 2nd for the 32x2 stem);
                # Caffe2: no padding, and a max over 2 frames for that stem.
                stock.backbone.maxpool.padding = (0, 0, 0)
                stock.backbone.maxpool.kernel_size = arch.pool1_kernel
                errors["+ Caffe2 pool1"] = error()
            blocks = [m for m in stock.modules() if hasattr(m, "use_scale")]
            if blocks:  # the published NL config leaves out the 1/sqrt(d) scale
                for block in blocks:
                    block.use_scale = True
                errors["+ 1/sqrt(d) scale"] = error()
                for block in blocks:  # mmcv sub-samples conv-then-pool; Caffe2 pool-then-conv
                    block.g = torch.nn.Sequential(block.g[1], block.g[0])
                    block.phi = torch.nn.Sequential(block.phi[1], block.phi[0])
                errors["+ pool-then-conv"] = error()
            errors["exported"] = float((exported - want).abs().max()) / scale
            rows.append((name, stock_backbone(arch)["type"], errors))
            print(name, stock_backbone(arch)["type"], {k: f"{v:.3g}" for k, v in errors.items()}, flush=True)

        # The test head at 256: official fully-convolutional vs mmaction2's clip-head averaging.
        arch = get_arch("i3d_nonlocal_8x8")
        model = synthetic_model(arch, seed=args.seed, calib_shape=(arch.frames, 256, 256))
        pt = save_model(model, Path(tmp) / "fc.pt", force=True)
        done = export_mmaction2(pt, Path(tmp) / "mm", force=True)
        views = _pixels((3, 3, arch.frames, 256, 256), args.seed + 2)
        x = (views - INPUT_MEAN) / INPUT_STD
        with torch.no_grad():
            official = model.set_head("fully_conv")(x).mean(0)
            clip_avg = torch.softmax(model.set_head("clip")(x), 1).mean(0)
            per_position = torch.softmax(mmaction2_logits(done.config, done.checkpoint, views), 1)
            exported = per_position.mean(0)  # the rows of all views (I3DHead's 'prob' averaging)
    print()
    print("| network | stock backbone | as shipped | + Caffe2 pool1 | + 1/sqrt(d) scale "
          "| + pool-then-conv | exported by nlconvert |")
    print("|---|---|---|---|---|---|---|")
    for name, kind, errors in rows:
        cells = [f"{errors[k]:.2g}" if k in errors else "-"
                 for k in ("as shipped", "+ Caffe2 pool1", "+ 1/sqrt(d) scale", "+ pool-then-conv",
                           "exported")]
        print(f"| {name} | {kind} | " + " | ".join(cells) + " |")
    print()
    print(f"i3d_nonlocal_8x8, 3 views of 8x256x256, max |mean-probability difference| vs the official "
          f"fully-convolutional test: mmaction2 clip-head averaging "
          f"{float((clip_avg - official).abs().max()):.2g}, exported (fully_conv_test) "
          f"{float((exported - official).abs().max()):.2g}")


if __name__ == "__main__":
    main()
