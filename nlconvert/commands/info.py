"""``nlconvert info``: what a checkpoint holds, which architecture it is, what is ignored."""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "info",
        help="list a checkpoint's blobs, its detected architecture and what is ignored",
        description="Describe a Caffe2 checkpoint without converting it.",
    )
    p.add_argument("checkpoint", nargs="?", help=".pkl or init_net.pb")
    p.add_argument("--predict-net", help="predict_net.pb beside an init_net.pb")
    p.add_argument("--arch", help="check the blobs against this architecture")
    p.add_argument("--blobs", action="store_true", help="list every blob with its shape")
    p.add_argument("--list-archs", action="store_true", help="list the zoo architectures")
    p.set_defaults(run=run)


def _list_archs() -> None:
    from ..zoo import arch_names, get_arch, published_accuracy

    for name in arch_names():
        arch = get_arch(name)
        files = ", ".join(c.file for c in published_accuracy(name)) or "(no released checkpoint)"
        print(f"{arch.describe()}\n    {files}")


def run(args: argparse.Namespace) -> int:
    from ..arch_detect import blob_facts, resolve_arch
    from ..errors import ArchitectureError
    from ..io.checkpoint import read_checkpoint

    if args.list_archs:
        _list_archs()
        return 0
    if not args.checkpoint:
        raise ArchitectureError("info needs a checkpoint file (or --list-archs)")
    ckpt = read_checkpoint(args.checkpoint, args.predict_net, allow_nonfinite=True)
    n_values = sum(int(a.size) for a in ckpt.blobs.values())
    print(f"file: {ckpt.path}  ({ckpt.format}, sha256 {ckpt.sha256[:16]}...)")
    print(f"weight blobs: {len(ckpt.blobs)} ({n_values / 1e6:.2f} M values)")
    if ckpt.meta:
        print("metadata: " + ", ".join(f"{k}={v}" for k, v in ckpt.meta.items()))
    reasons = Counter(ckpt.ignored.values())
    if reasons:
        print("ignored (not parameters): "
              + ", ".join(f"{n} x {why}" for why, n in sorted(reasons.items())))
    print(f"blobs say: {blob_facts(ckpt.blobs).describe()}")
    try:
        arch, how = resolve_arch(ckpt.path, ckpt.blobs, args.arch, ckpt.predict_net)
        print(f"architecture: {arch.describe()} ({how})")
    except ArchitectureError as exc:
        print(f"architecture: undecided: {exc}")
    if args.blobs:
        width = max(len(n) for n in ckpt.blobs)
        for name, arr in ckpt.blobs.items():
            print(f"  {name:<{width}} {'x'.join(map(str, arr.shape)) or 'scalar'} {arr.dtype}")
    return 0
