"""A decoder that kills its process on some videos (imported by worker processes in the tests)."""

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


def slow_messages(key: str, path: str):
    """Messages of a long video, one every 50 ms (a worker busy when its parent is killed)."""
    import time

    for i in range(400):
        time.sleep(0.05)
        yield (key, i)
