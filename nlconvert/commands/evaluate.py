"""``nlconvert evaluate``: accuracy on a whole list of videos, resumable, with a report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ._bulk import exit_code, print_failure, print_warnings, strict_option
from ._runner import cluster_session, get_runner, print_check
from .options import (
    batch_size_option,
    check_local_only,
    debug_option,
    existing_file,
    force_option,
    frames_option,
    human_stream,
    json_option,
    model_input,
    output_path,
    rate_option,
    ray_options,
    ray_settings,
    runner_options,
    views_option,
    workers_option,
)


@click.command("evaluate", short_help="Evaluate on a video list (vallist.txt or Kinetics CSV), resumably.")
@click.argument("model", type=model_input())
@click.option("--list", "list_path", required=True, type=existing_file(), metavar="FILE",
              help="vallist.txt ('<path> <label index>' per line) or a Kinetics CSV "
                   "(label,youtube_id,time_start,time_end,split).")
@click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              metavar="DIR", help="Folder of the videos (default: the list's folder).")
@click.option("--db", required=True, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="SQLite results database: created, or resumed when it exists (never overwritten).")
@click.option("--report", callback=output_path((".md",)), metavar="FILE",
              help="Write the Markdown report here.")
@json_option
@workers_option
@click.option("--limit", type=click.IntRange(min=0), metavar="N",
              help="Handle at most N new videos in this run.")
@views_option
@batch_size_option(help="Views per forward pass (default 6).")
@frames_option()
@rate_option
@runner_options
@ray_options
@strict_option
@force_option
@debug_option
def command(model: Path, list_path: Path, root: Path | None, db: Path, report: Path | None,
            json_path: str | None, workers: int | None, limit: int | None, views: str,
            batch_size: int | None, frames: int | None, rate: int | None, backend: str,
            device: str, threads: int | None, no_compile: bool, check: bool, strict: bool,
            force: bool, **ray: Any) -> int:
    """Score every video of a list with the paper's test protocol; each result goes to the
    SQLite --db as soon as it is computed, so a killed run resumes where it stopped (no video
    is scored twice). The database records the model, views, clip and backend, and refuses a
    run with other settings. Videos are named in the Kinetics CSV by
    <youtube_id>_<start:06d>_<end:06d> (the downloader's naming) or <youtube_id>, in a folder
    per class or flat; missing and undecodable videos are recorded with their reason and
    count as wrong in the official accuracy. With --ray the videos are decoded by Ray tasks and
    scored by model actors across a cluster; this process still writes the database alone.
    The report and --json are views of the database: a rerun against the same --db rewrites
    them (they carry its identity); any other existing file needs --force. Videos scored with
    decode warnings (maybe truncated or damaged) are named on stderr and counted in the report;
    --strict records them as failed. Exit 3 when listed videos are recorded as failed."""
    from .._atomic import atomic_write_text, check_writable
    from ..convert.modelfile import model_file_sha256
    from ..video import evaluate as ev
    from ..video.protocol import Views
    from ..video.resultsdb import ResultsDB, RunConfig, database_id
    from ..video.workers import default_workers

    v = Views.parse(views)
    human = human_stream(json_path)
    on_ray = ray_settings(ray.pop("ray_address"), **ray)
    check_local_only(on_ray, check=check, workers=workers)
    owner = database_id(db)
    outputs = [out for out in (report, json_path if json_path != "-" else None) if out]
    # A report this database wrote (it carries its id) is rewritten on a rerun; not another file.
    ours = {str(out) for out in outputs if owner and ev.report_owner(out) == owner}
    for out in outputs:
        check_writable(out, force or str(out) in ours)
    runner, spec = get_runner(model, backend, head="fully_conv", device=device, threads=threads,
                              batch_size=batch_size, compile=not no_compile, on_ray=on_ray,
                              out=human)
    entries = ev.read_list(list_path, root, runner.class_names)
    config = RunConfig(
        model_sha256=runner.model_sha256 or model_file_sha256(model), model_path=str(model),
        arch=runner.arch.name, views=str(v), frames=frames or runner.arch.frames,
        rate=rate or runner.arch.sample_rate,
        num_classes=len(runner.class_names) if runner.class_names else runner.arch.num_classes,
        backend=f"{runner.info.name}/{runner.info.precision}",
    )
    with cluster_session(on_ray):
        results = ResultsDB(db, config, list_path=str(list_path))
        try:
            if on_ray is not None:
                from ..cluster.jobs import evaluate_on_ray

                summary = evaluate_on_ray(spec, runner.arch, entries, results, v, options=on_ray,
                                          frames=config.frames, rate=config.rate, limit=limit,
                                          log=lambda line: print(line, file=human), strict=strict)
            else:
                summary = ev.evaluate(runner, entries, results, v, workers=default_workers(workers),
                                      limit=limit, frames=config.frames, rate=config.rate,
                                      check=check, strict=strict)
            recorded = results.results()
            data = ev.build_report(entries, recorded, config, runner.class_names,
                                   ev.published_for(config.arch), database=str(db),
                                   database_id=results.database_id)
        finally:
            results.close()
    now = {key for key, _ in summary.failures}
    listed = {e.key for e in entries}
    for key, reason in summary.failures:
        print_failure(reason or key)
    for r in recorded.values():  # named again on every rerun: the exit code counts them too
        if r.status != "ok" and r.key in listed and r.key not in now:
            print_failure(f"{r.reason or r.key} (recorded by an earlier run; --db keeps it)")
    paths = {e.key: e.path for e in entries}
    for key, warnings in summary.warned:  # the file, as every warning line names it
        print_warnings(paths.get(key) or key, warnings)
    if report:
        atomic_write_text(report, ev.report_markdown(data), force=True)  # checked above
    if json_path == "-":
        print(ev.report_json(data), end="")
    elif json_path:
        atomic_write_text(json_path, ev.report_json(data), force=True)
    print_check(runner, human)
    o, d = data["official"], data["decoded"]
    print(f"listed {data['listed']}: scored {data['scored']} ({data['scored_with_warnings']} "
          f"with decode warnings), failed {data['failed']}, pending {data['pending']} (this run: "
          f"{summary.scored} scored, {summary.failed} failed, {summary.already_done} already in "
          f"{db}, {summary.seconds:.1f}s)", file=human)
    scope = (f"over all {o['denominator']} listed" if not data["pending"] else
             f"over all {o['denominator']} listed, {data['pending']} still pending")
    print(f"top-1 {_f(o['top1'])} / top-5 {_f(o['top5'])} {scope} (failures and pending count "
          f"as wrong); top-1 {_f(d['top1'])} / top-5 {_f(d['top5'])} over the "
          f"{d['denominator']} scored", file=human)
    return exit_code(data["failed"])


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}%"
