"""predict(): the sum of the views' softmaxes, top-k names, and the predict command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import videos as V

from nlconvert import cli
from nlconvert.arch import top_k
from nlconvert.runtime import backends
from nlconvert.video import Prediction, predict, predict_video
from nlconvert.video.views import load_views

pytest.importorskip("av")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return V.make_video(tmp_path_factory.mktemp("p") / "clip.mp4", 320, 240, 24)


def test_predict_is_the_sum_of_view_softmaxes(clip):
    model = V.StandInBackend(frames=4, rate=2, batch_size=7)
    scores = predict(model, clip, views="10x3")
    views = load_views(clip, 4, 2, "10x3")
    expected = V.StandInBackend(frames=4, rate=2).probs(views).astype(np.float64).sum(axis=0)
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    assert scores.shape == (400,) and abs(scores.sum() - 30) < 1e-3
    assert model.views_scored == 30 and model.calls == 5  # batches of 7


def test_prediction_mean_and_topk(clip):
    pred, pixels = predict_video(V.StandInBackend(frames=4, rate=2), clip, "10x1", k=3)
    assert isinstance(pred, Prediction) and pred.num_views == 10 and pixels.shape[0] == 10
    np.testing.assert_allclose(pred.mean, pred.scores / 10)
    best = np.argsort(-pred.mean)[:3]
    from nlconvert.arch.classes import kinetics400_names

    assert [t[0] for t in pred.topk] == list(best)
    assert [t[1] for t in pred.topk] == [kinetics400_names()[i] for i in best]
    assert pred.to_dict()["topk"][0]["name"] == kinetics400_names()[best[0]]


def test_topk_without_names_shows_indices():
    assert top_k(np.array([0.1, 0.5, 0.2, 0.5]), 3, None) == [
        (1, "1", 0.5), (3, "3", 0.5), (2, "2", 0.2)
    ]


def test_one_by_one_view(clip):
    model = V.StandInBackend(num_classes=7, frames=8, rate=2)
    scores = predict(model, clip, views="1x1")
    assert scores.shape == (7,) and abs(scores.sum() - 1) < 1e-5


def test_frames_and_rate_override(clip):
    model = V.StandInBackend(frames=4, rate=2)
    pred, pixels = predict_video(model, clip, "10x3", frames=2, rate=5)
    assert pixels.shape[2] == 2 and pred.plan.rate == 5


@pytest.fixture
def cli_model(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    path.write_bytes(b"stand-in model")
    monkeypatch.setattr(backends, "open_backend", V.stand_in_factory(frames=4, rate=2))
    return path


def test_predict_command(clip, cli_model, tmp_path, capsys):
    out, npy = tmp_path / "out.json", tmp_path / "views.npy"
    code = cli.main(["predict", str(cli_model), str(clip), "--views", "10x3", "--topk", "3",
                     "--json", str(out), "--save-clips", str(npy), "--batch-size", "10"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "24 frames, 30 views" in printed and printed.count("\n") == 5
    assert printed.startswith("backend: ")
    data = json.loads(out.read_text())
    assert len(data) == 1 and len(data[0]["topk"]) == 3
    assert data[0]["plan"]["clips"][1] == [(24 // 10 + 2 * k) % 24 for k in range(4)]
    saved = np.load(npy)
    np.testing.assert_array_equal(saved, load_views(clip, 4, 2, "10x3"))


def test_predict_command_on_a_folder(clip, cli_model, tmp_path, capsys):
    folder = tmp_path / "vids"
    folder.mkdir()
    V.make_video(folder / "a.mkv", 320, 240, 10)
    V.make_video(folder / "b.webm", 320, 240, 10)
    (folder / "readme.txt").write_text("not a video")
    assert cli.main(["predict", str(cli_model), str(folder), "--views", "1x1"]) == 0
    out = capsys.readouterr().out
    assert "a.mkv" in out and "b.webm" in out and "readme" not in out


@pytest.mark.parametrize("which", ["zero", "truncated", "audio", "text", "missing"])
def test_predict_exit_2_on_a_bad_file(clip, cli_model, tmp_path, capsys, which):
    bad = V.make_bad_files(tmp_path / "bad", clip)
    bad["missing"] = tmp_path / "nope.mp4"
    code = cli.main(["predict", str(cli_model), str(bad[which])])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nlconvert: error: ") and str(bad[which]) in err[0]


def test_predict_goes_on_after_a_bad_file_among_several(clip, cli_model, tmp_path, capsys):
    bad = V.make_bad_files(tmp_path / "bad", clip)
    code = cli.main(["predict", str(cli_model), str(bad["zero"]), str(clip), "--views", "1x1"])
    assert code == 3  # the failure contract of bulk commands (README exit codes)
    captured = capsys.readouterr()
    assert "clip.mp4" in captured.out and "empty file" in captured.err


def test_bad_views_option(clip, cli_model, capsys):
    assert cli.main(["predict", str(cli_model), str(clip), "--views", "10x2"]) == 2
    assert "--views" in capsys.readouterr().err


def test_json_on_standard_output_is_pure_json(clip, cli_model, capsys):
    assert cli.main(["predict", str(cli_model), str(clip), "--views", "1x1", "--json", "-"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)  # nothing else on stdout
    assert data[0]["views"] == "1x1" and data[0]["head"] == "fully_conv"
    assert data[0]["backend"] == "torch" and "backend:" in captured.err


def test_check_prints_the_measured_error_when_it_passes(clip, cli_model, capsys, monkeypatch):
    # the stand-in is its own reference (a real backend's is the torch model of its file)
    monkeypatch.setattr(V.StandInBackend, "reference", lambda self: self)
    assert cli.main(["predict", str(cli_model), str(clip), "--views", "1x1", "--check"]) == 0
    out = capsys.readouterr().out
    assert "check passed: torch against torch on the first batch: max rel err 0 (stated" in out
