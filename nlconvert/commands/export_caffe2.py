"""``nlconvert export-caffe2``: write a checkpoint as a Caffe2 ``init_net.pb`` + ``predict_net.pb``.

The predict net is the one the official code builds (:mod:`nlconvert.reference.netdef_builder`),
the init net holds the checkpoint's weights as ``GivenTensorFill`` ops. Caffe2 bakes the batch
size (and, for the grouped non-local, the crop size) into the net's Reshape ops, so the files
are only right for the ``--batch-size``/``--crop-size`` they were written for.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..arch import ArchSpec
from ..atomic import atomic_output, check_writable
from ..errors import ArchitectureError, MappingError

INIT_NET = "init_net.pb"
PREDICT_NET = "predict_net.pb"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export-caffe2`` sub-command."""
    p = subparsers.add_parser(
        "export-caffe2",
        help="write a checkpoint as a Caffe2 init_net.pb + predict_net.pb pair",
        description="Write a checkpoint as the Caffe2 net pair the official code builds: "
                    "init_net.pb (GivenTensorFill of each weight) and predict_net.pb. "
                    "Caffe2 bakes the batch size (and the grouped non-local's crop size) "
                    "into the net: use the files with exactly those sizes.",
    )
    p.add_argument("checkpoint", help="official .pkl (or any checkpoint nlconvert reads)")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="directory for init_net.pb and predict_net.pb")
    p.add_argument("--arch", default=None, metavar="NAME",
                   help="architecture name (default: from the file name or the blobs)")
    p.add_argument("--head", choices=("clip", "fully_conv"), default="clip",
                   help="clip: FC + softmax (split val); fully_conv: the official test net")
    p.add_argument("--batch-size", type=int, default=1, metavar="N",
                   help="batch size baked into the non-local Reshape ops (default 1)")
    p.add_argument("--crop-size", type=int, default=None, metavar="S",
                   help="crop size baked into the grouped non-local Reshape "
                        "(default 224 clip, 256 fully_conv)")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.set_defaults(run=run)


def check_blobs(arch: ArchSpec, blobs: Mapping[str, npt.ArrayLike], head: str) -> list[str]:
    """The weight names the net reads; :class:`MappingError` if one is missing or misshapen."""
    from ..reference.netdef_builder import expected_blob_names, expected_blob_shapes

    shapes = expected_blob_shapes(arch)
    names = expected_blob_names(arch, head)  # type: ignore[arg-type]
    missing = [n for n in names if n not in blobs]
    if missing:
        more = f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""
        raise MappingError(
            f"{arch.name}: the checkpoint lacks {len(missing)} blob(s) the Caffe2 net reads: "
            f"{', '.join(missing[:5])}{more}"
        )
    bad = [
        f"{n} {tuple(np.shape(blobs[n]))} != {shapes[n]}"
        for n in names
        if tuple(np.shape(blobs[n])) != shapes[n]
    ]
    if bad:
        raise MappingError(f"{arch.name}: blob shapes do not fit the net: {'; '.join(bad[:5])}")
    return names


def export_caffe2(
    arch: ArchSpec,
    blobs: Mapping[str, npt.ArrayLike],
    out_dir: str | Path,
    head: str = "clip",
    batch_size: int = 1,
    crop_size: int | None = None,
    force: bool = False,
) -> tuple[Path, Path]:
    """Write ``out_dir/init_net.pb`` and ``out_dir/predict_net.pb``; return their paths.

    Only the blobs the net reads go into the init net. Both targets are checked before
    anything is written, and each file is written atomically.
    """
    from ..reference.netdef_builder import build_init_net, build_predict_net

    if arch.is_2d:
        raise ArchitectureError(f"{arch.name} is a 2D ImageNet network; export a video net")
    if head not in ("clip", "fully_conv"):
        raise ArchitectureError(f"unknown head {head!r}")
    names = check_blobs(arch, blobs, head)
    out = Path(out_dir)
    init_path, predict_path = out / INIT_NET, out / PREDICT_NET
    for path in (init_path, predict_path):
        check_writable(path, force)
    predict = build_predict_net(arch, head, batch_size, crop_size)  # type: ignore[arg-type]
    init = build_init_net({n: blobs[n] for n in names}, name=f"{arch.name}_init")
    for path, net in ((init_path, init), (predict_path, predict)):
        with atomic_output(path, force) as tmp:
            tmp.write_bytes(net.SerializeToString())
    return init_path, predict_path


def run(args: argparse.Namespace) -> int:
    """Read the checkpoint, choose the architecture, write the pair."""
    from ..arch_detect import resolve_arch
    from ..io.checkpoint import read_checkpoint

    if args.batch_size < 1:
        raise ArchitectureError(f"--batch-size must be >= 1, got {args.batch_size}")
    ckpt = read_checkpoint(args.checkpoint)
    arch, how = resolve_arch(args.checkpoint, ckpt.blobs, args.arch)
    init_path, predict_path = export_caffe2(
        arch, ckpt.blobs, args.output, args.head, args.batch_size, args.crop_size, args.force
    )
    print(f"architecture: {arch.name} ({how})")
    print(f"wrote {init_path} and {predict_path} ({args.head} head)")
    print(f"note: batch size {args.batch_size} is baked into the net's Reshape ops; "
          "Caffe2 computes wrong attention for any other batch size")
    return 0
