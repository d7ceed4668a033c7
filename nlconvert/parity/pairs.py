"""Which PyTorch activation corresponds to which Caffe2 blob, in network order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..arch.spec import STAGE_NAMES, ArchSpec


@dataclass(frozen=True)
class LayerPair:
    """A compared point of the network: the PyTorch tap name and the Caffe2 blob name."""

    torch_name: str
    blob: str


def layer_pairs(arch: ArchSpec, head: str, written_blobs: Sequence[str]) -> list[LayerPair]:
    """The pairs of `arch`, with blob names as the official (in-place) nets write them.

    `written_blobs` lists the reference net's op outputs in order; a grouped non-local block's
    output is the last blob written whose name starts with ``nonlocal_conv{k}_{i}_sum``.
    """
    pairs = [LayerPair("stem", "res_conv1_bn"), LayerPair("pool1", "pool1")]
    for k, stage in enumerate(STAGE_NAMES):
        for i in range(arch.blocks_per_stage[k]):
            pairs.append(LayerPair(f"{stage}.{i}", f"{stage}_{i}_branch2c_bn"))
            if i in arch.nonlocal_indices(stage):
                prefix = f"nonlocal_conv{stage[3:]}_{i}_sum"
                last = [b for b in written_blobs if b.startswith(prefix)]
                pairs.append(LayerPair(f"{stage}.{i}.nonlocal", last[-1] if last else prefix))
        if stage == "res2":
            pairs.append(LayerPair("pool2", "pool2"))
    pairs.append(LayerPair("pool5", "pool5"))
    if head == "clip":
        pairs += [LayerPair("logits", "pred"), LayerPair("softmax", "softmax")]
    else:
        pairs += [LayerPair("logits_map", "pred"), LayerPair("probs", "softmax")]
    return pairs
