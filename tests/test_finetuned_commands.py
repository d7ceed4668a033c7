"""A fine-tuned model (3 classes with their own names) through every command (issue 18, item 9)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import videos as V

import nlconvert
from nlconvert.cli import main
from nlconvert.synthetic import release_file_name, write_synthetic_checkpoint

NAMES = ["left", "right", "still"]


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A C2D baseline with a new 3-way head, one SGD step taken, saved as a .pt."""
    folder = tmp_path_factory.mktemp("finetuned")
    ckpt = write_synthetic_checkpoint("c2d_baseline_8x8",
                                      folder / f"{release_file_name('c2d_baseline_8x8')}.pkl")
    model = nlconvert.create_model(pretrained=ckpt, class_names=NAMES, norm="train")
    opt = torch.optim.SGD(nlconvert.param_groups(model), lr=0.01, momentum=0.9)
    loss = torch.nn.functional.cross_entropy(model(torch.randn(2, 3, 8, 32, 32)),
                                             torch.tensor([0, 2]))
    loss.backward()
    opt.step()
    return nlconvert.save_model(model, folder / "finetuned.pt")


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = main(args)
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


def test_info_and_run(finetuned: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                      ) -> None:
    out = _run(["info", str(finetuned)], capsys)
    assert "classes: 3 (left, right, still)" in out
    assert "initialised 2 blobs" in out and "pred_w (1): N(0, 0.01)" in out
    clip = tmp_path / "clip.npy"
    np.save(clip, np.random.default_rng(0).standard_normal((1, 3, 8, 32, 32)).astype(np.float32))
    out = _run(["run", str(finetuned), str(clip), "--topk", "3", "--backend", "torch"], capsys)
    assert all(name in out for name in NAMES), out


@pytest.mark.slow
def test_export_parity_run_bench(finetuned: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    onnx_clip = tmp_path / "clip.onnx"
    _run(["export-onnx", str(finetuned), "-o", str(onnx_clip), "--shape", "1,3,8,32,32"], capsys)
    out = _run(["info", str(onnx_clip)], capsys)
    assert "classes: 3 (left, right, still)" in out
    onnx_fc = tmp_path / "fc.onnx"
    _run(["export-onnx", str(finetuned), "-o", str(onnx_fc), "--head", "fully_conv",
          "--shape", "1,3,8,224,224"], capsys)
    # Parity against the numpy reference built from the file's own weights, and its ONNX.
    js, md = tmp_path / "parity.json", tmp_path / "parity.md"
    _run(["parity", str(finetuned), "--frames", "8", "--size", "32", "--onnx",
          str(onnx_clip), "--json", str(js), "--report", str(md)], capsys)
    report = json.loads(js.read_text())
    assert report["ok"] is True and report["top1_agree"] is True
    assert all(name in md.read_text() for name in NAMES)  # the top-5 table, by name
    clip = tmp_path / "clip.npy"
    np.save(clip, np.random.default_rng(0).standard_normal((2, 3, 8, 32, 32)).astype(np.float32))
    for model in (finetuned, onnx_clip):
        out = _run(["run", str(model), str(clip), "--topk", "3"], capsys)
        assert all(name in out for name in NAMES), out
    bench = tmp_path / "bench.json"
    _run(["bench", str(finetuned), "--frames", "8", "--size", "32", "--backend", "onnx",
          "--runs", "1", "--warmup", "0", "--error-clips", "1", "--json", str(bench)], capsys)
    rows = json.loads(bench.read_text())
    assert any(r["path"] == "onnx" and r["top1_agree"] == 1.0 for r in rows)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ft-videos")
    V.make_video(folder / "a.mp4", 320, 240, 12)
    V.make_video(folder / "b.mp4", 320, 240, 12)
    (folder / "val.txt").write_text("a.mp4 0\nb.mp4 2\n")
    return folder / "val.txt"


@pytest.mark.slow
def test_predict_evaluate_features(finetuned: Path, labelled: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    video = labelled.parent / "a.mp4"
    js = tmp_path / "pred.json"
    out = _run(["predict", str(finetuned), str(video), "--views", "1x1", "--backend", "torch",
                "--topk", "3", "--json", str(js)], capsys)
    assert all(name in out for name in NAMES), out
    assert {row["name"] for row in json.loads(js.read_text())[0]["topk"]} == set(NAMES)
    report = tmp_path / "eval.json"
    _run(["evaluate", str(finetuned), "--list", str(labelled), "--views", "1x1", "--backend",
          "torch", "--db", str(tmp_path / "r.sqlite"), "--json", str(report), "--workers", "0"],
         capsys)
    data = json.loads(report.read_text())
    assert data["scored"] == 2
    assert {row["name"] for row in data["worst_classes"]} == {"left", "still"}
    feats = tmp_path / "feats"
    _run(["features", str(finetuned), str(video), "--out", str(feats), "--layer", "probs",
          "--backend", "torch", "--workers", "0", "--stride", "12"], capsys)
    probs = np.load(feats / "a.npy")
    assert probs.shape[1] == 3 and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert json.loads((feats / "features.json").read_text())["class_names"] == NAMES


@pytest.mark.ray
def test_evaluate_on_ray(finetuned: Path, labelled: Path, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("ray")
    report = tmp_path / "eval.json"
    _run(["evaluate", str(finetuned), "--list", str(labelled), "--views", "1x1", "--backend",
          "torch", "--db", str(tmp_path / "r.sqlite"), "--json", str(report), "--ray", "local",
          "--actors", "1"], capsys)
    data = json.loads(report.read_text())
    assert data["scored"] == 2
    assert {row["name"] for row in data["worst_classes"]} == {"left", "still"}
