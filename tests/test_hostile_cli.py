"""The hostile corpus and broken files through the command line, as a user would meet them.

Every file: exit 2, exactly one line on stderr, no traceback, nothing executed (the sentinel
file is never created) and nothing written (no output, no temporary file left behind).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from nlconvert.cli import main

HOSTILE = Path(__file__).parent / "hostile"


def _build_corpus(out: Path) -> list[Path]:
    spec = importlib.util.spec_from_file_location("nl_make_corpus_cli", HOSTILE / "make_corpus.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.build_corpus(out, deep_arrays=300))


def _broken_files(out: Path) -> list[Path]:
    from nlconvert.synthetic import write_synthetic_checkpoint

    good = write_synthetic_checkpoint("c2d_baseline_8x8", out / "good.pkl")
    data = good.read_bytes()
    files = {
        "empty.pkl": b"",
        "page.pkl": b"<!DOCTYPE html><html><body>Not Found</body></html>",
        "notes.pkl": b"these are not weights\n",
        "archive.pkl": b"PK\x03\x04" + b"\0" * 60,
        "download.pkl": b"\x1f\x8b\x08\x00" + b"\0" * 60,
        "half.pkl": data[: len(data) // 2],
        "tail.pkl": data[:-3],
        "bad_init_net.pb": b"\x12\xff\xff\xff\xff\x0f",
    }
    paths = []
    for name, content in files.items():
        (out / name).write_bytes(content)
        paths.append(out / name)
    good.unlink()
    return paths


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("hostile_cli")
    return out, _build_corpus(out) + _broken_files(out)


COMMANDS = [
    ["caffe2-to-torch", "{f}", "-o", "{out}/converted.pt"],
    ["info", "{f}"],
    ["export-caffe2", "{f}", "-o", "{out}/caffe2"],
    ["parity", "{f}", "--report", "{out}/report.md"],
    ["export-onnx", "{f}", "-o", "{out}/model.onnx"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_every_bad_file_is_refused_cleanly(command: list[str], bad_files: tuple[Path, list[Path]],
                                           tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus_dir, paths = bad_files
    before = set(corpus_dir.iterdir())
    failures = []
    for path in paths:
        argv = [a.format(f=path, out=tmp_path) for a in command]
        code = main(argv)
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        if code != 2 or len(lines) != 1 or not lines[0].startswith("nlconvert: error: "):
            failures.append(f"{path.name}: exit {code}, stderr {captured.err[:300]!r}")
        elif "Traceback" in captured.err:
            failures.append(f"{path.name}: traceback")
    assert not failures, failures[:5]
    assert not (corpus_dir / "PWNED").exists()
    assert list(tmp_path.iterdir()) == []  # no output, no temporary file
    assert set(corpus_dir.iterdir()) == before
