"""evaluate and features on a real multi-node Ray cluster on this machine.

The cluster (ray.cluster_utils.Cluster): a head without CPUs and worker nodes of one CPU each,
CPU-only (a variant adds fake GPU resources); RAY_TMPDIR under the test's tmp dir; always
shut down; every test under a watchdog that turns a hang into a failure. Tiny settings (the
C2D R50 on one 8-frame view per video) keep each test near a minute on 2 cores.
"""

from __future__ import annotations

import faulthandler
import json
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
from nlconvert.errors import EXIT_SOME_FAILED
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


def _start_cluster(workers: int):
    """A head with no CPUs and `workers` one-CPU worker nodes."""
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    return c, [c.add_node(num_cpus=1) for _ in range(workers)]


@pytest.fixture(scope="module")
def ray_env(tmp_path_factory):
    """RAY_TMPDIR under the tests' tmp dir; the tests' helpers importable on the workers."""
    mp = pytest.MonkeyPatch()
    mp.setenv("RAY_TMPDIR", str(tmp_path_factory.mktemp("rt")))
    mp.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    mp.setenv("NLCONVERT_CACHE_DIR", os.environ["NLCONVERT_CACHE_DIR"])
    yield
    mp.undo()


@pytest.fixture(scope="module")
def shared(ray_env):
    """One cluster (two one-CPU workers) for the tests that lose no node."""
    c, workers = _start_cluster(2)
    try:
        yield c, workers
    finally:
        ray.shutdown()
        c.shutdown()


@pytest.fixture
def make_cluster(ray_env):
    """A cluster of its own for a test that removes nodes; always shut down."""
    made = []

    def make(workers: int):
        made.append(_start_cluster(workers))
        return made[-1]

    yield make
    ray.shutdown()
    for c, _ in made:
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


_FEATURES = {"layer": "pool5", "frames": 2, "rate": 8, "stride": 6, "fps": None, "crop": "center"}


def _feature_items(root: Path) -> list[tuple[str, str]]:
    return [(p.name, str(p)) for p in sorted((root / "k").glob("*.mp4"))]


def _store(pt: Path, folder: Path) -> FeatureStore:
    settings = FeatureSettings(open_backend(pt, "torch").model_sha256, "c2d_baseline_8x8",
                               "pool5", 2, 8, 6, None, "center", "float32", "npy", "torch/fp32")
    return FeatureStore(folder, settings)


def _ray_features(root: Path, pt: Path, folder: Path, address: str, **kw) -> Path:
    features_on_ray(BackendSpec(str(pt), "torch", batch_size=2), get_arch("c2d_baseline_8x8"),
                    _feature_items(root), _store(pt, folder),
                    options=kw.pop("options", RayOptions(address=address, stall_timeout_s=180)),
                    **_FEATURES, **kw)
    return folder


def _index(folder: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in (folder / "index.jsonl").read_text().splitlines()]
    assert len(rows) == len({r["key"] for r in rows})  # every video once
    return {r["key"]: {k: v for k, v in r.items() if k != "seconds"} for r in rows}


def _same_features(local: Path, remote: Path) -> None:
    """The same index rows (timings aside) and the same feature files, within 1e-5."""
    assert _index(local) == _index(remote)
    files = sorted(p.relative_to(local) for p in local.rglob("*.npy"))
    assert files == sorted(p.relative_to(remote) for p in remote.rglob("*.npy")) and files
    for rel in files:
        a, b = np.load(local / rel), np.load(remote / rel)
        assert a.shape == b.shape and np.abs(a - b).max() <= 1e-5 * np.abs(a).max()


@pytest.fixture(scope="module")
def local(data, tmp_path_factory):
    """The local run of evaluate and features: what every cluster run must equal."""
    root, pt = data
    out = tmp_path_factory.mktemp("local")
    rows = _local_eval(root, pt, out / "local.sqlite")
    store = _store(pt, out / "feats")
    backend = open_backend(pt, "torch", batch_size=2)
    for video, feats, windows in extract_features(
            backend, _feature_items(root), frames=2, rate=8, stride=6):
        store.write(video, windows.path, feats, windows)
    assert sum(r[0] == "ok" for r in rows.values()) == 8
    return rows, out / "feats"


