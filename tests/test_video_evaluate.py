"""evaluate: lists, resumable SQLite results, failures with reasons, the report."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
import videos as V

from nlconvert import cli
from nlconvert.runtime import backends
from nlconvert.video import evaluate as ev
from nlconvert.video import predict
from nlconvert.video.datalist import ListError, read_list
from nlconvert.video.resultsdb import DatabaseMismatchError, ResultsDB, RunConfig

pytest.importorskip("av")

CLASSES = ["abseiling", "playing flute", "sharpening knives"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A small val set: 3 classes, a few videos each, several containers, two bad files."""
    root = tmp_path_factory.mktemp("val")
    rows = []  # (relative path, label)
    specs = [
        ("abseiling/aaaaaaaaaaa.mp4", 0, 320, 240, 20),
        ("abseiling/bbbbbbbbbbb.webm", 0, 320, 180, 15),
        ("playing_flute/ccccccccccc.mkv", 1, 240, 320, 18),
        ("playing_flute/ddddddddddd.mp4", 1, 320, 240, 12),
        ("sharpening_knives/eeeeeeeeeee.avi", 2, 320, 240, 16),
        ("sharpening_knives/fffffffffff.mp4", 2, 256, 256, 9),
    ]
    for rel, label, w, h, n in specs:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        V.make_video(root / rel, w, h, n)
        rows.append((rel, label))
    (root / "sharpening_knives/zzzzzzzzzzz.mp4").write_bytes(b"")  # zero-byte
    rows.append(("sharpening_knives/zzzzzzzzzzz.mp4", 2))
    rows.append(("abseiling/missingvid0.mp4", 0))  # listed, not there
    vallist = root / "vallist.txt"
    vallist.write_text("".join(f"/scratch/xx/val_256/{rel} {label}\n" for rel, label in rows))
    return root, vallist


def _config(arch="stand-in", views="10x3", sha="0" * 64):
    return RunConfig(sha, "model.pt", arch, views, 4, 2, 3)


def _run(entries, dbpath, **kw):
    model = V.StandInBackend(num_classes=3, frames=4, rate=2)
    db = ResultsDB(dbpath, _config())
    try:
        summary = ev.evaluate(model, entries, db, "10x3", **kw)
        results = db.results()
        scores = {k: db.scores(k) for k in results}
    finally:
        db.close()
    return model, summary, results, scores


def test_vallist_paths_resolve_under_root(dataset):
    root, vallist = dataset
    entries = read_list(vallist, root, CLASSES)
    assert len(entries) == 8
    assert entries[0].path == str(root / "abseiling/aaaaaaaaaaa.mp4")
    assert entries[-1].path is None and entries[-2].path is not None


def test_kinetics_csv_naming_schemes(tmp_path):
    root = tmp_path / "k400"
    (root / "playing flute").mkdir(parents=True)
    (root / "flat").mkdir()
    a = root / "playing flute" / "AAAAAAAAAAA_000010_000020.mkv"
    b = root / "flat" / "BBBBBBBBBBB.webm"  # official naming, in some folder
    c = root / "CCCCCCCCCCC_000001_000011.avi"
    for p in (a, b, c):
        p.write_bytes(b"x")
    csv = tmp_path / "validate.csv"
    csv.write_text(
        "label,youtube_id,time_start,time_end,split\n"
        "playing flute,AAAAAAAAAAA,10,20,val\n"
        "abseiling,BBBBBBBBBBB,0,10,val\n"
        '"sharpening knives",CCCCCCCCCCC,1,11,val\n'
        "abseiling,DDDDDDDDDDD,3,13,val\n"
    )
    entries = read_list(csv, root, CLASSES)
    assert [e.label for e in entries] == [1, 0, 2, 0]
    assert [e.path for e in entries] == [str(a), str(b), str(c), None]
    assert entries[0].key == "AAAAAAAAAAA_000010_000020"


def test_bad_list(tmp_path):
    bad = tmp_path / "l.txt"
    bad.write_text("a.mp4 notanumber\n")
    with pytest.raises(ListError):
        read_list(bad, tmp_path)


