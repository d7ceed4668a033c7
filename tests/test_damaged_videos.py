"""Damaged videos never pass as clean ones, and one failure contract for the bulk commands.

A truncated faststart .mp4 (its index first, as web downloads are) still opens and decodes
its first part without a single decode error: only the container's declared frame count and
duration give it away. ``predict``, ``evaluate`` and ``features`` report such a video as a
warning line on stderr and a ``warnings`` list (empty when clean), count it in their summaries,
and ``--strict`` makes it a failure. A run that goes on past failed inputs exits 3, names every
failed input once on stderr, whichever of the three commands it is (README, exit codes).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import videos as V

from nlconvert import cli
from nlconvert.runtime import backends
from nlconvert.video.decode import StreamInfo, decode_frames, iter_timed_frames

av = pytest.importorskip("av")

FRAMES = 60


@pytest.fixture(scope="module")
def vids(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("damaged")
    full = V.make_video(folder / "full.mp4", 160, 120, FRAMES)
    clean = V.make_faststart(full, folder / "clean.mp4")
    half = V.make_truncated(clean, folder / "halfcut.mp4", 0.5)
    mkv = V.make_video(folder / "full.mkv", 160, 120, FRAMES)
    mkv_cut = V.make_truncated(mkv, folder / "cut.mkv", 0.6)
    data = bytearray(clean.read_bytes())  # bytes overwritten in the middle: decode errors
    for i in range(len(data) // 3, len(data) // 3 + 2000, 7):
        data[i] = (i * 131) % 256
    (folder / "garbled.mp4").write_bytes(bytes(data))
    return {"clean": clean, "half": half, "mkv": mkv, "mkv_cut": mkv_cut,
            "garbled": folder / "garbled.mp4"}


def _declared(path: Path) -> tuple[int, float]:
    """What the container says, read here with PyAV directly."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return int(s.frames), float(s.duration * s.time_base)


def test_clean_videos_have_no_warnings(vids):
    for name in ("clean", "mkv"):
        decoded = decode_frames(vids[name], None, min_frames=0)
        info = StreamInfo(0)
        assert sum(1 for _ in iter_timed_frames(vids[name], info, resize=False)) == FRAMES
        assert decoded.num_frames == FRAMES and decoded.warnings == [] and info.warnings == []


@pytest.mark.parametrize("ext", [".mp4", ".webm", ".mkv", ".avi"])
@pytest.mark.parametrize("vfr", [False, True], ids=["cfr", "vfr"])
def test_no_false_warning_on_clean_files_of_every_container(ext, vfr, tmp_path):
    """Variable frame rates (AVI declares its 1 ms time base as the rate and counts dropped
    frames; Matroska declares no count) and short files decode without a warning."""
    if V.codec_for(ext) is None:
        pytest.skip(f"no encoder for {ext} in this PyAV build")
    for n, audio in ((7, False), (41, False), (41, ext in (".mp4", ".mkv"))):
        path = V.make_video(tmp_path / f"clean{n}{audio}{ext}", 64, 48, n, vfr=vfr, audio=audio)
        decoded = decode_frames(path, None, min_frames=0)
        info = StreamInfo(0)
        assert sum(1 for _ in iter_timed_frames(path, info, resize=False)) == n
        assert decoded.num_frames == n and decoded.warnings == [] and info.warnings == []


def test_truncated_faststart_mp4_is_reported(vids):
    frames, seconds = _declared(vids["half"])
    assert (frames, seconds) == _declared(vids["clean"])  # the index still says 60 frames
    decoded = decode_frames(vids["half"], None, min_frames=0)
    assert 2 <= decoded.num_frames < FRAMES * 0.7
    assert decoded.decode_errors == 0  # the decoder itself sees nothing wrong
    assert decoded.warnings[0] == (f"the container declares {frames} frames, "
                                   f"{decoded.num_frames} decoded (truncated or damaged?)")
    assert f"the container declares {seconds:.2f} s" in decoded.warnings[1]
    info = StreamInfo(0)  # the streaming decoder of `features` says the same
    assert sum(1 for _ in iter_timed_frames(vids["half"], info, resize=False)) == decoded.num_frames
    assert info.warnings == decoded.warnings


def test_truncated_matroska_is_caught_by_its_duration(vids):
    decoded = decode_frames(vids["mkv_cut"], None, min_frames=0)
    assert decoded.num_frames < FRAMES
    assert len(decoded.warnings) == 1 and "s decoded (truncated or damaged?)" in decoded.warnings[0]


def test_packets_that_fail_to_decode_are_counted(vids):
    decoded = decode_frames(vids["garbled"], None, min_frames=0)
    assert decoded.decode_errors > 0
    assert decoded.warnings[0] == f"{decoded.decode_errors} packets failed to decode (skipped)"


# ------------------------------------------------------------------- the three commands


