"""Evaluate a model on a whole list of videos, resumably, and report accuracy.

Accuracy is given two ways, both stated: the official denominator (every listed video;
missing and undecodable ones count as wrong, as tools/test_net_video.py does with its 19,761)
and the accuracy over the videos that decoded. Videos scored despite decode warnings (a
truncated or damaged file, see :func:`nlconvert.video.decode.decode_warnings`) are counted in
the report; ``strict`` records them as failures instead.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .._progress import StepBar
from ..arch import ArchSpec
from ..runtime.backends import Backend
from .datalist import Entry, read_list
from .predict import score_views
from .protocol import CROP, Views, normalize
from .resultsdb import ResultsDB, RunConfig, VideoResult
from .workers import WorkerCrash, decode_views, run_tasks


@dataclass
class EvalSummary:
    """What one `evaluate` call did (the report is computed from the database)."""

    listed: int
    already_done: int
    scored: int
    failed: int
    pending: int  # left for a later run (--limit)
    seconds: float
    failures: list[tuple[str, str]] = field(default_factory=list)  # (key, reason) of this call
    warned: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # scored, with warnings

    def record_scored(self, db: ResultsDB, entry: Entry, scores: np.ndarray, *, num_frames: int,
                      seconds: float, warnings: tuple[str, ...]) -> None:
        """Store a scored video (its summed softmaxes) and count it (locally and on Ray)."""
        db.record_ok(entry.key, entry.path or "", entry.label, scores, num_frames, seconds,
                     warnings)
        self.scored += 1
        if warnings:
            self.warned.append((entry.key, warnings))


def evaluate(
    backend: Backend,
    entries: list[Entry],
    db: ResultsDB,
    views: str | Views = "10x3",
    *,
    workers: int = 0,
    limit: int | None = None,
    frames: int | None = None,
    rate: int | None = None,
    check: bool = False,
    progress: bool | None = None,
    after_video: Callable[[str], None] | None = None,
    strict: bool = False,
) -> EvalSummary:
    """Score every entry not yet in `db`, recording each video as soon as it is done.

    `strict`: a video with decode warnings is recorded as failed, not scored.
    `workers` decoding processes run ahead of the model (0: decode in this process).
    `limit` caps how many new videos this call handles. `check`: the first video's first
    batch also runs on the torch backend (see :meth:`Backend.check`). `after_video(key)` runs
    after each commit (tests use it to simulate a kill).
    """
    v = str(Views.parse(views))
    frames = frames or backend.arch.frames
    rate = rate or backend.arch.sample_rate
    check_view_shape(backend.arch, frames)
    start = time.perf_counter()
    todo, already, pending_after = plan_work(entries, db.done_keys(), limit)
    by_key = {e.key: e for e in todo}
    summary = EvalSummary(len(entries), already, 0, 0, pending_after, 0.0)

    bar = StepBar(len(todo), "evaluate", unit="video") if progress is not False else None
    try:
        for e in todo:
            if e.path is None:
                reason = f"{e.key}: listed video not found under the root folder"
                db.record_failure(e.key, None, e.label, "missing", reason, 0.0)
                summary.failed += 1
                summary.failures.append((e.key, reason))
                _tick(bar, after_video, e.key)
        present = [(e.key, e.path) for e in todo if e.path is not None]
        produce = partial(decode_views, frames=frames, rate=rate, views=v, strict=strict)
        for item in run_tasks(present, produce, workers=workers):
            e = by_key[item.key]
            if isinstance(item, WorkerCrash):
                db.record_failure(e.key, e.path, e.label, "decoder crash", item.reason, 0.0)
                summary.failed += 1
                summary.failures.append((e.key, item.reason))
            elif item.pixels is None:
                db.record_failure(e.key, e.path, e.label, item.kind or "error",
                                  item.reason or "", item.seconds)
                summary.failed += 1
                summary.failures.append((e.key, item.reason or ""))
            else:
                t0 = time.perf_counter()
                if check:
                    backend.check(normalize(item.pixels[:backend.batch_size]), "fully_conv")
                    check = False
                probs = score_views(backend, item.pixels)
                scores = probs.astype(np.float64).sum(axis=0)
                summary.record_scored(db, e, scores, num_frames=item.num_frames,
                                      seconds=item.seconds + time.perf_counter() - t0,
                                      warnings=item.warnings)
            _tick(bar, after_video, e.key)
    finally:
        if bar is not None:
            bar.close()
    summary.seconds = time.perf_counter() - start
    return summary


def check_view_shape(arch: ArchSpec, frames: int) -> None:
    """Raise :class:`~nlconvert.errors.InputShapeError` before any video is decoded if the
    network's test head cannot take protocol views of `frames` frames (256 x 256)."""
    arch.check_clip((1, 3, frames, CROP, CROP), "fully_conv")


