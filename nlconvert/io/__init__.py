"""Reading (safely) and writing the checkpoint files of the Caffe2 video models.

``read_checkpoint`` is the entry point: it sniffs the file, reads pickles with our own
opcode interpreter (never ``pickle.load``) or parses the init_net protobuf, and returns
the float32 weight blobs.
"""

from .checkpoint import Checkpoint, read_checkpoint
from .netdef_io import blobs_from_init_net, netdef_from_blobs, read_netdef, write_init_net
from .numpy_rebuild import Dropped
from .py2pickle import write_flat_pkl, write_official_pkl
from .safe_pickle import load_pickle, loads_pickle
from .sniff import sniff

__all__ = [
    "Checkpoint",
    "Dropped",
    "blobs_from_init_net",
    "load_pickle",
    "loads_pickle",
    "netdef_from_blobs",
    "read_checkpoint",
    "read_netdef",
    "sniff",
    "write_flat_pkl",
    "write_init_net",
    "write_official_pkl",
]
