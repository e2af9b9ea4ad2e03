"""What a proxy serves and how it speculates: its configuration, tool marks and registry, call
identity, forwarded metadata, the shared limits and the one shared predictor."""

from __future__ import annotations

import json
import shlex
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mcp_types as types

from specdecode.errors import InputError
from specdecode.records import ToolCall, ToolSpec
from specdecode.registry import Registry, _schema_problem
from specdecode.speculate.predictors.base import Prediction, Predictor, StepContext

QUESTION_META_KEY = "specdecode/question"  # a call's ``_meta`` entry naming the user's question
STATS_URI = "specdecode://stats"
UNKNOWN_QUESTION = "(question not known to the proxy)"
_SESSION_STATE = "specdecode.mcp_proxy"  # the key of a connection's ProxySession
_OPEN_SCHEMA = {"type": "object", "properties": {}}


# ---------------------------------------------------------------------- configuration
@dataclass
class ProxyConfig:
    """What one proxy serves and how it speculates.

    Attributes:
        upstream: the real MCP server: a command line (started once per client session) or an
            ``http(s)://`` URL of a streamable HTTP endpoint (one upstream session per client
            session).
        predictor: the speculator (any predictor; ``None``: record-only, nothing is pre-run).
        k: candidates per step the launch policy considers.
        lam: the launch policy's λ (0: launch every read-only candidate, up to ``k``).
        costs: tool → cost of a wasted call (the policy; default 1).
        read_only: tool → explicit read-only mark (from ``--read-only-file``); wins over the
            tool's ``readOnlyHint``.
        record: trace JSONL to append each finished turn to (``None``: nothing recorded).
        record_tools: registry JSON of the upstream's tools (default: beside ``record``).
        question: the question of every turn unless a call's ``_meta`` names one.
        session_concurrency: speculative calls running at once in one session.
        max_concurrency: speculative calls running at once in all sessions.
        tool_concurrency: speculative calls of one tool running at once in all sessions.
        tool_limits: tool → its own cap (instead of ``tool_concurrency``).
        rate: speculative calls started per second in all sessions (token bucket; 0: no limit).
        timeout: seconds a speculative call may take (then it is cancelled; the real call runs).
        turn_gap: seconds between a result and the next call after which a new turn starts.
        upstream_errlog: where a started upstream's stderr goes.
    """

    upstream: str
    predictor: Predictor | None = None
    k: int = 1
    lam: float = 0.0
    costs: Mapping[str, float] = field(default_factory=dict)
    read_only: Mapping[str, bool] = field(default_factory=dict)
    record: Path | None = None
    record_tools: Path | None = None
    question: str | None = None
    session_concurrency: int = 4
    max_concurrency: int = 16
    tool_concurrency: int = 2
    tool_limits: Mapping[str, int] = field(default_factory=dict)
    rate: float = 10.0
    timeout: float = 30.0
    turn_gap: float = 120.0
    upstream_errlog: Any = None

    def __post_init__(self) -> None:
        if not self.upstream or not self.upstream.strip():
            raise InputError("--upstream: give the MCP server's command line or its http(s) URL")
        if not is_url(self.upstream):
            try:
                shlex.split(self.upstream)
            except ValueError as exc:
                raise InputError(f"--upstream: not a command line ({exc}): {self.upstream!r}") from None
        if self.record is not None:
            self.record = Path(self.record)
            if self.record_tools is None:
                self.record_tools = tools_path_for(self.record)
            for path in (self.record, Path(self.record_tools)):
                if path.is_dir():
                    raise InputError("--record: is a directory, expected a file to append to", path)
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise InputError(
                        f"--record: cannot create its folder ({exc.strerror or exc})", path
                    ) from None


def tools_path_for(record: str | Path) -> Path:
    """Where the registry of a recorded trace goes: ``traces.jsonl`` → ``traces.tools.json``."""
    path = Path(record)
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    return path.with_name(f"{stem}.tools.json")


def read_only_file(path: str | Path) -> dict[str, bool]:
    """An allow-list of read-only tools: one name a line (``#`` comments); ``!name`` marks a tool
    never to pre-run, whatever its annotation."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the read-only file: {exc}".splitlines()[0], path) from None
    marks: dict[str, bool] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        deny = line.startswith("!")
        name = line[1:].strip() if deny else line
        if not name or any(c.isspace() for c in name):
            raise InputError(f"expected one tool name (or !name) per line, got {raw.strip()!r}", path, number)
        marks[name] = not deny
    return marks


def is_url(target: str) -> bool:
    return target.strip().lower().startswith(("http://", "https://"))


def tool_is_read_only(tool: types.Tool, marks: Mapping[str, bool]) -> bool:
    """An explicit mark wins; else the ``readOnlyHint`` annotation; else never pre-run."""
    if tool.name in marks:
        return bool(marks[tool.name])
    return bool(tool.annotations is not None and tool.annotations.read_only_hint is True)


def registry_of_tools(tools: Sequence[types.Tool], marks: Mapping[str, bool], name: str = "mcp") -> Registry:
    """The upstream's tools as a specdecode registry (read-only marks as above)."""
    specs = []
    for tool in tools:
        schema = dict(tool.input_schema or {})
        if _schema_problem(schema) is not None:
            schema = dict(_OPEN_SCHEMA)
        specs.append(
            ToolSpec(
                name=tool.name,
                description=(tool.description or tool.title or tool.name).strip() or tool.name,
                parameters=schema,
                read_only=tool_is_read_only(tool, marks),
                family="mcp",
            )
        )
    unique = {s.name: s for s in specs}  # a server listing a name twice: the last one
    return Registry(name=name, tools=tuple(unique.values()))


