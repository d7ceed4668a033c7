"""How the Ray driver classifies a failed task (no cluster needed; see test_ray.py for the
real clusters)."""

from __future__ import annotations

import pytest

rx = pytest.importorskip("ray.exceptions")

from nlconvert.cluster.faults import DIED, ERROR, LOST, classify  # noqa: E402

OBJECT = "00" * 28


@pytest.mark.parametrize(("error", "kind"), [
    # lost with a node: never held against the video
    (rx.NodeDiedError("node"), LOST),
    (rx.ObjectLostError(OBJECT, "", ""), LOST),
    (rx.ObjectReconstructionFailedError(OBJECT, "", ""), LOST),
    (rx.OwnerDiedError(OBJECT, "", ""), LOST),
    (rx.ActorUnavailableError("gone", b"1" * 16), LOST),
    # a dead process: the probe of the nodes decides
    (rx.WorkerCrashedError(), DIED),
    (rx.ActorDiedError(), DIED),
    (rx.OutOfMemoryError("killed by the memory monitor"), DIED),
    # Ray wraps a dependency's system error in a task error: the cause counts
    (rx.RayTaskError("f", "tb", rx.WorkerCrashedError()), DIED),
    (rx.RayTaskError("f", "tb", rx.NodeDiedError("node")), LOST),
    # a Python error that escaped the code recording each video's errors: the job's
    (rx.RayTaskError("f", "tb", ValueError("bug")), ERROR),
])
def test_failures_are_classified_by_cause(error, kind):
    assert classify(error) == kind
