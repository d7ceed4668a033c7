"""evaluate and features on a real multi-node Ray cluster on this machine.

The cluster (ray.cluster_utils.Cluster): a head without CPUs and worker nodes of one CPU each,
CPU-only (a variant adds fake GPU resources); RAY_TMPDIR under the test's tmp dir; always
shut down; every test under a watchdog that turns a hang into a failure. Tiny settings (the
C2D R50 on one 8-frame view per video) keep each test near a minute on 2 cores.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import videos as V

from nlconvert.arch import get_arch
from nlconvert.cluster.jobs import evaluate_on_ray, features_on_ray
from nlconvert.cluster.layout import ClusterError, RayOptions, plan_layout
from nlconvert.cluster.stages import BackendSpec
from nlconvert.convert import save_model
from nlconvert.runtime.backends import open_backend
from nlconvert.synthetic.models import synthetic_model
from nlconvert.video import evaluate as ev
from nlconvert.video.features import extract_features
from nlconvert.video.featurestore import FeatureSettings, FeatureStore
from nlconvert.video.resultsdb import ResultsDB, RunConfig

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray
TESTS = Path(__file__).parent
WATCHDOG_S = 420


@pytest.fixture(autouse=True)
def watchdog():
    """A hang is a failure: dump every thread's stack and end the process."""
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("rayvids")
    (root / "k").mkdir()
    lines = []
    for i in range(8):
        name = f"video{i:06d}.mp4"
        V.make_video(root / "k" / name, 160, 120, 16 + 3 * i)
        lines.append(f"k/{name} {i % 3}\n")
    (root / "k" / "broken.mp4").write_bytes(b"\x00" * 64)
    lines.append("k/broken.mp4 1\n")
    (root / "list.txt").write_text("".join(lines))
    model = synthetic_model(get_arch("c2d_baseline_8x8"), seed=5, calib_shape=(8, 32, 32))
    pt = save_model(model, root / "c2d_baseline_8x8.pt")
    return root, pt


@pytest.fixture
def cluster(tmp_path_factory, monkeypatch):
    """A head with no CPUs and two one-CPU workers (one more with gpu=True)."""
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path_factory.mktemp("rt")))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("NLCONVERT_CACHE_DIR", os.environ["NLCONVERT_CACHE_DIR"])
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    workers = [c.add_node(num_cpus=1) for _ in range(2)]
    try:
        yield c, workers
    finally:
        ray.shutdown()
        c.shutdown()


def _config(pt: Path, backend: str = "torch/fp32") -> RunConfig:
    return RunConfig(open_backend(pt, "torch").model_sha256, str(pt), "c2d_baseline_8x8", "1x1",
                     8, 8, 400, backend)


def _rows(db: Path) -> dict[str, tuple]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT key, status, kind, pred, top5, scores FROM videos").fetchall()
        count, distinct = conn.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM videos").fetchone()
    assert count == distinct  # every video once
    return {r[0]: r[1:] for r in rows}


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key][:4] == b[key][:4], key
        if a[key][4] is not None:
            x, y = (np.frombuffer(v[key][4], np.float32) for v in (a, b))
            assert np.abs(x - y).max() <= 1e-5


def _local_eval(root: Path, pt: Path, db: Path) -> dict:
    backend = open_backend(pt, "torch")
    entries = ev.read_list(root / "list.txt", root, backend.class_names)
    results = ResultsDB(db, _config(pt))
    try:
        ev.evaluate(backend, entries, results, "1x1")
    finally:
        results.close()
    return _rows(db)


def _ray_eval(root: Path, pt: Path, db: Path, address: str, **kw) -> dict:
    options = kw.pop("options", RayOptions(address=address, stall_timeout_s=180))  # defaults
    entries = ev.read_list(root / "list.txt", root, None)
    results = ResultsDB(db, _config(pt))
    try:
        evaluate_on_ray(BackendSpec(str(pt), "torch", batch_size=2), get_arch("c2d_baseline_8x8"),
                        entries, results, "1x1", options=options, frames=8, rate=8, **kw)
    finally:
        results.close()
    return _rows(db)


def test_evaluate_and_features_equal_a_local_run(data, cluster, tmp_path):
    root, pt = data
    c, _ = cluster
    local = _local_eval(root, pt, tmp_path / "local.sqlite")
    remote = _ray_eval(root, pt, tmp_path / "ray.sqlite", c.address)
    _same(local, remote)
    assert remote[next(k for k in remote if "broken" in k)][0] == "failed"
    # features: the same files as a local run
    items = [(p.name, str(p)) for p in sorted((root / "k").glob("video*.mp4"))[:4]]
    settings = FeatureSettings(open_backend(pt, "torch").model_sha256, "c2d_baseline_8x8",
                               "pool5", 2, 8, 6, None, "center", "float32", "npy", "torch/fp32")
    store = FeatureStore(tmp_path / "feats", settings)
    features_on_ray(BackendSpec(str(pt), "torch", batch_size=2), get_arch("c2d_baseline_8x8"),
                    items, store, options=RayOptions(address=c.address, decode_cpus=0.5),
                    layer="pool5", frames=2, rate=8, stride=6, fps=None, crop="center")
    backend = open_backend(pt, "torch", batch_size=2)
    for video, feats, _ in extract_features(backend, items, frames=2, rate=8, stride=6):
        got = np.load(tmp_path / "feats" / Path(video).with_suffix(".npy"))
        assert got.shape == feats.shape
        assert np.abs(got - feats).max() <= 1e-5 * np.abs(feats).max()


