"""The software and machine a report is written on: package versions, CPU, memory, GPUs."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = (
    "specdecode",
    "torch",
    "transformers",
    "peft",
    "trl",
    "accelerate",
    "datasets",
    "vllm",
    "numpy",
    "matplotlib",
    "typer",
    "pydantic",
)


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _first_match(path: str, pattern: str) -> str | None:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    match = re.search(pattern, text, re.M)
    return match.group(1).strip() if match else None


def _gpus() -> str:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return "none found"
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "none found"
    return "; ".join(line.strip() for line in out.splitlines()) if out else "none found"


def machine() -> dict[str, str]:
    """The machine the report is written on: CPU model, cores, memory, GPUs (nvidia-smi)."""
    info = {"os": f"{platform.system()} {platform.release()}", "cores": str(os.cpu_count() or "?")}
    info["cpu"] = _first_match("/proc/cpuinfo", r"^model name\s*:\s*(.+)$") or (
        platform.processor() or platform.machine()
    )
    memory = _first_match("/proc/meminfo", r"^MemTotal:\s*(\d+)\s*kB")
    if memory:
        info["memory"] = f"{int(memory) / 1024**2:.1f} GiB"
    info["gpu"] = _gpus()
    return info
