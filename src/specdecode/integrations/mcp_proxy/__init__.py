"""A speculative MCP proxy: speculation for any agent that gets its tools from an MCP server.

The client talks to the proxy as if it were the MCP server (stdio or streamable HTTP); the proxy
forwards every request to the real server (the *upstream*: a command it starts, or a URL) and,
between calls, pre-runs the read-only calls its speculator expects through a
:class:`~specdecode.speculate.executor.SpeculativeExecutor` and the launch policy — so a hit is
answered at once with the upstream's own result. Usage (the CLI is ``specdecode mcp proxy``)::

    proxy = MCPProxy(ProxyConfig(upstream="python server.py", predictor=table, record="t.jsonl"))
    anyio.run(proxy.serve_stdio)            # or proxy.serve_http(host, port)

Guarantees:

* tools are listed unchanged and every real call goes to the upstream (or is answered by a
  speculative result of the *identical* call: exact tool name and arguments);
* only tools marked read-only are ever called speculatively: a ``--read-only-file`` entry, else
  the tool's ``readOnlyHint`` annotation; a tool with neither is never pre-run;
* one upstream connection and one executor per client session: a speculative result is only
  served within the round (the observation) and the turn it was launched in, never to another
  session or client; unused speculative calls are cancelled when their round ends;
* limits shared by all sessions (concurrent speculative calls, per tool and in all, and a rate
  of speculative calls per second) and a timeout per speculative call;
* errors reach the client as the upstream sent them (an upstream that fails to start or dies
  gives ``Connection closed``, as without the proxy); a broken session never stops the others;
* with ``record``, each turn is appended to a trace JSONL that ``speculate fit``, ``train`` and
  ``speculate replay`` read (the upstream's tools go to a registry JSON beside it).

A turn is one question's run of calls: it starts when the session lists its tools, when a call
carries a new question in its ``_meta`` (key :data:`QUESTION_META_KEY`), or when a call comes more
than ``turn_gap`` seconds after the previous result. Each recorded step carries
``actor_seconds`` (the previous result returned → this call arrived: the agent's think time;
0 when a turn starts without a moment the proxy saw, so replay assumes no time to speculate, as
live) and ``tool_seconds`` (the upstream's latency for the call).

The proxy does not relay server-to-client requests (sampling, elicitation, roots) or upstream
notifications other than progress; see docs/integrations.md.
"""

from specdecode.integrations.mcp_proxy.config import (
    QUESTION_META_KEY,
    STATS_URI,
    UNKNOWN_QUESTION,
    Limits,
    ProxyConfig,
    identical,
    is_url,
    observation_text,
    read_only_file,
    registry_of_tools,
    tool_is_read_only,
    tools_path_for,
)
from specdecode.integrations.mcp_proxy.server import MCPProxy
from specdecode.integrations.mcp_proxy.session import ProxySession, Recorder
from specdecode.integrations.mcp_proxy.upstream import Upstream, UpstreamStartError

__all__ = [
    "QUESTION_META_KEY",
    "STATS_URI",
    "UNKNOWN_QUESTION",
    "Limits",
    "MCPProxy",
    "ProxyConfig",
    "ProxySession",
    "Recorder",
    "Upstream",
    "UpstreamStartError",
    "identical",
    "is_url",
    "observation_text",
    "read_only_file",
    "registry_of_tools",
    "tool_is_read_only",
    "tools_path_for",
]