@pytest.fixture
def stand_in(monkeypatch, tmp_path) -> Path:
    monkeypatch.setattr(backends, "open_backend", V.stand_in_factory(frames=4, rate=2))
    model = tmp_path / "m.pt"
    model.write_bytes(b"stand-in")
    return model


def _lines(err: str, prefix: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(prefix)]


def test_predict_warns_and_strict_fails(vids, stand_in, tmp_path, capsys):
    js = tmp_path / "p.json"
    args = ["predict", str(stand_in), str(vids["clean"]), str(vids["half"]), "--views", "1x1",
            "--json", str(js)]
    assert cli.main(args) == 0
    captured = capsys.readouterr()
    (warning,) = _lines(captured.err, "nlconvert: warning: ")
    assert str(vids["half"]) in warning and "declares 60 frames" in warning
    assert "1 with decode warnings" in captured.out
    rows = {Path(r["path"]).name: r for r in json.loads(js.read_text())}
    assert rows["clean.mp4"]["warnings"] == [] and len(rows["halfcut.mp4"]["warnings"]) == 2
    assert cli.main([*args, "--strict", "--force"]) == 3
    captured = capsys.readouterr()
    (failed,) = _lines(captured.err, "nlconvert: failed: ")
    assert str(vids["half"]) in failed and "--strict" in failed
    rows = {Path(r["path"]).name: r for r in json.loads(js.read_text())}
    assert "error" in rows["halfcut.mp4"] and "topk" in rows["clean.mp4"]


def _vallist(tmp_path: Path, vids: dict[str, Path]) -> Path:
    listing = tmp_path / "val.txt"
    listing.write_text(f"{vids['clean']} 1\n{vids['half']} 2\n{tmp_path / 'gone.mp4'} 3\n")
    return listing


def test_evaluate_counts_warned_videos_and_strict_fails_them(vids, stand_in, tmp_path, capsys):
    listing = _vallist(tmp_path, vids)
    db, js, md = tmp_path / "r.sqlite", tmp_path / "r.json", tmp_path / "r.md"
    args = ["evaluate", str(stand_in), "--list", str(listing), "--db", str(db), "--json", str(js),
            "--report", str(md), "--views", "1x1", "--workers", "0"]
    assert cli.main(args) == 3  # gone.mp4 failed
    captured = capsys.readouterr()
    assert len(_lines(captured.err, "nlconvert: warning: ")) == 1
    (failed,) = _lines(captured.err, "nlconvert: failed: ")
    assert "gone.mp4" in failed
    report = json.loads(js.read_text())
    assert (report["scored"], report["failed"], report["scored_with_warnings"]) == (2, 1, 1)
    assert "scored videos with decode warnings (maybe truncated or damaged; --strict makes " \
           "them failures): 1" in md.read_text()
    rows = dict(sqlite3.connect(db).execute("SELECT key, warnings FROM videos"))
    assert json.loads(rows[str(vids["clean"])]) == []
    assert "declares 60 frames" in json.loads(rows[str(vids["half"])])[0]
    # --strict on a new database: the damaged video is a failure, not scored
    strict_db = tmp_path / "s.sqlite"
    assert cli.main([*args[:5], str(strict_db), "--views", "1x1", "--workers", "0",
                     "--strict"]) == 3
    failed = _lines(capsys.readouterr().err, "nlconvert: failed: ")
    assert len(failed) == 2 and any("halfcut.mp4" in f and "--strict" in f for f in failed)
    kinds = dict(sqlite3.connect(strict_db).execute("SELECT key, kind FROM videos"))
    assert kinds[str(vids["half"])] == "damaged (--strict)"


def test_features_index_carries_warnings_and_strict_fails(vids, stand_in, tmp_path, capsys):
    listing = _vallist(tmp_path, vids)
    out = tmp_path / "f"
    args = ["features", str(stand_in), "--list", str(listing), "--out", str(out),
            "--workers", "0"]
    assert cli.main(args) == 3
    captured = capsys.readouterr()
    (failed,) = _lines(captured.err, "nlconvert: failed: ")  # the missing file is named
    assert "gone.mp4" in failed
    assert len(_lines(captured.err, "nlconvert: warning: ")) == 1
    assert "1 with decode warnings" in captured.out
    rows = {Path(r["path"]).name: r for r in map(json.loads, (out / "index.jsonl").open())}
    assert rows["clean.mp4"]["warnings"] == [] and rows["halfcut.mp4"]["status"] == "ok"
    assert "declares 60 frames" in rows["halfcut.mp4"]["warnings"][0]
    strict_out = tmp_path / "s"
    assert cli.main([*args[:5], str(strict_out), "--workers", "0", "--strict"]) == 3
    rows = {Path(r["path"]).name: r for r in map(json.loads, (strict_out / "index.jsonl").open())}
    assert rows["halfcut.mp4"]["status"] == "failed"
    assert rows["halfcut.mp4"]["kind"] == "damaged (--strict)"
    assert not list(strict_out.rglob("halfcut.npy"))


