"""The NL-ResNet video network (C2D / I3D, ResNet-50/101, with or without non-local blocks).

One builder turns an :class:`~nlconvert.arch.ArchSpec` into a module; the variants of the
official code are arguments of small blocks, not subclasses. Nothing here knows Caffe2
blob names: ``weights_map/caffe2_blobs.toml`` maps them onto this module's parameter names.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..arch.spec import (
    HEADS,
    INPUT_MEAN,
    INPUT_STD,
    STAGE_INNER,
    STAGE_NAMES,
    STAGE_STRIDES,
    STAGE_WIDTHS,
    ArchSpec,
    Head,
)
from ..errors import ArchitectureError, HubError, option
from .layers import make_norm
from .nonlocal_block import NonLocalBlock


def _conv(c_in: int, c_out: int, k: tuple[int, int, int], s: tuple[int, int, int],
          p: tuple[int, int, int]) -> nn.Conv3d:
    return nn.Conv3d(c_in, c_out, k, stride=s, padding=p, bias=False)


class Stem(nn.Module):
    """conv1 (1+2u)x7x7 + norm + ReLU + the un-padded pool1 (224 -> 112 -> 55)."""

    def __init__(self, arch: ArchSpec) -> None:
        super().__init__()
        u = arch.conv1_temporal
        self.conv = _conv(3, 64, (1 + 2 * u, 7, 7), (arch.conv1_temporal_stride, 2, 2), (u, 3, 3))
        self.norm = make_norm(arch.norm, 64, arch.bn_eps)
        self.pool_kernel = arch.pool1_kernel
        self.pool_stride = arch.pool1_stride

    def forward(self, x: torch.Tensor, taps: OrderedDict[str, torch.Tensor] | None = None
                ) -> torch.Tensor:
        x = F.relu(self.norm(self.conv(x)))
        if taps is not None:
            taps["stem"] = x
        return F.max_pool3d(x, self.pool_kernel, self.pool_stride)


class Shortcut(nn.Module):
    """Projection shortcut of a stage's first block: 1x1x1 conv, stride (1, s, s), + norm."""

    def __init__(self, c_in: int, c_out: int, stride: int, arch: ArchSpec) -> None:
        super().__init__()
        self.conv = _conv(c_in, c_out, (1, 1, 1), (1, stride, stride), (0, 0, 0))
        self.norm = make_norm(arch.norm, c_out, arch.bn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


class Bottleneck(nn.Module):
    """(1+2u)x1x1 -> 1x3x3 (spatial stride) -> 1x1x1, each with norm; ReLU after a, b and the sum."""

    def __init__(self, c_in: int, c_out: int, inner: int, stride: int, temporal: int,
                 arch: ArchSpec) -> None:
        super().__init__()
        u = temporal
        self.conv_a = _conv(c_in, inner, (1 + 2 * u, 1, 1), (1, 1, 1), (u, 0, 0))
        self.norm_a = make_norm(arch.norm, inner, arch.bn_eps)
        self.conv_b = _conv(inner, inner, (1, 3, 3), (1, stride, stride), (0, 1, 1))
        self.norm_b = make_norm(arch.norm, inner, arch.bn_eps)
        self.conv_c = _conv(inner, c_out, (1, 1, 1), (1, 1, 1), (0, 0, 0))
        self.norm_c = make_norm(arch.norm, c_out, arch.bn_eps)
        needs_projection = c_in != c_out or stride != 1
        self.shortcut: nn.Module = (
            Shortcut(c_in, c_out, stride, arch) if needs_projection else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm_a(self.conv_a(x)))
        y = F.relu(self.norm_b(self.conv_b(y)))
        y = self.norm_c(self.conv_c(y))
        return F.relu(y + self.shortcut(x))


class Stage(nn.Module):
    """A stage of bottleneck blocks, with non-local blocks after some of them."""

    def __init__(self, name: str, index: int, c_in: int, arch: ArchSpec) -> None:
        super().__init__()
        self.name = name
        c_out, inner = STAGE_WIDTHS[index], STAGE_INNER[index]
        temporal = arch.temporal_convs[index]
        blocks = []
        for i, u in enumerate(temporal):
            stride = STAGE_STRIDES[index] if i == 0 else 1
            blocks.append(Bottleneck(c_in if i == 0 else c_out, c_out, inner, stride, u, arch))
        self.blocks = nn.ModuleList(blocks)
        grouped = arch.is_grouped(name)
        self.nonlocal_blocks = nn.ModuleDict(
            {str(i): NonLocalBlock(c_out, arch.nonlocal_block, grouped)
             for i in arch.nonlocal_indices(name)}
        )

    def forward(self, x: torch.Tensor, taps: OrderedDict[str, torch.Tensor] | None = None
                ) -> torch.Tensor:
        for i, block in enumerate(self.blocks):
            x = block(x)
            if taps is not None:
                taps[f"{self.name}.{i}"] = x
            key = str(i)
            if key in self.nonlocal_blocks:
                x = self.nonlocal_blocks[key](x)
                if taps is not None:
                    taps[f"{self.name}.{i}.nonlocal"] = x
        return x


class ClassifierHead(nn.Module):
    """Both heads of the official code over one ``fc`` (the Caffe2 ``pred`` blobs).

    ``clip`` (train/val nets): mean over T, H, W (the Caffe2 AveragePool (Tp, 7, 7) at the
    training clip), then the FC: N x classes logits. ``fully_conv`` (TEST.TEST_FULLY_CONV):
    AveragePool (Tp, 7, 7) stride 1, ``pred`` as a 1x1x1 conv, softmax over classes at
    every remaining position, then the mean: N x classes probabilities (the mean of
    softmaxes, not the softmax of the mean logits).
    """

    def __init__(self, arch: ArchSpec, head: Head) -> None:
        super().__init__()
        # Dropout before the classifier (TRAIN.DROPOUT_RATE): rate 0 in a converted network;
        # the training stage sets it. Inert in eval(), so never in an export.
        self.dropout = nn.Dropout(0.0)
        self.fc = nn.Linear(STAGE_WIDTHS[-1], arch.num_classes)
        self.pool_kernel = (arch.pool5_temporal_kernel, 7, 7)
        self.mode: Head = head

    def forward(self, x: torch.Tensor, taps: OrderedDict[str, torch.Tensor] | None = None
                ) -> torch.Tensor:
        return self.clip(x, taps) if self.mode == "clip" else self.fully_conv(x, taps)

    def clip(self, x: torch.Tensor, taps: OrderedDict[str, torch.Tensor] | None = None
             ) -> torch.Tensor:
        """The clip head on res5 (N x 2048 x T x H x W): N x classes logits."""
        pooled = x.mean(dim=(2, 3, 4))
        if taps is not None:
            taps["pool5"] = pooled
        logits = self.fc(self.dropout(pooled))
        if taps is not None:
            taps["logits"] = logits
        return logits

    def fully_conv(self, x: torch.Tensor, taps: OrderedDict[str, torch.Tensor] | None = None
                   ) -> torch.Tensor:
        """The fully-convolutional test head on res5: N x classes mean-softmax probabilities."""
        pooled = F.avg_pool3d(x, self.pool_kernel, stride=1)
        if taps is not None:
            taps["pool5"] = pooled
        pooled = self.dropout(pooled)
        weight = self.fc.weight.reshape(self.fc.weight.shape + (1, 1, 1))
        scores = F.conv3d(pooled, weight, self.fc.bias)
        if taps is not None:
            taps["logits_map"] = scores
        probs = torch.softmax(scores, dim=1).mean(dim=(2, 3, 4))
        if taps is not None:
            taps["probs"] = probs
        return probs

    def features(self, res4: torch.Tensor, res5: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The clip head's ``FEATURE_OUTPUTS``: logits, pool5 (the global mean of res5, the FC's
        input) and the global mean of res4, from the two stages' N x C x T x H x W maps."""
        pooled = res5.mean(dim=(2, 3, 4))
        return self.fc(self.dropout(pooled)), pooled, res4.mean(dim=(2, 3, 4))


class NLResNet(nn.Module):
    """The video ResNet of the official code. Input N x 3 x T x H x W, RGB, normalised.

    Output: N x classes logits (``head="clip"``) or N x classes mean-softmax probabilities
    (``head="fully_conv"``). Attributes carried for users: ``arch`` (the
    :class:`~nlconvert.arch.ArchSpec`), ``class_names``, ``input_mean``/``input_std``.
    """

    input_mean = INPUT_MEAN  # (pixel - mean) / std on RGB in [0, 255], as the official loader
    input_std = INPUT_STD

    def __init__(self, arch: ArchSpec, head: Head = "clip",
                 class_names: list[str] | None = None) -> None:
        super().__init__()
        self.arch = arch
        self.class_names = class_names
        self.provenance: dict[str, object] = {}
        self.stem = Stem(arch)
        c_in = 64
        stages = []
        for index, name in enumerate(STAGE_NAMES):
            stages.append(Stage(name, index, c_in, arch))
            c_in = STAGE_WIDTHS[index]
        self.res2, self.res3, self.res4, self.res5 = stages
        self.head = ClassifierHead(arch, head)

    @property
    def head_mode(self) -> Head:
        return self.head.mode

    def set_head(self, head: Head) -> NLResNet:
        """Switch between the ``clip`` and ``fully_conv`` heads (same weights)."""
        if head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, not {head!r}")
        self.head.mode = head
        return self

    def trunk(self, x: torch.Tensor, taps: OrderedDict[str, torch.Tensor] | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """The res4 and res5 activations (N x C x T x H x W) of a clip."""
        x = self.stem(x, taps)
        if taps is not None:
            taps["pool1"] = x
        x = self.res2(x, taps)
        x = F.max_pool3d(x, (2, 1, 1), (2, 1, 1))  # pool2
        if taps is not None:
            taps["pool2"] = x
        x = self.res3(x, taps)
        res4 = self.res4(x, taps)
        return res4, self.res5(res4, taps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x)[1])

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``FEATURE_OUTPUTS`` of the clip head, whatever the head mode: logits (N x classes),
        pool5 (N x 2048, the input of ``pred``) and the global mean of res4 (N x 1024)."""
        return self.head.features(*self.trunk(x))

    def forward_intermediates(self, x: torch.Tensor
                              ) -> tuple[torch.Tensor, OrderedDict[str, torch.Tensor]]:
        """The output and every named activation: ``stem``, ``pool1``, ``res2.0`` ...
        ``res3.1.nonlocal`` ..., ``pool2``, ``pool5``, ``logits`` or ``logits_map``/``probs``."""
        taps: OrderedDict[str, torch.Tensor] = OrderedDict()
        out = self.head(self.trunk(x, taps)[1], taps)
        return out, taps

    def check_input(self, x: torch.Tensor) -> None:
        """Raise :class:`~nlconvert.errors.InputShapeError` for a clip this network cannot take."""
        self.arch.check_clip(tuple(int(d) for d in x.shape), self.head.mode)

    # ----- Hugging Face Hub folders (config.json + model.safetensors) --------------------
    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, *, head: Head = "clip",
                        revision: str | None = None, cache_dir: str | Path | None = None,
                        token: str | bool | None = None, local_files_only: bool = False,
                        force_download: bool = False) -> NLResNet:
        """The network of a hub folder (``nlconvert export-hub``, :meth:`save_pretrained`) or
        of a Hugging Face repository id (downloaded with ``huggingface_hub``, the ``[hub]``
        extra, into its cache; `revision`, `cache_dir`, `token`, `local_files_only` and
        `force_download` as in ``huggingface_hub``). A local folder needs no network and no
        ``huggingface_hub``. Eval mode; the weights are exactly the folder's."""
        from .hubfolder import check_shapes, read_hub_folder

        local = Path(name_or_path)
        folder = local if local.is_dir() else _download_repo(
            str(name_or_path), revision=revision, cache_dir=cache_dir, token=token,
            local_files_only=local_files_only, force_download=force_download)
        hub = read_hub_folder(folder)
        with torch.device("meta"):
            model = cls(hub.arch, head, hub.class_names)
        check_shapes(model.state_dict(), hub.state_dict, folder, hub.arch.name)
        model.load_state_dict(hub.state_dict, strict=True, assign=True)
        model.provenance = dict(hub.provenance)
        return model.eval()

    def save_pretrained(self, save_directory: str | Path, *, force: bool = False,
                        config_extra: dict[str, Any] | None = None, push_to_hub: bool = False,
                        repo_id: str | None = None, token: str | None = None,
                        private: bool | None = None) -> Path:
        """Write ``config.json`` + ``model.safetensors`` to `save_directory`, the whole folder
        at once (an existing one is replaced only with `force`); `push_to_hub`: then upload
        it to `repo_id` (default: the folder's name), as :meth:`push_to_hub`.
        ``nlconvert export-hub`` writes the same folder with a model card, a parity check and
        optionally ONNX."""
        from .._atomic import atomic_folder
        from .hubfolder import hub_config, write_config, write_weights

        with atomic_folder(save_directory, force) as tmp:
            write_config(hub_config(self.arch, self.class_names, self.provenance, config_extra), tmp)
            write_weights(self.state_dict(), tmp)
        if push_to_hub:
            self.push_to_hub(repo_id or Path(save_directory).name, token=token, private=private)
        return Path(save_directory)

    def push_to_hub(self, repo_id: str, *, token: str | None = None, private: bool | None = None,
                    commit_message: str = "Upload NLResNet (nlconvert)") -> str:
        """Upload the :meth:`save_pretrained` folder to a Hugging Face model repository
        (created if needed; needs the ``[hub]`` extra). Returns the commit's URL."""
        import tempfile

        hf = _huggingface_hub()
        api = hf.HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        with tempfile.TemporaryDirectory() as tmp:
            folder = self.save_pretrained(Path(tmp) / "model")
            commit = api.upload_folder(repo_id=repo_id, folder_path=str(folder),
                                       commit_message=commit_message)
        return str(getattr(commit, "commit_url", commit))


def build_model(arch: ArchSpec, head: Head = "clip", class_names: list[str] | None = None,
                device: str | torch.device | None = None) -> NLResNet:
    """Build the network of `arch` (eval mode). ``device="meta"`` allocates no memory."""
    if arch.is_2d:
        raise ArchitectureError(
            f"{arch.name} is a 2D ImageNet checkpoint, not a video network: convert it with "
            f"{option('inflate')} {option('arch')} <video architecture>"
        )
    if device is not None:
        with torch.device(device):
            model = NLResNet(arch, head, class_names)
    else:
        model = NLResNet(arch, head, class_names)
    return model.eval()


def _huggingface_hub() -> Any:
    """The ``huggingface_hub`` module, or a one-line error naming the extra to install."""
    try:
        import huggingface_hub
    except ImportError:
        raise HubError("Hugging Face Hub repositories need huggingface_hub: "
                       "pip install 'nlconvert[hub]' (a local hub folder needs nothing)") from None
    return huggingface_hub


def _download_repo(repo_id: str, **options: Any) -> Path:
    """The local snapshot of a Hub repository's config.json and model.safetensors."""
    from .hubfolder import CONFIG_NAME, WEIGHTS_NAME

    hf = _huggingface_hub()
    try:
        return Path(hf.snapshot_download(repo_id, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME],
                                         **options))
    except Exception as exc:  # huggingface_hub raises many types (validation, HTTP, offline)
        message = " ".join(str(exc).split())[:300]
        raise HubError(f"{repo_id}: no such local folder, and not loadable as a Hugging Face "
                       f"repository ({exc.__class__.__name__}: {message})") from None

