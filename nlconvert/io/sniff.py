"""Tell a pickle checkpoint from a Caffe2 protobuf, and explain every other kind of file.

Users hand us archives, web pages, already-converted PyTorch files and half downloads;
each gets a one-line message saying what the file is and what to do instead.
"""

from __future__ import annotations

import os
import pickletools
import re
import struct
from pathlib import Path

from ..errors import CheckpointFormatError

PICKLE = "pickle"
PROTOBUF = "protobuf"

# torch.save's legacy format starts by pickling this magic number (a LONG1 of 10 bytes).
_TORCH_LEGACY_MAGIC = (0x1950A86A20F9469CFC6C).to_bytes(10, "little")

# Top-level NetDef fields (caffe2.proto): number -> wire type (0 varint, 2 length-delimited).
_NETDEF_FIELDS = {1: 2, 2: 2, 3: 2, 4: 0, 5: 2, 6: 2, 7: 2, 8: 2}

# Every pickle opcode byte (a table only: pickletools never runs on the file).
_OPCODE_BYTES = re.escape(bytes(sorted({ord(op.code) for op in pickletools.opcodes})))

# How protocol 0/1 pickles begin: MARK then DICT/LIST/a key or a global, an empty dict or
# list followed by another opcode, or a global (e.g. a bare numpy array). Sniffing only
# routes the file; the safe reader decides what it really is.
_PICKLE_START = re.compile(
    rb"\((?:[dlt(}\]SVIUXTcKJBC\x8c])"
    rb"|[}\]][" + _OPCODE_BYTES + rb"]"
    rb"|c[A-Za-z_][\w.]*\n[A-Za-z_][\w.]*\n"
)

_HEAD = 4096


def _varint(data: bytes, pos: int) -> tuple[int, int] | None:
    value = 0
    for shift in range(0, 70, 7):
        if pos >= len(data):
            return None
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
    return None


def _looks_like_netdef(path: Path, size: int) -> bool:
    """Walk the top-level protobuf fields: each must be a NetDef field that fits the file."""
    with open(path, "rb") as f:
        offset = 0
        for _ in range(64):
            if offset == size:
                return True
            f.seek(offset)
            head = f.read(20)
            tag = _varint(head, 0)
            if tag is None:
                return False
            number, wire = tag[0] >> 3, tag[0] & 7
            if _NETDEF_FIELDS.get(number) != wire:
                return False
            value = _varint(head, tag[1])
            if value is None:
                return False
            offset += value[1]
            if wire == 2:
                offset += value[0]
            if offset > size:
                return False
        return True  # 64 well-formed fields: a big init_net


def _looks_like_onnx(head: bytes) -> bool:
    # ModelProto starts with ir_version (field 1, varint), then another small field.
    if len(head) < 4 or head[0] != 0x08:
        return False
    version = _varint(head, 1)
    return version is not None and 1 <= version[0] <= 64 and head[version[1]] in (
        0x12, 0x1A, 0x22, 0x2A, 0x32, 0x3A, 0x42, 0x52, 0x72,
    )  # fmt: skip


def _pickle_kind(head: bytes) -> str | None:
    """'pickle', 'torch' (legacy torch.save) or None."""
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        if head[2:4] == b"\x8a\x0a" and head[4:14] == _TORCH_LEGACY_MAGIC:
            return "torch"
        return PICKLE
    if _PICKLE_START.match(head):
        return PICKLE
    return None


def _is_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # The head may end inside a multi-byte character.
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    printable = sum(ch.isprintable() or ch in "\t\r\n" for ch in text)
    return bool(text) and printable >= 0.95 * len(text)


def sniff(path: str | os.PathLike[str]) -> str:
    """Return "pickle" or "protobuf" for a checkpoint file, judging by its content.

    Raises :class:`CheckpointFormatError` naming the file and saying what it seems to be
    (empty, gzip/tar/zip archive, torch.save file, web page, text, safetensors, ONNX).
    """
    p = Path(path)
    name = str(path)
    try:
        size = p.stat().st_size
        if p.is_dir():
            raise CheckpointFormatError(f"{name}: is a directory, not a checkpoint file")
        with open(p, "rb") as f:
            head = f.read(_HEAD)
    except FileNotFoundError:
        raise CheckpointFormatError(f"{name}: no such file") from None
    except OSError as e:
        raise CheckpointFormatError(f"{name}: cannot read: {e.strerror or e}") from None

    def wrong(what: str) -> CheckpointFormatError:
        return CheckpointFormatError(f"{name}: {what}")

    if not head:
        raise wrong("empty file (0 bytes): the download or copy failed; fetch it again")
    if head.startswith(b"\x1f\x8b"):
        raise wrong(
            "a gzip file, e.g. the zoo's pretrained_model.tar.gz: extract it first "
            "(tar xzf ...) and pass the .pkl inside"
        )
    if head[257:262] == b"ustar":
        raise wrong("a tar archive: extract it first (tar xf ...) and pass the .pkl inside")
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise wrong(
            "a zip archive or a torch.save file: already PyTorch? load it with nlconvert.load_model / torch.load"
        )
    kind = _pickle_kind(head)
    if kind == "torch":
        raise wrong("a legacy torch.save file: already PyTorch? load it with nlconvert.load_model / torch.load")
    if kind == PICKLE:
        return PICKLE
    if len(head) >= 9 and head[8:9] == b"{":
        (header_len,) = struct.unpack("<Q", head[:8])
        if header_len <= size - 8:
            raise wrong("a safetensors file: already converted weights; load them with safetensors.torch.load_file")
    lowered = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if lowered.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml")):
        raise wrong("a web page, probably a failed download: download the .pkl again")
    if head[0] in (0x0A, 0x12, 0x1A, 0x20, 0x2A, 0x32, 0x3A, 0x42) and _looks_like_netdef(p, size):
        return PROTOBUF
    if _looks_like_onnx(head):
        raise wrong(
            "an ONNX model, i.e. already converted: run it with onnxruntime; "
            "nlconvert reads the Caffe2 .pkl or init_net.pb"
        )
    if _is_text(head):
        raise wrong("a text file, not a checkpoint: pass the Caffe2 .pkl (or init_net.pb) itself")
    shown = head[:8].hex(" ")
    raise wrong(f"unknown file format (starts with {shown}): expected a Caffe2 .pkl or init_net.pb")
