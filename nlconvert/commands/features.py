"""``nlconvert features``: dense clip features of videos, one file per video, resumable."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..arch import FEATURE_LAYERS
from ._bulk import exit_code, failure_text, strict_option, warning_text
from ._runner import cluster_session, get_runner, print_check
from .options import (
    batch_size_option,
    check_local_only,
    debug_option,
    existing_file,
    force_option,
    frames_option,
    model_input,
    plural,
    rate_option,
    ray_options,
    ray_settings,
    runner_options,
    workers_option,
)


@click.command("features", short_help="Extract dense clip features of videos (one .npy per video).")
@click.argument("model", type=model_input())
@click.argument("inputs", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out_dir", required=True, metavar="DIR",
              type=click.Path(file_okay=False, path_type=Path),
              help="Output folder: DIR/<relative path>.npy per video, index.jsonl, features.json.")
@click.option("--list", "list_path", type=existing_file(), metavar="FILE",
              help="A list of videos instead of INPUTS: one path per line (a trailing label "
                   "is allowed, as in vallist.txt), or a Kinetics CSV.")
@click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              metavar="DIR", help="Folder the --list paths are under (default: the list's folder).")
@frames_option("Frames per window, L (default: the model's training clip, e.g. 8).")
@rate_option
@click.option("--stride", type=click.IntRange(min=1), default=16, show_default=True, metavar="S",
              help="Frames between window starts (after --fps resampling).")
@click.option("--fps", metavar="F",
              help="First resample the decoded frames to F per second by their timestamps.")
@click.option("--crop", type=click.Choice(("center", "three", "ten", "none")), default="center",
              show_default=True,
              help="center: the test protocol's centre crop; three: its three crops; ten: four "
                   "corners + centre, then the same of the mirrored frame (torchvision TenCrop "
                   "order); none: the whole resized frame. three/ten write windows x crops x C.")
@click.option("--crop-size", type=click.IntRange(min=1), metavar="S",
              help="Crop side in pixels of the resized frame (short side 256); default 256 "
                   "(center, three), 224 (ten).")
@click.option("--layer", type=click.Choice(FEATURE_LAYERS), default="pool5", show_default=True,
              help="pool5: global mean of res5 (2048, the classifier's input); res4 (1024); res5 "
                   "(= pool5); logits; probs (softmax of the logits).")
@click.option("--spatial", is_flag=True,
              help="With --layer res4|res5: keep the positions, C x t x h x w per clip "
                   "(torch or fast backend; --dtype float16 recommended: maps are large).")
@click.option("--dtype", type=click.Choice(("float32", "float16")), default="float32",
              show_default=True, help="Data type of the feature files.")
@click.option("--format", "fmt", type=click.Choice(("npy", "h5")), default="npy", show_default=True,
              help="npy: one file per video; h5: one DIR/features.h5 keyed by video path.")
@batch_size_option(help="Windows per forward pass, across videos (default 6).")
@workers_option
@runner_options
@click.option("--retry-failed", is_flag=True, help="Try again the videos an earlier run recorded as failed.")
@ray_options
@strict_option
@force_option
@debug_option
def command(model: Path, inputs: tuple[Path, ...], out_dir: Path, list_path: Path | None,
            root: Path | None, frames: int | None, rate: int | None, stride: int,
            fps: str | None, crop: str, crop_size: int | None, layer: str, spatial: bool,
            dtype: str, fmt: str, batch_size: int | None,
            workers: int | None, backend: str, device: str, threads: int | None,
            no_compile: bool, check: bool, retry_failed: bool, strict: bool, force: bool,
            **ray: Any) -> int:
    """Extract features of every window of every video: window k starts at frame k*S and takes
    frames start + i*R (i < L) while its last frame is inside the video; a video shorter than
    one window gives one window at frame 0 wrapping around. Pixels are decoded (BT.601),
    resized (short side 256) and cropped as the test protocol does (--crop three|ten: several
    crops per window, batched with the windows; the index lists their offsets). INPUTS: video files or
    folders (searched recursively), or use --list/--root. Each video's file is written
    atomically and recorded in DIR/index.jsonl: a rerun skips what is done; other settings in
    an existing DIR are refused unless --force. Broken videos are recorded with their reason.
    With --ray, Ray tasks decode and model actors compute across a cluster; this process still
    writes every file alone. Videos with decode warnings (maybe truncated or damaged) are named
    on stderr and in the index; --strict records them as failed. Failed videos are named on
    stderr (those of earlier runs too); exit 3 when any listed video is recorded as failed."""
    from .._progress import StepBar
    from ..runtime.backends import MAP_BACKENDS, BackendError, spatial_refusal
    from ..video.crops import CropSpec
    from ..video.features import (
        VideoFeatures,
        check_layer,
        check_window_shape,
        extract_features,
        window_spec,
    )
    from ..video.featurestore import FeatureSettings, FeatureStore, check_outputs_unique
    from ..video.stream import VideoSummary
    from ..video.windows import parse_fps
    from ..video.workers import default_workers

    on_ray = ray_settings(ray.pop("ray_address"), **ray)
    check_local_only(on_ray, check=check, workers=workers)
    exact_fps = parse_fps(fps)
    crops = CropSpec.make(crop, crop_size)
    check_layer(layer, spatial=spatial)
    if spatial:
        if backend == "auto":
            backend = "torch"  # the pooled-only ONNX graphs have no maps; torch is exact
        chosen = "onnx" if model.suffix.lower() == ".onnx" else backend
        if chosen not in MAP_BACKENDS:  # before anything is loaded
            raise BackendError(spatial_refusal(model, chosen))
    items, missing = _inputs(inputs, list_path, root)
    check_outputs_unique(items + missing)
    runner, actor_spec = get_runner(model, backend, head="clip", device=device, threads=threads,
                                    batch_size=batch_size, compile=not no_compile, on_ray=on_ray)
    spec = window_spec(runner, frames=frames, rate=rate, stride=stride)
    check_window_shape(runner, spec, crops)
    settings = FeatureSettings(
        model_sha256=runner.model_sha256, arch=runner.arch.name, layer=layer,
        frames=spec.frames, rate=spec.rate, stride=spec.stride,
        fps=None if exact_fps is None else str(exact_fps), crop=crop, dtype=dtype, format=fmt,
        backend=f"{runner.info.name}/{runner.info.precision}", crop_size=crops.size,
        spatial=spatial, class_names=(list(runner.class_names)
                                      if layer in ("logits", "probs") and runner.class_names else None))
    with cluster_session(on_ray):
        store = FeatureStore(out_dir, settings, force=force, strict=strict)
        earlier = [k for k, _ in items + missing if k in store.rows
                   and store.rows[k]["status"] != "ok" and store.done(k, retry_failed=retry_failed)]
        for key in earlier:  # named on every rerun: the exit code counts them too
            print(failure_text(f"{store.rows[key]['error']} (recorded by an earlier run in "
                               f"{out_dir}; --retry-failed tries again)"), file=sys.stderr)
        missing_now = [(k, p) for k, p in missing if not store.done(k, retry_failed=retry_failed)]
        for key, path in missing_now:
            store.write(key, path, None, VideoSummary(key, path, error=f"{path}: no such file",
                                                      kind="missing"))
            print(failure_text(f"{path}: no such file"), file=sys.stderr)
        todo = [(k, p) for k, p in items if not store.done(k, retry_failed=retry_failed)]
        done_before = len(items) + len(missing) - len(todo) - len(missing_now)
        bar = StepBar(len(todo), "features", unit="video")
        counts = {"ok": 0, "failed": 0, "windows": 0, "warned": 0}

        def done(result: VideoFeatures) -> None:
            summary = result.windows
            if result.features is None or not summary.ok:  # (--strict fails a warned video)
                counts["failed"] += 1
                bar.write(failure_text(summary.error or f"{summary.path}: no features"), err=True)
            else:
                counts["ok"] += 1
                counts["windows"] += summary.windows
                if summary.warnings:
                    counts["warned"] += 1
                    bar.write(warning_text(summary.path, summary.warnings), err=True)
            bar.step()
            bar.set_postfix(f"{counts['windows']} windows")

        try:
            if on_ray is not None:
                from ..cluster.jobs import features_on_ray

                features_on_ray(actor_spec, runner.arch, todo, store, options=on_ray, layer=layer,
                                frames=spec.frames, rate=spec.rate, stride=spec.stride, fps=exact_fps,
                                crop=crops, spatial=spatial, on_video=done, log=print)
            else:
                for result in extract_features(
                        runner, todo, layer=layer, stride=spec.stride, frames=spec.frames,
                        rate=spec.rate, fps=exact_fps, crop=crops, spatial=spatial,
                        workers=default_workers(workers), check=check):
                    store.write(result.video, result.windows.path, result.features, result.windows)
                    done(result)
        finally:
            bar.close()
            store.finish()
    print_check(runner)
    ok, failed, windows = counts["ok"], counts["failed"], counts["windows"]
    print(f"{plural(len(items) + len(missing), 'video')}: {ok} extracted now "
          f"({plural(windows, 'window')}, {counts['warned']} with decode warnings), "
          f"{failed + len(missing_now)} failed, {done_before} already in {out_dir} "
          f"({len(earlier)} of them failed); layer {layer}{' (spatial)' if spatial else ''}, "
          f"{spec.frames}x{spec.rate} windows every {spec.stride} frames, crop {crop}"
          f"{'' if crops.size is None else f' {crops.size}'}; index {store.folder / 'index.jsonl'}")
    return exit_code(failed + len(missing_now) + len(earlier))


def _inputs(inputs: tuple[Path, ...], list_path: Path | None, root: Path | None
            ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(key, path) of the videos to do, and of listed videos that are not there."""
    from ..errors import NLConvertError
    from ..video.datalist import expand_inputs, read_list
    from ..video.featurestore import output_key

    if list_path is not None and inputs:
        raise NLConvertError("give videos as INPUTS or with --list, not both")
    if list_path is None and not inputs:
        raise NLConvertError("no videos: give files or folders, or --list FILE")
    if list_path is not None:
        base = root or list_path.parent
        entries = read_list(list_path, base, labels=False)
        found = [(output_key(Path(e.path), base), e.path) for e in entries if e.path]
        missing = [(e.key, e.key) for e in entries if not e.path]
        return found, missing
    return [(output_key(p, folder), str(p)) for p, folder in expand_inputs(list(inputs))], []
