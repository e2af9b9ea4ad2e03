"""``specdecode demo``: the whole pipeline, offline, on the embedded model, as far as it exists.

Each stage writes its files under the run directory and adds a section to ``report.md``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from specdecode.data import convert, synthesize
from specdecode.gaia import stratified_split
from specdecode.jsonl import atomic_path, write_jsonl
from specdecode.records import TraceRecord
from specdecode.registry import load_registry


def _level_table(parts: dict[str, list[TraceRecord]]) -> list[str]:
    lines = ["| split | L1 | L2 | L3 | total |", "|---|---:|---:|---:|---:|"]
    for name, rows in parts.items():
        counts = Counter(r.level for r in rows)
        lines.append(f"| {name} | {counts[1]} | {counts[2]} | {counts[3]} | {len(rows)} |")
    return lines


def data_stage(out: Path, n: int, seed: int, registry: str) -> tuple[list[str], dict[str, Path]]:
    """Synthesise traces, split them by level, convert every split to the three chat forms."""
    traces = synthesize(n, seed, registry)
    write_jsonl(out / "traces.jsonl", traces)
    rows = stratified_split([t.model_dump() for t in traces], seed=seed)
    by_id = {t.id: t for t in traces}
    parts = {name: [by_id[r["id"]] for r in split_rows] for name, split_rows in rows.items()}
    reg = load_registry(registry)
    files: dict[str, Path] = {}
    lines = [
        f"## Data\n\n{n} synthetic GAIA-format traces (registry `{registry}`, seed {seed}), "
        "split by level:\n",
        *_level_table(parts),
        "",
        "| split | plain | native | steps |",
        "|---|---:|---:|---:|",
    ]
    for name, split_traces in parts.items():
        write_jsonl(out / "traces" / f"{name}.jsonl", split_traces)
        counts = []
        for form in ("plain", "native", "steps"):
            path = out / "chat" / f"{name}.{form}.jsonl"
            counts.append(write_jsonl(path, convert(split_traces, form, reg)))
            files[f"{name}.{form}"] = path
        lines.append(f"| {name} | {counts[0]} | {counts[1]} | {counts[2]} |")
    return lines, files


def run_demo(out: Path, n: int = 160, seed: int = 0, registry: str = "tools4") -> Path:
    """Run every stage that exists and write ``report.md``; returns the report path."""
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# specdecode demo report", ""]
    data_lines, _files = data_stage(out, n, seed, registry)
    lines += data_lines
    report = out / "report.md"
    with atomic_path(report) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return report
