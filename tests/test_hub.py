"""Hub folders (export-hub, NLResNet.from_pretrained/save_pretrained), hub folders wherever a
model file goes, and the torch.hub entries of hubconf.py (download path on a loopback server).

One official-format checkpoint of a zoo architecture (full size: the zoo has no small one)
is written, converted and exported once per module; the tests share it.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import nlconvert
from nlconvert import cli
from nlconvert._hashing import file_sha256
from nlconvert.arch import HEADS, INPUT_MEAN, INPUT_STD, get_arch, kinetics400_names, published_accuracy
from nlconvert.errors import HubError, MappingError, NLConvertError, ParityError
from nlconvert.synthetic import release_file_name, write_synthetic_checkpoint

REPO = Path(__file__).resolve().parent.parent
ARCH = "c2d_baseline_8x8"  # the cheapest zoo network with a released checkpoint
PARITY_SIZE = "64"  # the parity clip of export-hub: small, the check is the same


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An official-format .pkl, its converted .pt and the hub folder export-hub writes of it."""
    root = tmp_path_factory.mktemp("hub")
    pkl = write_synthetic_checkpoint(ARCH, root / f"{release_file_name(ARCH)}.pkl", seed=3)
    pt = root / "model.pt"
    nlconvert.convert_file(pkl, pt)
    folder = root / "out" / "c2d-baseline-8x8-kinetics400"
    assert cli.main(["export-hub", str(pkl), str(folder), "--size", PARITY_SIZE]) == 0
    return {"root": root, "pkl": pkl, "pt": pt, "folder": folder}


def _front_matter(card: str) -> dict[str, object]:
    """The YAML metadata of a card (scalars and lists of scalars, as the card writes them)."""
    lines = card.split("\n")
    assert lines[0] == "---"
    end = lines.index("---", 1)
    meta: dict[str, object] = {}
    key = ""
    for line in lines[1:end]:
        if line.startswith("- "):
            assert isinstance(meta[key], list)
            meta[key].append(line[2:])  # type: ignore[union-attr]
        else:
            key, _, value = line.partition(":")
            meta[key] = value.strip() or []
    return meta


def _states_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ----- export-hub ---------------------------------------------------------------------
def test_export_hub_writes_the_three_files_whole(made):
    folder = made["folder"]
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temporary left
    # An existing folder is not replaced without --force, and stays as it was.
    before = file_sha256(folder / "model.safetensors")
    assert cli.main(["export-hub", str(made["pt"]), str(folder), "--no-parity"]) == 2
    assert file_sha256(folder / "model.safetensors") == before


def test_config_says_what_the_network_is_and_how_to_feed_it(made):
    config = json.loads((made["folder"] / "config.json").read_text())
    arch = get_arch(ARCH)
    assert config["architecture"] == ARCH and config["arch"] == json.loads(json.dumps(arch.to_dict()))
    assert config["description"] == arch.describe()
    assert config["num_classes"] == 400
    names = list(kinetics400_names())
    assert [config["id2label"][str(i)] for i in range(400)] == names
    assert all(config["label2id"][n] == i for i, n in enumerate(names))
    assert (config["frames"], config["sample_rate"], config["crop_size"]) == (arch.frames, arch.sample_rate, 224)
    assert config["test_size"] == 256
    assert config["test_protocol"]["clips"] * config["test_protocol"]["crops"] == 30
    assert config["input"]["mean"] == [INPUT_MEAN] * 3 == [114.75] * 3
    assert config["input"]["std"] == [INPUT_STD] * 3 == [57.375] * 3
    assert config["input"]["channels"] == "RGB" and config["input"]["value_range"] == [0, 255]
    assert set(config["heads"]) == set(HEADS)
    prov = config["provenance"]
    assert prov["source_file"] == made["pkl"].name
    assert prov["source_sha256"] == file_sha256(made["pkl"])
    assert prov["nlconvert_version"] == nlconvert.__version__
    parity = config["parity"]
    assert parity["checked"] and parity["ok"] and parity["top1_agree"]
    assert parity["input"].startswith(f"1x3x{arch.frames}x{PARITY_SIZE}x{PARITY_SIZE}")
    assert 0 <= parity["worst_rel_err"] < 1e-4 and parity["layers_compared"] > 10


