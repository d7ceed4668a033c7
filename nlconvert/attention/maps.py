"""The attention weights of every non-local block, recorded from the exact PyTorch model.

Each :class:`~nlconvert.model.nonlocal_block.NonLocalBlock` hands its weights to an optional
``attention_sink`` during the forward pass; :func:`record_attention` installs one per block
for the duration of a forward and removes it after, so the network computes exactly what it
computes without it (the sink only copies the tensor).

The arrays are what the official Caffe2 net computes in ``<block>_affinity_prob`` (embedded
Gaussian: the softmax over keys of ``theta^T phi * Ci^-0.5``) or ``<block>_affinity_sc``
(dot product: ``theta^T phi / keys``), float32, ``N x T*H*W x T*H'*W'``: rows are the query
positions of the block's input (t, y, x; row ``(t*H + y)*W + x``), columns the phi/g positions
after the block's (1, s, s) max pool. A grouped block (the affine models' res3) runs on
``N*G`` groups of ``group_size`` frames: its array is ``N*G x gs*H*W x gs*H'*W'``, group g
of clip n at ``n*G + g``, as the Caffe2 net lays it out.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputShapeError, NLConvertError
from ..model.nonlocal_block import NonLocalBlock
from ..model.resnet import NLResNet
from ..reference.netdef_builder import nonlocal_prefix
from ..runtime.backends import Backend

#: What computes the arrays: the exact float32 PyTorch network (the fast and ONNX backends
#: never form the weights; a backend is asked for its torch reference model instead).
ATTENTION_BACKEND = "torch (exact float32 PyTorch model)"


class AttentionError(NLConvertError):
    """A block, query or clip that the attention maps cannot be made for."""


@dataclass(frozen=True)
class Query:
    """A query position in a block's grid: time t, row y, column x."""

    t: int
    y: int
    x: int

    @classmethod
    def parse(cls, text: str) -> Query:
        """``"t,y,x"`` -> Query; a one-line :class:`AttentionError` otherwise."""
        parts = text.replace(" ", "").split(",")
        try:
            t, y, x = (int(p) for p in parts)
        except ValueError:
            raise AttentionError(f"--query must be t,y,x (three integers), not {text!r}") from None
        return cls(t, y, x)

    def __str__(self) -> str:
        return f"{self.t},{self.y},{self.x}"


@dataclass(frozen=True)
class BlockAttention:
    """The recorded weights of one block and the grids that index them."""

    name: str  # nonlocal_conv3_1, as the official code names the block
    module: str  # res3.1: where the block sits in the PyTorch model (after that res block)
    weights: np.ndarray  # N*G x queries x keys float32
    grid: tuple[int, int, int]  # the block input's T, H, W (queries, all groups together)
    key_grid: tuple[int, int, int]  # one row's keys: T (of a group), H', W'
    groups: int  # G: 1 unless the block is grouped
    softmax: bool  # embedded Gaussian (weights sum to 1 per query) or dot product

    @property
    def caffe2_blob(self) -> str:
        """The Caffe2 blob holding the same numbers."""
        return f"{self.name}_affinity_prob" if self.softmax else f"{self.name}_affinity_sc"

    @property
    def group_frames(self) -> int:
        """Block time steps per group (T when not grouped)."""
        return self.grid[0] // self.groups

    def check_query(self, query: Query) -> None:
        """One-line :class:`AttentionError` when `query` is outside this block's grid."""
        t, h, w = self.grid
        if not (0 <= query.t < t and 0 <= query.y < h and 0 <= query.x < w):
            raise AttentionError(f"--query {query} is outside {self.name}'s grid: valid are "
                                 f"t 0..{t - 1}, y 0..{h - 1}, x 0..{w - 1}")

    def locate(self, query: Query, sample: int = 0) -> tuple[int, int]:
        """(row of `weights`, query index in that row) of `query` in clip `sample`."""
        self.check_query(query)
        _, h, w = self.grid
        group, t_local = divmod(query.t, self.group_frames)
        return sample * self.groups + group, (t_local * h + query.y) * w + query.x

    def key_map(self, query: Query, sample: int = 0) -> np.ndarray:
        """The weights of `query` over its keys, shaped T' x H' x W' (T': its group's frames)."""
        row, q = self.locate(query, sample)
        return self.weights[row, q].reshape(self.key_grid)

    def entropy(self, sample: int = 0) -> np.ndarray:
        """Entropy (nats) of every query's weights in clip `sample`, shaped T x H x W.

        Dot-product weights are not a distribution: their absolute values, normalised to sum
        to 1, are used."""
        rows = self.weights[sample * self.groups:(sample + 1) * self.groups].astype(np.float64)
        p = np.abs(rows)
        p = p / np.maximum(p.sum(axis=-1, keepdims=True), 1e-300)
        ent = -(p * np.log(np.where(p > 0, p, 1.0))).sum(axis=-1)  # G x gs*H*W
        return ent.reshape(self.grid)

    def informative_queries(self, count: int = 3, sample: int = 0) -> list[Query]:
        """The `count` queries with the most concentrated attention (lowest entropy)."""
        ent = self.entropy(sample)
        order = np.argsort(ent.reshape(-1), kind="stable")[:count]
        return [Query(*(int(v) for v in np.unravel_index(i, ent.shape))) for i in order]

    def max_entropy(self) -> float:
        """The entropy of uniform weights over one row's keys (log of the keys)."""
        return math.log(self.weights.shape[-1])


