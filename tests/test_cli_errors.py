"""Bad input through the command line: one line on stderr, exit 2, no output file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nlconvert.cli import main

MakeCheckpoint = Callable[..., Path]


def _drop(name: str) -> Callable[[dict[str, Any]], None]:
    return lambda blobs: blobs.pop(name)


def _reshape(name: str, shape: tuple[int, ...]) -> Callable[[dict[str, Any]], None]:
    def edit(blobs: dict[str, Any]) -> None:
        blobs[name] = np.zeros(shape, np.float32)

    return edit


def _extra(blobs: dict[str, Any]) -> None:
    blobs["res6_0_branch2a_w"] = np.zeros((4, 4, 1, 1, 1), np.float32)


CASES: list[tuple[str, Callable[[dict[str, Any]], None] | None, str, list[str]]] = [
    ("missing blob", _drop("res4_3_branch2b_w"), "res4_3_branch2b_w", []),
    ("wrong shape", _reshape("res3_1_branch2a_w", (128, 512, 3, 1, 1)), "res3_1_branch2a_w", []),
    ("foreign blob", _extra, "res6_0_branch2a_w", []),
    ("wrong arch", None, "nonlocal_conv3_1", ["--arch", "i3d_baseline_8x8"]),
]


@pytest.mark.parametrize("what,mutate,needle,extra", CASES, ids=[c[0] for c in CASES])
def test_mapping_errors(what: str, mutate: Callable[[dict[str, Any]], None] | None, needle: str,
                        extra: list[str], make_checkpoint: MakeCheckpoint, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = make_checkpoint("i3d_nonlocal_8x8", mutate=mutate)
    out = tmp_path / "out.pt"
    assert main(["caffe2-to-torch", str(ckpt), "-o", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert needle in err[0] and str(ckpt) in err[0]
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.suffix != ".pkl"] == []  # no temp files


def test_ambiguous_unknown_name_lists_candidates(make_checkpoint: MakeCheckpoint, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = make_checkpoint("i3d_nonlocal_8x8", name="my_finetuned_model")
    assert main(["caffe2-to-torch", str(ckpt)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "i3d_nonlocal_8x8" in err[0] and "i3d_nonlocal_32x2" in err[0] and "--arch" in err[0]
    assert not ckpt.with_suffix(".pt").exists()


def test_missing_and_truncated_files(make_checkpoint: MakeCheckpoint, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["caffe2-to-torch", str(tmp_path / "nope.pkl")]) == 2
    ckpt = make_checkpoint("c2d_baseline_8x8")
    data = ckpt.read_bytes()
    for cut in (0, 10, len(data) // 3, len(data) - 5):
        ckpt.write_bytes(data[:cut])
        assert main(["caffe2-to-torch", str(ckpt)]) == 2
        assert not ckpt.with_suffix(".pt").exists()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 5 and all(line.startswith("nlconvert: error: ") for line in lines)


def test_malicious_pickle_runs_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sentinel = tmp_path / "PWNED"
    payload = (b"\x80\x02}q\x00U\x05blobsq\x01cposix\nsystem\nq\x02U"
               + bytes([len(f"touch {sentinel}")]) + f"touch {sentinel}".encode()
               + b"\x85q\x03Rq\x04s.")
    bad = tmp_path / "i3d_nonlocal_8x8_IN_pretrain_400k.pkl"
    bad.write_bytes(payload)
    assert main(["caffe2-to-torch", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "system" in err[0]
    assert not sentinel.exists() and not bad.with_suffix(".pt").exists()


def test_debug_shows_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "x.pkl"
    bad.write_text("<!DOCTYPE html><html>404</html>")
    assert main(["--debug", "caffe2-to-torch", str(bad)]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_a_truncated_model_file_is_called_truncated(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    whole = tmp_path / "whole.pt"
    torch.save({"state_dict": {"w": torch.zeros(4096)}}, whole)
    data = whole.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    assert main(["info", str(cut)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"nlconvert: error: {cut}: truncated at byte {len(data) // 2} (the file ends "
                   "early; download or copy it again)"]


def test_a_text_file_given_as_npy_gets_no_pickle_advice(tmp_path: Path) -> None:
    from nlconvert.errors import InputShapeError
    from nlconvert.io.clip_file import load_clip_file

    text = tmp_path / "clip.npy"
    text.write_text("1 2 3\n4 5 6\n")
    with pytest.raises(InputShapeError) as info:
        load_clip_file(text)
    message = str(info.value)
    assert message.startswith(f"{text}: not an .npy file") and "pickle" not in message
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputShapeError, match="holds pickled Python objects"):
        load_clip_file(objects)