def plan_work(entries: list[Entry], done: set[str], limit: int | None
              ) -> tuple[list[Entry], int, int]:
    """The entries still to do (a key listed twice once), how many are done already, and how
    many are left for a later run after `limit`."""
    already = sum(1 for e in entries if e.key in done)
    seen = set(done)
    todo: list[Entry] = []
    for e in entries:
        if e.key not in seen:
            seen.add(e.key)
            todo.append(e)
    pending_after = 0
    if limit is not None:
        pending_after = max(len(todo) - limit, 0)
        todo = todo[:limit]
    return todo, already, pending_after


def _tick(bar: StepBar | None, after_video: Callable[[str], None] | None, key: str) -> None:
    if bar is not None:
        bar.step()
    if after_video is not None:
        after_video(key)


# ---------------------------------------------------------------------------------- report


def _pct(num: int, den: int) -> float | None:
    return round(100.0 * num / den, 2) if den else None


def build_report(
    entries: list[Entry],
    results: dict[str, VideoResult],
    config: RunConfig,
    class_names: list[str] | None,
    published: list[dict[str, Any]] | None = None,
    top_n: int = 10,
    *,
    database: str = "",
    database_id: str = "",
) -> dict[str, Any]:
    """Accuracy figures of the listed videos from the recorded results (JSON-ready).

    `database`, `database_id`: the results database's path and identity, carried by the
    report so that a rerun against the same database may rewrite it (:func:`report_owner`).
    """
    listed = len(entries)

    def name(i: int | None) -> str:
        if i is None:
            return "-"
        return class_names[i] if class_names and 0 <= i < len(class_names) else str(i)

    top1 = top5 = ok = failed = pending = 0
    per_class_total: Counter[int] = Counter()
    per_class_ok: Counter[int] = Counter()
    per_class_decoded: Counter[int] = Counter()
    confusions: Counter[tuple[int, int]] = Counter()
    failures: Counter[str] = Counter()
    failure_examples: dict[str, list[str]] = defaultdict(list)
    warned: list[str] = []  # scored videos that carried decode warnings
    for e in entries:
        per_class_total[e.label] += 1
        r = results.get(e.key)
        if r is None:
            pending += 1
            continue
        if r.status != "ok":
            failed += 1
            kind = r.kind or "error"
            failures[kind] += 1
            if len(failure_examples[kind]) < 3:
                failure_examples[kind].append(r.reason or "")
            continue
        ok += 1
        if r.warnings:
            warned.append(f"{r.key}: {'; '.join(r.warnings)}")
        per_class_decoded[e.label] += 1
        if r.pred == e.label:
            top1 += 1
            per_class_ok[e.label] += 1
        elif r.pred is not None:
            confusions[(e.label, r.pred)] += 1
        if r.top5 and e.label in r.top5[:5]:
            top5 += 1
    classes = sorted(per_class_total)
    mean_class = (
        round(float(np.mean([100.0 * per_class_ok[c] / per_class_total[c] for c in classes])), 2)
        if classes else None
    )
    decoded_classes = [c for c in classes if per_class_decoded[c]]
    mean_class_decoded = (
        round(float(np.mean([100.0 * per_class_ok[c] / per_class_decoded[c]
                             for c in decoded_classes])), 2)
        if decoded_classes else None
    )
    worst = sorted(classes, key=lambda c: (per_class_ok[c] / per_class_total[c], c))[:top_n]
    return {
        "database": database,
        "database_id": database_id,
        "model": config.model_path,
        "model_sha256": config.model_sha256,
        "arch": config.arch,
        "views": config.views,
        "clip": f"{config.frames}x{config.rate}",
        "backend": config.backend,
        "listed": listed,
        "scored": ok,
        "failed": failed,
        "pending": pending,
        "scored_with_warnings": len(warned),  # decode warnings: maybe truncated or damaged
        "warning_examples": warned[:3],
        "official": {  # denominator: every listed video (failures and pending count as wrong)
            "denominator": listed,
            "top1": _pct(top1, listed),
            "top5": _pct(top5, listed),
            "mean_class_top1": mean_class,
        },
        "decoded": {  # denominator: videos that were decoded and scored
            "denominator": ok,
            "top1": _pct(top1, ok),
            "top5": _pct(top5, ok),
            "mean_class_top1": mean_class_decoded,
        },
        "worst_classes": [
            {"class": c, "name": name(c), "correct": per_class_ok[c], "listed": per_class_total[c],
             "top1": _pct(per_class_ok[c], per_class_total[c])}
            for c in worst
        ],
        "confusions": [
            {"true": t, "true_name": name(t), "pred": p, "pred_name": name(p), "count": n}
            for (t, p), n in confusions.most_common(top_n)
        ],
        "failures": dict(failures.most_common()),
        "failure_examples": dict(failure_examples),
        "published": published or [],
    }


