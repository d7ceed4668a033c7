"""Non-local attention you can see: the weights of every non-local block, their pictures.

:mod:`.maps` records each block's weights from the exact PyTorch model (what Caffe2 computes
in ``<block>_affinity_prob``); :mod:`.pictures` draws a query's attention over the clip's
frames (Pillow, the ``[viz]`` extra, imported only when drawing); :mod:`.output` writes the
folder of ``nlconvert attention`` (arrays, pictures, ``index.html``, ``attention.json``).
"""

from __future__ import annotations

from .maps import (
    ATTENTION_BACKEND,
    AttentionError,
    BlockAttention,
    Query,
    attention_maps,
    block_attention,
    block_names,
    record_attention,
)

__all__ = [
    "ATTENTION_BACKEND",
    "AttentionError",
    "BlockAttention",
    "Query",
    "attention_maps",
    "block_attention",
    "block_names",
    "record_attention",
]
