"""Per-video evaluation results in SQLite, written as they are computed.

WAL mode, one transaction per video: a killed run loses at most the video in flight, and a
rerun with the same database skips every video already recorded (scored or failed), so no
video is ever scored twice (a second write of a key is ignored, so a driver that sees a
result twice records it once). The ``runs`` table pins the model (SHA-256 of its file), the
architecture, the views, the clip and the backend; a database made with another model or
another backend is refused.

Each database has a random identity (``meta.database_id``, made when it is created): the
reports written from it carry it, so a rerun may rewrite its own reports (they are views of
the database) while any other existing file still needs ``--force``. Each scored video keeps
its decode ``warnings`` (a JSON list, empty for a clean video).
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..arch import ranked
from ..errors import NLConvertError

SCHEMA_VERSION = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    schema_version INTEGER NOT NULL,
    model_sha256 TEXT NOT NULL,
    model_path TEXT NOT NULL,
    arch TEXT NOT NULL,
    views TEXT NOT NULL,
    frames INTEGER NOT NULL,
    rate INTEGER NOT NULL,
    num_classes INTEGER NOT NULL,
    created REAL NOT NULL,
    backend TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    list_path TEXT NOT NULL,
    started REAL NOT NULL,
    finished REAL
);
CREATE TABLE IF NOT EXISTS videos (
    key TEXT PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    path TEXT,
    label INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    kind TEXT,
    reason TEXT,
    pred INTEGER,
    top5 TEXT,
    scores BLOB,
    num_frames INTEGER,
    seconds REAL,
    recorded REAL NOT NULL,
    warnings TEXT
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


class DatabaseMismatchError(NLConvertError):
    """The results database belongs to another model, architecture or view setting."""


@dataclass(frozen=True)
class RunConfig:
    """What makes results comparable: the same model file, architecture, views, clip and
    backend (``name/precision``, e.g. ``onnx/fp32``)."""

    model_sha256: str
    model_path: str
    arch: str
    views: str
    frames: int
    rate: int
    num_classes: int
    backend: str = "torch/fp32"

    def identity(self) -> tuple[Any, ...]:
        """The fields that must match to reuse a database (not the model's path)."""
        return (self.model_sha256, self.arch, self.views, self.frames, self.rate, self.num_classes,
                self.backend)


@dataclass(frozen=True)
class VideoResult:
    """One recorded video."""

    key: str
    label: int
    status: str  # "ok" or "failed"
    kind: str | None
    reason: str | None
    pred: int | None
    top5: list[int] | None
    num_frames: int | None
    seconds: float | None
    warnings: tuple[str, ...] = ()


class ResultsDB:
    """An open results database bound to one :class:`RunConfig`."""

    def __init__(self, path: str | Path, config: RunConfig, list_path: str = "") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(_SCHEMA)
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise NLConvertError(f"{self.path}: not a usable results database ({exc})") from None
        self.config = config
        self.database_id = self._identity()
        self.run_id = self._bind(config)
        cur = self.conn.execute(
            "INSERT INTO sessions (run_id, list_path, started) VALUES (?, ?, ?)",
            (self.run_id, list_path, time.time()),
        )
        self.session_id = int(cur.lastrowid or 0)

    def _identity(self) -> str:
        """This database's identity, made once (databases of schema 2 get theirs now)."""
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("INSERT OR IGNORE INTO meta (name, value) VALUES ('database_id', ?)",
                              (uuid.uuid4().hex,))
        row = self.conn.execute("SELECT value FROM meta WHERE name = 'database_id'").fetchone()
        return str(row[0])

    def _migrate(self) -> None:
        """Schema 1 databases have no backend column: they were scored by the exact model
        (PyTorch for a .pt/.pkl, ONNX Runtime for an .onnx), i.e. today's torch or onnx.
        Schema 2 ones have no warnings column (their videos are read as without warnings)."""
        if "warnings" not in {row[1] for row in self.conn.execute("PRAGMA table_info(videos)")}:
            self.conn.execute("ALTER TABLE videos ADD COLUMN warnings TEXT")
        columns = {row[1] for row in self.conn.execute("PRAGMA table_info(runs)")}
        if "backend" not in columns:
            self.conn.execute("ALTER TABLE runs ADD COLUMN backend TEXT NOT NULL DEFAULT ''")
        self.conn.execute(
            "UPDATE runs SET backend = CASE WHEN model_path LIKE '%.onnx' THEN 'onnx/fp32' "
            "ELSE 'torch/fp32' END WHERE backend = ''")

    def _bind(self, config: RunConfig) -> int:
        rows = self.conn.execute(
            "SELECT id, model_sha256, arch, views, frames, rate, num_classes, backend, model_path "
            "FROM runs ORDER BY id"
        ).fetchall()
        for row in rows:
            if tuple(row[1:8]) == config.identity():
                return int(row[0])
        if rows:
            old = rows[0]
            what = ("another backend" if tuple(old[1:7]) == config.identity()[:6]
                    else "another setting")
            raise DatabaseMismatchError(
                f"{self.path} holds results of {what} (model {old[8]} sha256 "
                f"{old[1][:12]}, arch {old[2]}, views {old[3]}, clip {old[4]}x{old[5]}, backend "
                f"{old[7]}); this run is {config.model_path} sha256 {config.model_sha256[:12]}, "
                f"arch {config.arch}, views {config.views}, clip {config.frames}x{config.rate}, "
                f"backend {config.backend}: results of different settings are never mixed, "
                "use another --db"
            )
        cur = self.conn.execute(
            "INSERT INTO runs (schema_version, model_sha256, model_path, arch, views, frames, "
            "rate, num_classes, created, backend) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (SCHEMA_VERSION, config.model_sha256, config.model_path, config.arch, config.views,
             config.frames, config.rate, config.num_classes, time.time(), config.backend),
        )
        return int(cur.lastrowid or 0)

    def done_keys(self) -> set[str]:
        """Keys already recorded (scored or failed) for this run."""
        rows = self.conn.execute("SELECT key FROM videos WHERE run_id = ?", (self.run_id,))
        return {r[0] for r in rows}

    def record_ok(
        self, key: str, path: str, label: int, scores: np.ndarray, num_frames: int, seconds: float,
        warnings: tuple[str, ...] | list[str] = (),
    ) -> None:
        """Store a scored video (its summed softmax scores, its decode warnings) in one
        transaction."""
        self._insert(
            key, path, label, "ok", None, None, int(np.argmax(scores)),
            json.dumps(ranked(scores, 5)),
            np.asarray(scores, dtype=np.float32).tobytes(), num_frames, seconds,
            json.dumps(list(warnings)),
        )

    def record_failure(
        self, key: str, path: str | None, label: int, kind: str, reason: str, seconds: float
    ) -> None:
        """Store a video that could not be scored, with a one-line reason."""
        reason = " ".join(reason.split())
        self._insert(key, path, label, "failed", kind, reason, None, None, None, None, seconds,
                     "[]")

    def _insert(self, *values: Any) -> None:
        with self.conn:  # one transaction per video
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute(  # a key already recorded keeps its first result
                "INSERT OR IGNORE INTO videos (key, path, label, status, kind, reason, pred, top5, scores, "
                "num_frames, seconds, warnings, run_id, session_id, recorded) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*values, self.run_id, self.session_id, time.time()),
            )

    def results(self) -> dict[str, VideoResult]:
        """Every recorded video of this run, by key."""
        rows = self.conn.execute(
            "SELECT key, label, status, kind, reason, pred, top5, num_frames, seconds, warnings "
            "FROM videos WHERE run_id = ?",
            (self.run_id,),
        )
        out = {}
        for key, label, status, kind, reason, pred, top5, nf, sec, warned in rows:
            out[key] = VideoResult(
                key, label, status, kind, reason, pred, json.loads(top5) if top5 else None, nf, sec,
                tuple(json.loads(warned)) if warned else (),
            )
        return out

    def scores(self, key: str) -> np.ndarray | None:
        """The stored summed scores of a video (None if it failed or is absent)."""
        row = self.conn.execute(
            "SELECT scores FROM videos WHERE run_id = ? AND key = ?", (self.run_id, key)
        ).fetchone()
        return np.frombuffer(row[0], dtype=np.float32).copy() if row and row[0] else None

    def close(self) -> None:
        """Mark the session finished and close."""
        self.conn.execute(
            "UPDATE sessions SET finished = ? WHERE id = ?", (time.time(), self.session_id)
        )
        self.conn.close()


def database_id(path: str | Path) -> str | None:
    """The identity of the results database at `path`, read without changing it (None when
    there is no such database, or it has no identity yet)."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=30)
        try:
            row = conn.execute("SELECT value FROM meta WHERE name = 'database_id'").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return None
    return str(row[0]) if row else None