def test_evaluate_records_everything_and_reports(dataset, tmp_path):
    root, vallist = dataset
    entries = read_list(vallist, root, CLASSES)
    model, summary, results, scores = _run(entries, tmp_path / "r.sqlite")
    assert (summary.scored, summary.failed, summary.pending) == (6, 2, 0)
    assert model.views_scored == 6 * 30
    failed = {k: r for k, r in results.items() if r.status == "failed"}
    assert {r.kind for r in failed.values()} == {"empty file", "missing"}
    missing = next(r for r in failed.values() if r.kind == "missing")
    assert missing.key in missing.reason  # the missing video is named
    assert all(r.reason and "\n" not in r.reason for r in failed.values())
    # stored scores are predict()'s sum of softmaxes
    first = entries[0]
    np.testing.assert_allclose(
        scores[first.key], predict(V.StandInBackend(3, 4, 2), first.path), rtol=1e-5
    )
    report = ev.build_report(entries, results, _config(), CLASSES, [])
    ok = [e for e in entries if results[e.key].status == "ok"]
    correct = sum(results[e.key].pred == e.label for e in ok)
    assert report["official"]["denominator"] == 8 and report["decoded"]["denominator"] == 6
    assert report["official"]["top1"] == round(100 * correct / 8, 2)
    assert report["decoded"]["top1"] == round(100 * correct / 6, 2)
    assert report["official"]["top5"] == 75.0  # 3 classes: top-5 always right when decoded
    assert report["failures"] == {"empty file": 1, "missing": 1}
    md = ev.report_markdown(report)
    assert "official (all listed; failures count as wrong) | 8" in md
    assert "over decoded videos | 6" in md


def _kill_after(n):
    seen = []

    def hook(key):
        seen.append(key)
        if len(seen) == n:
            raise KeyboardInterrupt

    return hook


@pytest.mark.parametrize("how", ["limit", "raise"])
def test_resume_equals_uninterrupted_run(dataset, tmp_path, how):
    root, vallist = dataset
    entries = read_list(vallist, root, CLASSES)
    _, _, full, full_scores = _run(entries, tmp_path / "full.sqlite")
    db = tmp_path / "resumed.sqlite"
    if how == "limit":
        m1, s1, _, _ = _run(entries, db, limit=3)
        assert s1.pending == 5
    else:
        with pytest.raises(KeyboardInterrupt):
            _run(entries, db, after_video=_kill_after(4))
        m1 = None
    with sqlite3.connect(db) as conn:
        first_part = {r[0] for r in conn.execute("SELECT key FROM videos")}
    assert 0 < len(first_part) < len(entries)
    m2, s2, resumed, resumed_scores = _run(entries, db)
    assert s2.already_done == len(first_part)
    assert s2.scored + s2.failed == len(entries) - len(first_part)
    # the second run scored only videos the first had not recorded
    ok_first = sum(1 for k in first_part if full[k].status == "ok")
    assert m2.views_scored == 30 * (6 - ok_first)
    if m1 is not None:
        assert m1.views_scored == 30 * ok_first
    assert resumed.keys() == full.keys()
    for k in full:
        assert (resumed[k].status, resumed[k].pred, resumed[k].top5) == (
            full[k].status, full[k].pred, full[k].top5)
        if full_scores[k] is not None:
            np.testing.assert_array_equal(resumed_scores[k], full_scores[k])
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM videos").fetchone() == (8, 8)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # a third run has nothing left to do
    m3, s3, _, _ = _run(entries, db)
    assert m3.views_scored == 0 and s3.already_done == 8


def test_database_of_another_model_is_refused(tmp_path):
    db = ResultsDB(tmp_path / "r.sqlite", _config())
    db.close()
    for other in (_config(sha="1" * 64), _config(arch="other"), _config(views="10x1")):
        with pytest.raises(DatabaseMismatchError, match="another --db"):
            ResultsDB(tmp_path / "r.sqlite", other)
    fast = RunConfig("0" * 64, "model.pt", "stand-in", "10x3", 4, 2, 3, "fast/bf16")
    with pytest.raises(DatabaseMismatchError, match="another backend.*never mixed"):
        ResultsDB(tmp_path / "r.sqlite", fast)
    ResultsDB(tmp_path / "r.sqlite", _config()).close()  # the same setting is fine


