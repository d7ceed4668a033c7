"""Synthetic data with the official names, shapes and formats, from seeded random numbers.

The official checkpoints cannot be downloaded everywhere (CI, air-gapped machines): these
stand in for them so that every path of nlconvert can be exercised. The numbers are random;
predictions made with them mean nothing.

:mod:`.blobs` (weight blobs of an architecture, numpy), :mod:`.checkpoints` (files in the
official formats), :mod:`.clips` and :mod:`.models` (seeded clips and calibrated PyTorch
networks; these import torch, so they are not imported here).
"""

from .blobs import random_blobs
from .checkpoints import release_file_name, write_synthetic_checkpoint

__all__ = ["random_blobs", "release_file_name", "write_synthetic_checkpoint"]