def test_evaluate_and_features_equal_a_local_run(data, local, shared, tmp_path):
    root, pt = data
    c, _ = shared
    remote = _ray_eval(root, pt, tmp_path / "ray.sqlite", c.address)
    _same(local[0], remote)
    assert remote[next(k for k in remote if "broken" in k)][0] == "failed"
    _same_features(local[1], _ray_features(root, pt, tmp_path / "feats", c.address))
    with sqlite3.connect(tmp_path / "ray.sqlite") as conn:  # each video's compute seconds
        seconds = conn.execute("SELECT seconds FROM videos WHERE status = 'ok'").fetchall()
    assert len(seconds) == 8 and all(0 < s < 60 for (s,) in seconds)


#: How a scenario disturbs the cluster: (moment, action). Moments: "start" (just before the
#: job), "actor" (the first model actor is ready; a second is still being created), or the
#: number of videos recorded. Actions: "remove" (the first original worker still there),
#: "remove-actor" (the node of the first model actor), "add" (a new one-CPU worker).
SCENARIOS = [
    pytest.param("evaluate", 3, [("start", "remove")], id="evaluate-node-lost-before-first-video"),
    pytest.param("features", 3, [("start", "remove")], id="features-node-lost-before-first-video"),
    pytest.param("evaluate", 3, [(2, "remove-actor")], id="evaluate-actor-node-lost-after-two"),
    pytest.param("features", 3, [(3, "remove")], id="features-node-lost-after-three"),
    pytest.param("evaluate", 3, [(7, "remove")], id="evaluate-node-lost-near-the-end"),
    pytest.param("features", 3, [(7, "remove-actor")], id="features-actor-node-lost-near-the-end"),
    pytest.param("features", 4, [(2, "remove"), (2, "remove")], id="features-two-of-four-lost"),
    pytest.param("evaluate", 3, [("actor", "remove-actor")],
                 id="evaluate-node-lost-while-actors-start"),
    pytest.param("evaluate", 3, [(2, "remove-actor"), (3, "add"), (5, "remove")],
                 id="evaluate-node-added-back-mid-run"),
]


@pytest.mark.parametrize(("task", "workers", "plan"), SCENARIOS)
def test_lost_nodes_never_fail_a_video(data, local, make_cluster, tmp_path, task, workers, plan):
    """Whatever the moment a node goes, the run equals the local run: every video once,
    the same rows and files, no video failed by the loss."""
    root, pt = data
    c, nodes = make_cluster(workers)
    originals = list(nodes)
    actor_nodes: list[str] = []
    pending = list(plan)
    done_log: list[tuple] = []
    recorded = [0]

    def act(action: str) -> None:
        if action == "add":
            c.add_node(num_cpus=1)
        elif action == "remove-actor":
            node = next(n for n in c.worker_nodes if n.node_id.startswith(actor_nodes[0]))
            c.remove_node(node, allow_graceful=False)
        else:
            node = next(n for n in originals if n in c.worker_nodes)
            c.remove_node(node, allow_graceful=False)
        done_log.append((recorded[0], action))

    def fire(moment) -> None:
        while pending and pending[0][0] == moment:
            act(pending.pop(0)[1])

    def log(line: str) -> None:
        if line.startswith("ray: model actor ready on node "):
            actor_nodes.append(line.rsplit(" ", 1)[1])
            fire("actor")

    def after(_key) -> None:
        recorded[0] += 1
        fire(recorded[0])

    fire("start")
    options = RayOptions(address=c.address, stall_timeout_s=180,
                         actors=2 if ("actor", "remove-actor") in plan else None)
    if task == "evaluate":
        remote = _ray_eval(root, pt, tmp_path / "ray.sqlite", c.address, options=options,
                           after_video=after, log=log)
        _same(local[0], remote)
    else:
        folder = _ray_features(root, pt, tmp_path / "feats", c.address, options=options,
                               on_video=after, log=log)
        _same_features(local[1], folder)
    assert not pending and len(done_log) == len(plan), f"not every disturbance happened: {done_log}"


