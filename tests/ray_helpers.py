"""Helpers the Ray workers of tests/test_ray.py import (the tests put this folder on their path)."""

from __future__ import annotations

import os

from nlconvert.video.workers import decode_views

POISON = "poison"


def crashing_decoder(key: str, path: str, **kw):
    """Decodes like nlconvert, but the worker process dies on any video named *poison*:
    what a decoder crash (a segfault in a codec) looks like to Ray."""
    if POISON in os.path.basename(path):
        os._exit(3)
    return decode_views(key, path, **kw)