def test_workers_give_the_same_results(dataset, tmp_path):
    root, vallist = dataset
    entries = read_list(vallist, root, CLASSES)[:4]
    _, _, inline, inline_scores = _run(entries, tmp_path / "a.sqlite")
    _, summary, pooled, pooled_scores = _run(entries, tmp_path / "b.sqlite", workers=2)
    assert summary.scored == 4
    for k in inline:
        np.testing.assert_array_equal(inline_scores[k], pooled_scores[k])


def test_evaluate_command(dataset, tmp_path, monkeypatch, capsys):
    root, vallist = dataset
    model_file = tmp_path / "model.pt"
    model_file.write_bytes(b"stand-in")
    monkeypatch.setattr(backends, "open_backend", V.stand_in_factory(num_classes=400, frames=4,
                                                                     rate=2))
    db, md, js = tmp_path / "r.sqlite", tmp_path / "eval.md", tmp_path / "eval.json"
    args = ["evaluate", str(model_file), "--list", str(vallist), "--root", str(root),
            "--views", "10x3", "--db", str(db), "--report", str(md), "--json", str(js),
            "--batch-size", "16", "--workers", "0"]
    assert cli.main([*args, "--limit", "2"]) == 0
    assert json.loads(js.read_text())["pending"] == 6
    assert "6 still pending" in capsys.readouterr().out
    # resuming is rerunning the same command: the reports are this database's, rewritten
    assert cli.main(args) == 3  # two listed videos failed (the bulk failure contract)
    out = capsys.readouterr().out
    assert "failed 2" in out
    report = json.loads(js.read_text())
    assert (report["scored"], report["failed"], report["pending"]) == (6, 2, 0)
    assert "Failures by reason" in md.read_text()
    args.append("--force")
    # another model file: refused, one line, exit 2
    other = tmp_path / "other.pt"
    other.write_bytes(b"another model")
    args[1] = str(other)
    assert cli.main(args) == 2
    assert "another --db" in capsys.readouterr().err


def test_a_decoder_crash_costs_only_its_video(dataset, tmp_path):
    """A worker process that dies (a segfault in a codec) is reported on its own video; a
    new worker takes the rest; nothing hangs, nothing else is lost."""
    from functools import partial

    import crashing

    from nlconvert.video.workers import WorkerCrash, run_tasks

    root, vallist = dataset
    entries = [e for e in read_list(vallist, root, CLASSES) if e.path][:4]
    poison = tmp_path / "poison.mp4"
    poison.write_bytes((root / "abseiling/aaaaaaaaaaa.mp4").read_bytes())
    items = [(e.key, e.path) for e in entries[:2]] + [("p", str(poison))]
    items += [(e.key, e.path) for e in entries[2:]]
    produce = partial(crashing.crashing_decoder, frames=4, rate=2, views="1x1")
    messages = list(run_tasks(items, produce, workers=1))
    crashes = [m for m in messages if isinstance(m, WorkerCrash)]
    assert [c.key for c in crashes] == ["p"] and "crashed" in crashes[0].reason
    decoded = sorted(m.key for m in messages if not isinstance(m, WorkerCrash))
    assert decoded == sorted(e.key for e in entries)


def test_a_worker_whose_parent_is_killed_ends_quietly(tmp_path):
    """SIGKILL of the parent: its decoding worker notices the closed pipe and exits without
    a traceback (nothing on the terminal they share)."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    tests = Path(__file__).resolve().parent
    script = ("import sys\n"
              f"sys.path.insert(0, {str(tests)!r})\n"
              "import crashing\n"
              "from nlconvert.video.workers import run_tasks\n"
              "for m in run_tasks([('a', 'x'), ('b', 'y')], crashing.slow_messages, workers=1):\n"
              "    print('got', flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "got\n"  # the worker is running
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    err = proc.stderr.read()  # ends when the worker, which shares the pipe, has exited too
    assert err == ""