def test_a_lost_worker_node_does_not_lose_or_double_a_video(data, cluster, tmp_path):
    root, pt = data
    c, workers = cluster
    c.add_node(num_cpus=1)  # three workers; one goes away mid-run
    removed = []

    def remove_after_two(key):
        if len(removed) == 0 and len(_rows(tmp_path / "ray.sqlite")) >= 2:
            removed.append(key)
            c.remove_node(workers[0])

    remote = _ray_eval(root, pt, tmp_path / "ray.sqlite", c.address, after_video=remove_after_two)
    assert removed, "the node was never removed"
    local = _local_eval(root, pt, tmp_path / "local.sqlite")
    _same(local, remote)


def test_a_poisoned_video_is_recorded_not_looped(data, cluster, tmp_path):
    root, pt = data
    c, _ = cluster
    poison = V.make_video(tmp_path / "poison.mp4", 160, 120, 20)  # not in the shared folder
    listing = tmp_path / "list.txt"
    listing.write_text((root / "list.txt").read_text() + f"{poison} 0\n")
    sys.path.insert(0, str(TESTS))
    import crashing

    entries = ev.read_list(listing, root, None)
    results = ResultsDB(tmp_path / "p.sqlite", _config(pt))
    start = time.time()
    try:
        summary = evaluate_on_ray(
            BackendSpec(str(pt), "torch", batch_size=2), get_arch("c2d_baseline_8x8"), entries,
            results, "1x1", options=RayOptions(address=c.address, decode_cpus=0.5, max_attempts=2),
            frames=8, rate=8, decoder=crashing.crashing_decoder)
    finally:
        results.close()
    rows = _rows(tmp_path / "p.sqlite")
    assert rows[str(poison)][:2] == ("failed", "worker crash")
    assert summary.scored == 8 and time.time() - start < WATCHDOG_S


def test_layouts_that_cannot_progress_are_refused(cluster):
    c, _ = cluster
    ray.init(address=c.address)
    nodes = ray.nodes()
    with pytest.raises(ClusterError, match="leave 0 for decoding"):
        plan_layout(RayOptions(actors=2, cpus_per_actor=1.0), nodes)
    with pytest.raises(ClusterError, match="GPUs"):
        plan_layout(RayOptions(gpus_per_actor=1), nodes)
    layout = plan_layout(RayOptions(), nodes)
    # one-CPU nodes: an actor (0.5) and a decoding task must fit on one node, so that losing
    # the other node never leaves decoding without a CPU
    assert (layout.actor_cpus, layout.decode_cpus, layout.cluster_cpus) == (0.5, 0.5, 2)


def test_gpu_actors_on_fake_gpu_resources(data, cluster, tmp_path):
    root, pt = data
    c, _ = cluster
    c.add_node(num_cpus=1, num_gpus=1)  # a "GPU" node: the actor lands there, runs on CPU
    options = RayOptions(address=c.address, gpus_per_actor=1, cpus_per_actor=0.5,
                         decode_cpus=0.5)
    remote = _ray_eval(root, pt, tmp_path / "ray.sqlite", c.address, options=options)
    _same(_local_eval(root, pt, tmp_path / "local.sqlite"), remote)


_DRIVER = """
import sys
sys.path.insert(0, {tests!r})
from nlconvert.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_killed_driver_resumes_without_doubling(data, cluster, tmp_path):
    root, pt = data
    c, _ = cluster
    db = tmp_path / "r.sqlite"
    args = ["evaluate", str(pt), "--list", str(root / "list.txt"), "--root", str(root),
            "--db", str(db), "--views", "1x1", "--backend", "torch", "--batch-size", "1",
            "--ray", c.address]
    script = tmp_path / "driver.py"
    script.write_text(_DRIVER.format(tests=str(TESTS)))
    proc = subprocess.Popen([sys.executable, str(script), *args])
    deadline = time.time() + 240
    while time.time() < deadline:
        if db.exists():
            try:
                if len(_rows(db)) >= 2:
                    break
            except sqlite3.OperationalError:
                pass
        if proc.poll() is not None:
            break
        time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _rows(db)
    assert 0 < len(before) < 9, "kill the driver mid-run"
    from nlconvert.cli import main

    assert main(args) == 0
    after = _rows(db)
    assert len(after) == 9
    for key in before:
        assert after[key] == before[key]  # recorded once, never rewritten
    _same(_local_eval(root, pt, tmp_path / "local.sqlite"), after)


def test_features_command_on_the_cluster_equals_a_local_run(data, cluster, tmp_path):
    root, pt = data
    c, _ = cluster
    from nlconvert.cli import main

    folder = root / "k"
    common = ["--frames", "2", "--stride", "10", "--backend", "torch", "--batch-size", "2"]
    assert main(["features", str(pt), str(folder), "--out", str(tmp_path / "ray"), *common,
                 "--ray", c.address, "--decode-cpus", "0.5"]) == 0
    assert main(["features", str(pt), str(folder), "--out", str(tmp_path / "local"), *common,
                 "--workers", "0"]) == 0
    local = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*.npy"))
    remote = sorted(p.relative_to(tmp_path / "ray") for p in (tmp_path / "ray").rglob("*.npy"))
    assert local == remote and len(local) == 8
    for rel in local:
        a, b = np.load(tmp_path / "local" / rel), np.load(tmp_path / "ray" / rel)
        assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max()
    index = (tmp_path / "ray" / "index.jsonl").read_text().splitlines()
    assert len(index) == 9 and sum('"failed"' in line for line in index) == 1  # broken.mp4
