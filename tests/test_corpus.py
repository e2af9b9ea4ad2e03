"""The bad-input corpus (tests/corpus/cases.yaml) through the real CLI, one process per case.

Each case runs in a fresh folder and must end with the expected exit code and, on failure, one
``error:`` line naming file, line and field where there is one, with no traceback, and with its
folder (where outputs go) and the corpus files exactly as they were.

Each case is its own process running the CLI's entry point (``specdecode.cli.main``, what
``python -m specdecode`` runs): by default a child forked from this test process after it
imported the CLI once, so a case costs milliseconds, not the second a fresh interpreter spends
importing; a few run at once, each killed if it outlives ``TIMEOUT`` (a hang is a failure, not a
stuck suite). A case marked ``fresh`` (one that depends on what a library reads from the
environment when it is imported, such as Hugging Face's offline mode) always runs as a fresh
``python -m specdecode``; ``SPECDECODE_CORPUS_RUNNER=subprocess`` runs every case that way
(slower, for checking the fork runner itself).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import DATA

CORPUS = Path(__file__).resolve().parent / "corpus"
FILES = CORPUS / "files"
CASES: list[dict[str, Any]] = yaml.safe_load((CORPUS / "cases.yaml").read_text(encoding="utf-8"))
KEYS = {
    "id",
    "args",
    "exit",
    "error",
    "warn",
    "creates",
    "setup",
    "env",
    "root_skip",
    "xfail",
    "class",
    "fresh",
}
CLASSES = {
    "data-loss",  # an output that is (or is inside, or holds) an input
    "unwritable",  # an output that cannot be written: a directory, a file in the way, no permission
    "traceback",  # input that used to end in a traceback: depth, huge numbers, bad Unicode, bad shapes
    "not-a-number",  # NaN, infinities, negative or overflowing numbers, misspelled keys
    "hang",  # FIFOs, devices, link loops, unbounded sizes
    "bad-input",  # everything else a user can get wrong (the corpus before issue 24)
}
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
RUNNER = os.environ.get("SPECDECODE_CORPUS_RUNNER", "fork" if hasattr(os, "fork") else "subprocess")
TIMEOUT = 120.0  # seconds a case may run before it counts as a hang
ANSI = re.compile(r"\x1b\[[0-9;]*m")
BASE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "COLUMNS": "200", "NO_COLOR": "1"}
# What the commands import lazily: imported once here, so forked cases do not each pay for it.
PREIMPORT = (
    "specdecode.cli",
    "specdecode.data",
    "specdecode.gaia",
    "specdecode.teacher.generate",
    "specdecode.teacher.client",
    "specdecode.teacher.logs",
    "specdecode.speculate.run",
    "specdecode.speculate.replay",
    "specdecode.integrations.otlp",
    "specdecode.evaluate.run",
    "specdecode.report",
    "jsonschema.validators",  # every registry is checked with it
    "openai",
)
# The model commands import these before they find a missing model path. They are imported only
# after the other cases ran: a process holding torch is slower to fork.
HEAVY_PREIMPORT = ("torch", "peft")
MODEL_COMMANDS = {"train", "merge", "eval", "compare", "demo"}


def _is_model_case(case: dict[str, Any]) -> bool:
    return case["args"][0] in MODEL_COMMANDS or "--base-model" in case["args"]


def _fill(text: str) -> str:
    return text.replace("{files}", str(FILES)).replace("{malformed}", str(DATA / "malformed"))


def snapshot(root: Path) -> dict[str, tuple[str, str]]:
    """Every path under ``root``: ``relative path → (kind, sha256 of its bytes, or link target)``;
    FIFOs, devices and links are recorded without being opened."""
    seen: dict[str, tuple[str, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted([*dirnames, *filenames]):
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                seen[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                seen[rel] = ("dir", "")
            elif not stat.S_ISREG(info.st_mode):
                seen[rel] = ("special", oct(info.st_mode))
            else:
                try:
                    digest = hashlib.sha256(path.read_bytes()).hexdigest()
                except OSError:
                    digest = f"unreadable:{oct(info.st_mode)}"
                seen[rel] = ("file", digest)
    return seen


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    before: dict[str, tuple[str, str]]
    after: dict[str, tuple[str, str]]
    seconds: float


# ----------------------------------------------------------------------------- setup
def _setup(case: dict[str, Any], work: Path) -> None:
    """The case's folder before the run (see the header of cases.yaml)."""
    setup = case.get("setup") or {}
    for name in setup.get("mkdir", []):
        (work / name).mkdir(parents=True, exist_ok=True)
    for name, text in (setup.get("write") or {}).items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(_fill(text), encoding="utf-8")
    for name, parts in (setup.get("repeat") or {}).items():  # [[text, times], ...] joined
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text("".join(text * int(times) for text, times in parts), encoding="utf-8")
    for name, source in (setup.get("copy") or {}).items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        source = Path(_fill(source))
        if source.is_dir():
            shutil.copytree(source, work / name)
        else:
            shutil.copyfile(source, work / name)
    for name, target in (setup.get("symlink") or {}).items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(_fill(target), work / name)
    for name, source in (setup.get("hardlink") or {}).items():
        os.link(work / source, work / name)
    for name in setup.get("mkfifo", []):
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(work / name)
    for name, mode in (setup.get("chmod") or {}).items():
        os.chmod(work / name, int(mode))