@pytest.mark.parametrize("command", ["predict", "evaluate", "features"])
def test_one_failure_contract(command, vids, stand_in, tmp_path, capsys):
    """Same exit code (3), failures on stderr, every failed input named exactly once."""
    zero = tmp_path / "zero.mp4"
    zero.write_bytes(b"")
    listing = tmp_path / "val.txt"
    listing.write_text(f"{vids['clean']} 1\n{zero} 2\n{tmp_path / 'gone.mp4'} 3\n")
    common = ["--workers", "0"]
    if command == "predict":  # predict takes files: the missing one cannot be given
        args = ["predict", str(stand_in), str(vids["clean"]), str(zero), "--views", "1x1"]
        failed = [zero]
    elif command == "evaluate":
        args = ["evaluate", str(stand_in), "--list", str(listing), "--db", str(tmp_path / "d.db"),
                "--views", "1x1", *common]
        failed = [zero, tmp_path / "gone.mp4"]
    else:
        args = ["features", str(stand_in), "--list", str(listing), "--out", str(tmp_path / "o"),
                *common]
        failed = [zero, tmp_path / "gone.mp4"]
    assert cli.main(args) == 3
    captured = capsys.readouterr()
    lines = _lines(captured.err, "nlconvert: failed: ")
    assert "nlconvert: failed" not in captured.out
    assert len(lines) == len(failed)
    for path in failed:
        assert sum(str(path) in line for line in lines) == 1
    # a rerun of the same command: the same contract (failures recorded earlier named again)
    assert cli.main(args) == 3
    assert len(_lines(capsys.readouterr().err, "nlconvert: failed: ")) == len(failed)


def test_evaluate_rerun_rewrites_its_own_reports_only(vids, stand_in, tmp_path, capsys):
    listing = tmp_path / "val.txt"
    listing.write_text(f"{vids['clean']} 1\n")
    db, js, md = tmp_path / "r.sqlite", tmp_path / "r.json", tmp_path / "r.md"
    args = ["evaluate", str(stand_in), "--list", str(listing), "--db", str(db), "--json", str(js),
            "--report", str(md), "--views", "1x1", "--workers", "0"]
    assert cli.main(args) == 0
    identity = json.loads(js.read_text())["database_id"]
    assert len(identity) == 32 and identity in md.read_text()
    js.write_text(js.read_text().replace('"listed": 1', '"listed": 99'))  # changed since
    listing.write_text(f"{vids['clean']} 1\n{vids['mkv']} 2\n")  # a new line in the list
    assert cli.main(args) == 0  # resuming is rerunning the same command
    assert json.loads(js.read_text())["listed"] == 2
    # a file that is not this database's report is never replaced without --force
    other_db = tmp_path / "other.sqlite"
    assert cli.main([*args[:5], str(other_db), *args[6:]]) == 2
    assert "--force" in capsys.readouterr().err
    assert json.loads(js.read_text())["database_id"] == identity
    foreign = tmp_path / "notes.md"
    foreign.write_text("# my notes\n")
    assert cli.main([*args[:9], str(foreign), "--views", "1x1", "--workers", "0"]) == 2
    assert foreign.read_text() == "# my notes\n"


def test_ray_stages_carry_the_warnings(vids):
    """The Ray path's worker side (decoding task, model actor) without a cluster: a damaged
    video's record carries its warnings to the driver; --strict turns it into a failure."""
    from nlconvert.cluster.stages import ModelActor, decode_views_task, decode_windows_task

    def views(key: str, strict: bool = False):
        return list(decode_views_task(key, str(vids["half" if key == "h" else "clean"]), frames=4,
                                      rate=2, views="1x1", strict=strict))

    half, clean = views("h"), views("c")
    assert "declares 60 frames" in half[-1].meta.warnings[0] and clean[-1].meta.warnings == ()
    actor = ModelActor.__new__(ModelActor)  # its backend set here, not opened from a file
    actor.backend, actor.task, actor.tag = V.StandInBackend(frames=4, rate=2), "scores", "torch/fp32"
    result = actor.run(half[-1])
    assert result.fatal is None and result.values is not None
    assert result.meta.warnings == half[-1].meta.warnings  # what the driver records
    (strict,) = views("h", strict=True)
    assert not strict.clips and strict.meta.pixels is None
    assert strict.meta.kind == "damaged (--strict)"
    summary = list(decode_windows_task("h", str(vids["half"]), frames=4, rate=2, stride=16,
                                       fps=None, crop="center"))[-1].meta
    clean_summary = list(decode_windows_task("c", str(vids["clean"]), frames=4, rate=2, stride=16,
                                             fps=None, crop="center"))[-1].meta
    assert tuple(summary.warnings) == half[-1].meta.warnings and clean_summary.warnings == []
