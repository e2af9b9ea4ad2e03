"""The scenario every framework-adapter test plays: five tool calls, scripted guesses, and what a
speculating run must show (hits, misses, the refused side effect, tools run once, time saved).

Each framework's test defines its own tools (with that framework's decorator) that count their
runs in ``RUNS`` and sleep ``TOOL`` seconds, and an actor that thinks ``THINK`` seconds a step.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from specdecode.integrations.testing import ScriptedPredictor, call, registry_of
from specdecode.speculate.executor import SpeculativeExecutor

THINK, TOOL = 0.1, 0.12
ATTEMPTS = 3  # tries for the wall-clock comparison (saving_agrees)
QUESTION = "What is x?"
ANSWER = "the answer"
# What the actor does: search a, search b, add_note (side effect), search c, search d.
CALLS = [
    ("search", {"query": "a"}),
    ("search", {"query": "b"}),
    ("add_note", {"text": "x"}),
    ("search", {"query": "c"}),
    ("search", {"query": "d"}),
]
OBSERVATIONS = ["results for a", "results for b", "saved", "results for c", "results for d"]
# What the speculator guesses: right, wrong, the side-effecting tool (must be refused), right, right.
GUESSES = [
    call("search", query="a"),
    call("search", query="WRONG"),
    call("add_note", text="x"),
    call("search", query="c"),
    call("search", query="d"),
]
RUNS: Counter = Counter()


def run_search(query: str) -> str:
    RUNS[("search", query)] += 1
    return f"results for {query}"


def run_add_note(text: str) -> str:
    RUNS[("add_note", text)] += 1
    return "saved"


def executor() -> SpeculativeExecutor:
    """``search`` is read-only (speculated), ``add_note`` is not (refused, run for real)."""
    return SpeculativeExecutor(
        ScriptedPredictor(GUESSES), registry_of({"search": True, "add_note": False}), {}
    )


def check_speculated_run(ex: SpeculativeExecutor, base: float, wall: float) -> tuple[float, float]:
    """What the executor and the tools show after one speculating run of the scenario; returns the
    wall time saved against the plain run (``base``) and the executor's own count of it, for
    :func:`saving_agrees` (wall time on a loaded 2-core machine jitters by a tenth of a second)."""
    stats = ex.stats
    assert (stats.hits, stats.misses, stats.direct) == (3, 1, 1)
    assert stats.wasted_calls == 1 and stats.refused >= 1
    # hits were not run a second time; the wrong guess ran once (wasted); the side effect once, for real
    assert Counter(
        {("search", "a"): 1, ("search", "b"): 1, ("search", "c"): 1, ("search", "d"): 1,
         ("search", "WRONG"): 1, ("add_note", "x"): 1}
    ) == RUNS  # fmt: skip
    # the speculator saw the conversation so far: the question and each observation
    contexts = ex.predictor.contexts
    assert contexts[0].question == QUESTION and contexts[0].history == ()
    assert [s.observation for s in contexts[3].history] == OBSERVATIONS[:3]
    assert stats.time_saved > 2 * TOOL
    return base - wall, stats.time_saved


def saving_agrees(play: Callable[[], tuple[float, float]], attempts: int = ATTEMPTS) -> None:
    """``play`` runs the scenario plainly and speculating (checking everything else each time) and
    returns (wall time saved, the executor's count): they must agree within 20 % on one of
    ``attempts`` tries. A scheduler hiccup in one run misses; wrong accounting misses every time."""
    seen = []
    for _ in range(attempts):
        saved, counted = play()
        if abs(saved - counted) <= 0.2 * counted:
            return
        seen.append((round(saved, 3), round(counted, 3)))
    raise AssertionError(f"wall time saved vs the executor's count, {attempts} tries: {seen}")