def _env_changes(case: dict[str, Any]) -> dict[str, str | None]:
    changes: dict[str, str | None] = dict(BASE_ENV)
    for key, value in (case.get("env") or {}).items():
        changes[key] = None if value is None else _fill(str(value))
    return changes


def _args(case: dict[str, Any]) -> list[str]:
    return [_fill(str(a)) for a in case["args"]]


# ----------------------------------------------------------------------------- runners
def _child(args: list[str], work: Path, env: dict[str, str | None], out: Path, err: Path) -> None:
    """In the forked child: run the CLI as ``python -m specdecode ARGS`` would, then exit."""
    code = 1
    try:
        os.chdir(work)
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 1)
        os.dup2(os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 2)
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", line_buffering=True)
        sys.stderr = io.TextIOWrapper(
            io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace", line_buffering=True
        )
        sys.argv = ["specdecode", *args]
        from specdecode.cli import main

        try:
            main()
            code = 0
        except SystemExit as exc:
            if exc.code is None or isinstance(exc.code, int):
                code = exc.code or 0
            else:
                print(exc.code, file=sys.stderr)
                code = 1
    except BaseException:  # what the interpreter would print for an uncaught exception
        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


@dataclass
class _Running:
    case: dict[str, Any]
    work: Path
    before: dict[str, tuple[str, str]]
    started: float
    out: Path
    err: Path
    pid: int = 0
    proc: subprocess.Popen[str] | None = None


def _start(case: dict[str, Any], base: Path, logs: Path) -> _Running:
    work = Path(tempfile.mkdtemp(prefix=f"{case['id']}-", dir=base))
    _setup(case, work)
    log = logs / case["id"]
    running = _Running(
        case, work, snapshot(work), time.perf_counter(), log.with_suffix(".out"), log.with_suffix(".err")
    )
    env_changes = _env_changes(case)
    if RUNNER == "fork" and not case.get("fresh"):
        pid = os.fork()
        if pid == 0:
            _child(_args(case), work, env_changes, running.out, running.err)
        running.pid = pid
    else:
        env = dict(os.environ)
        for key, value in env_changes.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        running.proc = subprocess.Popen(
            [sys.executable, "-m", "specdecode", *_args(case)],
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=running.out.open("w"),
            stderr=running.err.open("w"),
            text=True,
        )
    return running


def _poll(running: _Running) -> int | None:
    """The exit code once the case's process ended (a signal: its negative number), else None."""
    if running.proc is not None:
        return running.proc.poll()
    pid, status = os.waitpid(running.pid, os.WNOHANG)
    return None if pid == 0 else os.waitstatus_to_exitcode(status)


def _kill(running: _Running) -> int:
    if running.proc is not None:
        running.proc.kill()
        return running.proc.wait()
    os.kill(running.pid, signal.SIGKILL)
    _, status = os.waitpid(running.pid, 0)
    return os.waitstatus_to_exitcode(status)