def published_for(arch: str) -> list[dict[str, Any]]:
    """Published 30-view accuracy of an architecture's released checkpoints, if known."""
    try:
        from ..arch.zoo import published_accuracy

        found = published_accuracy(arch)
    except Exception:  # noqa: BLE001 - an unknown arch simply has no published figure
        return []
    return [{"file": c.file, "top1": c.top1, "top5": c.top5} for c in found if c.top1 is not None]


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def report_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown."""
    o, d = report["official"], report["decoded"]
    lines = [
        f"# Evaluation of {Path(report['model']).name}",
        "",
        f"- architecture: `{report['arch']}`, clip {report['clip']}, views {report['views']}, "
        f"backend {report['backend']}",
        f"- model sha256: `{report['model_sha256']}`",
        f"- results database: `{report['database']}` (database id `{report['database_id']}`)",
        f"- listed {report['listed']}, scored {report['scored']}, failed {report['failed']}, "
        f"not yet evaluated {report['pending']}",
        f"- scored videos with decode warnings (maybe truncated or damaged; --strict makes them "
        f"failures): {report['scored_with_warnings']}",
        *[f"  - {w}" for w in report["warning_examples"]],
        "",
        "| accuracy | denominator | top-1 | top-5 | mean per-class top-1 |",
        "|---|---:|---:|---:|---:|",
        f"| official (all listed; failures count as wrong) | {o['denominator']} | "
        f"{_fmt(o['top1'])} | {_fmt(o['top5'])} | {_fmt(o['mean_class_top1'])} |",
        f"| over decoded videos | {d['denominator']} | {_fmt(d['top1'])} | {_fmt(d['top5'])} | "
        f"{_fmt(d['mean_class_top1'])} |",
    ]
    for p in report["published"]:
        lines.append(f"| published ({p['file']}) | 19761 | {_fmt(p['top1'])} | "
                     f"{_fmt(p['top5'])} | - |")
    lines += ["", "## Failures by reason", ""]
    if report["failures"]:
        lines += ["| reason | videos | example |", "|---|---:|---|"]
        for kind, n in report["failures"].items():
            example = (report["failure_examples"].get(kind) or [""])[0].replace("|", "\\|")
            lines.append(f"| {kind} | {n} | {example} |")
    else:
        lines.append("none")
    lines += ["", "## Worst classes (official top-1)", "", "| class | correct / listed | top-1 |",
              "|---|---:|---:|"]
    for w in report["worst_classes"]:
        lines.append(f"| {w['name']} ({w['class']}) | {w['correct']} / {w['listed']} | "
                     f"{_fmt(w['top1'])} |")
    lines += ["", "## Most frequent confusions", "", "| true | predicted | videos |",
              "|---|---|---:|"]
    for c in report["confusions"]:
        lines.append(f"| {c['true_name']} | {c['pred_name']} | {c['count']} |")
    return "\n".join(lines) + "\n"


def report_json(report: dict[str, Any]) -> str:
    """The report as JSON text."""
    return json.dumps(report, indent=2, sort_keys=False) + "\n"


_MD_OWNER = re.compile(r"^- results database: .*\(database id `([0-9a-f]{32})`\)$", re.M)


def report_owner(path: str | Path) -> str | None:
    """The database identity an existing report (``.md`` or ``.json``) carries, or None if
    the file is not such a report (or cannot be read)."""
    try:
        with open(path, encoding="utf-8") as f:
            head = f.read(1 << 16) if Path(path).suffix.lower() == ".md" else f.read()
    except (OSError, UnicodeDecodeError):
        return None
    if Path(path).suffix.lower() == ".md":
        found = _MD_OWNER.search(head)
        return found.group(1) if found else None
    try:
        data = json.loads(head)
    except ValueError:
        return None
    owner = data.get("database_id") if isinstance(data, dict) else None
    return owner if isinstance(owner, str) and owner else None


__all__ = [
    "EvalSummary",
    "build_report",
    "evaluate",
    "published_for",
    "read_list",
    "report_owner",
    "report_json",
    "report_markdown",
]
