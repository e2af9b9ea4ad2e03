"""SpeculativeExecutor: the same suite from threads and from asyncio."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from specdecode import SpeculativeExecutor
from specdecode.integrations import Speculation
from specdecode.records import ToolCall, ToolSpec
from specdecode.registry import Registry
from specdecode.speculate.predictors import Predictor, StepContext

REGISTRY = Registry(
    "test",
    (
        ToolSpec(name="search", description="search", read_only=True),
        ToolSpec(name="lookup", description="lookup", read_only=True),
        ToolSpec(name="send_email", description="sends an email", read_only=False),
    ),
)


class Always(Predictor):
    """Proposes the same calls at every step (after an optional delay)."""

    name = "always"

    def __init__(self, *calls: ToolCall, delay: float = 0.0):
        self.calls, self.delay = list(calls), delay

    def predict(self, context: StepContext, k: int = 1) -> list[ToolCall]:
        time.sleep(self.delay)
        return self.calls[:k]


class Tools:
    """Counting tool functions; ``search`` can fail, hang or sleep on demand."""

    def __init__(self, sleep: float = 0.0):
        self.sleep = sleep
        self.counts: dict[str, int] = {"search": 0, "lookup": 0, "send_email": 0}
        self.running = 0
        self.max_running = 0
        self.fail_first = False
        self.hang_first: threading.Event | None = None
        self.lock = threading.Lock()

    def _enter(self, name: str) -> int:
        with self.lock:
            self.counts[name] += 1
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            return self.counts[name]

    def _leave(self) -> None:
        with self.lock:
            self.running -= 1

    def search(self, query: str) -> str:
        n = self._enter("search")
        try:
            if n == 1 and self.fail_first:
                raise RuntimeError("speculative failure")
            if n == 1 and self.hang_first is not None:
                self.hang_first.wait(5)
            time.sleep(self.sleep)
            return f"result {n} for {query}"
        finally:
            self._leave()

    def lookup(self, key: str) -> str:
        self._enter("lookup")
        try:
            time.sleep(self.sleep)
            return f"value of {key}"
        finally:
            self._leave()

    def send_email(self, to: str) -> str:
        self._enter("send_email")
        self._leave()
        return f"sent to {to}"

    def functions(self) -> dict:
        return {"search": self.search, "lookup": self.lookup, "send_email": self.send_email}


@pytest.fixture(params=["threads", "asyncio"])
def call(request):
    """The agent's real call, made from a worker thread or from an asyncio event loop."""
    if request.param == "threads":
        pool = ThreadPoolExecutor(1)
        yield lambda ex, name, args: pool.submit(ex.call, name, args).result(timeout=10)
        pool.shutdown()
    else:
        yield lambda ex, name, args: asyncio.run(asyncio.wait_for(ex.acall(name, args), 10))


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_side_effecting_tool_is_never_called_speculatively(call):
    tools = Tools()
    predictor = Always(ToolCall(tool_name="send_email", arguments={"to": "a@b.c"}))
    with SpeculativeExecutor(predictor, REGISTRY, tools.functions(), auto=True) as ex:
        for _ in range(3):
            ex.start("q")
            ex.settle(5)
            time.sleep(0.02)
            assert tools.counts["send_email"] == 0
        assert call(ex, "send_email", {"to": "a@b.c"}) == "sent to a@b.c"
        ex.settle(5)  # the next speculation (auto) proposes send_email again
        time.sleep(0.02)
        assert tools.counts["send_email"] == 1  # only the real call
        assert ex.stats.refused >= 4 and ex.stats.launched == 0 and ex.stats.direct == 1


def test_hit_returns_the_speculative_result_without_a_second_call(call):
    tools = Tools()
    predictor = Always(ToolCall(tool_name="search", arguments={"query": "Paris population"}))
    with SpeculativeExecutor(predictor, REGISTRY, tools.functions(), auto=False) as ex:
        ex.start("q")
        assert ex.settle(5) == [predictor.calls[0]]
        wait_for(lambda: tools.counts["search"] == 1)
        assert call(ex, "search", {"query": "Paris population"}) == "result 1 for Paris population"
        assert tools.counts["search"] == 1
        stats = ex.stats
        assert (stats.hits, stats.misses, stats.wasted_calls) == (1, 0, 0)