def run_cases(cases: list[dict[str, Any]], base: Path, workers: int) -> dict[str, Outcome]:
    """Run ``cases`` (up to ``workers`` at once); each one's outcome by id."""
    logs = base / "logs"
    logs.mkdir()
    pending, running, outcomes = list(cases), [], {}
    while pending or running:
        while pending and len(running) < workers:
            running.append(_start(pending.pop(0), base, logs))
        for item in list(running):
            code = _poll(item)
            seconds = time.perf_counter() - item.started
            if code is None and seconds > TIMEOUT:
                _kill(item)
                code = -9
                with item.err.open("a") as err:
                    err.write(f"\n[corpus] killed after {TIMEOUT:.0f} s: a hang\n")
            if code is None:
                continue
            running.remove(item)
            outcomes[item.case["id"]] = Outcome(
                code,
                ANSI.sub("", item.out.read_text(encoding="utf-8", errors="replace")),
                ANSI.sub("", item.err.read_text(encoding="utf-8", errors="replace")),
                item.before,
                snapshot(item.work),
                seconds,
            )
        if running:
            time.sleep(0.005)
    return outcomes


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """Run every selected case first (a few at a time); each test then checks its own."""
    selected = {
        item.callspec.params["case"]["id"]
        for item in request.session.items
        if item.module is sys.modules[__name__] and hasattr(item, "callspec")
    }
    chosen = [c for c in CASES if c["id"] in selected and not (IS_ROOT and c.get("root_skip"))]
    workers = max(2, min(4, (os.cpu_count() or 2) + 1))
    inputs_before = {"files": snapshot(FILES), "malformed": snapshot(DATA / "malformed")}
    results: dict[str, Outcome] = {}
    for names, cases in (
        (PREIMPORT, [c for c in chosen if not _is_model_case(c)]),
        (HEAVY_PREIMPORT, [c for c in chosen if _is_model_case(c)]),
    ):
        if RUNNER == "fork":
            import importlib

            for name in names:
                with contextlib.suppress(ImportError):  # an optional extra not installed: cases import it
                    importlib.import_module(name)
        results |= run_cases(cases, tmp_path_factory.mktemp("corpus"), workers)
    inputs_after = {"files": snapshot(FILES), "malformed": snapshot(DATA / "malformed")}
    return results, inputs_before == inputs_after


# ----------------------------------------------------------------------------- tests
def test_corpus_table_is_well_formed() -> None:
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    assert len(CASES) >= 200
    for case in CASES:
        assert set(case) <= KEYS, f"{case['id']}: unknown keys {set(case) - KEYS}"
        assert case.get("exit", 2) == 0 or case.get("error"), f"{case['id']}: a failing case names its error"
        assert case.get("class", "bad-input") in CLASSES, f"{case['id']}: unknown class {case.get('class')}"
    assert {c.get("class", "bad-input") for c in CASES} == CLASSES, "a class without cases"
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
    # The new classes reach every command that writes.
    writers = {
        "data convert", "gaia load", "gaia split", "gaia annotator-traces", "traces import", "traces export",
        "traces generate", "speculate fit", "speculate replay", "eval", "compare", "train", "merge", "demo",
    }  # fmt: skip
    guarded = {
        " ".join(c["args"][:2]) if c["args"][0] in ("data", "gaia", "traces", "speculate") else c["args"][0]
        for c in CASES
        if c.get("class") == "data-loss"
    }
    assert not writers - guarded, f"writing commands without a data-loss case: {sorted(writers - guarded)}"


def _marks(case: dict[str, Any]) -> list[Any]:
    marks = []
    if case.get("root_skip"):
        marks.append(pytest.mark.skipif(IS_ROOT, reason=case["root_skip"]))
    if case.get("xfail"):
        marks.append(pytest.mark.xfail(strict=True, reason=case["xfail"]))
    return marks


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"], marks=_marks(c)) for c in CASES])
def test_corpus_case(case: dict[str, Any], outcomes: tuple[dict[str, Outcome], bool]) -> None:
    results, inputs_unchanged = outcomes
    out = results[case["id"]]
    shown = f"exit {out.returncode}\nstdout:\n{out.stdout[-2000:]}\nstderr:\n{out.stderr[-3000:]}"
    assert "Traceback" not in out.stdout + out.stderr, shown
    expected = case.get("exit", 2)
    assert out.returncode == expected, shown
    assert inputs_unchanged, "a case changed a corpus input file"
    if expected != 0:
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, shown
        assert lines[0].startswith("error: "), shown
        for part in case["error"]:
            assert _fill(part).lower() in lines[0].lower(), f"{part!r} not in {lines[0]!r}"
        assert out.after == out.before, f"outputs created or changed: {_diff(out.before, out.after)}"
    else:
        for part in case.get("warn", []):
            assert _fill(part) in out.stderr, shown
        created = set(out.after) - set(out.before)
        assert created == set(case.get("creates", [])), shown
        changed = {k for k in out.before if out.after.get(k) != out.before[k]}
        assert not changed, f"changed: {changed}"


def _diff(before: dict[str, Any], after: dict[str, Any]) -> str:
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in before.keys() & after.keys() if before[k] != after[k])
    return f"added {added}, removed {removed}, changed {changed}"
