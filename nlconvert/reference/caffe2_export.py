"""Write a checkpoint as a Caffe2 ``init_net.pb`` + ``predict_net.pb`` pair (``nlconvert export-caffe2``).

The predict net is the one the official code builds (:mod:`nlconvert.reference.netdef_builder`),
the init net holds the checkpoint's weights as ``GivenTensorFill`` ops. Caffe2 bakes the batch
size (and, for the grouped non-local, the crop size) into the net's Reshape ops, so the files
are only right for the ``--batch-size``/``--crop-size`` they were written for.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .._atomic import atomic_output, check_writable
from ..arch import ArchSpec
from ..errors import ArchitectureError, MappingError

INIT_NET = "init_net.pb"
PREDICT_NET = "predict_net.pb"


def check_blobs(arch: ArchSpec, blobs: Mapping[str, npt.ArrayLike], head: str) -> list[str]:
    """The weight names the net reads; :class:`MappingError` if one is missing or misshapen."""
    from .netdef_builder import expected_blob_names, expected_blob_shapes

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
    *,
    head: str = "clip",
    batch_size: int = 1,
    crop_size: int | None = None,
    force: bool = False,
) -> tuple[Path, Path]:
    """Write ``out_dir/init_net.pb`` and ``out_dir/predict_net.pb``; return their paths.

    Only the blobs the net reads go into the init net. Both targets are checked before
    anything is written, and each file is written atomically.
    """
    from ..io.netdef_io import netdef_from_blobs
    from .netdef_builder import build_predict_net

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
    init = netdef_from_blobs({n: np.asarray(blobs[n], dtype=np.float32) for n in names},
                             name=f"{arch.name}_init")
    for path, net in ((init_path, init), (predict_path, predict)):
        with atomic_output(path, force) as tmp:
            tmp.write_bytes(net.SerializeToString())
    return init_path, predict_path
