"""``nlconvert attention`` and ``nlconvert.attention_maps``: the weights every non-local block
computes, checked against the authentic Caffe2 blob, the model's own theta/phi (hooked here),
and the files the command writes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import nlconvert
from nlconvert.arch import NonLocalSpec, get_arch
from nlconvert.attention import record_attention
from nlconvert.cli import main
from nlconvert.convert import save_model
from nlconvert.model.nonlocal_block import NonLocalBlock
from nlconvert.model.resnet import NLResNet, build_model

pytest.importorskip("PIL")


def test_block_weights_equal_the_affinity_prob_caffe2_recorded(caffe2_tiny: Path) -> None:
    """The tiny net's nonlocal_conv3_0, run by real Caffe2: its input is pool2."""
    params = np.load(caffe2_tiny / "tiny_params.npz")
    outputs = np.load(caffe2_tiny / "tiny_caffe2_outputs.npz")
    block = NonLocalBlock(16, NonLocalSpec()).eval()
    with torch.no_grad():
        for part in ("theta", "phi", "g"):
            conv = getattr(block, part)
            conv.weight.copy_(torch.from_numpy(params[f"nonlocal_conv3_0_{part}_w"]))
            conv.bias.copy_(torch.from_numpy(params[f"nonlocal_conv3_0_{part}_b"]))
    for net in ("val", "test"):
        seen: list[torch.Tensor] = []
        block.attention_sink = seen.append
        with torch.no_grad():
            block(torch.from_numpy(outputs[f"{net}__pool2"]))
        want = outputs[f"{net}__nonlocal_conv3_0_affinity_prob"]
        assert seen[0].shape == want.shape
        np.testing.assert_allclose(seen[0].numpy(), want, rtol=1e-5, atol=1e-6)


def random_model(arch: str, seed: int) -> NLResNet:
    """A network whose non-local blocks attend unevenly (theta and phi start at zero in
    ``build_model``, which gives uniform weights)."""
    torch.manual_seed(seed)
    model = build_model(get_arch(arch), "clip")
    with torch.no_grad():
        for stage in (model.res3, model.res4):
            for block in stage.nonlocal_blocks.values():
                for conv in (block.theta, block.phi):
                    conv.weight.normal_(0.0, 0.1)
    return model


def _affinity_by_hand(model: NLResNet, clip: torch.Tensor) -> dict[str, np.ndarray]:
    """softmax(theta^T phi * Ci^-0.5) from the theta and phi convolutions' outputs, caught
    with forward hooks (a grouped block's convolutions already see its N*G groups)."""
    caught: dict[str, dict[str, torch.Tensor]] = {}
    hooks = []
    for stage in (model.res3, model.res4):
        for index, block in stage.nonlocal_blocks.items():
            name = f"nonlocal_conv{stage.name[3:]}_{index}"
            for part in ("theta", "phi"):
                def keep(_m, _i, out, name=name, part=part):
                    caught.setdefault(name, {})[part] = out.detach()
                hooks.append(getattr(block, part).register_forward_hook(keep))
    with torch.no_grad():
        model(clip)
    for h in hooks:
        h.remove()
    out = {}
    for name, parts in caught.items():
        theta = parts["theta"].flatten(2).double().numpy()  # B x Ci x THW
        phi = parts["phi"].flatten(2).double().numpy()  # B x Ci x THW'
        logits = np.einsum("bcq,bck->bqk", theta, phi) * theta.shape[1] ** -0.5
        e = np.exp(logits - logits.max(axis=-1, keepdims=True))
        out[name] = e / e.sum(axis=-1, keepdims=True)
    return out


