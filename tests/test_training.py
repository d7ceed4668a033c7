"""create_model / param_groups: a converted network as the start of training (issue 18).

Small inputs (R50 networks at 32x32 pixels) keep each test to about a second.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from zoo_cases import small_frames

import nlconvert
from nlconvert.cli import main
from nlconvert.convert.mapping import load_rules
from nlconvert.errors import MappingError
from nlconvert.model import Affine3d, FrozenBatchNorm3d
from nlconvert.synthetic import release_file_name, write_synthetic_checkpoint
from nlconvert.training import TrainableBatchNorm3d

MakeCheckpoint = Callable[..., Path]


@pytest.fixture(scope="module")
def make_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> MakeCheckpoint:
    """Seeded official-format checkpoints, written once per module (as conftest's fixture)."""
    folder = tmp_path_factory.mktemp("training-ckpts")
    made: dict[tuple, Path] = {}

    def make(arch: str, fmt: str = "official", name: str | None = None,
             mutate: Callable[[dict], None] | None = None) -> Path:
        key = (arch, fmt, name)
        if key not in made:
            stem = name or release_file_name(arch)
            made[key] = write_synthetic_checkpoint(arch, folder / f"{stem}.pkl", seed=0, fmt=fmt,
                                                   mutate=mutate)
        return made[key]

    return make

#: One architecture per family: BN with non-local, affine, affine with grouped non-local, C2D.
FAMILIES = ["i3d_nonlocal_8x8", "i3d_baseline_32x4", "i3d_nonlocal_32x4", "c2d_nonlocal_8x8"]


def _clip(arch: str, seed: int = 0, n: int = 2, size: int = 32) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn((n, 3, small_frames(arch), size, size), generator=gen)


def _drop_head(blobs: dict) -> None:
    for name in ("pred_w", "pred_b", "pred_w_momentum", "pred_b_momentum"):
        blobs.pop(name, None)


@pytest.mark.parametrize("arch", FAMILIES)
@pytest.mark.parametrize("norm", ["frozen", "train"])
def test_eval_equals_load_model(arch: str, norm: str, make_checkpoint: MakeCheckpoint) -> None:
    ckpt = make_checkpoint(arch)
    ref = nlconvert.load_model(ckpt)
    model = nlconvert.create_model(pretrained=ckpt, norm=norm)
    assert model.training and model.arch == ref.arch and model.class_names == ref.class_names
    assert model.state_dict().keys() == ref.state_dict().keys()
    x = _clip(arch)
    with torch.no_grad():
        want, got = ref.forward_features(x), model.eval().forward_features(x)
    for a, b in zip(got, want, strict=True):  # logits, pool5, res4
        assert torch.allclose(a, b, rtol=0, atol=1e-6)


def test_new_head_official_init_and_names(make_checkpoint: MakeCheckpoint) -> None:
    ckpt = make_checkpoint("i3d_baseline_8x8")
    ref = nlconvert.load_model(ckpt)
    model = nlconvert.create_model(pretrained=ckpt, num_classes=157)
    w, b = model.head.fc.weight.detach(), model.head.fc.bias.detach()
    assert w.shape == (157, 2048) and b.shape == (157,)
    assert torch.count_nonzero(b) == 0
    assert abs(float(w.std()) - 0.01) < 0.0005 and abs(float(w.mean())) < 0.0002
    assert model.class_names == [f"class_{i}" for i in range(157)]
    # Every other tensor is the file's.
    for name, t in ref.state_dict().items():
        if not name.startswith("head.fc."):
            assert torch.equal(model.state_dict()[name], t), name
    named = nlconvert.create_model(pretrained=ckpt, class_names=["left", "right", "still"])
    assert named.arch.num_classes == 3 and named.class_names == ["left", "right", "still"]
    with pytest.raises(ValueError, match="num_classes=4 but 3 class_names"):
        nlconvert.create_model(pretrained=ckpt, num_classes=4, class_names=["a", "b", "c"])
    # Seeded: the same seed gives the same head, another seed another.
    again = nlconvert.create_model(pretrained=ckpt, num_classes=157)
    other = nlconvert.create_model(pretrained=ckpt, num_classes=157, seed=1)
    assert torch.equal(again.head.fc.weight, w) and not torch.equal(other.head.fc.weight, w)


@pytest.mark.parametrize(("baseline", "target"), [("i3d_baseline_8x8", "i3d_nonlocal_8x8"),
                                                  ("i3d_baseline_32x4", "i3d_nonlocal_32x4")])
def test_insert_nonlocal_starts_as_identity(baseline: str, target: str,
                                            make_checkpoint: MakeCheckpoint) -> None:
    ckpt = make_checkpoint(baseline)
    ref = nlconvert.load_model(ckpt)
    with pytest.raises(MappingError, match="nonlocal_conv3_1"):
        nlconvert.create_model(target, pretrained=ckpt)  # without the flag: still an error
    model = nlconvert.create_model(target, pretrained=ckpt, insert_nonlocal=True)
    assert model.arch.has_nonlocal and len(model.res3.nonlocal_blocks) == 2
    block = model.res3.nonlocal_blocks["1"]
    assert abs(float(block.theta.weight.detach().std()) - 0.01) < 0.001
    assert torch.count_nonzero(block.theta.bias) == 0
    if ref.arch.norm == "bn":  # NONLOCAL.BN_INIT_GAMMA 0; the out conv is Gaussian
        assert torch.count_nonzero(block.norm.weight) == 0
        assert float(block.out.weight.detach().std()) > 0.005
        # Frozen norms, but the new block's BN must be able to learn.
        assert block.norm.weight.requires_grad and isinstance(block.norm.weight, torch.nn.Parameter)
    else:  # USE_ZERO_INIT_CONV, no norm
        assert torch.count_nonzero(block.out.weight) == 0
    x = _clip(target)
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), ref(x), rtol=0, atol=1e-6)
    init = model.provenance["initialised"]
    assert init["nonlocal_conv3_1_theta_w"] == "N(0, 0.01)"
    if ref.arch.norm == "bn":  # from a converted .pt too: the same reader, the same mapping
        pt = nlconvert.save_model(ref, ckpt.with_suffix(".pt"), force=True)
        from_pt = nlconvert.create_model(target, pretrained=pt, insert_nonlocal=True)
        assert torch.equal(from_pt.state_dict()["res3.nonlocal_blocks.1.theta.weight"],
                           model.state_dict()["res3.nonlocal_blocks.1.theta.weight"])
        with torch.no_grad():
            assert torch.allclose(from_pt.eval()(x), ref(x), rtol=0, atol=1e-6)
    # The official start of 32x4: the affine baseline's flat pickle, no classifier.
    if ref.arch.norm == "affine":
        flat = make_checkpoint(baseline, fmt="flat", name="affine_model_400k", mutate=_drop_head)
        with pytest.raises(MappingError, match="pred_w"):
            nlconvert.create_model(target, pretrained=flat, insert_nonlocal=True)
        new = nlconvert.create_model(target, pretrained=flat, insert_nonlocal=True,
                                     num_classes=400)
        with torch.no_grad():
            assert torch.allclose(new.eval().forward_features(x)[1], ref.forward_features(x)[1],
                                  rtol=0, atol=1e-6)


