"""Coverage-guided fuzzing of the checkpoint readers with atheris (a separate, long run).

    pip install atheris
    python tests/hostile/fuzz_atheris.py -atheris_runs=2000000 [-max_len=65536] [CORPUS_DIR]

Seeds CORPUS_DIR (created if missing) with valid checkpoints of every protocol and an
init_net. A crash is any exception other than NLConvertError, or a message that is not one
printable line.
Not part of the pytest suite.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports():
    import numpy as np

    from nlconvert.errors import NLConvertError
    from nlconvert.io import blobs_from_init_net, loads_pickle, netdef_from_blobs
    from nlconvert.io.checkpoint import keep_blob
    from nlconvert.io.netdef_io import parse_netdef
    from nlconvert.io.py2pickle import Py2Writer, official_entries


def _seed(corpus: Path) -> None:
    corpus.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    blobs = {
        "conv1_w": rng.standard_normal((2, 3, 1, 3, 3)).astype(np.float32),
        "res_conv1_bn_s": rng.standard_normal(2).astype(np.float32),
    }
    for protocol in range(6):
        data = pickle.dumps({"blobs": blobs, "lr": 0.1}, protocol=protocol)
        (corpus / f"py3_p{protocol}.pkl").write_bytes(data)
    for protocol in (0, 2):
        with open(corpus / f"py2_p{protocol}.pkl", "wb") as f:
            entries = official_entries(blobs, 10, 0.1) if protocol == 2 else dict(blobs)
            Py2Writer(f, protocol).dump({"blobs": entries} if protocol == 2 else entries)
    (corpus / "init_net.pb").write_bytes(netdef_from_blobs(blobs).SerializeToString())


def test_one_input(data: bytes) -> None:
    try:
        if data[:1] in (b"\x0a", b"\x12"):
            blobs_from_init_net(parse_netdef(data, "fuzz.pb"), "fuzz.pb")
        else:
            loads_pickle(data, name="fuzz.pkl", keep=keep_blob)
    except NLConvertError as e:
        if not str(e).isprintable():
            raise AssertionError(f"non-printable message: {e!r}") from e


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    corpus = Path(args[0]) if args else Path("fuzz_corpus")
    _seed(corpus)
    if not args:
        sys.argv.append(str(corpus))
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
