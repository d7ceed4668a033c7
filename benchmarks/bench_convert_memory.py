"""Conversion time and peak memory: nlconvert against the common path, in one run.

The common path is what most ports do: ``pickle.load`` everything (encoding latin1), drop the
momentum blobs, ``torch.save`` the rest. nlconvert drops what is not a weight while reading.
Each path runs in a fresh subprocess; peak memory is the child's maximum resident set size.

    python benchmarks/bench_convert_memory.py --arch r101_i3d_nonlocal_8x8 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMON_PATH = r"""
import pickle, sys, numpy as np, torch
with open(sys.argv[1], "rb") as f:
    blobs = pickle.load(f, encoding="latin1")["blobs"]
state = {k: torch.from_numpy(np.asarray(v)) for k, v in blobs.items()
         if isinstance(v, np.ndarray) and not k.endswith("_momentum")}
del blobs
torch.save(state, sys.argv[2])
"""

# Each child prints its own peak resident set size (KiB on Linux) as its last line.
REPORT_PEAK = "\nimport resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"

NLCONVERT = r"""
import sys
from nlconvert.cli import main
code = main(["caffe2-to-torch", sys.argv[1], "-o", sys.argv[2], "--force", "--arch", sys.argv[3]])
if code:
    sys.exit(code)
"""


def _run(code: str, *args: str) -> tuple[float, float]:
    """Wall time (s) and peak RSS (MiB) of `code` run in a fresh interpreter."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code + REPORT_PEAK, *args],
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"benchmark child failed: {proc.stderr.strip()[-500:]}")
    peak_kib = int(proc.stdout.strip().splitlines()[-1])
    return elapsed, peak_kib / 1024


def _baseline_rss() -> float:
    """Peak RSS of an interpreter that only imports torch and numpy (MiB)."""
    return _run("import numpy, torch")[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="r101_i3d_nonlocal_8x8")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", help="write the results as JSON")
    args = parser.parse_args()

    from nlconvert.synthetic import write_synthetic_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / f"{args.arch}.pkl"
        write_synthetic_checkpoint(args.arch, src)
        size_mib = src.stat().st_size / 2**20
        base = _baseline_rss()
        # Interleave the two paths so that drift in the machine's load hits both alike.
        ours, common = [], []
        for _ in range(args.repeat):
            ours.append(_run(NLCONVERT, str(src), str(Path(tmp) / "a.pt"), args.arch))
            common.append(_run(COMMON_PATH, str(src), str(Path(tmp) / "b.pt")))
    rows = {
        "nlconvert": (statistics.median(t for t, _ in ours), max(m for _, m in ours)),
        "pickle.load + torch.save": (statistics.median(t for t, _ in common),
                                     max(m for _, m in common)),
    }
    print(f"checkpoint: {args.arch}, official pkl with momentum, {size_mib:.0f} MiB; "
          f"interpreter with torch alone peaks at {base:.0f} MiB")
    print("| path | median time (s) | peak RSS (MiB) | peak - torch import (MiB) | x file size |")
    print("|---|---|---|---|---|")
    for name, (t, m) in rows.items():
        print(f"| {name} | {t:.2f} | {m:.0f} | {m - base:.0f} | {(m - base) / size_mib:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"arch": args.arch, "file_mib": size_mib, "torch_import_mib": base,
             "results": {k: {"median_s": t, "peak_rss_mib": m} for k, (t, m) in rows.items()}},
            indent=2))


if __name__ == "__main__":
    main()