def test_model_card_metadata_and_body(made):
    card = (made["folder"] / "README.md").read_text()
    meta = _front_matter(card)
    assert meta["license"] == "cc-by-nc-4.0"  # an official zoo file, known by its name
    assert meta["library_name"] == "nlconvert"
    assert meta["pipeline_tag"] == "video-classification"
    assert meta["datasets"] == ["kinetics-400"]
    assert {"action-recognition", "c2d-resnet50", "safetensors"} <= set(meta["tags"])  # type: ignore[arg-type]
    published = published_accuracy(ARCH)[0]
    assert f"top-1 {published.top1}%, top-5 {published.top5}%" in card
    assert "not measured by nlconvert" in card
    assert "@inproceedings{wang2018nonlocal" in card and "1711.07971" in card
    config = json.loads((made["folder"] / "config.json").read_text())
    row = config["parity"]["outputs"][0]
    assert f"| pred (torch) | 1x400 | {row['max_abs_err']:.3g} |" in card
    assert f"(pixel - {INPUT_MEAN}) / {INPUT_STD}" in card and "10 clips x 3 crops" in card
    assert f"nlconvert.NLResNet.from_pretrained(\"{made['folder'].name}\")" in card


def test_license_of_weights_not_from_the_zoo(made, tmp_path):
    renamed = tmp_path / "mine.pkl"
    os.link(made["pkl"], renamed)  # the same bytes under a name the zoo never released
    result = nlconvert.export_hub(renamed, tmp_path / "a", arch_name=ARCH, parity=False, log=None)
    card = (tmp_path / "a" / "README.md").read_text()
    assert result.license == _front_matter(card)["license"] == "other"
    assert "No published accuracy" in card and "Not checked" in card
    assert cli.main(["export-hub", str(made["pt"]), str(tmp_path / "c"), "--no-parity",
                     "--license", "mit"]) == 0
    assert _front_matter((tmp_path / "c" / "README.md").read_text())["license"] == "mit"
    result = nlconvert.export_hub(made["folder"], tmp_path / "b", parity=False, log=None)
    assert result.license == "cc-by-nc-4.0"  # a hub folder keeps the zoo file's provenance
    # Fine-tuned from the zoo file (same file name in its provenance): not the zoo's weights.
    tuned = nlconvert.save_model(nlconvert.create_model(pretrained=made["pt"], norm="train"),
                                 tmp_path / "tuned.pt")
    result = nlconvert.export_hub(tuned, tmp_path / "t", parity=False, log=None)
    card = (tmp_path / "t" / "README.md").read_text()
    assert result.license == "other" and "No published accuracy" in card


def test_failed_parity_writes_nothing(made, tmp_path, monkeypatch):
    from nlconvert.hub import export as hub_export
    from nlconvert.parity import run_parity

    def broken(*args, **kwargs):
        result = run_parity(*args, **kwargs)
        result.rows[-1] = dataclasses.replace(result.rows[-1], ok=False)  # a layer off
        return result

    monkeypatch.setattr(hub_export, "run_parity", broken)
    with pytest.raises(ParityError, match="nothing written"):
        hub_export.export_hub(made["pt"], tmp_path / "x", parity_size=64, log=None)
    assert list(tmp_path.iterdir()) == []


# ----- from_pretrained / save_pretrained, hub folders everywhere -----------------------
def test_from_pretrained_is_the_pt_bitwise(made, tmp_path):
    pt = nlconvert.load_model(made["pt"])
    hub = nlconvert.NLResNet.from_pretrained(made["folder"])
    assert isinstance(hub, nlconvert.NLResNet) and not hub.training
    assert _states_equal(hub, pt) and hub.class_names == pt.class_names and hub.arch == pt.arch
    assert hub.provenance["source_sha256"] == pt.provenance["source_sha256"]
    assert _states_equal(nlconvert.load_model(made["folder"]), pt)
    # save_pretrained writes a folder every reader takes, with the same weights.
    saved = hub.save_pretrained(tmp_path / "saved")
    assert sorted(p.name for p in saved.iterdir()) == ["config.json", "model.safetensors"]
    again = nlconvert.NLResNet.from_pretrained(str(saved), head="fully_conv")
    assert again.head_mode == "fully_conv" and _states_equal(again, pt)
    with pytest.raises(NLConvertError, match="exists"):
        hub.save_pretrained(saved)
    hub.save_pretrained(saved, force=True)
    assert [p.name for p in tmp_path.iterdir()] == ["saved"]


