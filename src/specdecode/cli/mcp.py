"""``specdecode mcp proxy``: the speculative MCP proxy (wiring only; the work is in
specdecode.integrations.mcp_proxy). The MCP SDK is an optional extra, imported by the command."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from specdecode.cli._common import err_console, normalize_token
from specdecode.errors import InputError
from specdecode.settings import BackendName, BaseUrl, DtypeOption, shared_help

mcp_app = typer.Typer(
    help="Speculation for any agent that gets its tools from an MCP server: a proxy in front of "
    "the server that pre-runs the read-only calls its speculator expects.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"], "token_normalize_func": normalize_token},
)


def parse_limits(specs: list[str] | None, flag: str) -> dict[str, int]:
    """``NAME=N`` flags as tool → a whole number >= 0 (one-line error otherwise)."""
    out = {}
    for spec in specs or []:
        name, eq, value = spec.partition("=")
        if not eq or not name.strip() or not value.strip().isdigit():
            raise InputError(f"{flag}: expected NAME=N with N a whole number >= 0, got {spec!r}")
        out[name.strip()] = int(value)
    return out


@mcp_app.command("proxy")
def proxy_cmd(
    upstream: Annotated[
        str,
        typer.Option(
            "--upstream",
            help="The real MCP server: its command line (quoted; started once per client session) or "
            "the http(s) URL of its streamable HTTP endpoint.",
            show_default=False,
        ),
    ],
    predictor: Annotated[
        str | None,
        typer.Option(
            "--predictor",
            help="The speculator (`specdecode speculate predictors` lists them; tables need --fitted). "
            "Omit it for record-only mode: calls are forwarded and recorded, nothing is pre-run.",
            show_default=False,
        ),
    ] = None,
    fitted: Annotated[
        Path | None, typer.Option("--fitted", help="Directory written by `speculate fit` (the tables).")
    ] = None,
    base_model: Annotated[
        str | None, typer.Option("--base-model", help="Model predictors: the base model.", show_default=False)
    ] = None,
    lora_dir: Annotated[
        str | None, typer.Option("--lora-dir", help="Model predictors: the LoRA adapter.", show_default=False)
    ] = None,
    backend: Annotated[str, typer.Option("--backend", help=shared_help(BackendName))] = "hf",
    base_url: Annotated[
        str | None, typer.Option("--base-url", help=shared_help(BaseUrl), show_default=False)
    ] = None,
    dtype: Annotated[str, typer.Option("--dtype", help=shared_help(DtypeOption))] = "auto",
    k: Annotated[
        int, typer.Option("--k", min=1, help="Candidates per step the launch policy considers.")
    ] = 1,
    lam: Annotated[
        float,
        typer.Option(
            "--lambda", min=0.0, help="Launch policy: launch c when P(c) x hidden seconds >= lambda x cost."
        ),
    ] = 0.0,
    tool_cost: Annotated[
        list[str] | None,
        typer.Option("--tool-cost", help="Cost of a wasted call of one tool, NAME=C; repeat. [default: 1]"),
    ] = None,
    read_only_file: Annotated[
        Path | None,
        typer.Option(
            "--read-only-file",
            help="Tools that may be pre-run, one name a line (!NAME: never); wins over readOnlyHint.",
            show_default=False,
        ),
    ] = None,
    record: Annotated[
        Path | None,
        typer.Option(
            "--record",
            help="Append each finished turn to this trace JSONL (and the tools to FILE.tools.json).",
            show_default=False,
        ),
    ] = None,
    question: Annotated[
        str | None,
        typer.Option(
            "--question",
            help="The question of every turn (else a call's _meta may name it).",
            show_default=False,
        ),
    ] = None,
    transport: Annotated[
        str, typer.Option("--transport", help="How the client connects: stdio or http.")
    ] = "stdio",
    host: Annotated[str, typer.Option("--host", help="HTTP: the address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="HTTP: the port (0: any free).")
    ] = 8765,
    path: Annotated[str, typer.Option("--path", help="HTTP: the MCP endpoint's path.")] = "/mcp",
    session_concurrency: Annotated[
        int, typer.Option("--session-concurrency", min=1, help="Speculative calls at once in one session.")
    ] = 4,
    max_concurrency: Annotated[
        int, typer.Option("--max-concurrency", min=1, help="Speculative calls at once in all sessions.")
    ] = 16,
    tool_concurrency: Annotated[
        int,
        typer.Option(
            "--tool-concurrency", min=0, help="Speculative calls of one tool at once (all sessions)."
        ),
    ] = 2,
    tool_limit: Annotated[
        list[str] | None,
        typer.Option("--tool-limit", help="Speculative calls of one tool at once, NAME=N; repeat."),
    ] = None,
    rate: Annotated[
        float,
        typer.Option(
            "--rate", min=0.0, help="Speculative calls started per second, all sessions (0: no limit)."
        ),
    ] = 10.0,
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=0.001, help="Seconds a speculative call may take (then cancelled)."),
    ] = 30.0,
    turn_gap: Annotated[
        float,
        typer.Option("--turn-gap", min=0.0, help="Seconds of silence after a result that start a new turn."),
    ] = 120.0,
) -> None:
    """Serve the upstream MCP server's tools unchanged, speculating its read-only calls between the
    agent's calls (stdio: the client starts this command instead of the server; http: clients
    connect to http://HOST:PORT/PATH). Errors of the server reach the client as they are; stats
    (hits, wasted calls, time saved) are the resource specdecode://stats and a log line per session."""
    from specdecode.cli.speculate import parse_costs

    if not upstream.strip():
        raise InputError("--upstream: give the MCP server's command line or its http(s) URL")
    if transport not in ("stdio", "http"):
        raise InputError(f"--transport: expected stdio or http, got {transport!r}")
    if not path.startswith("/"):
        raise InputError(f"--path: expected a path starting with /, got {path!r}")
    costs = parse_costs(tool_cost)
    limits = parse_limits(tool_limit, "--tool-limit")
    if predictor is None:
        for flag, value in (("--fitted", fitted), ("--base-model", base_model), ("--lora-dir", lora_dir)):
            if value is not None:
                raise InputError(f"{flag} needs --predictor (without one the proxy only records)")
    try:
        import anyio

        from specdecode.integrations.mcp_proxy import MCPProxy, ProxyConfig, UpstreamStartError
        from specdecode.integrations.mcp_proxy import read_only_file as load_read_only
    except ImportError as exc:
        raise InputError(
            f"the MCP proxy needs the MCP SDK ({exc.name or exc}): pip install 'specdecode[mcp]'"
        ) from None
    marks = load_read_only(read_only_file) if read_only_file is not None else {}
    spec = _predictor(predictor, fitted, base_model, lora_dir, backend, base_url, dtype)
    config = ProxyConfig(
        upstream=upstream,
        predictor=spec,
        k=k,
        lam=lam,
        costs=costs,
        read_only=marks,
        record=record,
        question=question,
        session_concurrency=session_concurrency,
        max_concurrency=max_concurrency,
        tool_concurrency=tool_concurrency,
        tool_limits=limits,
        rate=rate,
        timeout=timeout,
        turn_gap=turn_gap,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("specdecode mcp proxy: %(message)s"))
    log = logging.getLogger("specdecode.mcp")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    proxy = MCPProxy(config)
    mode = f"speculating with {predictor}" if spec is not None else "record-only"
    try:
        if transport == "stdio":
            log.info("%s, upstream %s", mode, upstream)
            anyio.run(proxy.serve_stdio)
        else:

            def ready(url: str) -> None:
                log.info("serving %s (%s, upstream %s)", url, mode, upstream)

            anyio.run(lambda: proxy.serve_http(host, port, path, ready))
    except UpstreamStartError as exc:
        err_console.print(f"[red]error:[/] the upstream MCP server did not start: {exc}", highlight=False)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except BaseException as exc:  # the SDK's own error of a server that went away at once
        from mcp.shared.exceptions import MCPError

        if isinstance(exc, MCPError) or any(isinstance(e, MCPError) for e in getattr(exc, "exceptions", ())):
            err_console.print("[red]error:[/] the upstream MCP server closed the connection", highlight=False)
            raise SystemExit(1) from None
        raise


def _predictor(name, fitted, base_model, lora_dir, backend, base_url, dtype):
    """The speculator by name (None: record-only), built as replay builds it."""
    if name is None:
        return None
    from specdecode.models import adapter_form
    from specdecode.speculate.predictors import registry
    from specdecode.speculate.run import build_predictors, expand_names

    names = expand_names([name], lora_dir is not None)
    if len(names) != 1:
        raise InputError(f"--predictor {name}: name one predictor (`specdecode speculate predictors`)")
    engine = None
    if registry.spec_of(names[0]).kind == "model":
        if not base_model:
            raise InputError(f"--predictor {names[0]} needs --base-model")
        from specdecode.evaluate.backends import make_backend

        engine = make_backend(backend, base_model, lora_dir, base_url=base_url, dtype=dtype)
    return build_predictors(names, fitted, engine, form=adapter_form(lora_dir))[names[0]]
