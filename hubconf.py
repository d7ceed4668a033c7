"""torch.hub entries of nlconvert: one per video architecture of the zoo table.

    import torch
    model = torch.hub.load("<owner>/nlconvert", "i3d_nonlocal_8x8", pretrained=True)
    model = torch.hub.load("<owner>/nlconvert", "i3d_nonlocal_8x8",
                           weights="i3d_nonlocal_8x8_IN_pretrain_400k.pkl")  # or .pt, hub folder
    model = torch.hub.load("path/to/nlconvert", "c2d_baseline_8x8", source="local",
                           weights="hub/c2d-baseline-8x8", head="fully_conv", num_classes=10)

The entries are made from ``nlconvert/data/zoo.toml`` when torch.hub asks for them: importing
this file reads nothing and builds nothing. ``pretrained=True`` downloads the official
checkpoint into torch.hub's cache (``$NLCONVERT_HUB_BASE_URL`` replaces the official base
address), converts it once and keeps the converted file; see :mod:`nlconvert.hub.torchhub`.
"""

import nlconvert  # cheap (no torch): keeps the package importable after torch.hub drops the path

#: What the entries import (torch.hub checks these before calling one); tests/test_hub.py
#: checks that loading a network needs nothing else.
dependencies = ["torch", "numpy", "tqdm", "safetensors", "google.protobuf"]

_ENTRY_DOC = """{description}

    pretrained: download the official checkpoint {file}.pkl (published top-1 {top1}% on
        Kinetics-400, 30 views), convert it once and cache it in torch.hub's folder.
    weights: a Caffe2 .pkl/.pb, a converted .pt/.safetensors or a hub folder of this network.
    head: "clip" (logits) or "fully_conv" (the official test head: mean of softmaxes).
    num_classes: a fresh classifier of that size (for fine-tuning); the rest is kept.
    progress: show the download's progress bar.
    """


# No other module-level names: torch.hub.list() shows every public callable of this module.


def _video_archs() -> list[str]:
    return nlconvert.list_archs(video_only=True)


def _entry(name: str) -> object:
    def entry(*, pretrained: bool = False, weights: str | None = None, head: str = "clip",
              num_classes: int | None = None, progress: bool = True) -> object:
        from nlconvert.hub.torchhub import hub_model

        return hub_model(name, pretrained=pretrained, weights=weights, head=head,  # type: ignore[arg-type]
                         num_classes=num_classes, progress=progress)

    spec = nlconvert.get_arch(name)
    released = nlconvert.arch.published_accuracy(name)
    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = _ENTRY_DOC.format(description=spec.describe(),
                                      file=released[0].file if released else "(none released)",
                                      top1=released[0].top1 if released else "-")
    return entry


def __getattr__(name: str) -> object:
    if not name.startswith("_") and name in _video_archs():
        entry = _entry(name)
        globals()[name] = entry  # made once
        return entry
    raise AttributeError(f"module 'hubconf' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_video_archs()))