def test_from_pretrained_repo_id_offline_is_one_line(tmp_path):
    pytest.importorskip("huggingface_hub")
    with pytest.raises(HubError) as exc:
        nlconvert.NLResNet.from_pretrained("nobody/no-such-nlconvert-model", local_files_only=True,
                                           cache_dir=tmp_path)
    assert "\n" not in str(exc.value) and "nobody/no-such-nlconvert-model" in str(exc.value)


def test_without_huggingface_hub_a_repo_id_is_a_clear_error_and_a_folder_still_loads(made, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails as if not installed
    with pytest.raises(HubError, match=r"pip install 'nlconvert\[hub\]'"):
        nlconvert.NLResNet.from_pretrained("me/i3d-nonlocal-8x8-kinetics400")
    assert nlconvert.NLResNet.from_pretrained(made["folder"]).arch.name == ARCH


def test_push_to_hub_uploads_the_save_pretrained_folder(made, tmp_path, monkeypatch):
    """Through huggingface_hub's HfApi (a recording stand-in: nothing here reaches the Hub)."""
    import types

    calls: list[tuple[str, object]] = []

    class Api:
        def __init__(self, token: str | None = None) -> None:
            calls.append(("token", token))

        def create_repo(self, repo_id: str, **kw: object) -> None:
            calls.append(("create", (repo_id, kw["exist_ok"], kw["repo_type"])))

        def upload_folder(self, *, repo_id: str, folder_path: str, commit_message: str) -> object:
            folder = Path(folder_path)
            uploaded = nlconvert.NLResNet.from_pretrained(folder)
            calls.append(("upload", (repo_id, sorted(p.name for p in folder.iterdir()), uploaded)))
            return types.SimpleNamespace(commit_url=f"https://hub.example/{repo_id}/commit/1")

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(HfApi=Api))
    model = nlconvert.NLResNet.from_pretrained(made["folder"])
    model.save_pretrained(tmp_path / "me-model", push_to_hub=True, token="t")
    assert calls[:2] == [("token", "t"), ("create", ("me-model", True, "model"))]
    repo, files, uploaded = calls[2][1]  # type: ignore[misc]
    assert repo == "me-model" and files == ["config.json", "model.safetensors"]
    assert _states_equal(uploaded, model)


def test_backends_and_commands_take_a_hub_folder(made, tmp_path, capsys):
    folder = str(made["folder"])
    clip = np.random.default_rng(0).standard_normal((1, 3, 8, 64, 64)).astype(np.float32)
    logits = nlconvert.open_backend(folder, backend="torch").run(clip, "clip")["logits"]
    expected = nlconvert.open_backend(made["pt"], backend="torch").run(clip, "clip")["logits"]
    # Same weights (bitwise: see above); oneDNN may pick another kernel per tensor layout.
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5 * float(np.abs(expected).max()))
    np.save(tmp_path / "clip.npy", clip)
    assert cli.main(["info", folder]) == 0
    assert "hub folder" in capsys.readouterr().out
    for model, out in ((folder, "hub.npy"), (str(made["pt"]), "pt.npy")):
        assert cli.main(["run", model, str(tmp_path / "clip.npy"), "--backend", "torch",
                         "--head", "clip", "--save", str(tmp_path / out)]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "hub.npy"), np.load(tmp_path / "pt.npy"), rtol=1e-5,
                               atol=1e-5 * float(np.abs(expected).max()))
    assert cli.main(["parity", folder, "--size", PARITY_SIZE]) == 0
    assert "PASS" in capsys.readouterr().out


def test_predict_on_a_hub_folder(made, tmp_path, capsys):
    pytest.importorskip("av")
    import videos as V

    video = V.make_video(tmp_path / "v.mp4", 320, 256, 16)
    assert cli.main(["predict", str(made["folder"]), str(video), "--views", "1x1", "--backend", "torch",
                     "--json", str(tmp_path / "p.json")]) == 0
    assert json.loads((tmp_path / "p.json").read_text())[0]["topk"]