def test_case_differing_call_is_not_served_a_speculative_result_by_default(call):
    """Serving needs the exact call: the result for "Paris  FRANCE" is not the agent's answer to
    "paris france" (case- or whitespace-sensitive tools: file paths, ids)."""
    tools = Tools()
    predictor = Always(ToolCall(tool_name="search", arguments={"query": "Paris  FRANCE"}))
    with SpeculativeExecutor(predictor, REGISTRY, tools.functions(), auto=False) as ex:
        ex.start("q")
        ex.settle(5)
        wait_for(lambda: tools.counts["search"] == 1)
        assert call(ex, "search", {"query": "paris france"}) == "result 2 for paris france"
        assert tools.counts["search"] == 2  # the real call ran
        stats = ex.stats
        assert (stats.hits, stats.misses, stats.wasted_calls) == (0, 1, 1)


def test_a_tool_can_opt_into_a_looser_serving_match(call):
    tools = Tools()
    predictor = Always(ToolCall(tool_name="search", arguments={"query": "Paris population"}))
    with SpeculativeExecutor(
        predictor, REGISTRY, tools.functions(), auto=False, serve_match={"search": "normalised"}
    ) as ex:
        ex.start("q")
        ex.settle(5)
        wait_for(lambda: tools.counts["search"] == 1)
        # normalised for this tool: case and whitespace do not matter
        assert call(ex, "search", {"query": "paris  Population"}) == "result 1 for Paris population"
        assert tools.counts["search"] == 1 and ex.stats.hits == 1


def test_miss_returns_the_real_result(call):
    tools = Tools()
    predictor = Always(ToolCall(tool_name="search", arguments={"query": "wrong guess"}))
    with SpeculativeExecutor(predictor, REGISTRY, tools.functions(), auto=False) as ex:
        ex.start("q")
        ex.settle(5)
        wait_for(lambda: tools.counts["search"] == 1)
        assert call(ex, "search", {"query": "right"}) == "result 2 for right"
        assert tools.counts["search"] == 2
        stats = ex.stats
        assert (stats.hits, stats.misses, stats.wasted_calls) == (0, 1, 1)


def test_failing_speculative_call_does_not_reach_the_agent(call):
    tools = Tools()
    tools.fail_first = True
    predictor = Always(ToolCall(tool_name="search", arguments={"query": "x"}))
    with SpeculativeExecutor(predictor, REGISTRY, tools.functions(), auto=False) as ex:
        ex.start("q")
        ex.settle(5)
        wait_for(lambda: tools.counts["search"] == 1)
        assert call(ex, "search", {"query": "x"}) == "result 2 for x"
        stats = ex.stats
        assert (stats.errors, stats.hits, stats.misses, stats.wasted_calls) == (1, 0, 1, 1)


def test_hanging_speculative_call_does_not_hold_up_the_real_one(call):
    tools = Tools()
    tools.hang_first = threading.Event()
    predictor = Always(ToolCall(tool_name="search", arguments={"query": "x"}))
    with SpeculativeExecutor(
        predictor, REGISTRY, tools.functions(), auto=False, tool_timeouts={"search": 0.2}
    ) as ex:
        ex.start("q")
        ex.settle(5)
        wait_for(lambda: tools.counts["search"] == 1)
        started = time.perf_counter()
        assert call(ex, "search", {"query": "x"}) == "result 2 for x"
        assert time.perf_counter() - started < 2.0
        assert ex.stats.errors >= 1 and ex.stats.hits == 0
        tools.hang_first.set()


def test_real_call_raises_as_without_the_executor(call):
    tools = Tools()
    predictor = Always()
    with SpeculativeExecutor(predictor, REGISTRY, tools.functions(), auto=False) as ex:
        ex.start("q")
        with pytest.raises(TypeError):
            call(ex, "search", {"no_such_argument": 1})


def test_concurrency_limit_holds(call):
    tools = Tools(sleep=0.15)
    calls = [ToolCall(tool_name="lookup", arguments={"key": str(i)}) for i in range(5)]
    with SpeculativeExecutor(
        Always(*calls), REGISTRY, tools.functions(), k=5, max_concurrency=2, auto=False
    ) as ex:
        ex.start("q")
        launched = ex.settle(5)
        assert len(launched) == 2 and ex.stats.skipped == 3
        wait_for(lambda: tools.counts["lookup"] == 2)
        assert call(ex, "lookup", {"key": "1"}) == "value of 1"  # the second launched: a hit
        assert tools.max_running <= 2 and ex.max_running <= 2
        assert ex.stats.hits == 1 and ex.stats.wasted_calls == 1


