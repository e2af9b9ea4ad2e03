"""The bad-input corpus (tests/corpus/cases.yaml) through the real CLI, one subprocess per case.

Each case runs in a fresh folder and must end with the expected exit code and, on failure, one
``error:`` line naming file, line and field where there is one, with no traceback, and with its
folder (where outputs go) and the corpus files exactly as they were. The cases start together in a
thread pool the first time one is asked for, so the corpus costs about its slowest case plus the
total CPU time over the cores, not the sum of its cases.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import DATA

CORPUS = Path(__file__).resolve().parent / "corpus"
FILES = CORPUS / "files"
CASES: list[dict[str, Any]] = yaml.safe_load((CORPUS / "cases.yaml").read_text(encoding="utf-8"))
KEYS = {"id", "args", "exit", "error", "warn", "creates", "setup", "env", "root_skip", "xfail"}
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _fill(text: str) -> str:
    return text.replace("{files}", str(FILES)).replace("{malformed}", str(DATA / "malformed"))


def snapshot(root: Path) -> dict[str, tuple[str, str]]:
    """Every path under ``root``: ``relative path → (kind, sha256 of its bytes or mode)``."""
    seen: dict[str, tuple[str, str]] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        info = path.lstat()
        if stat.S_ISDIR(info.st_mode):
            seen[rel] = ("dir", "")
        else:
            try:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                digest = f"unreadable:{oct(info.st_mode)}"
            seen[rel] = ("file", digest)
    return seen


@dataclass
class Outcome:
    proc: subprocess.CompletedProcess[str]
    before: dict[str, tuple[str, str]]
    after: dict[str, tuple[str, str]]
    files_before: dict[str, tuple[str, str]]
    files_after: dict[str, tuple[str, str]]
    seconds: float


def _setup(case: dict[str, Any], work: Path) -> None:
    setup = case.get("setup") or {}
    for name in setup.get("mkdir", []):
        (work / name).mkdir(parents=True, exist_ok=True)
    for name, text in (setup.get("write") or {}).items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text, encoding="utf-8")
    for name, source in (setup.get("copy") or {}).items():
        shutil.copyfile(_fill(source), work / name)
    for name, mode in (setup.get("chmod") or {}).items():
        os.chmod(work / name, int(mode))


def run_case(case: dict[str, Any], base: Path) -> Outcome:
    import time

    work = Path(tempfile.mkdtemp(prefix=f"{case['id']}-", dir=base))
    _setup(case, work)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "COLUMNS": "200"}
    for key, value in (case.get("env") or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    before, files_before = snapshot(work), snapshot(FILES)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "specdecode", *(_fill(str(a)) for a in case["args"])],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    seconds = time.perf_counter() - started
    return Outcome(proc, before, snapshot(work), files_before, snapshot(FILES), seconds)


_pool: ThreadPoolExecutor | None = None
_futures: dict[str, Future[Outcome]] = {}


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """Start every selected case at once (a few at a time); each test waits for its own."""
    global _pool
    selected = {
        item.callspec.params["case"]["id"]
        for item in request.session.items
        if item.module is sys.modules[__name__] and hasattr(item, "callspec")
    }
    base = tmp_path_factory.mktemp("corpus")
    workers = max(2, min(6, (os.cpu_count() or 2) + 1))
    _pool = ThreadPoolExecutor(max_workers=workers)
    # The slow ones (a model-related command imports torch/trl) first, so they overlap the rest.
    slow = ("train", "merge", "eval", "compare", "speculate")
    ordered = sorted(CASES, key=lambda c: c["args"][0] not in slow)
    for case in ordered:
        if case["id"] not in selected or (IS_ROOT and case.get("root_skip")):
            continue
        _futures[case["id"]] = _pool.submit(run_case, case, base)
    yield _futures
    _pool.shutdown(wait=True, cancel_futures=True)


def test_corpus_table_is_well_formed() -> None:
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    assert len(CASES) >= 40
    for case in CASES:
        assert set(case) <= KEYS, f"{case['id']}: unknown keys {set(case) - KEYS}"
        assert case.get("exit", 2) == 0 or case.get("error"), f"{case['id']}: a failing case names its error"
    # Every command that reads user input has cases.
    commands = {
        " ".join(c["args"][:2]) if c["args"][0] in ("data", "gaia", "traces", "speculate") else c["args"][0]
        for c in CASES
    }
    expected = {
        "data convert",
        "data synth",
        "data validate",
        "gaia load",
        "gaia split",
        "gaia levels",
        "gaia annotator-traces",
        "train",
        "merge",
        "eval",
        "compare",
        "demo",
    }
    import typer.main

    from specdecode.cli import app

    group = typer.main.get_command(app)
    for name in ("traces", "speculate"):
        if name in group.commands:  # type: ignore[attr-defined]
            expected |= {f"{name} {sub}" for sub in group.commands[name].commands}  # type: ignore[attr-defined]
    if "report" in group.commands:  # type: ignore[attr-defined]
        expected.add("report")
    missing = expected - commands
    assert not missing, f"commands without corpus cases: {sorted(missing)}"


def _marks(case: dict[str, Any]) -> list[Any]:
    marks = []
    if case.get("root_skip"):
        marks.append(pytest.mark.skipif(IS_ROOT, reason=case["root_skip"]))
    if case.get("xfail"):
        marks.append(pytest.mark.xfail(strict=True, reason=case["xfail"]))
    return marks


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"], marks=_marks(c)) for c in CASES])
def test_corpus_case(case: dict[str, Any], outcomes: dict[str, Future[Outcome]]) -> None:
    out = outcomes[case["id"]].result()
    proc = out.proc
    shown = f"exit {proc.returncode}\nstdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stdout + proc.stderr, shown
    expected = case.get("exit", 2)
    assert proc.returncode == expected, shown
    assert out.files_after == out.files_before, "the command changed a corpus input file"
    if expected != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, shown
        assert lines[0].startswith("error: "), shown
        for part in case["error"]:
            assert _fill(part).lower() in lines[0].lower(), f"{part!r} not in {lines[0]!r}"
        assert out.after == out.before, f"outputs created or changed: {_diff(out.before, out.after)}"
    else:
        for part in case.get("warn", []):
            assert _fill(part) in proc.stderr, shown
        created = set(out.after) - set(out.before)
        assert created == set(case.get("creates", [])), shown
        changed = {k for k in out.before if out.after.get(k) != out.before[k]}
        assert not changed, f"changed: {changed}"


def _diff(before: dict[str, Any], after: dict[str, Any]) -> str:
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in before.keys() & after.keys() if before[k] != after[k])
    return f"added {added}, removed {removed}, changed {changed}"