@pytest.mark.slow
def test_video_commands_and_onnx_on_a_hub_folder(made, tmp_path, capsys):
    pytest.importorskip("av")
    pytest.importorskip("onnxruntime")
    import videos as V

    folder = str(made["folder"])
    video = V.make_video(tmp_path / "v.mp4", 320, 256, 16)
    assert cli.main(["features", folder, str(video), "--out", str(tmp_path / "f"),
                     "--backend", "torch"]) == 0
    (tmp_path / "list.txt").write_text(f"{video} 0\n")
    assert cli.main(["evaluate", folder, "--list", str(tmp_path / "list.txt"), "--views", "1x1",
                     "--db", str(tmp_path / "r.db"), "--backend", "torch"]) == 0
    assert cli.main(["bench", folder, "--backend", "torch", "--runs", "1", "--warmup", "0"]) == 0
    assert cli.main(["export-onnx", folder, "-o", str(tmp_path / "m.onnx")]) == 0
    out = tmp_path / "with-onnx"
    assert cli.main(["export-hub", folder, str(out), "--onnx", "--size", PARITY_SIZE]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["onnx"]["head"] == "fully_conv" and config["onnx"]["max_rel"] < 1e-3
    assert (out / "model.onnx").is_file()
    assert "onnx" in _front_matter((out / "README.md").read_text())["tags"]  # type: ignore[operator]


# ----- bad folders: one line each ----------------------------------------------------------
def _bad_copy(made: dict[str, Path], tmp_path: Path, name: str) -> Path:
    bad = tmp_path / name
    bad.mkdir()
    shutil.copy(made["folder"] / "config.json", bad / "config.json")
    return bad


def _one_line_cli_error(capsys: pytest.CaptureFixture[str], args: list[str], *needles: str) -> None:
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("nlconvert: error: "), err
    for needle in needles:
        assert needle in err, err


def test_bad_folders_are_one_line_errors(made, tmp_path, capsys):
    missing = _bad_copy(made, tmp_path, "missing")
    for command in (["parity", str(missing)], ["predict", str(missing), str(made["pkl"])]):
        _one_line_cli_error(capsys, command, "no model.safetensors")
    with pytest.raises(HubError, match="no model.safetensors"):
        nlconvert.NLResNet.from_pretrained(missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_line_cli_error(capsys, ["info", str(empty)], "no config.json")

    unknown = _bad_copy(made, tmp_path, "unknown")
    config = json.loads((unknown / "config.json").read_text())
    del config["arch"]
    config["architecture"] = "i3d_nonlocal_9x9"
    (unknown / "config.json").write_text(json.dumps(config))
    _one_line_cli_error(capsys, ["info", str(unknown)], "unknown architecture 'i3d_nonlocal_9x9'")
    with pytest.raises(HubError, match="unknown architecture"):
        nlconvert.load_model(unknown)

    from safetensors.torch import save_file

    shapes = _bad_copy(made, tmp_path, "shapes")
    state = {k: v.contiguous() for k, v in nlconvert.load_model(made["pt"]).state_dict().items()}
    state["res3.blocks.0.conv_b.weight"] = state["res3.blocks.0.conv_b.weight"][:, :64].contiguous()
    save_file(state, str(shapes / "model.safetensors"))
    _one_line_cli_error(capsys, ["parity", str(shapes)], "res3.blocks.0.conv_b.weight", "shape")
    for load in (nlconvert.NLResNet.from_pretrained, nlconvert.load_model):
        with pytest.raises(MappingError, match=r"res3.blocks.0.conv_b.weight has shape \[128, 64, 1, 3, 3\]"):
            load(shapes)


# ----- torch.hub -----------------------------------------------------------------------------
def test_hubconf_has_an_entry_per_video_architecture_and_does_no_work_at_import():
    code = ("import sys, hubconf; assert 'torch' not in sys.modules; "
            "assert 'nlconvert.arch.zoo' not in sys.modules; "
            "print(' '.join(n for n in dir(hubconf) if callable(getattr(hubconf, n)) "
            "and not n.startswith('_')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(REPO)}).stdout.split()
    assert out == sorted(nlconvert.list_archs(video_only=True))


def test_torch_hub_load_weights(made):
    pt = nlconvert.load_model(made["pt"])
    for weights in (made["folder"], made["pt"]):  # a .pkl: the pretrained tests below
        model = torch.hub.load(str(REPO), ARCH, source="local", weights=str(weights))
        assert _states_equal(model, pt) and model.head_mode == "clip"
    tuned = torch.hub.load(str(REPO), ARCH, source="local", weights=str(made["folder"]),
                           head="fully_conv", num_classes=10)
    assert tuned.head_mode == "fully_conv" and tuned.head.fc.weight.shape == (10, 2048)
    kept = {k: v for k, v in pt.state_dict().items() if not k.startswith("head.fc.")}
    assert all(torch.equal(tuned.state_dict()[k], v) for k, v in kept.items())
    assert float(tuned.head.fc.weight.detach().std()) == pytest.approx(0.01, rel=0.05)
    with pytest.raises(NLConvertError, match="holds c2d_baseline_8x8, not i3d_nonlocal_8x8"):
        torch.hub.load(str(REPO), "i3d_nonlocal_8x8", source="local", weights=str(made["folder"]))


class _Server:
    """A loopback HTTP server of one folder; `cut` serves only that many bytes of each file
    (announcing them all), like a connection that drops."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.cut, self.hits = folder, None, 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server name
                server.hits += 1
                path = server.folder / self.path.lstrip("/")
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: server.cut] if server.cut is not None else data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/files"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server(made, tmp_path, monkeypatch) -> Iterator[_Server]:
    served = tmp_path / "served" / "files"
    served.mkdir(parents=True)
    os.link(made["pkl"], served / made["pkl"].name)
    srv = _Server(tmp_path / "served")
    monkeypatch.setenv("NLCONVERT_HUB_BASE_URL", srv.url + "/")
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "torch-hub"))
    yield srv
    torch.hub.set_dir(previous)
    srv.httpd.shutdown()


def test_pretrained_downloads_converts_once_and_caches(made, server):
    from nlconvert.hub.torchhub import download_url, official_checkpoint_of

    assert download_url(official_checkpoint_of(ARCH)) == f"{server.url}/{made['pkl'].name}"
    model = torch.hub.load(str(REPO), ARCH, source="local", pretrained=True, progress=False)
    assert _states_equal(model, nlconvert.load_model(made["pt"]))
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    assert [p.name for p in cache.iterdir()] == [f"{release_file_name(ARCH)}.pt"]
    again = torch.hub.load(str(REPO), ARCH, source="local", pretrained=True, progress=False)
    assert server.hits == 1 and _states_equal(again, model)


def test_interrupted_download_leaves_nothing(made, server):
    server.cut = 1 << 20
    with pytest.raises(HubError, match="interrupted after 1048576 of"):
        torch.hub.load(str(REPO), ARCH, source="local", pretrained=True, progress=False)
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    assert list(cache.iterdir()) == []
    server.cut = None  # the next call downloads again, whole
    model = torch.hub.load(str(REPO), ARCH, source="local", pretrained=True, progress=False)
    assert server.hits == 2 and _states_equal(model, nlconvert.load_model(made["pt"]))


def test_pretrained_without_a_released_checkpoint_is_refused():
    unreleased = next(a for a in nlconvert.list_archs(video_only=True) if not published_accuracy(a))
    with pytest.raises(HubError, match="released no video checkpoint"):
        torch.hub.load(str(REPO), unreleased, source="local", pretrained=True)


@pytest.mark.slow
def test_hubconf_dependencies_are_what_loading_imports(made):
    """`dependencies`: every third-party package a torch.hub load imports beyond torch's own,
    and nothing that loading does not import."""
    code = f"""
import json, sys
start = set(sys.modules)
import torch
with_torch = set(sys.modules)
torch.hub.load({str(REPO)!r}, {ARCH!r}, source="local", weights={str(made['folder'])!r})
sys.path.insert(0, {str(REPO)!r})  # torch.hub loads hubconf.py by path, not as a module
import hubconf
top = lambda names: sorted({{n.split(".")[0] for n in names}} - set(sys.stdlib_module_names)
                           - {{"hubconf", "nlconvert"}})
print(json.dumps([top(set(sys.modules) - with_torch), top(set(sys.modules) - start),
                  top(hubconf.dependencies)]))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=made["root"], capture_output=True,
                         text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout
    beyond_torch, everything, declared = json.loads(out.strip().split("\n")[-1])
    assert set(beyond_torch) <= set(declared)  # nothing missing
    assert set(declared) <= set(everything)  # nothing declared that loading does not use