def test_late_prediction_is_dropped(call):
    tools = Tools()
    predictor = Always(ToolCall(tool_name="search", arguments={"query": "x"}), delay=0.3)
    with SpeculativeExecutor(predictor, REGISTRY, tools.functions(), auto=False) as ex:
        ex.start("q")
        assert call(ex, "search", {"query": "x"}) == "result 1 for x"
        assert ex.settle(5) == []  # arrived after the real call: nothing launched
        time.sleep(0.05)
        assert tools.counts["search"] == 1 and ex.stats.late == 1


def test_auto_mode_speculates_after_each_observation_and_saves_time(call):
    tools = Tools(sleep=0.1)
    predictor = Always(ToolCall(tool_name="search", arguments={"query": "x"}))
    with SpeculativeExecutor(predictor, REGISTRY, tools.functions(), auto=True) as ex:
        ex.start("q")
        for _ in range(2):
            ex.settle(5)
            time.sleep(0.15)  # the actor thinks longer than the tool takes
            started = time.perf_counter()
            assert call(ex, "search", {"query": "x"}).endswith("for x")
            assert time.perf_counter() - started < 0.08  # served from the finished speculative call
        assert ex.stats.hits == 2 and ex.stats.time_saved > 0.1
        assert len(ex.history) == 2


def test_async_tool_functions():
    calls = {"n": 0}

    async def search(query: str) -> str:
        calls["n"] += 1
        await asyncio.sleep(0.01)
        return f"async {query}"

    async def agent() -> str:
        predictor = Always(ToolCall(tool_name="search", arguments={"query": "x"}))
        with SpeculativeExecutor(predictor, REGISTRY, {"search": search}, auto=False) as ex:
            ex.start("q")
            await asyncio.wrap_future(ex._round.prediction)
            await asyncio.sleep(0.05)
            result = await ex.acall("search", {"query": "x"})
            assert ex.stats.hits == 1
            return result

    assert asyncio.run(agent()) == "async x"
    assert calls["n"] == 1


def in_daemon_thread(fn, timeout: float = 5.0):
    """``fn()``'s result, or a failure if it has not returned within ``timeout`` (a hang)."""
    out: list = []
    thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    thread.start()
    thread.join(timeout)
    assert out, "hung"
    return out[0]


def test_finished_speculative_result_is_used_after_its_timeout(call):
    tools = Tools()
    predictor = Always(ToolCall(tool_name="search", arguments={"query": "x"}))
    with SpeculativeExecutor(
        predictor, REGISTRY, tools.functions(), auto=False, tool_timeouts={"search": 0.05}
    ) as ex:
        ex.start("q")
        ex.settle(5)
        wait_for(lambda: tools.counts["search"] == 1 and ex.running == 0)
        time.sleep(0.1)  # the agent thinks longer than the timeout: no time left, result ready
        assert call(ex, "search", {"query": "x"}) == "result 1 for x"
        assert tools.counts["search"] == 1
        stats = ex.stats
        assert (stats.hits, stats.misses, stats.errors, stats.wasted_calls) == (1, 0, 0, 0)


def test_wrapped_sync_tool_keeps_its_slot_until_it_really_returns():
    release, started = threading.Event(), []

    def lookup(key: str) -> str:
        started.append(key)
        release.wait(5)
        return key

    predictor = Always(ToolCall(tool_name="lookup", arguments={"key": "a"}))
    ex = SpeculativeExecutor(
        predictor, REGISTRY, {"lookup": lookup}, max_concurrency=1, tool_timeouts={"lookup": 0.05}
    )
    Speculation(ex)  # wraps lookup in an async dispatcher
    try:
        ex.speculate("q", [])
        assert len(ex.settle(5)) == 1
        wait_for(lambda: len(started) == 1)
        time.sleep(0.2)  # well past the timeout; the call is still running
        assert ex.running == 1
        ex.speculate("q", [])  # a new round: the only slot is still taken
        assert ex.settle(5) == [] and ex.stats.skipped == 1
        time.sleep(0.05)
        assert len(started) == 1 and ex.max_running == 1
    finally:
        release.set()
        ex.close()
    wait_for(lambda: ex.running == 0)