def nonlocal_blocks(model: NLResNet) -> dict[str, tuple[str, NonLocalBlock]]:
    """Every non-local block, by its official name: ``{name: (module path, block)}``."""
    out: dict[str, tuple[str, NonLocalBlock]] = {}
    for stage in (model.res2, model.res3, model.res4, model.res5):
        for index, block in stage.nonlocal_blocks.items():
            assert isinstance(block, NonLocalBlock)
            out[nonlocal_prefix(stage.name, int(index))] = (f"{stage.name}.{index}", block)
    return out


@contextlib.contextmanager
def record_attention(model: NLResNet, names: list[str] | None = None
                     ) -> Iterator[dict[str, list[torch.Tensor]]]:
    """Record the weights of the blocks `names` (default: all) during the forwards run inside
    the ``with``: ``{name: [weights of each forward]}`` (detached copies)."""
    blocks = nonlocal_blocks(model)
    records: dict[str, list[torch.Tensor]] = {}
    chosen = list(blocks) if names is None else names
    try:
        for name in chosen:
            store = records.setdefault(name, [])
            blocks[name][1].attention_sink = lambda w, store=store: store.append(
                w.detach().float().cpu().clone())
        yield records
    finally:
        for name in chosen:
            blocks[name][1].attention_sink = None


def torch_model(model: NLResNet | Backend) -> NLResNet:
    """The exact PyTorch network of `model` (a backend gives its torch reference)."""
    if isinstance(model, NLResNet):
        return model
    try:
        ref = model.reference()
    except NLConvertError as exc:
        raise AttentionError(f"attention maps need the PyTorch model: {exc}") from None
    net = getattr(ref, "model", None)
    if not isinstance(net, NLResNet):
        raise AttentionError(f"{model.name} backend: attention maps need the PyTorch model")
    return net


def block_names(model: NLResNet) -> list[str]:
    """The official names of the model's non-local blocks, in network order."""
    return list(nonlocal_blocks(model))


def check_blocks(model: NLResNet, names: list[str] | None) -> list[str]:
    """The blocks to record: `names` checked (one-line error listing the valid ones), or all."""
    valid = block_names(model)
    if not valid:
        raise AttentionError(f"{model.arch.name} has no non-local blocks: nothing to show")
    if not names:
        return valid
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise AttentionError(f"unknown --block {unknown[0]!r}; this model's non-local blocks: "
                             f"{', '.join(valid)}")
    return list(dict.fromkeys(names))


def block_attention(model: NLResNet | Backend, clip: np.ndarray | torch.Tensor, *,
                    blocks: list[str] | None = None) -> dict[str, BlockAttention]:
    """Run `clip` (N x 3 x T x H x W, normalised float32) through the exact model once and
    return each block's :class:`BlockAttention` (see the module doc)."""
    net = torch_model(model)
    names = check_blocks(net, blocks)
    x = torch.as_tensor(np.asarray(clip, dtype=np.float32) if not isinstance(clip, torch.Tensor)
                        else clip.float())
    net.arch.check_clip(tuple(int(d) for d in x.shape), "clip")  # only the trunk runs: any head
    device = next(net.parameters()).device
    all_blocks = nonlocal_blocks(net)
    grids: dict[str, tuple[int, int, int]] = {}
    hooks = []
    for name in names:
        def pre(_: torch.nn.Module, args: tuple[torch.Tensor, ...], name: str = name) -> None:
            t, h, w = args[0].shape[2:]
            grids[name] = (int(t), int(h), int(w))
        hooks.append(all_blocks[name][1].register_forward_pre_hook(pre))
    try:
        with record_attention(net, names) as records, torch.inference_mode():
            net.trunk(x.to(device))
    finally:
        for hook in hooks:
            hook.remove()
    out: dict[str, BlockAttention] = {}
    n = int(x.shape[0])
    for name in names:
        module, block = all_blocks[name]
        (weights,) = records[name]
        t, h, w = grids[name]
        groups = t // block.group_size if block.group_size else 1
        stride = block.pool_stride or 1
        key_grid = (t // groups, h // stride, w // stride)
        if weights.shape != (n * groups, t * h * w // groups, math.prod(key_grid)):
            raise InputShapeError(f"{name}: weights of shape {tuple(weights.shape)} do not match "
                                  f"its grid {t}x{h}x{w} (internal error)")
        out[name] = BlockAttention(name, module, weights.numpy(), (t, h, w), key_grid, groups,
                                   block.use_softmax)
    return out


def attention_maps(model: NLResNet | Backend, clip: np.ndarray | torch.Tensor, *,
                   blocks: list[str] | None = None) -> dict[str, np.ndarray]:
    """The attention weights of every non-local block for `clip` (N x 3 x T x H x W,
    normalised float32): ``{"nonlocal_conv3_1": N x THW x THW' float32, ...}``, exactly what
    the Caffe2 net computes in ``<block>_affinity_prob`` (``(N*groups) x ...`` for grouped
    blocks; see the module doc). `model`: an ``NLResNet`` or a backend with a PyTorch model
    (torch, fast, or ONNX opened from a ``.pt``); the maps are always computed by the exact
    PyTorch network, whose forward pass they do not change."""
    return {name: b.weights for name, b in block_attention(model, clip, blocks=blocks).items()}
