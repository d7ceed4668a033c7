"""``nlconvert evaluate``: accuracy on a whole list of videos, resumable, with a report."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..atomic import atomic_write_text
from ..errors import EXIT_OK, NLConvertError
from .predict import add_view_options


def register(subparsers: Any) -> None:
    """Add the ``evaluate`` sub-command."""
    p = subparsers.add_parser(
        "evaluate",
        help="evaluate on a video list (vallist.txt or Kinetics CSV), resumable",
        description="Score every video of a list with the paper's test protocol; results go "
        "to SQLite as they are computed, so a killed run resumes with the same --db.",
    )
    p.add_argument("model", help="converted .pt, .onnx, or original Caffe2 .pkl")
    p.add_argument("--list", required=True, dest="list_path",
                   help="vallist.txt (<path> <label>) or Kinetics CSV")
    p.add_argument("--root", default=None, help="folder of the videos (default: the list's)")
    p.add_argument("--db", required=True, help="SQLite results database (created or resumed)")
    p.add_argument("--report", default=None, help="Markdown report to write")
    p.add_argument("--json", default=None, help="JSON report to write")
    p.add_argument("--workers", type=int, default=0, help="decoding processes (0: in-process)")
    p.add_argument("--limit", type=int, default=None, help="handle at most N new videos")
    add_view_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``nlconvert evaluate``."""
    from ..video import evaluate as ev
    from ..video import protocol, scorer
    from ..video.resultsdb import ResultsDB, RunConfig

    views = protocol.Views.parse(args.views)
    if args.workers < 0 or (args.limit is not None and args.limit < 0):
        raise NLConvertError("--workers and --limit must not be negative")
    model = scorer.open_scorer(args.model, device=args.device)
    entries = ev.read_list(args.list_path, args.root, model.class_names)
    config = RunConfig(
        model_sha256=scorer.file_sha256(args.model),
        model_path=str(args.model),
        arch=str(getattr(getattr(model, "arch", None), "name", None) or getattr(model, "name", "")),
        views=str(views),
        frames=args.frames or model.frames,
        rate=args.rate or model.rate,
        num_classes=len(model.class_names) if model.class_names else 0,
    )
    db = ResultsDB(args.db, config, list_path=str(args.list_path))
    try:
        summary = ev.evaluate(model, entries, db, views, workers=args.workers, batch=args.batch,
                              limit=args.limit, frames=config.frames, rate=config.rate)
        report = ev.build_report(entries, db.results(), config, model.class_names,
                                 ev.published_for(config.arch))
    finally:
        db.close()
    if args.report:
        atomic_write_text(args.report, ev.report_markdown(report), force=True)
    if args.json:
        atomic_write_text(args.json, ev.report_json(report), force=True)
    o, d = report["official"], report["decoded"]
    print(f"listed {report['listed']}: scored {report['scored']}, failed {report['failed']}, "
          f"pending {report['pending']} (this run: {summary.scored} scored, {summary.failed} "
          f"failed, {summary.already_done} already in {args.db}, {summary.seconds:.1f}s)")
    print(f"top-1 {_f(o['top1'])} / top-5 {_f(o['top5'])} over all {o['denominator']} listed "
          f"(failures count as wrong); top-1 {_f(d['top1'])} / top-5 {_f(d['top5'])} over "
          f"{d['denominator']} decoded")
    for key, reason in summary.failures[:20]:
        print(f"failed: {reason or key}", file=sys.stderr)
    return EXIT_OK


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}%"
