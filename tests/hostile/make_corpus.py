"""Generate a corpus of hostile pickles, each hidden inside a valid ``{'blobs': {...}}``.

Every payload, if a normal unpickler ran it, would create the sentinel file
``<dir>/PWNED`` (``touch``, or a class whose ``__setstate__`` writes it). The pickles are
assembled opcode by opcode (see ``pickle_asm.py``) for every protocol 0-5.

    python tests/hostile/make_corpus.py OUT_DIR

``build_corpus(dir)`` returns the paths; ``dir/MANIFEST.json`` maps each file name to a
fragment the refusal message must contain. ``dir/hostile_trap.py`` defines the classes
the class-based payloads name, so a stock ``pickle.load`` with ``dir`` on its path really
runs them (the tests use that to prove the payloads are live).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
from pickle_asm import Emit, checkpoint  # noqa: E402

SENTINEL = "PWNED"
PROTOCOLS = range(6)

TRAP_MODULE = '''"""Classes whose unpickling writes the sentinel file (hostile corpus)."""
import numpy as np


def _touch(path):
    open(path, "w").close()


class Trap:
    def __setstate__(self, state):
        _touch(state)


class TrapArray(np.ndarray):
    def __setstate__(self, state):
        _touch(SENTINEL)


SENTINEL = {sentinel!r}
'''

Payload = Callable[[Emit], Any]

# Payloads that really run their command under a stock ``pickle.load(f, encoding="latin1")``
# (the others abuse the allowed names in ways the stock unpickler merely rejects).
LIVE = frozenset(
    {
        "os.system", "posix.system", "subprocess.Popen", "builtins.eval", "builtins.exec",
        "__builtin__.eval", "builtins.getattr", "builtins.__import__", "INST", "OBJ",
        "NEWOBJ", "NEWOBJ_EX", "BUILD_trap", "reconstruct_trap", "dtype_call_args",
    }
)  # fmt: skip


def _valid_entries() -> list[tuple[str, Payload]]:
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.ones(2, dtype=np.float32)
    return [("conv1_w", lambda e: e.array(w)), ("conv1_b", lambda e: e.array(b))]


def _payloads(sentinel: str) -> dict[str, tuple[Payload, str, bool]]:
    """name -> (emitter, expected message fragment, also with STACK_GLOBAL)."""
    cmd = f"touch {sentinel}"
    code = f"__import__('os').system({cmd!r})"

    def call(module: str, name: str, *args: str) -> Payload:
        return lambda e: e.call(module, name, [lambda a=a: e.value(a) for a in args])

    def popen(e: Emit) -> None:
        e.glob("subprocess", "Popen")
        with e.tuple(1):
            e.list_of([lambda: e.value("touch"), lambda: e.value(sentinel)])
        e.op("REDUCE")

    def getattr_chain(e: Emit) -> None:
        # getattr(__import__('os'), 'system')('touch ...')
        e.glob("builtins", "getattr")
        with e.tuple(2):
            e.call("builtins", "__import__", [lambda: e.value("os")])
            e.value("system")
        e.op("REDUCE")
        with e.tuple(1):
            e.value(cmd)
        e.op("REDUCE")

    def import_first(e: Emit) -> None:
        # __import__('os') first, kept in the memo, then getattr(<memo>, 'system')(cmd).
        e.call("builtins", "__import__", [lambda: e.value("os")])
        e.op("PUT", 900) if e.p == 0 else e.op("BINPUT", 200)
        e.op("POP")
        e.glob("builtins", "getattr")
        with e.tuple(2):
            e.op("GET", 900) if e.p == 0 else e.op("BINGET", 200)
            e.value("system")
        e.op("REDUCE")
        with e.tuple(1):
            e.value(cmd)
        e.op("REDUCE")

    def inst(e: Emit) -> None:
        e.op("MARK")
        e.value(cmd)
        e.op("INST", ("os", "system"))

    def obj(e: Emit) -> None:
        e.op("MARK")
        e.glob("os", "system")
        e.value(cmd)
        e.op("OBJ")

    def newobj(e: Emit) -> None:
        e.glob("hostile_trap", "Trap")
        e.op("EMPTY_TUPLE").op("NEWOBJ")
        e.value(sentinel)
        e.op("BUILD")

    def newobj_ex(e: Emit) -> None:
        e.glob("hostile_trap", "Trap")
        e.op("EMPTY_TUPLE").op("EMPTY_DICT").op("NEWOBJ_EX")
        e.value(sentinel)
        e.op("BUILD")

    def build_on_reduce(e: Emit) -> None:
        e.glob("hostile_trap", "Trap")
        e.op("EMPTY_TUPLE").op("REDUCE")
        e.value(sentinel)
        e.op("BUILD")

    def build_on_dict(e: Emit) -> None:
        e.op("EMPTY_DICT")
        e.op("EMPTY_DICT")
        e.value("__setstate__")
        e.value(cmd)
        e.op("SETITEM")
        e.op("BUILD")

    def reconstruct_with(module: str, name: str) -> Payload:
        def emit(e: Emit) -> None:
            e.glob("numpy.core.multiarray", "_reconstruct")
            with e.tuple(3):
                e.glob(module, name)
                e.value((0,))
                e.data(b"b")
            e.op("REDUCE")
            with e.tuple(5):
                e.int(1)
                e.value((1,))
                e.dtype("f4")
                e.false()
                e.data(b"\0\0\0\0")
            e.op("BUILD")

        return emit

    def dtype_odd(code: str, state: tuple[Any, ...] | None = None) -> Payload:
        return lambda e: e.dtype(code, state)

    def dtype_args(e: Emit) -> None:
        e.glob("numpy", "dtype")
        with e.tuple(2):
            e.value("f4")
            e.call("os", "system", [lambda: e.value(cmd)])
        e.op("REDUCE")

    def scalar_with(code: str, raw: bytes) -> Payload:
        def emit(e: Emit) -> None:
            e.glob("numpy.core.multiarray", "scalar")
            with e.tuple(2):
                e.dtype(code, (3, "|", None, None, None, -1, -1, 63))
                e.data(raw)
            e.op("REDUCE")

        return emit

    def ndarray_call(e: Emit) -> None:
        e.call("numpy", "ndarray", [])
        e.op("POP")
        e.glob("numpy", "ndarray")
        with e.tuple(1):
            e.value((1 << 40,))
        e.op("REDUCE")

    def codecs_other(e: Emit) -> None:
        e.call("_codecs", "encode", [lambda: e.value(cmd), lambda: e.value("rot13")])

    def ext(name: str, code: int) -> Payload:
        return lambda e: e.op(name, code)

    def persid(e: Emit) -> None:
        e.op("PERSID", cmd)

    def binpersid(e: Emit) -> None:
        e.value(cmd)
        e.op("BINPERSID")

    def next_buffer(e: Emit) -> None:
        e.op("NEXT_BUFFER")

    return {
        "os.system": (call("os", "system", cmd), "'os.system'", True),
        "posix.system": (call("posix", "system", cmd), "'posix.system'", True),
        "nt.system": (call("nt", "system", cmd), "'nt.system'", False),
        "subprocess.Popen": (popen, "'subprocess.Popen'", True),
        "builtins.eval": (call("builtins", "eval", code), "'builtins.eval'", True),
        "builtins.exec": (call("builtins", "exec", code), "'builtins.exec'", True),
        "__builtin__.eval": (call("__builtin__", "eval", code), "'__builtin__.eval'", True),
        "builtins.getattr": (getattr_chain, "'builtins.getattr'", True),
        "builtins.__import__": (import_first, "'builtins.__import__'", True),
        "INST": (inst, "INST ('os.system')", False),
        "OBJ": (obj, "'os.system'", False),
        "OBJ_allowed_global": (
            lambda e: (e.op("MARK"), e.glob("numpy", "dtype"), e.value("f4"), e.op("OBJ")),
            "OBJ",
            False,
        ),
        "NEWOBJ": (newobj, "'hostile_trap.Trap'", True),
        "NEWOBJ_allowed": (
            lambda e: (e.glob("collections", "OrderedDict"), e.op("EMPTY_TUPLE"), e.op("NEWOBJ")),
            "NEWOBJ",
            False,
        ),
        "NEWOBJ_EX": (newobj_ex, "'hostile_trap.Trap'", False),
        "BUILD_trap": (build_on_reduce, "'hostile_trap.Trap'", False),
        "BUILD_dict": (build_on_dict, "BUILD on a dict", False),
        "reconstruct_posix": (reconstruct_with("posix", "system"), "'posix.system'", False),
        "reconstruct_trap": (
            reconstruct_with("hostile_trap", "TrapArray"),
            "'hostile_trap.TrapArray'",
            True,
        ),
        "reconstruct_dtype": (reconstruct_with("numpy", "dtype"), "_reconstruct", False),
        "reconstruct_odict": (
            reconstruct_with("collections", "OrderedDict"),
            "_reconstruct",
            False,
        ),
        "dtype_object": (dtype_odd("O8", (3, "|", None, None, None, -1, -1, 63)), "'O8'", False),
        "dtype_void": (dtype_odd("V8"), "'V8'", False),
        "dtype_structured": (
            dtype_odd("f4", (3, "<", None, ("a",), ("x",), -1, -1, 0)),
            "dtype state",
            False,
        ),
        "dtype_metadata": (
            dtype_odd("f4", (4, "<", None, None, None, -1, -1, 0, (cmd,))),
            "dtype state",
            False,
        ),
        "dtype_call_args": (dtype_args, "'os.system'", False),
        "scalar_object": (scalar_with("O8", b"\0" * 8), "'O8'", False),
        "scalar_unicode": (scalar_with("U1", b"a\0\0\0"), "'U1'", False),
        "ndarray_call": (ndarray_call, "'numpy.ndarray'", False),
        "codecs_rot13": (codecs_other, "_codecs.encode", False),
        "EXT1": (ext("EXT1", 1), "EXT1", False),
        "EXT2": (ext("EXT2", 300), "EXT2", False),
        "EXT4": (ext("EXT4", 70000), "EXT4", False),
        "PERSID": (persid, "PERSID", False),
        "BINPERSID": (binpersid, "BINPERSID", False),
        "NEXT_BUFFER": (next_buffer, "NEXT_BUFFER", False),
    }


def _write(out: Path, name: str, data: bytes, expect: str, live: bool, manifest: dict[str, Any]) -> Path:
    path = out / name
    path.write_bytes(data)
    manifest[name] = {"expect": expect, "live": live}
    return path


def build_corpus(directory: str | Path, deep_arrays: int = 3000) -> list[Path]:
    """Write the hostile corpus into ``directory``; return the pickle paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    sentinel = str((out / SENTINEL).resolve())
    (out / "hostile_trap.py").write_text(TRAP_MODULE.format(sentinel=sentinel))
    manifest: dict[str, Any] = {}
    paths: list[Path] = []
    for name, (emit, expect, also_stack) in _payloads(sentinel).items():
        for p in PROTOCOLS:
            if name == "NEXT_BUFFER" and p < 5:
                continue
            for sg in (False, True) if also_stack and p >= 4 else (False,):
                tag = "stack" if sg else "global"
                data = checkpoint(p, [*_valid_entries(), ("evil_w", emit)], stack_global=sg)
                # Python 3 maps __builtin__ to builtins only for protocols 0-2.
                live = name in LIVE and (name != "__builtin__.eval" or p <= 2)
                fname = f"p{p}_{tag}_{name}.pkl"
                paths.append(_write(out, fname, data, expect, live, manifest))
    # Malicious only at the very end of a large valid checkpoint ...
    many = [(f"res{i}_w", lambda e, i=i: e.array(np.full(4, i, np.float32))) for i in range(deep_arrays)]
    evil = _payloads(sentinel)["posix.system"][0]
    for p in (0, 2, 5):
        data = checkpoint(p, [*many, ("zz_w", evil)])
        fname = f"p{p}_deep_posix.system.pkl"
        paths.append(_write(out, fname, data, "'posix.system'", True, manifest))
    # ... and inside a value the reader drops without keeping (momentum).
    for p in (2, 4):
        data = checkpoint(p, [*_valid_entries(), ("conv1_w_momentum", evil)])
        fname = f"p{p}_momentum_posix.system.pkl"
        paths.append(_write(out, fname, data, "'posix.system'", True, manifest))
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return paths


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    paths = build_corpus(argv[1])
    print(f"wrote {len(paths)} hostile pickles to {argv[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
