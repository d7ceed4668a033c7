"""README.md runs as written: its command lines and Python blocks, on generated checkpoints.

How README blocks are read (for whoever adds a README section):

* Fenced blocks tagged ``bash`` (or ``sh``, ``shell``, ``console``) and ``python`` (or ``py``)
  are run, in the order they appear, in one folder (:func:`workspace`) that holds what a
  user would have: an official-format ``i3d_nonlocal_8x8_IN_pretrain_400k.pkl`` (generated,
  seeded), the same weights as ``some/dir/model.pkl``, ``i3d_baseline_32x2_IN_pretrain_400k.pkl``, the 2D
  ``r50_pretrain_c2_model_iter450450_clean.pkl``, ``clip.npy``, ``video.mp4``, ``videos/`` +
  ``list.txt``, ``val_256/`` + ``vallist.txt``. What a line writes is there for the next lines.
  Untagged blocks (file trees, output) are not run.
* In a shell block, only the lines that start with ``nlconvert `` are run (a line ending in
  ``\\`` continues on the next); set-up lines (``pip``, ``python -m venv``, ``ray start``) are
  not. Each must exit 0. A line with ``--ray`` needs a Ray cluster and is left to the Ray suite
  (``-m ray``).
* A Python block runs in a fresh namespace, with that folder as the working directory.
* **Marker**: a block is not run when the line right before its opening fence is
  ``<!-- readme-test: skip (REASON) -->`` with a reason (it needs a GPU, a cluster, network
  access or an optional extra the test environment lacks). The marker is visible in the
  Markdown source and renders as nothing.

The run is slow (full-size ResNet-50 networks: conversions, exports, parity at 224 px, 30-view
predictions): ``-m slow``. The reader of the README itself is tested in the default suite.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
SHELL_TAGS = ("bash", "sh", "shell", "console")
PYTHON_TAGS = ("python", "py")
_FENCE = re.compile(r"^```\s*([\w+-]*)\s*$")
_SKIP = re.compile(r"^<!--\s*readme-test:\s*skip\s*\((.+)\)\s*-->\s*$")


@dataclass
class Block:
    """A fenced block of the README: its tag, the line its code starts at, its code."""

    tag: str
    line: int
    code: str
    skip: str | None  # the marker's reason, if it is marked

    @property
    def kind(self) -> str | None:
        if self.tag in SHELL_TAGS:
            return "shell"
        if self.tag in PYTHON_TAGS:
            return "python"
        return None


def read_blocks(text: str) -> list[Block]:
    """Every fenced block of a Markdown text, with the skip marker right before its fence."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        marker = _SKIP.match(lines[i - 1].strip()) if i else None
        start = i + 1
        j = start
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        blocks.append(Block(m.group(1).lower(), start + 1, "\n".join(lines[start:j]),
                            marker.group(1) if marker else None))
        i = j + 1
    return blocks


def shell_commands(code: str) -> list[str]:
    """The ``nlconvert`` command lines of a shell block (continuations joined), ``--ray``
    lines left out."""
    joined: list[str] = []
    pending = ""
    for raw in code.splitlines():
        line = pending + raw
        if line.rstrip().endswith("\\"):
            pending = line.rstrip()[:-1] + " "
            continue
        pending = ""
        joined.append(line.strip())
    return [c for c in joined if c.startswith("nlconvert ") and "--ray" not in c.split()]


def test_the_readme_reader() -> None:
    """The extractor itself (default suite): tags, markers, continuations, what is left out."""
    text = "\n".join([
        "```bash", "pip install x", "nlconvert info --list-archs   # the zoo",
        "nlconvert features m.pt \\", "    v/ --out f/", "nlconvert evaluate m.pt --ray auto", "```",
        "<!-- readme-test: skip (needs a GPU) -->", "```python", "import torch", "```",
        "```", "nlconvert/  a tree", "```",
    ])
    shell, python, tree = read_blocks(text)
    assert (shell.kind, shell.line, shell.skip) == ("shell", 2, None)
    assert shell_commands(shell.code) == ["nlconvert info --list-archs   # the zoo",
                                          "nlconvert features m.pt      v/ --out f/"]
    assert (python.kind, python.skip, python.code) == ("python", "needs a GPU", "import torch")
    assert tree.kind is None
    found = read_blocks(README.read_text(encoding="utf-8"))
    assert any(b.kind == "python" for b in found)
    assert sum(len(shell_commands(b.code)) for b in found if b.kind == "shell") >= 15


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files a user of the README has (see the module doc)."""
    import numpy as np
    import videos as V

    from nlconvert.synthetic import release_file_name, write_synthetic_checkpoint

    ws = tmp_path_factory.mktemp("readme")
    released = ws / f"{release_file_name('i3d_nonlocal_8x8')}.pkl"
    write_synthetic_checkpoint("i3d_nonlocal_8x8", released, seed=0)
    (ws / "some" / "dir").mkdir(parents=True)
    shutil.copy(released, ws / "some" / "dir" / "model.pkl")
    baseline = f"{release_file_name('i3d_baseline_32x2')}.pkl"  # the anomaly-detection recipe
    write_synthetic_checkpoint("i3d_baseline_32x2", ws / baseline, seed=2)
    write_synthetic_checkpoint("r50_imagenet_2d", ws / f"{release_file_name('r50_imagenet_2d')}.pkl",
                               seed=1)
    rng = np.random.default_rng(0)
    np.save(ws / "clip.npy", rng.standard_normal((1, 3, 8, 112, 112)).astype(np.float32))
    V.make_video(ws / "video.mp4", 320, 240, 40)
    (ws / "videos" / "a").mkdir(parents=True)
    V.make_video(ws / "videos" / "a" / "one.mp4", 320, 240, 30)
    V.make_video(ws / "videos" / "two.mkv", 240, 320, 12)
    (ws / "list.txt").write_text("a/one.mp4\ntwo.mkv\n")
    (ws / "val_256" / "abseiling").mkdir(parents=True)
    V.make_video(ws / "val_256" / "abseiling" / "aaaaaaaaaaa.mp4", 320, 240, 24)
    (ws / "vallist.txt").write_text("/data/val_256/abseiling/aaaaaaaaaaa.mp4 0\n")
    return ws


@pytest.mark.slow
def test_readme_runs_as_written(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("av", "onnxruntime", "safetensors"):  # the README's set-up: nlconvert[all]
        pytest.importorskip(module, reason=f"the README's commands need nlconvert[all] ({module})")
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    failures: list[str] = []
    ran = 0
    monkeypatch.chdir(workspace)
    for block in read_blocks(README.read_text(encoding="utf-8")):
        if block.skip or block.kind is None:
            continue
        if block.kind == "shell":
            for command in shell_commands(block.code):
                done = subprocess.run(command, shell=True, cwd=workspace, env=env,
                                      capture_output=True, text=True, timeout=1800)
                ran += 1
                if done.returncode != 0:
                    failures.append(f"README.md:{block.line}: `{command}` exited "
                                    f"{done.returncode}: {done.stderr.strip()[-600:]}")
        else:
            ran += 1
            try:
                exec(compile(block.code, f"README.md:{block.line}", "exec"),  # noqa: S102
                     {"__name__": "__readme__"})
            except Exception as exc:  # noqa: BLE001 - every failing block is reported
                failures.append(f"README.md:{block.line}: the Python block raised "
                                f"{type(exc).__name__}: {exc}")
    assert ran >= 15
    assert not failures, "\n".join(failures)