def test_calls_after_close_run_the_tool_directly(call):
    tools = Tools()
    predictor = Always(ToolCall(tool_name="search", arguments={"query": "x"}))
    ex = SpeculativeExecutor(predictor, REGISTRY, tools.functions(), auto=True)
    ex.start("q")
    ex.settle(5)
    wait_for(lambda: tools.counts["search"] == 1)
    ex.close()
    before = ex.stats
    assert call(ex, "search", {"query": "x"}) == "result 2 for x"  # not matched, nothing raised
    assert call(ex, "send_email", {"to": "a@b.c"}) == "sent to a@b.c"
    assert ex.start("q").result(1) == [] and ex.speculate("q", []).result(1) == []
    time.sleep(0.05)
    assert tools.counts == {"search": 2, "lookup": 0, "send_email": 1}
    assert ex.stats == before and ex.history == []


def test_async_tool_call_after_close_does_not_hang():
    async def search(query: str) -> str:
        await asyncio.sleep(0.01)
        return f"async {query}"

    async def from_a_running_loop() -> str:
        return ex.call("search", {"query": "in loop"})

    predictor = Always(ToolCall(tool_name="search", arguments={"query": "x"}))
    ex = SpeculativeExecutor(predictor, REGISTRY, {"search": search}, auto=True)
    ex.start("q")
    ex.settle(5)
    wait_for(lambda: ex.stats.launched == 1 and ex.running == 0)  # the background loop runs
    ex.close()
    assert in_daemon_thread(lambda: ex.call("search", {"query": "y"})) == "async y"
    assert in_daemon_thread(lambda: asyncio.run(from_a_running_loop())) == "async in loop"
    assert asyncio.run(asyncio.wait_for(ex.acall("search", {"query": "z"}), 5)) == "async z"


def test_close_during_a_real_async_call_lets_it_finish():
    started = threading.Event()

    async def send_email(to: str) -> str:  # not read-only: a real call on the background loop
        started.set()
        await asyncio.sleep(0.3)
        return f"sent to {to}"

    ex = SpeculativeExecutor(Always(), REGISTRY, {"send_email": send_email}, auto=False)
    out: list = []
    agent = threading.Thread(target=lambda: out.append(ex.call("send_email", {"to": "a@b.c"})), daemon=True)
    agent.start()
    assert started.wait(5)  # the tool is running on the executor's loop
    closer = threading.Thread(target=ex.close, daemon=True)
    closer.start()
    closer.join(5)
    assert not closer.is_alive(), "close() hung"
    agent.join(5)
    assert not agent.is_alive(), "the real call hung after close()"
    assert out == ["sent to a@b.c"]
    wait_for(lambda: not ex._loop.is_running())  # the last real call stopped the loop
    # a real call made after close() runs directly, on a fresh loop
    assert in_daemon_thread(lambda: ex.call("send_email", {"to": "d@e.f"})) == "sent to d@e.f"


@pytest.mark.parametrize("fails_later", [False, True])
def test_timed_out_speculative_call_is_counted_once(call, fails_later):
    release, runs = threading.Event(), []

    def search(query: str) -> str:
        runs.append(query)
        if len(runs) == 1:  # the speculative call: outlives its timeout
            release.wait(5)
            if fails_later:
                raise RuntimeError("late failure")
        return f"real {query}"

    predictor = Always(ToolCall(tool_name="search", arguments={"query": "x"}))
    with SpeculativeExecutor(
        predictor, REGISTRY, {"search": search}, auto=False, tool_timeouts={"search": 0.1}
    ) as ex:
        ex.start("q")
        ex.settle(5)
        wait_for(lambda: len(runs) == 1)
        assert call(ex, "search", {"query": "x"}) == "real x"
        release.set()
        wait_for(lambda: ex.running == 0)
        stats = ex.stats
        assert (stats.hits, stats.misses, stats.errors, stats.wasted_calls) == (0, 1, 1, 1)
        assert stats.launched == stats.hits + stats.wasted_calls


def test_admit_hook_refuses_and_releases_once_the_call_ends():
    """A limit shared by executors: refused candidates are skipped (the real call runs); an
    admitted call hands back its release when it really ends."""
    released: list[str] = []
    allow = {"on": False}

    def admit(call: ToolCall):
        if not allow["on"]:
            return None
        return lambda: released.append(call.arguments["query"])

    tools = Tools(sleep=0.02)
    ex = SpeculativeExecutor(Always(ToolCall(tool_name="search", arguments={"query": "q"})), REGISTRY,
                             tools.functions(), admit=admit)  # fmt: skip
    try:
        ex.start("question")
        ex.settle(1)
        assert ex.stats.skipped == 1 and ex.stats.launched == 0
        allow["on"] = True
        ex.observe([])
        ex.settle(1)
        time.sleep(0.1)
        assert ex.stats.launched == 1 and released == ["q"]
        assert ex.call("search", {"query": "q"}) == "result 1 for q" and ex.stats.hits == 1
    finally:
        ex.close()


