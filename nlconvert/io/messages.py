"""Render text taken from a file for one-line error messages.

Blob names, keys and op types come from untrusted files; a newline or control character
in them must not break the one-line messages the command line prints.
"""

from __future__ import annotations

from typing import Any

_LIMIT = 200


def quoted(name: str) -> str:
    """``'name'`` for a plain printable name, else an escaped, shortened rendering."""
    if len(name) <= _LIMIT and name.isascii() and name.isprintable() and "'" not in name:
        return f"'{name}'"
    text = ascii(name[:_LIMIT])
    return text if len(name) <= _LIMIT else text[:-1] + "...'"


def show(value: Any, limit: int = 60) -> str:
    """A short, one-line, ASCII rendering of a value from the file (type name if not text)."""
    if isinstance(value, bytes | bytearray):
        value = bytes(value[:limit]).decode("latin-1")
    if isinstance(value, str):
        text = ascii(value[:limit])
        return text if len(value) <= limit else text[:-1] + "...'"
    return type(value).__name__