def test_a_poisoned_video_is_recorded_not_looped(data, local, make_cluster, tmp_path):
    """A video that kills its worker is recorded after --max-attempts, in a cluster that also
    loses a node meanwhile; every other video is scored as in the local run."""
    root, pt = data
    c, nodes = make_cluster(3)
    poison = V.make_video(tmp_path / "poison.mp4", 160, 120, 20)  # not in the shared folder
    listing = tmp_path / "list.txt"
    listing.write_text((root / "list.txt").read_text() + f"{poison} 0\n")
    sys.path.insert(0, str(TESTS))
    import crashing

    removed = []

    def remove_after_three(_key):
        removed.append(_key)
        if len(removed) == 3:
            c.remove_node(nodes[0], allow_graceful=False)

    entries = ev.read_list(listing, root, None)
    results = ResultsDB(tmp_path / "p.sqlite", _config(pt))
    start = time.time()
    try:
        summary = evaluate_on_ray(
            BackendSpec(str(pt), "torch", batch_size=2), get_arch("c2d_baseline_8x8"), entries,
            results, "1x1", options=RayOptions(address=c.address, max_attempts=2,
                                               stall_timeout_s=180),
            frames=8, rate=8, decoder=crashing.crashing_decoder, after_video=remove_after_three)
    finally:
        results.close()
    rows = _rows(tmp_path / "p.sqlite")
    assert rows[str(poison)][:2] == ("failed", "worker crash")
    del rows[str(poison)]
    _same(local[0], rows)
    assert summary.scored == 8 and summary.failed == 2 and time.time() - start < WATCHDOG_S


def test_layouts_that_cannot_progress_are_refused(shared):
    c, _ = shared
    ray.init(address=c.address)
    try:
        nodes = ray.nodes()
    finally:
        ray.shutdown()
    with pytest.raises(ClusterError, match="leave 0 for decoding"):
        plan_layout(RayOptions(actors=2, cpus_per_actor=1.0), nodes)
    with pytest.raises(ClusterError, match="GPUs"):
        plan_layout(RayOptions(gpus_per_actor=1), nodes)
    layout = plan_layout(RayOptions(), nodes)
    # one-CPU nodes: an actor (0.5) and a decoding task must fit on one node, so that losing
    # the other node never leaves decoding without a CPU
    assert (layout.actor_cpus, layout.decode_cpus, layout.cluster_cpus) == (0.5, 0.5, 2)


_DRIVER = """
import sys
sys.path.insert(0, {tests!r})
from nlconvert.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_killed_driver_resumes_without_doubling(data, local, shared, tmp_path):
    root, pt = data
    c, _ = shared
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

    assert main(args) == EXIT_SOME_FAILED  # broken.mp4 is in the list
    after = _rows(db)
    assert len(after) == 9
    for key in before:
        assert after[key] == before[key]  # recorded once, never rewritten
    _same(local[0], after)


def test_features_command_on_the_cluster_equals_a_local_run(data, shared, tmp_path):
    root, pt = data
    c, _ = shared
    from nlconvert.cli import main

    folder = root / "k"
    common = ["--frames", "2", "--stride", "10", "--backend", "torch", "--batch-size", "2"]
    assert main(["features", str(pt), str(folder), "--out", str(tmp_path / "ray"), *common,
                 "--ray", c.address, "--decode-cpus", "0.5"]) == EXIT_SOME_FAILED
    assert main(["features", str(pt), str(folder), "--out", str(tmp_path / "local"), *common,
                 "--workers", "0"]) == EXIT_SOME_FAILED
    local = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*.npy"))
    remote = sorted(p.relative_to(tmp_path / "ray") for p in (tmp_path / "ray").rglob("*.npy"))
    assert local == remote and len(local) == 8
    for rel in local:
        a, b = np.load(tmp_path / "local" / rel), np.load(tmp_path / "ray" / rel)
        assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max()
    index = (tmp_path / "ray" / "index.jsonl").read_text().splitlines()
    assert len(index) == 9 and sum('"failed"' in line for line in index) == 1  # broken.mp4


def test_gpu_actors_on_fake_gpu_resources(data, local, shared, tmp_path):
    """Last of the shared cluster's tests: it adds a node."""
    root, pt = data
    c, _ = shared
    c.add_node(num_cpus=1, num_gpus=1)  # a "GPU" node: the actor lands there, runs on CPU
    options = RayOptions(address=c.address, gpus_per_actor=1, cpus_per_actor=0.5,
                         decode_cpus=0.5)
    remote = _ray_eval(root, pt, tmp_path / "ray.sqlite", c.address, options=options)
    _same(local[0], remote)
