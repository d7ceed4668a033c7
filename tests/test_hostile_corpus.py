"""Hostile pickles (tests/hostile/make_corpus.py): refused, named, and never executed."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from nlconvert.errors import UnsafePickleError
from nlconvert.io import load_pickle, read_checkpoint

HOSTILE = Path(__file__).parent / "hostile"


def _corpus_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("nl_make_corpus", HOSTILE / "make_corpus.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], dict]:
    out = tmp_path_factory.mktemp("hostile")
    paths = _corpus_module().build_corpus(out)
    manifest = json.loads((out / "MANIFEST.json").read_text())
    return out, paths, manifest


def test_corpus_is_complete(corpus: tuple[Path, list[Path], dict]) -> None:
    _, paths, manifest = corpus
    assert len(paths) == len(manifest) >= 200
    for p in range(6):
        assert any(f.name.startswith(f"p{p}_") for f in paths)
    assert any("_stack_" in f.name for f in paths)  # STACK_GLOBAL variants
    assert sum(v["live"] for v in manifest.values()) >= 100


def test_every_hostile_pickle_is_refused(corpus: tuple[Path, list[Path], dict]) -> None:
    out, paths, manifest = corpus
    sentinel = out / "PWNED"
    failures = []
    for path in paths:
        for reader in (read_checkpoint, load_pickle):
            try:
                reader(path)
            except UnsafePickleError as e:
                message = str(e)
                expect = manifest[path.name]["expect"]
                if "\n" in message or str(path) not in message or expect not in message:
                    failures.append(f"{path.name}: {message!r} lacks {expect!r}")
            except Exception as e:  # noqa: BLE001 - collected and reported below
                failures.append(f"{path.name}: {type(e).__name__}: {e}")
            else:
                failures.append(f"{path.name}: accepted")
    assert not failures, failures[:10]
    assert not sentinel.exists()


def test_deep_payload_is_found_after_thousands_of_arrays(
    corpus: tuple[Path, list[Path], dict],
) -> None:
    out, _, _ = corpus
    with pytest.raises(UnsafePickleError, match=r"'posix\.system' at byte (\d+)") as err:
        read_checkpoint(out / "p2_deep_posix.system.pkl")
    offset = int(str(err.value).split(" at byte ")[1].split()[0])
    assert offset > 0.9 * (out / "p2_deep_posix.system.pkl").stat().st_size


LIVE_CHECK = r"""
import os, pickle, sys, time
corpus = sys.argv[1]
sys.path.insert(0, corpus)
sentinel = os.path.join(corpus, "PWNED")
for name in sys.argv[2:]:
    if os.path.exists(sentinel):
        os.remove(sentinel)
    try:
        with open(os.path.join(corpus, name), "rb") as f:
            pickle.load(f, encoding="latin1")
    except Exception:
        pass
    for _ in range(100):  # subprocess.Popen payloads finish asynchronously
        if os.path.exists(sentinel):
            break
        time.sleep(0.01)
    print(name, os.path.exists(sentinel))
if os.path.exists(sentinel):
    os.remove(sentinel)
"""


def test_live_payloads_really_run_under_stdlib_pickle(corpus: tuple[Path, list[Path], dict], tmp_path: Path) -> None:
    """Proof the corpus is real: stock pickle.load runs the payloads (a harmless touch)."""
    out, _, manifest = corpus
    live = sorted(name for name, v in manifest.items() if v["live"] and "_deep_" not in name)
    result = subprocess.run(
        [sys.executable, "-c", LIVE_CHECK, str(out), *live],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    ran = dict(line.rsplit(" ", 1) for line in result.stdout.splitlines())
    assert ran == dict.fromkeys(live, "True"), result.stderr[-2000:]
    assert not (out / "PWNED").exists()