@pytest.mark.parametrize("arch,frames,groups", [
    ("i3d_nonlocal_8x8", 8, 1),  # plain blocks in res3 and res4
    ("c2d_nonlocal_8x8", 4, 1),  # C2D: no temporal convolutions
    ("i3d_nonlocal_32x4", 16, 2),  # affine model: res3 grouped in 4-frame groups
])
def test_attention_maps_equal_the_models_own_affinity(arch: str, frames: int, groups: int) -> None:
    model = random_model(arch, 1)
    clip = torch.randn(2, 3, frames, 48, 48)  # res3: a 6 x 6 grid, keys 3 x 3
    with torch.no_grad():
        plain = model(clip)
        with record_attention(model) as records:  # recording does not change the forward pass
            np.testing.assert_array_equal(model(clip).numpy(), plain.numpy())
    assert all(len(r) == 1 for r in records.values())
    maps = nlconvert.attention_maps(model, clip.numpy())
    want = _affinity_by_hand(model, clip)
    assert list(maps) == list(want) and len(maps) == 5  # every block, in network order
    for name, weights in maps.items():
        assert weights.dtype == np.float32
        np.testing.assert_allclose(weights, want[name], rtol=1e-4, atol=1e-6)
    res3 = maps["nonlocal_conv3_1"]
    t3 = frames // 2  # pool2 halves time
    assert res3.shape == (2 * groups, t3 * 36 // groups, t3 * 9 // groups)
    assert not np.allclose(res3, res3[:, :, :1])  # not uniform: the check has teeth
    assert all(b.attention_sink is None for s in (model.res3, model.res4)
               for b in s.nonlocal_blocks.values())


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = random_model("i3d_nonlocal_8x8", 2)
    return save_model(model, tmp_path_factory.mktemp("att") / "i3d.pt")


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clip.npy"
    np.save(path, np.random.default_rng(0).standard_normal((1, 3, 8, 64, 64)).astype(np.float32))
    return path


def test_command_writes_arrays_pictures_json_and_html(model_file, clip_file, tmp_path, capsys):
    out = tmp_path / "att"
    assert main(["attention", str(model_file), "--input", str(clip_file), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "lowest entropy" in printed
    manifest = json.loads((out / "attention.json").read_text())
    model = nlconvert.load_model(model_file)
    want = nlconvert.attention_maps(model, np.load(clip_file))
    assert [b["name"] for b in manifest["blocks"]] == list(want)
    for block in manifest["blocks"]:
        array = np.load(out / block["file"])
        np.testing.assert_array_equal(array, want[block["name"]])
        assert block["shape"] == list(array.shape)
        assert block["caffe2_blob"] == f"{block['name']}_affinity_prob"
        assert len(block["queries"]) == 3
        entropies = [q["entropy"] for q in block["queries"]]
        assert entropies == sorted(entropies) and entropies[0] < block["max_entropy"]
        for q in block["queries"]:
            assert (out / q["picture"]).read_bytes().startswith(b"\x89PNG")
    page = (out / "index.html").read_text()
    linked = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert len([f for f in linked if f.endswith(".png")]) == 3 * len(want)
    assert all((out / f).is_file() for f in linked)
    assert main(["attention", str(model_file), "--input", str(clip_file), "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err


def test_block_and_query_select_what_is_drawn(model_file, clip_file, tmp_path):
    out = tmp_path / "one"
    assert main(["attention", str(model_file), "--input", str(clip_file), "--out", str(out),
                 "--block", "nonlocal_conv4_3", "--query", "1,2,3", "--query", "0,0,0"]) == 0
    (block,) = json.loads((out / "attention.json").read_text())["blocks"]
    assert block["query_grid"] == [4, 4, 4] and block["key_grid"] == [4, 2, 2]
    assert [(q["t"], q["y"], q["x"]) for q in block["queries"]] == [(1, 2, 3), (0, 0, 0)]
    assert block["queries"][0]["query_index"] == (1 * 4 + 2) * 4 + 3
    assert sorted(p.name for p in out.iterdir()) == [
        "attention.json", "index.html", "nonlocal_conv4_3.npy", "nonlocal_conv4_3_q0_0_0.png",
        "nonlocal_conv4_3_q1_2_3.png"]


@pytest.mark.parametrize("extra,message", [
    (["--block", "nonlocal_conv3_2"], "unknown --block 'nonlocal_conv3_2'; this model's non-local "
     "blocks: nonlocal_conv3_1, nonlocal_conv3_3, nonlocal_conv4_1, nonlocal_conv4_3, nonlocal_conv4_5"),
    (["--block", "nonlocal_conv4_1", "--query", "4,0,0"],
     "--query 4,0,0 is outside nonlocal_conv4_1's grid: valid are t 0..3, y 0..3, x 0..3"),
    (["--query", "1,2"], "--query must be t,y,x"),
    (["--clip", "3"], "--clip, --crop, --frames and --rate choose a video's clip"),
])
def test_bad_options_are_one_line_errors(model_file, clip_file, tmp_path, capsys, extra, message):
    out = tmp_path / "bad"
    assert main(["attention", str(model_file), "--input", str(clip_file), "--out", str(out),
                 *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".bad*"))


@pytest.mark.slow  # a 256 x 256 view through ResNet-50
def test_a_video_gives_the_protocols_view(model_file, tmp_path):
    pytest.importorskip("av")
    import videos as V

    from nlconvert.video.protocol import normalize
    from nlconvert.video.views import load_view_pixels

    video = V.make_video(tmp_path / "v.mp4", 96, 64, 30)
    out = tmp_path / "v"
    assert main(["attention", str(model_file), str(video), "--out", str(out), "--clip", "2",
                 "--crop", "0", "--block", "nonlocal_conv4_5", "--frames", "4", "--rate", "2"]) == 0
    manifest = json.loads((out / "attention.json").read_text())
    assert manifest["input"]["clip"] == 2 and manifest["input"]["crop"] == 0
    pixels, plan = load_view_pixels(video, 4, 2, "10x3")
    view = normalize(pixels[plan.view_index(2, 0)][None])
    want = nlconvert.attention_maps(nlconvert.load_model(model_file), view,
                                    blocks=["nonlocal_conv4_5"])["nonlocal_conv4_5"]
    np.testing.assert_array_equal(np.load(out / "nonlocal_conv4_5.npy"), want)


def test_grouped_and_plain_blocks_equal_the_numpy_caffe2_reference() -> None:
    """Every block's weights against ``<block>_affinity_prob`` of the official NetDef run by
    the independent numpy reference, on the affine model's grouped res3 (batch 2, 32 frames:
    the training clip, so the net's baked groups are the model's)."""
    from nlconvert.convert.mapping import map_blobs
    from nlconvert.convert.pipeline import model_from_state
    from nlconvert.reference.executor import run_net
    from nlconvert.reference.netdef_builder import build_predict_net
    from nlconvert.synthetic import random_blobs

    arch = get_arch("i3d_nonlocal_32x4")
    blobs = random_blobs(arch, seed=5)
    target = build_model(arch, "clip", device="meta").state_dict()
    state = map_blobs(blobs, target, "random", arch.name).state_dict
    model = model_from_state(arch, state, "clip", None)
    clip = np.random.default_rng(1).standard_normal((2, 3, 32, 32, 32)).astype(np.float32)
    net = build_predict_net(arch, "clip", 2, crop_size=32, pool5_spatial=1)
    ws = run_net(net, {**blobs, "data": clip}, record=False)
    maps = nlconvert.attention_maps(model, clip)
    assert maps["nonlocal_conv3_1"].shape == (2 * 4, 4 * 16, 4 * 4)  # 16 frames at res3: 4 groups
    for name, weights in maps.items():
        np.testing.assert_allclose(weights, ws[f"{name}_affinity_prob"], rtol=1e-4, atol=1e-6)


@pytest.mark.slow  # writes and converts a full-size Caffe2 checkpoint
def test_command_on_a_caffe2_checkpoint_equals_the_reference(tmp_path: Path) -> None:
    """What a user does with an official .pkl: every array of ``nlconvert attention`` against
    the ``<block>_affinity_prob`` the numpy Caffe2 reference computes from the same blobs."""
    from nlconvert.io.py2pickle import write_official_pkl
    from nlconvert.reference.executor import run_net
    from nlconvert.reference.netdef_builder import build_predict_net
    from nlconvert.synthetic import random_blobs

    arch = get_arch("i3d_nonlocal_32x4")
    blobs = random_blobs(arch, seed=6)
    pkl = tmp_path / "model.pkl"
    write_official_pkl(pkl, blobs, model_iter=1, lr=0.1)
    clip = np.random.default_rng(2).standard_normal((2, 3, 32, 32, 32)).astype(np.float32)
    np.save(tmp_path / "clip.npy", clip)
    out = tmp_path / "att"
    assert main(["attention", str(pkl), "--input", str(tmp_path / "clip.npy"), "--out", str(out),
                 "--arch", arch.name]) == 0
    ws = run_net(build_predict_net(arch, "clip", 2, crop_size=32, pool5_spatial=1),
                 {**blobs, "data": clip}, record=False)
    manifest = json.loads((out / "attention.json").read_text())
    assert len(manifest["blocks"]) == 5
    for block in manifest["blocks"]:
        np.testing.assert_allclose(np.load(out / block["file"]), ws[block["caffe2_blob"]],
                                   rtol=1e-4, atol=1e-6)


def test_command_takes_a_hub_folder(model_file, clip_file, tmp_path):
    """A hub folder goes wherever a model file goes: the same arrays as from the .pt."""
    folder = nlconvert.load_model(model_file).save_pretrained(tmp_path / "hub")
    assert main(["attention", str(folder), "--input", str(clip_file), "--out", str(tmp_path / "h"),
                 "--block", "nonlocal_conv3_1", "--query", "1,2,2"]) == 0
    assert main(["attention", str(model_file), "--input", str(clip_file), "--out", str(tmp_path / "p"),
                 "--block", "nonlocal_conv3_1", "--query", "1,2,2"]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "h" / "nonlocal_conv3_1.npy"),
                                  np.load(tmp_path / "p" / "nonlocal_conv3_1.npy"))