def observation_text(result: types.CallToolResult) -> str:
    """What the agent sees of a result, as a trace observation: its text blocks (other blocks
    as ``[type]``), else its structured content as JSON."""
    parts = []
    for block in result.content or []:
        text = getattr(block, "text", None)
        parts.append(text if isinstance(text, str) else f"[{getattr(block, 'type', 'content')}]")
    if not parts and result.structured_content is not None:
        return json.dumps(result.structured_content, ensure_ascii=False)
    return "\n".join(parts)


def _call_key(name: str, arguments: Mapping[str, Any]) -> str:
    return json.dumps([name, arguments], sort_keys=True, ensure_ascii=False, default=str)


def identical(a: ToolCall, b: ToolCall) -> bool:
    """The same request on the wire: tool name and arguments equal as JSON, types included
    (``true`` is not ``1``, ``1`` is not ``1.0``), stricter than Python's ``==``."""
    return _call_key(a.tool_name, a.arguments) == _call_key(b.tool_name, b.arguments)


_RESERVED_META = "io.modelcontextprotocol/"  # the protocol's own envelope keys: per hop, never forwarded
_HOP_META = ("progressToken", "progress_token", QUESTION_META_KEY)


def _forwardable_meta(meta: Any) -> dict[str, Any]:
    """A request's ``_meta`` as the upstream may see it: without the protocol's envelope keys
    (they describe the client's hop to the proxy), the progress token (the proxy relays progress
    itself) and the proxy's own question key."""
    return {
        k: v for k, v in _meta_dict(meta).items() if not k.startswith(_RESERVED_META) and k not in _HOP_META
    }


def _forwardable(params: Any) -> Any:
    """Request params as the upstream may see them (see :func:`_forwardable_meta`)."""
    if params is None or not getattr(params, "meta", None):
        return params
    return params.model_copy(update={"meta": _forwardable_meta(params.meta) or None})


def _meta_dict(meta: Any) -> dict[str, Any]:
    if meta is None:
        return {}
    if isinstance(meta, Mapping):
        return dict(meta)
    dump = getattr(meta, "model_dump", None)
    return dict(dump(by_alias=True)) if dump else {}


# ---------------------------------------------------------------------- limits
class Limits:
    """Caps shared by every session's executor (its ``admit`` hook): speculative calls running
    at once in all and per tool, and a token bucket of speculative calls per second."""

    def __init__(
        self, total: int, per_tool: int, tool_limits: Mapping[str, int] | None = None, rate: float = 0
    ):
        self.total, self.per_tool = max(1, total), max(0, per_tool)
        self.tool_limits = dict(tool_limits or {})
        self.rate = max(0.0, rate)
        self.burst = max(1.0, self.rate)
        self._tokens, self._stamp = self.burst, time.monotonic()
        self._lock = threading.Lock()
        self.running = 0
        self.running_per_tool: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()  # why: total, tool, rate

    def cap(self, tool: str) -> int:
        return int(self.tool_limits.get(tool, self.per_tool))

    def admit(self, call: ToolCall) -> Callable[[], None] | None:
        tool = call.tool_name
        with self._lock:
            if self.rate:
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
            why = None
            if self.running >= self.total:
                why = "total"
            elif self.running_per_tool[tool] >= self.cap(tool):
                why = "tool"
            elif self.rate and self._tokens < 1:
                why = "rate"
            if why is not None:
                self.refused[why] += 1
                return None
            if self.rate:
                self._tokens -= 1
            self.running += 1
            self.running_per_tool[tool] += 1
        done = threading.Event()

        def release() -> None:
            with self._lock:
                if done.is_set():
                    return
                done.set()
                self.running -= 1
                self.running_per_tool[tool] -= 1

        return release


class _Serialised(Predictor):
    """One predictor shared by every session's executor, one prediction at a time."""

    def __init__(self, inner: Predictor):
        self.inner, self.name = inner, getattr(inner, "name", "predictor")
        self._lock = threading.Lock()

    def predict(self, context: StepContext, k: int = 1) -> list[ToolCall]:
        return self.predict_many([context], k)[0].calls

    def predict_many(self, contexts: Sequence[StepContext], k: int = 1) -> list[Prediction]:
        with self._lock:
            return self.inner.predict_many(contexts, k)

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()