def test_frozen_norms_do_not_move(make_checkpoint: MakeCheckpoint) -> None:
    for arch in ("i3d_baseline_8x8", "i3d_baseline_32x4"):
        model = nlconvert.create_model(pretrained=make_checkpoint(arch), num_classes=3,
                                       dropout=0.0)
        norms = {n: m for n, m in model.named_modules()
                 if isinstance(m, (FrozenBatchNorm3d, Affine3d))}
        assert norms and not any(isinstance(m, TrainableBatchNorm3d) for m in norms.values())
        before = {k: v.clone() for k, v in model.state_dict().items()}
        opt = torch.optim.SGD(nlconvert.param_groups(model), lr=0.1, momentum=0.9)
        loss = torch.nn.functional.cross_entropy(model(_clip(arch)), torch.tensor([0, 2]))
        loss.backward()
        opt.step()
        after = model.state_dict()
        changed = {k for k in before if not torch.equal(before[k], after[k])}
        assert "stem.conv.weight" in changed and "head.fc.weight" in changed
        assert not any(k.startswith(tuple(norms)) and ".norm" in k for k in changed), arch
        assert not [k for k in changed if "norm" in k]


def test_train_norms_follow_caffe2_momentum(make_checkpoint: MakeCheckpoint) -> None:
    model = nlconvert.create_model(pretrained=make_checkpoint("c2d_baseline_8x8"), norm="train")
    bn = model.stem.norm
    assert isinstance(bn, TrainableBatchNorm3d) and bn.eps == pytest.approx(1.0000001e-5)
    old_mean, old_var = bn.running_mean.clone(), bn.running_var.clone()
    seen: list[torch.Tensor] = []
    handle = bn.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    x = _clip("c2d_baseline_8x8")
    out = model(x)
    handle.remove()
    feed = seen[0]
    mean = feed.mean(dim=(0, 2, 3, 4))
    var = feed.var(dim=(0, 2, 3, 4), unbiased=True)  # cuDNN's running variance
    assert torch.allclose(bn.running_mean, 0.9 * old_mean + 0.1 * mean, rtol=1e-5, atol=1e-6)
    assert torch.allclose(bn.running_var, 0.9 * old_var + 0.1 * var, rtol=1e-5, atol=1e-6)
    # The batch statistics normalise in train(): the output differs from eval's.
    with torch.no_grad():
        assert not torch.allclose(out, model.eval()(x), atol=1e-3)
    # Trainable scale and shift; affine layers of affine models train theirs.
    assert bn.weight.requires_grad
    affine = nlconvert.create_model(pretrained=make_checkpoint("i3d_baseline_32x4"), norm="train")
    assert isinstance(affine.stem.norm, Affine3d) and affine.stem.norm.weight.requires_grad