def test_cancel_unused_and_end_round():
    """Unused async speculative calls are cancelled when their round ends; ``end_round`` ends a
    round (a new turn) so that nothing speculated in it is served later."""
    finished: list[str] = []

    async def slow(query: str) -> str:
        await asyncio.sleep(0.3)
        finished.append(query)
        return f"slow:{query}"

    guess = ToolCall(tool_name="search", arguments={"query": "a"})
    ex = SpeculativeExecutor(Always(guess), REGISTRY, {"search": slow}, auto=False, cancel_unused=True)
    try:
        ex.start("question")
        ex.settle(1)
        time.sleep(0.05)
        ex.end_round()  # the turn is over: the running guess is cancelled, never served
        assert ex.stats.cancelled == 1 and ex.stats.wasted_calls == 1 and ex.stats.errors == 0
        assert ex.call("search", {"query": "a"}) == "slow:a"  # runs for real: no hit
        assert ex.stats.hits == 0 and ex.stats.misses == 1
        time.sleep(0.4)
        assert finished == ["a"]  # only the real call ran to the end
        assert ex.running == 0
    finally:
        ex.close()


HANGING_AGENT = """
import asyncio, sys, threading, time
from specdecode import SpeculativeExecutor
from specdecode.records import ToolCall, ToolSpec
from specdecode.registry import Registry
from specdecode.speculate.predictors import Predictor

what, close = sys.argv[1], sys.argv[2] == "close"
forever = threading.Event()
registry = Registry("t", (ToolSpec(name="search", description="search", read_only=True),))


class Stuck(Predictor):
    name = "stuck"

    def predict(self, context, k=1):
        if what == "predictor":
            forever.wait()  # a predictor that never returns
        return [ToolCall(tool_name="search", arguments={"query": "never"})]


def search(query):
    if query == "never":
        forever.wait()  # the speculative call never returns
    return "ok"


async def async_search(query):
    if query == "never":
        await asyncio.Event().wait()
    return "ok"


tool = async_search if what == "async-call" else search
ex = SpeculativeExecutor(Stuck(), registry, {"search": tool}, auto=False, timeout=3600)
ex.start("q")
time.sleep(0.3)  # the prediction or the speculative call is stuck by now
assert ex.call("search", {"query": "real"}) == "ok"
if close:
    ex.close()
print("agent done", flush=True)
"""


@pytest.mark.parametrize("close", ["close", "no-close"])
@pytest.mark.parametrize("what", ["call", "async-call", "predictor"])
def test_a_never_returning_speculation_does_not_keep_the_process_alive(tmp_path, what, close):
    """The agent's program ends while a speculative call (sync or async) or the predictor is stuck
    for good: the process exits within 2 s of the agent's end, closed or not."""
    import subprocess
    import sys

    script = tmp_path / "agent.py"
    script.write_text(HANGING_AGENT, encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, str(script), what, close], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline()
        ended = time.monotonic()
        assert line.strip() == "agent done", proc.stderr.read()
        proc.wait(timeout=30)
        assert time.monotonic() - ended < 2.0, (
            f"the process outlived the agent by {time.monotonic() - ended:.1f} s"
        )
        assert proc.returncode == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_unused_async_speculative_call_is_cancelled():
    """A round that ends without using an ``async def`` speculative call cancels it (the tool
    sees CancelledError), and the cancellation is no error."""
    started, cancelled = threading.Event(), threading.Event()

    async def search(query: str) -> str:
        if query == "guess":
            started.set()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise
        return f"real {query}"

    predictor = Always(ToolCall(tool_name="search", arguments={"query": "guess"}))
    with SpeculativeExecutor(predictor, REGISTRY, {"search": search}, auto=False) as ex:
        ex.start("q")
        ex.settle(5)
        assert started.wait(5)
        assert ex.call("search", {"query": "other"}) == "real other"  # a miss ends the round
        assert cancelled.wait(5)
        wait_for(lambda: ex.running == 0)
        stats = ex.stats
        assert (stats.misses, stats.wasted_calls, stats.errors) == (1, 1, 0)
