"""Real traces from public benchmarks, with their tools really executed (``specdecode data bench``).

τ-bench (through the MIT-licensed ``tau-trait`` package) ships customer-service tasks, each with
the user's instruction and the gold sequence of tool calls an agent should make, plus the tools
themselves: pure Python functions over a JSON database. A trace here is

* question — the task's user instruction;
* trace — the gold actions in order, each with the **real** result of running that tool with
  those arguments on the package's own data, in order, on a fresh copy of the data per task (so
  a write changes what later reads of the same task see). Nothing is invented;
* registry — the tools' own JSON schemas; ``read_only`` from the verb a tool's name starts with.

The split is seeded and deterministic, and groups tasks by user: τ-bench writes several variants
of one user's request, and a variant in training would give its twin's arguments away.

Only the tool, data and task modules are loaded (by path), so the package's own dependencies
(``litellm`` and the model SDKs its agents use) need not be installed.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import importlib.util
import json
import random
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from specdecode.errors import InputError
from specdecode.gaia.split import SPLITS, split_counts
from specdecode.outputs import write_text
from specdecode.records import ToolCall, ToolSpec, TraceRecord, TraceStep
from specdecode.registry import Registry

PACKAGE = "tau_trait"
INSTALL_HINT = "pip install 'specdecode[bench]' (or: pip install --no-deps tau-trait)"
READ_VERBS = ("get", "find", "list", "search", "calculate", "think")
WRITE_VERBS = ("modify", "cancel", "return", "exchange", "book", "update", "send", "transfer")
DEFAULT_RATIOS = (0.6, 0.1, 0.3)


@dataclass(frozen=True)
class Benchmark:
    """One benchmark ``data bench`` can write: a τ-bench domain of ``tau-trait``."""

    name: str
    domain: str
    description: str


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark("tau-retail", "retail", "τ-bench retail: orders, returns, exchanges (16 tools)"),
        Benchmark("tau-airline", "airline", "τ-bench airline: flights, reservations, baggage (14 tools)"),
    )
}
TASK_SPLITS = ("test", "train", "dev")


def benchmark(name: str) -> Benchmark:
    """The benchmark called ``name``; one-line error listing the known ones otherwise."""
    if name not in BENCHMARKS:
        raise InputError(f"unknown benchmark {name!r}: choose {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


def is_read_only(tool_name: str) -> bool:
    """Reads (get/find/list/search/calculate/think) are safe to run ahead of time; writes
    (modify/cancel/return/exchange/book/update/send/transfer) and anything unknown are not."""
    verb = tool_name.split("_", 1)[0].lower()
    return verb in READ_VERBS


# --------------------------------------------------------------------------- loading the package
def package_root() -> Path:
    """Where ``tau_trait`` is installed, found without importing it (its ``__init__`` imports
    ``litellm``); a one-line error naming the extra when it is missing."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"the τ-bench benchmarks need the tau-trait package: {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tau-trait")
    except PackageNotFoundError:
        return "unknown"


@contextlib.contextmanager
def _bare_packages(root: Path, domain: str) -> Iterator[None]:
    """Make ``tau_trait``, ``tau_trait.envs`` and the domain importable as empty packages (their
    ``__init__`` files import the agents' LLM clients), then leave ``sys.modules`` as it was."""
    if PACKAGE in sys.modules:  # the real package is already imported: use it
        yield
        return
    before = set(sys.modules)
    stubs = {
        PACKAGE: root,
        f"{PACKAGE}.envs": root / "envs",
        f"{PACKAGE}.envs.{domain}": root / "envs" / domain,
    }
    for name, path in stubs.items():
        module = types.ModuleType(name)
        module.__path__ = [str(path)]  # type: ignore[attr-defined]
        module.__package__ = name
        sys.modules[name] = module
    try:
        yield
    finally:
        for name in set(sys.modules) - before:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                del sys.modules[name]


@dataclass(frozen=True)
class Domain:
    """A τ-bench domain as loaded from the package: its tools, its data loader, its tasks."""

    tools: dict[str, Any]  # name → tool class (``invoke(data, **kwargs)``, ``get_info()``)
    load_data: Callable[[], dict[str, Any]]
    tasks: tuple[Any, ...]


def _task_list(module: Any) -> list[Any]:
    for value in vars(module).values():
        if isinstance(value, list) and value and all(hasattr(t, "actions") for t in value):
            return value
    return []


@lru_cache(maxsize=8)
def load_domain(domain: str, task_split: str = "test") -> Domain:
    """Tools, data loader and tasks of one τ-bench domain, loaded by path."""
    root = package_root()
    if not (root / "envs" / domain / f"tasks_{task_split}.py").is_file():
        raise InputError(f"tau-trait {package_version()} has no {task_split} tasks for {domain}")
    try:
        with _bare_packages(root, domain):
            prefix = f"{PACKAGE}.envs.{domain}"
            tools_module = importlib.import_module(f"{prefix}.tools")
            data_module = importlib.import_module(f"{prefix}.data")
            tasks_module = importlib.import_module(f"{prefix}.tasks_{task_split}")
    except Exception as exc:  # a package version whose modules we cannot load
        raise InputError(
            f"cannot load tau-trait's {domain} modules ({type(exc).__name__}: {exc})".splitlines()[0]
        ) from None
    tools = {cls.get_info()["function"]["name"]: cls for cls in tools_module.ALL_TOOLS}
    return Domain(tools, data_module.load_data, tuple(_task_list(tasks_module)))


# --------------------------------------------------------------------------- registry and traces
def registry_of(bench: Benchmark, domain: Domain) -> Registry:
    """The tools' own JSON schemas, ``read_only`` from the verb, family = the domain."""
    specs = []
    for name, cls in domain.tools.items():
        function = cls.get_info()["function"]
        specs.append(
            ToolSpec(
                name=name,
                description=function.get("description") or name,
                parameters=function.get("parameters") or {"type": "object", "properties": {}},
                read_only=is_read_only(name),
                family=bench.domain,
            )
        )
    return Registry(name=bench.name, tools=tuple(specs))


def run_actions(domain: Domain, actions: Sequence[Any], data: dict[str, Any]) -> list[TraceStep]:
    """Execute the gold actions in order on ``data`` (changed in place by writes); each step's
    observation is the tool's real result (or ``Error: …`` as the τ-bench environment reports)."""
    steps = []
    for action in actions:
        arguments = copy.deepcopy(dict(action.kwargs))
        tool = domain.tools.get(action.name)
        if tool is None:
            observation = f"Error: unknown action {action.name}"
        else:
            try:
                observation = tool.invoke(data=data, **copy.deepcopy(arguments))
            except Exception as exc:  # the environment's own rule: errors become observations
                observation = f"Error: {exc}"
        steps.append(
            TraceStep(
                thought="",
                action=ToolCall(tool_name=action.name, arguments=arguments),
                observation=str(observation),
            )
        )
    return steps


def build_traces(
    name: str, task_split: str = "test", limit: int | None = None
) -> tuple[list[TraceRecord], Registry, dict[str, Any]]:
    """Every task of ``name`` (the first ``limit``) as a trace with executed observations, the
    registry, and counts. Tasks without actions are skipped, and so are tasks whose gold calls
    name a tool the package does not have or break the tool's own schema (a few do: typos in the
    package's annotations); both are counted, the latter listed with the reason."""
    from specdecode.teacher.validate import TraceValidator

    bench = benchmark(name)
    domain = load_domain(bench.domain, task_split)
    registry = registry_of(bench, domain)
    validator = TraceValidator(registry)
    tasks = list(domain.tasks)[:limit] if limit else list(domain.tasks)
    pristine = json.dumps(domain.load_data())  # a fresh copy per task: json.loads is fast
    shared = json.loads(pristine)
    records, empty, invalid = [], 0, []
    for index, task in enumerate(tasks):
        if not task.actions:
            empty += 1
            continue
        task_id = f"{bench.name}-{task_split}-{index:03d}"
        calls = TraceRecord(
            id=task_id,
            question=task.instruction,
            trace=[
                TraceStep(action=ToolCall(tool_name=a.name, arguments=dict(a.kwargs))) for a in task.actions
            ],
        )
        issues = validator.issues(calls)
        if issues:
            invalid.append({"id": task_id, "reason": issues[0]})
            continue
        writes = any(not is_read_only(a.name) for a in task.actions)
        data = json.loads(pristine) if writes else shared  # reads never change the data
        records.append(
            TraceRecord(
                id=task_id,
                question=task.instruction,
                trace=run_actions(domain, task.actions, data),
                final_answer=", ".join(map(str, task.outputs)) if getattr(task, "outputs", None) else None,
                benchmark=bench.name,
                task_split=task_split,
                task_index=index,
                user_id=getattr(task, "user_id", None),
            )
        )
    counts = {
        "tasks": len(tasks),
        "traces": len(records),
        "skipped_without_actions": empty,
        "skipped_invalid_gold": invalid,
    }
    return records, registry, counts


def split_by_user(
    records: Sequence[TraceRecord], ratios: Sequence[float] = DEFAULT_RATIOS, seed: int = 0
) -> dict[str, list[TraceRecord]]:
    """Seeded train/val/test split in which one user's tasks never straddle two splits.

    Users are shuffled (sorted first, so input order does not matter) and dealt to the split
    furthest below its share of tasks; each split keeps the input order."""
    if len(ratios) != len(SPLITS) or any(r < 0 for r in ratios) or abs(sum(ratios) - 1) > 1e-6:
        raise InputError(f"--ratios: expected three non-negative numbers summing to 1, got {list(ratios)}")
    groups: dict[str, list[int]] = {}
    for i, record in enumerate(records):
        key = str((record.model_extra or {}).get("user_id") or record.id)
        groups.setdefault(key, []).append(i)
    users = sorted(groups)
    random.Random(seed).shuffle(users)
    targets = split_counts(len(records), ratios)
    taken = [0] * len(SPLITS)
    owner: dict[int, int] = {}
    for user in users:
        # the split furthest below its target (relative), ties to the earlier split
        pick = max(range(len(SPLITS)), key=lambda s: ((targets[s] - taken[s]) / max(targets[s], 1), -s))
        taken[pick] += len(groups[user])
        for i in groups[user]:
            owner[i] = pick
    return {name: [r for i, r in enumerate(records) if owner[i] == s] for s, name in enumerate(SPLITS)}


def trace_stats(records: Sequence[TraceRecord], registry: Registry) -> dict[str, Any]:
    """Counts that describe a trace set (for the manifest and the CLI's closing line)."""
    steps = [s for r in records for s in r.trace]
    reads = sum(1 for s in steps if (spec := registry.get(s.action.tool_name)) and spec.read_only)
    lengths = [len(s.observation or "") for s in steps]
    return {
        "traces": len(records),
        "steps": len(steps),
        "steps_per_trace": round(len(steps) / len(records), 2) if records else 0.0,
        "read_only_steps": reads,
        "observation_chars_mean": round(sum(lengths) / len(lengths), 1) if lengths else 0.0,
        "observation_chars_max": max(lengths, default=0),
    }


def write_bench(
    name: str,
    out: str | Path,
    *,
    seed: int = 0,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    task_split: str = "test",
    limit: int | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write ``train/val/test.jsonl``, ``all.jsonl``, ``tools.yaml`` and ``bench.json`` under
    ``out``; returns the manifest. Everything is checked before anything is written; each file
    is written atomically. A folder holding another benchmark's (or a user's) files is refused
    unless ``overwrite``."""
    import yaml

    from specdecode.jsonl import write_json, write_jsonl

    out = Path(out)
    bench = benchmark(name)
    if task_split not in TASK_SPLITS:
        raise InputError(f"--task-split: choose {', '.join(TASK_SPLITS)}, not {task_split!r}")
    if out.exists() and not out.is_dir():
        raise InputError("is a file, expected a folder for the benchmark's files (--out)", out)
    files = [*(f"{s}.jsonl" for s in SPLITS), "all.jsonl", "tools.yaml"]
    manifest_path = out / "bench.json"
    if not overwrite and any((out / f).exists() for f in files):
        ours = False
        with contextlib.suppress(OSError, ValueError):
            ours = json.loads(manifest_path.read_text(encoding="utf-8")).get("benchmark") == bench.name
        if not ours:
            raise InputError(
                "holds files not written for this benchmark: pass --overwrite or pick another --out", out
            )
    records, registry, counts = build_traces(bench.name, task_split, limit)
    if not records:
        raise InputError(f"{bench.name}: no usable tasks (see --limit)")
    parts = split_by_user(records, ratios, seed)
    for split, rows in parts.items():
        write_jsonl(out / f"{split}.jsonl", rows)
    write_jsonl(out / "all.jsonl", records)
    write_text(
        out / "tools.yaml",
        yaml.safe_dump([t.model_dump() for t in registry.tools], sort_keys=False, allow_unicode=True),
    )
    manifest = {
        "benchmark": bench.name,
        "description": bench.description,
        "package": "tau-trait",
        "package_version": package_version(),
        "task_split": task_split,
        "seed": seed,
        "ratios": list(ratios),
        "limit": limit,
        **counts,
        "tools": len(registry.tools),
        "read_only_tools": sum(t.read_only for t in registry.tools),
        "splits": {s: trace_stats(rows, registry) for s, rows in parts.items()},
        "all": trace_stats(records, registry),
    }
    write_json(manifest_path, manifest)
    return manifest
