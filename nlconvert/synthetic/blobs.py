"""Seeded random weight blobs with the official names and shapes of an architecture."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from ..arch import ArchSpec
from ..reference.netdef_builder import expected_blob_shapes


def random_blobs(arch: ArchSpec, seed: int = 0) -> dict[str, npt.NDArray[np.float32]]:
    """Seeded random weights with the official names and shapes of `arch`.

    Values are chosen so that activations stay O(1) through 50-101 layers and the checks
    are not trivially passed: He-initialised convs, BN scales in [0.2, 1] (0.1-0.5 on the
    last conv of a branch), running variances in [0.5, 2], non-zero NL BN scales, and
    theta/phi weights large enough that the attention is far from uniform.
    """
    rng = np.random.default_rng(seed)
    out: dict[str, npt.NDArray[np.float32]] = {}
    for name, shape in expected_blob_shapes(arch).items():
        if name.endswith("_w"):
            fan_in = math.prod(shape[1:])
            if "_theta_" in name or "_phi_" in name:
                # Peaked softmax attention; the dot-product variant has no softmax to bound
                # the cubic x -> theta^T phi g, so its weights are smaller.
                std = (3.0 if arch.nonlocal_block.use_softmax else 0.3) / math.sqrt(fan_in)
            elif "_g_" in name:
                std = 1.0 / math.sqrt(fan_in)
            elif name == "pred_w":  # logits with a spread of a few units, as a trained net
                std = 8.0 / math.sqrt(fan_in)
            elif name.endswith("_out_w"):
                std = 0.5 / math.sqrt(fan_in)
            else:
                std = math.sqrt(2.0 / fan_in)
            value = rng.standard_normal(shape, dtype=np.float32) * np.float32(std)
        elif name.endswith("_bn_s"):
            hi = 0.5 if "branch2c" in name or name.startswith("nonlocal") else 1.0
            value = rng.uniform(0.1 if hi < 1 else 0.2, hi, shape)
        elif name.endswith("_bn_riv"):
            value = rng.uniform(0.5, 2.0, shape)
        elif name.endswith("_bn_rm"):
            value = rng.normal(0.0, 0.1, shape)
        else:  # _bn_b and conv/FC biases
            value = rng.normal(0.0, 0.1, shape)
        out[name] = np.asarray(value, dtype=np.float32)
    return out
