"""On-disk SQLite cache of chat-model replies.

The key is a SHA-256 over everything that decides a reply: provider, model, base URL, the
messages, the response schema and the generation settings (temperature, seed, max tokens,
JSON mode). API keys are never part of a key or a value. One file may be shared by several
processes (WAL mode); within a process one connection serves every thread under a lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

DEFAULT_CACHE_ENV = "SPECDECODE_LLM_CACHE"


def default_cache_path() -> Path:
    """``$SPECDECODE_LLM_CACHE`` or ``~/.cache/specdecode/llm-cache.sqlite``."""
    env = os.environ.get(DEFAULT_CACHE_ENV)
    if env:
        return Path(env)
    return Path.home() / ".cache" / "specdecode" / "llm-cache.sqlite"


def public_url(url: str | None) -> str | None:
    """``url`` without credentials (user info, query string, fragment): fit for a fingerprint
    that is written to disk."""
    if not url:
        return None
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path, "", ""))


def cache_key(parts: dict[str, Any]) -> str:
    """A stable hash of a JSON-able description of one request."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ReplyCache:
    """``get(key)`` / ``put(key, text)`` with hit and miss counters."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, provider TEXT, model TEXT, "
                "text TEXT NOT NULL, created REAL)"
            )
            self._db.commit()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT text FROM replies WHERE key = ?", (key,)).fetchone()
            if row is None:
                self.misses += 1
                return None
            self.hits += 1
            return str(row[0])

    def put(self, key: str, text: str, provider: str, model: str) -> None:
        """Store a reply (redacted: a key the server echoed is never stored)."""
        from specdecode.outputs import redact

        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?)",
                (key, provider, model, redact(text), time.time()),
            )
            self._db.commit()

    def forget(self, key: str) -> None:
        """Drop one entry (a reply that turned out unusable is asked for again next time)."""
        with self._lock:
            self._db.execute("DELETE FROM replies WHERE key = ?", (key,))
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()
