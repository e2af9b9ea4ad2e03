"""``specdecode data bench``: τ-bench tasks with their gold calls executed on the real package
(tau-trait, installed by ``make``) — observations are the package's own data, the registry
validates every gold call, the split is seeded and keeps each user in one split."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import run_cli
from specdecode.data import bench
from specdecode.registry import load_registry
from specdecode.teacher.validate import TraceValidator


@pytest.fixture(scope="module")
def retail_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tau") / "retail"
    run_cli("data", "bench", "tau-retail", "--out", out, "--seed", "3", check=True)
    return out


def _package_data(domain: str, file: str) -> dict:
    return json.loads((bench.package_root() / "envs" / domain / "data" / file).read_text(encoding="utf-8"))


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_observations_are_the_package_data(retail_dir: Path) -> None:
    orders = _package_data("retail", "orders.json")
    traces = _read(retail_dir / "all.jsonl")
    assert len(traces) == 117 and traces[0]["question"].startswith("You are ")
    checked = 0
    for trace in traces:
        for step in trace["trace"]:
            action = step["action"]
            if not bench.is_read_only(action["tool_name"]):
                break  # later reads see this task's writes
            if action["tool_name"] == "get_order_details":
                order_id = action["arguments"]["order_id"]
                if order_id in orders:
                    assert json.loads(step["observation"]) == orders[order_id]
                    checked += 1
                else:
                    assert step["observation"] == "Error: order not found"
    assert checked >= 10
    manifest = json.loads((retail_dir / "bench.json").read_text())
    assert manifest["package"] == "tau-trait" and manifest["tasks"] == 120 and manifest["traces"] == 117
    assert len(manifest["skipped_invalid_gold"]) == 1  # a misspelt argument in the package
    assert 4.5 < manifest["all"]["steps_per_trace"] < 6


def test_writes_change_what_later_reads_see() -> None:
    domain = bench.load_domain("retail")
    data = domain.load_data()
    pending = next(oid for oid, o in data["orders"].items() if o["status"] == "pending")

    class Action:
        def __init__(self, name: str, **kwargs: object):
            self.name, self.kwargs = name, kwargs

    steps = bench.run_actions(
        domain,
        [
            Action("get_order_details", order_id=pending),
            Action("cancel_pending_order", order_id=pending, reason="no longer needed"),
            Action("get_order_details", order_id=pending),
        ],
        data,
    )
    assert json.loads(steps[0].observation)["status"] == "pending"
    assert json.loads(steps[2].observation)["status"] == "cancelled"
    assert steps[1].action.arguments == {"order_id": pending, "reason": "no longer needed"}
    assert domain.load_data()["orders"][pending]["status"] == "pending"  # a fresh copy is untouched


def test_registry_validates_every_gold_call(retail_dir: Path, tmp_path: Path) -> None:
    registry = load_registry(retail_dir / "tools.yaml")
    assert len(registry.tools) == 16
    read_only = {t.name: t.read_only for t in registry.tools}
    assert read_only["get_order_details"] and read_only["find_user_id_by_name_zip"] and read_only["think"]
    assert not read_only["cancel_pending_order"] and not read_only["transfer_to_human_agents"]
    from specdecode.records import TraceRecord

    validator = TraceValidator(registry)
    for row in _read(retail_dir / "all.jsonl"):
        assert validator.issues(TraceRecord.model_validate(row)) == []
    # the airline set too (written by the Python API: one subprocess is enough for the CLI)
    manifest = bench.write_bench("tau-airline", tmp_path / "airline", seed=0)
    assert manifest["traces"] >= 50 and manifest["tools"] == 14
    air = load_registry(tmp_path / "airline" / "tools.yaml")
    assert air.get("search_direct_flight").read_only and not air.get("book_reservation").read_only
    air_validator = TraceValidator(air)
    for row in _read(tmp_path / "airline" / "all.jsonl"):
        assert air_validator.issues(TraceRecord.model_validate(row)) == []


def test_split_is_seeded_and_keeps_users_together(retail_dir: Path, tmp_path: Path) -> None:
    splits = {s: _read(retail_dir / f"{s}.jsonl") for s in ("train", "val", "test")}
    sizes = {s: len(rows) for s, rows in splits.items()}
    assert sum(sizes.values()) == 117
    assert abs(sizes["train"] - 70) <= 6 and abs(sizes["test"] - 35) <= 6 and sizes["val"] >= 6
    users = {s: {r["user_id"] for r in rows} for s, rows in splits.items()}
    assert not users["train"] & users["test"] and not users["train"] & users["val"]
    assert not users["val"] & users["test"]
    # the same seed writes identical files; another seed another split
    again = tmp_path / "again"
    bench.write_bench("tau-retail", again, seed=3)
    for name in ("train.jsonl", "val.jsonl", "test.jsonl", "all.jsonl", "tools.yaml", "bench.json"):
        assert (again / name).read_bytes() == (retail_dir / name).read_bytes(), name
    other = bench.split_by_user(bench.build_traces("tau-retail")[0], seed=4)
    assert [r.id for r in other["test"]] != [r["id"] for r in splits["test"]]
    # --limit takes the first tasks
    limited = bench.write_bench("tau-retail", tmp_path / "limited", seed=3, limit=10)
    assert limited["traces"] == 10
    tools = yaml.safe_load((again / "tools.yaml").read_text())
    assert {t["family"] for t in tools} == {"retail"}


def _nothing_written(proc: subprocess.CompletedProcess[str], out: Path) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not out.exists()


def test_unknown_name_and_missing_package_are_one_line(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_cli("data", "bench", "tau-telepathy", "--out", out)
    _nothing_written(proc, out)
    assert "tau-retail" in proc.stderr
    # the package hidden from the import system: the error names the extra
    hide = (
        "import sys, importlib.abc\n"
        "class Hide(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'tau_trait': raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "from specdecode.cli import main\n"
        f"sys.argv = ['specdecode', 'data', 'bench', 'tau-retail', '--out', {str(out)!r}]\n"
        "main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True, timeout=120)
    _nothing_written(proc, out)
    assert "specdecode[bench]" in proc.stderr


def test_refuses_to_overwrite_other_files(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "train.jsonl").write_text("my own data\n")
    proc = run_cli("data", "bench", "tau-airline", "--out", out, "--limit", "5")
    assert proc.returncode == 2 and "--overwrite" in proc.stderr
    assert (out / "train.jsonl").read_text() == "my own data\n"