def test_dropout_only_in_train(make_checkpoint: MakeCheckpoint) -> None:
    model = nlconvert.create_model(pretrained=make_checkpoint("c2d_baseline_8x8"), dropout=0.5)
    x = _clip("c2d_baseline_8x8")
    with torch.no_grad():
        torch.manual_seed(0)
        a = model(x)
        torch.manual_seed(1)
        b = model(x)
        assert not torch.allclose(a, b)
        model.eval()
        assert torch.equal(model(x), model(x))
        assert torch.equal(model.forward_features(x)[0], model(x))
    assert model.head.dropout.p == 0.5


def test_sgd_steps_lower_the_loss(make_checkpoint: MakeCheckpoint) -> None:
    model = nlconvert.create_model(pretrained=make_checkpoint("c2d_baseline_8x8"), num_classes=2,
                                   dropout=0.0)
    x, y = _clip("c2d_baseline_8x8", n=4), torch.tensor([0, 1, 0, 1])
    opt = torch.optim.SGD(nlconvert.param_groups(model, weight_decay=1e-4), lr=0.01,
                          momentum=0.9, nesterov=True)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False)), losses
    assert losses[-1] < losses[0] - 0.02, losses


def test_param_groups_membership(make_checkpoint: MakeCheckpoint) -> None:
    rules = load_rules()
    model = nlconvert.create_model(pretrained=make_checkpoint("i3d_nonlocal_8x8"), norm="train")
    decay, exempt = nlconvert.param_groups(model, weight_decay=1e-4)
    assert decay["weight_decay"] == 1e-4 and exempt["weight_decay"] == 0.0
    # The official rule: no decay on blobs whose name holds "_bn" (BN scale/shift, NL BN).
    assert all("_bn" in rules.param_to_blob(n) for n in exempt["names"])
    assert all("_bn" not in rules.param_to_blob(n) for n in decay["names"])
    assert "res3.nonlocal_blocks.1.norm.weight" in exempt["names"]
    assert "head.fc.bias" in decay["names"] and "stem.conv.weight" in decay["names"]
    every = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(decay["names"]) | set(exempt["names"]) == every
    assert not set(decay["names"]) & set(exempt["names"])
    _, no_bias = nlconvert.param_groups(model, bias_decay=False)
    assert "head.fc.bias" in no_bias["names"] and "res3.nonlocal_blocks.1.theta.bias" in no_bias["names"]
    # Frozen norms are buffers: in no group.
    frozen = nlconvert.create_model(pretrained=make_checkpoint("i3d_nonlocal_8x8"))
    names = {n for g in nlconvert.param_groups(frozen) for n in g["names"]}
    assert not [n for n in names if ".norm" in n]


def test_from_scratch_and_saved_round_trip(make_checkpoint: MakeCheckpoint, tmp_path: Path) -> None:
    scratch = nlconvert.create_model("i3d_nonlocal_8x8", num_classes=5)
    assert torch.count_nonzero(scratch.res2.blocks[0].norm_c.weight) == 0  # BN_INIT_GAMMA 0
    assert torch.count_nonzero(scratch.res3.nonlocal_blocks["1"].norm.weight) == 0
    model = nlconvert.create_model(pretrained=make_checkpoint("c2d_baseline_8x8"),
                                   class_names=["a", "b"], norm="train")
    out = nlconvert.save_model(model, tmp_path / "ft.pt")
    back = nlconvert.load_model(out)
    assert back.class_names == ["a", "b"] and back.provenance["training"]["norm"] == "train"
    x = _clip("c2d_baseline_8x8")
    with torch.no_grad():
        assert torch.allclose(back(x), model.eval()(x), rtol=0, atol=1e-6)
    again = nlconvert.create_model(pretrained=out)  # arch, names and weights from the file
    assert again.class_names == ["a", "b"]
    # A from-scratch model saved, then read by info and fine-tuned again from its hub folder.
    saved = nlconvert.save_model(nlconvert.create_model("c2d_baseline_8x8", num_classes=3),
                                 tmp_path / "scratch.pt")
    assert main(["info", str(saved)]) == 0
    folder = nlconvert.load_model(saved).save_pretrained(tmp_path / "scratch_hub")
    tuned = nlconvert.create_model(pretrained=folder, num_classes=5)
    assert tuned.training and tuned.class_names == [f"class_{i}" for i in range(5)]


def test_precise_bn_is_the_population_statistics(make_checkpoint: MakeCheckpoint) -> None:
    from nlconvert.training import compute_precise_bn

    model = nlconvert.create_model(pretrained=make_checkpoint("c2d_baseline_8x8"), norm="train")
    batches = [_clip("c2d_baseline_8x8", seed=s) for s in range(3)]
    seen: list[torch.Tensor] = []
    handle = model.stem.norm.register_forward_pre_hook(lambda _m, a: seen.append(a[0].clone()))
    model.eval()
    assert compute_precise_bn(model, iter(batches), num_batches=2) == 2
    handle.remove()
    assert not model.training and len(seen) == 2  # the mode is restored; 2 batches used
    feed = torch.cat(seen).transpose(0, 1).flatten(1).double()
    bn = model.stem.norm
    assert torch.allclose(bn.running_mean.double(), feed.mean(dim=1), atol=1e-5)
    assert torch.allclose(bn.running_var.double(), feed.var(dim=1, unbiased=False), rtol=1e-4)
