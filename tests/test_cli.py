"""The click command line as users meet it: help, errors, exit codes, shared options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from nlconvert.arch import get_arch
from nlconvert.cli import COMMANDS, cli, main
from nlconvert.convert import save_model
from nlconvert.synthetic.models import synthetic_model

ENTRY = Path(sys.executable).with_name("nlconvert")


def _run(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(ENTRY), *args], capture_output=True, text=True, timeout=300, **kw)


def test_help_loads_neither_torch_nor_onnxruntime():
    code = (
        "import sys\n"
        "from nlconvert.cli import COMMANDS, main\n"
        "assert main(['--help']) == 0\n"
        "for name in COMMANDS:\n"
        "    assert main([name, '--help']) == 0, name\n"
        "heavy = [m for m in ('torch', 'onnxruntime', 'onnx', 'av') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout
    for name in COMMANDS:
        assert name in out.stdout


def test_every_option_has_help_text():
    missing = []
    for name in COMMANDS:
        command = cli.get_command(None, name)  # type: ignore[arg-type]
        for param in command.params:
            if param.param_type_name == "option" and not getattr(param, "help", None):
                missing.append(f"{name} {param.opts[0]}")
    assert not missing, missing


def test_installed_entry_point_and_version():
    assert ENTRY.exists()
    out = _run("--version")
    assert out.returncode == 0 and "nlconvert" in out.stdout


def test_shell_completion_script():
    out = _run(env={**os.environ, "_NLCONVERT_COMPLETE": "bash_source"})
    assert out.returncode == 0 and "_nlconvert_completion" in out.stdout
    out = _run(env={**os.environ, "_NLCONVERT_COMPLETE": "bash_complete", "COMP_WORDS": "nlconvert fea",
                    "COMP_CWORD": "1"})
    assert "features" in out.stdout


def test_typo_in_a_flag_shows_the_subcommand_usage_and_a_suggestion(capsys):
    assert main(["predict", "model.pt", "v.mp4", "--view", "10x3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("Usage: nlconvert predict")
    assert err[-1].startswith("nlconvert: error: No such option") and "--views" in err[-1]


def test_typo_in_a_command_suggests_the_nearest(capsys):
    assert main(["featurs"]) == 2
    assert "did you mean 'features'" in capsys.readouterr().err


def test_debug_works_after_the_subcommand(tmp_path, capsys):
    bad = tmp_path / "x.pkl"
    bad.write_text("<!DOCTYPE html><html>404</html>")
    assert main(["caffe2-to-torch", str(bad), "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err
    assert main(["caffe2-to-torch", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_missing_file_is_one_line_naming_it(tmp_path, capsys):
    missing = tmp_path / "nope.pkl"
    assert main(["caffe2-to-torch", str(missing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nlconvert: error: ") and str(missing) in err[0]


def test_checks_come_in_a_sensible_order(tmp_path, capsys):
    ckpt = tmp_path / "m.pkl"
    ckpt.write_bytes(b"x")
    out = tmp_path / "m.pt"
    out.write_bytes(b"old")
    # an unknown architecture is reported as such, not as "output exists"
    assert main(["caffe2-to-torch", str(ckpt), "-o", str(out), "--arch", "i3d_nonlocal_9x9"]) == 2
    err = capsys.readouterr().err
    assert "unknown architecture" in err and "exists" not in err
    # an output that cannot be a model file is refused
    assert main(["caffe2-to-torch", str(ckpt), "-o", str(tmp_path / "out.ckpt")]) == 2
    assert ".pt or .pth or .safetensors" in capsys.readouterr().err


def test_devices_are_checked_with_one_line(tmp_path, capsys):
    model = tmp_path / "m.pt"
    model.write_bytes(b"x")
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    assert main(["predict", str(model), str(video), "--device", "gpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "use cpu, cuda or cuda:N" in err[0]
    import torch

    if not torch.cuda.is_available():
        assert main(["predict", str(model), str(video), "--device", "cuda"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "no CUDA device" in err[0]


@pytest.fixture(scope="module")
def small_pt(tmp_path_factory):
    model = synthetic_model(get_arch("c2d_baseline_8x8"), seed=1, calib_shape=(8, 32, 32))
    return save_model(model, tmp_path_factory.mktemp("cli") / "c2d_baseline_8x8.pt")


def test_info_shows_converted_and_onnx_files(small_pt, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["info", str(small_pt), "--json", "-"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["kind"] == "nlconvert model" and data["arch"]["name"] == "c2d_baseline_8x8"
    onnx = tmp_path / "m.onnx"
    assert main(["export-onnx", str(small_pt), "-o", str(onnx), "--shape", "1,3,8,64,64",
                 "--check-shape", "1,3,8,64,64"]) == 0
    result = runner.invoke(cli, ["info", str(onnx)])
    assert result.exit_code == 0 and "head: clip; outputs: logits, pool5, res4" in result.output


def test_info_lists_where_checkpoints_were_published():
    result = CliRunner().invoke(cli, ["info", "--list-archs"])
    assert result.exit_code == 0
    assert ("https://dl.fbaipublicfiles.com/video-nonlocal/i3d_nonlocal_8x8_IN_pretrain_400k.pkl"
            in result.output)


def test_run_takes_a_pt_and_protects_its_output(small_pt, tmp_path):
    clip = tmp_path / "clip.npy"
    np.save(clip, np.zeros((3, 8, 64, 64), np.float32))
    out = tmp_path / "scores.npy"
    assert main(["run", str(small_pt), str(clip), "--backend", "torch", "--save", str(out)]) == 0
    assert np.load(out).shape == (1, 400)
    assert main(["run", str(small_pt), str(clip), "--backend", "torch", "--save", str(out)]) == 2
    assert main(["run", str(small_pt), str(clip), "--backend", "torch", "--save", str(out),
                 "--force"]) == 0


def test_demo_reruns_with_force(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--arch", "c2d_baseline_8x8", "--out", str(out), "--size", "64"]
    assert main(args) == 0
    assert (out / "parity.html").exists() and "parity PASS" in capsys.readouterr().out
    assert main(args) == 2
    assert "--force" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0


def test_a_closed_pipe_does_not_fail_the_command(small_pt, tmp_path):
    ckpt = tmp_path / "c2d_baseline_8x8.pkl"
    from nlconvert.synthetic import write_synthetic_checkpoint

    write_synthetic_checkpoint("c2d_baseline_8x8", ckpt)
    proc = subprocess.run(f"{ENTRY} caffe2-to-torch {ckpt} -v | head -1", shell=True,
                          capture_output=True, text=True, timeout=300,
                          executable="/bin/bash")
    assert proc.stdout.startswith("[stem]")
    assert "Error" not in proc.stderr and "Traceback" not in proc.stderr
    assert ckpt.with_suffix(".pt").exists()
    code = subprocess.run(f"set -o pipefail; {ENTRY} info {ckpt} --blobs | head -1", shell=True,
                          executable="/bin/bash", capture_output=True, timeout=300).returncode
    assert code == 0


def test_parity_checks_a_converted_file_against_its_own_weights(small_pt, tmp_path):
    report = tmp_path / "p.md"
    assert main(["parity", str(small_pt), "--frames", "8", "--size", "64", "--report",
                 str(report)]) == 0
    text = report.read_text()
    assert "PASS" in text and "stored in the model file" in text
    from nlconvert.arch import kinetics400_names

    top5_row = next(line for line in text.splitlines() if line.startswith("| 0 | reference |"))
    assert any(name in top5_row for name in kinetics400_names())  # names, not bare indices


def test_parity_plot_draws_an_output_only_side_at_the_head():
    from types import SimpleNamespace

    from nlconvert.parity.compare import LayerComparison, Tolerance
    from nlconvert.parity.report import error_plot_svg

    def row(name, side):
        return LayerComparison(name, side, (1,), 1e-7, 1e-6, 1.0, 1.0, 1e-4, True)

    names = ["res_conv1_bn", "pool1", "pool5", "pred", "softmax"]
    rows = [row(n, "torch") for n in names] + [row("pred", "onnx_file")]
    svg = error_plot_svg(SimpleNamespace(sides=["torch", "onnx_file"], rows=rows,
                                         tolerance=Tolerance()))
    # x of layer 3 of 5 (pred) on a 760-wide plot with margins 60/20: 60 + 680 * 3/4 = 570
    assert '<circle cx="570.0"' in svg


def test_safetensors_model_files_round_trip(small_pt, tmp_path):
    import torch

    from nlconvert.convert import load_model

    model = load_model(small_pt)
    out = save_model(model, tmp_path / "m.safetensors")
    again = load_model(out)
    assert again.arch == model.arch and again.class_names == model.class_names
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k])


def test_predict_shows_progress_on_a_terminal(tmp_path, monkeypatch, capsys):
    import videos as V

    from nlconvert import _progress
    from nlconvert.runtime import backends

    monkeypatch.setattr(_progress, "interactive", lambda: True)
    monkeypatch.setattr(backends, "open_backend", V.stand_in_factory(frames=4, rate=2))
    video = V.make_video(tmp_path / "v.mp4", 160, 120, 12)
    model = tmp_path / "m.pt"
    model.write_bytes(b"x")
    assert main(["predict", str(model), str(video), "--views", "1x1"]) == 0
    captured = capsys.readouterr()
    assert "loading" in captured.err and "view" in captured.err  # status line, view bar
    assert "(12 frames, 1 view)" in captured.out


def test_no_arguments_print_the_help(capsys):
    """A bare ``nlconvert`` prints the normal help on stdout and exits 0 (not a one-line error)."""
    from nlconvert import cli

    assert cli.main([]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("Usage: nlconvert") and "Commands:" in captured.out
    assert "\n  predict" in captured.out and captured.err == ""


def test_demo_refuses_a_2d_architecture_before_writing(tmp_path, capsys):
    """A 2D ImageNet source cannot be demoed (nothing to inflate it to): refused up front, one
    line, exit 2, nothing written."""
    out = tmp_path / "demo"
    assert main(["demo", "--arch", "r50_imagenet_2d", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "r50_imagenet_2d is a 2D ImageNet network" in err[0]
    assert not out.exists()
