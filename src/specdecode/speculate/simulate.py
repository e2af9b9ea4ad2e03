"""The latency model of speculation: pure functions, checkable by hand.

One trace is a list of steps. Step ``i`` has

* ``actor`` — the actor's think time: from the moment the previous observation arrives (the
  question, for the first step) until it issues call ``i``;
* ``tool`` — the latency of call ``i``;
* ``speculator`` — the speculator's latency: it starts when the previous observation arrives
  and, after ``speculator`` seconds, launches its predicted calls (read-only ones only);
* ``hit`` — one of the launched calls equals the real call (by the chosen matcher);
* ``launched`` — how many speculative calls were launched (≤ k; read-only only).

Without speculation a step takes ``actor + tool``. With speculation:

* a hit whose prediction was ready in time (``speculator <= actor``) hides the part of the
  tool's latency that overlaps the actor's thinking: the step takes
  ``max(actor, speculator + tool)``, saving ``min(tool, actor - speculator)``;
* a prediction that is not ready when the actor calls is abandoned (nothing is launched,
  nothing is wasted, nothing is saved);
* a miss takes ``actor + tool`` as usual and wastes every launched call (its latency and its
  cost); on a hit the other ``launched - 1`` calls are wasted.

Speculative calls are assumed not to slow the real ones (tools run elsewhere). With ``h`` the
tool-time-weighted hit rate and ``f`` the tool-time fraction of the baseline, the speed-up can
never exceed ``1 / (1 - h·f)``: hits hide at most their own tool time.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

# --------------------------------------------------------------------------- distributions
MAX_SECONDS = 1e6  # the longest latency (or mean latency) a distribution may give: 11.6 days


@dataclass(frozen=True)
class Distribution:
    """``fixed:X``, ``uniform:A,B``, ``lognormal:MU,SIGMA`` (of the log, seconds) or
    ``empirical:X1,X2,...`` (resampled). ``sample(key)`` is deterministic per key and seed."""

    kind: str
    params: tuple[float, ...]

    @classmethod
    def parse(cls, text: str | float | Distribution) -> Distribution:
        """The one parser of latency distributions: every parameter a finite number, seconds
        never negative, a mean of at most ``MAX_SECONDS`` (so no draw or sum overflows);
        ValueError with a one-line reason otherwise."""
        if isinstance(text, Distribution):
            return text
        if isinstance(text, (int, float)) and not isinstance(text, bool):
            text = f"fixed:{text!r}"
        kind, _, rest = str(text).strip().partition(":")
        kind = kind.strip().lower()
        try:
            params = tuple(float(p) for p in rest.split(",") if p.strip())
        except ValueError:
            raise ValueError(f"bad latency {text!r}: numbers expected after '{kind}:'") from None
        want = {"fixed": 1, "uniform": 2, "lognormal": 2}
        if kind == "empirical":
            if not params:
                raise ValueError(f"bad latency {text!r}: empirical needs at least one value")
        elif kind not in want:
            raise ValueError(
                f"bad latency {text!r}: use fixed:X, uniform:A,B, lognormal:MU,SIGMA or empirical:X,..."
            )
        elif len(params) != want[kind]:
            raise ValueError(f"bad latency {text!r}: {kind} takes {want[kind]} number(s)")
        if not all(math.isfinite(p) for p in params):
            raise ValueError(f"bad latency {text!r}: parameters must be finite numbers")
        if kind == "lognormal":
            mu, sigma = params
            if sigma < 0:
                raise ValueError(f"bad latency {text!r}: lognormal needs SIGMA >= 0")
            if mu + sigma**2 / 2 > math.log(MAX_SECONDS):
                raise ValueError(
                    f"bad latency {text!r}: a mean of e^{mu + sigma**2 / 2:g} seconds is more than "
                    f"{MAX_SECONDS:g}"
                )
        else:
            if any(p < 0 for p in params):
                raise ValueError(f"bad latency {text!r}: negative seconds")
            if any(p > MAX_SECONDS for p in params):
                raise ValueError(f"bad latency {text!r}: more than {MAX_SECONDS:g} seconds")
        if kind == "uniform" and params[0] > params[1]:
            raise ValueError(f"bad latency {text!r}: uniform needs A <= B")
        return cls(kind, params)

    def sample(self, rng: random.Random) -> float:
        if self.kind == "fixed":
            return self.params[0]
        if self.kind == "uniform":
            return rng.uniform(*self.params)
        if self.kind == "lognormal":
            return rng.lognormvariate(*self.params)
        return rng.choice(self.params)

    @property
    def mean(self) -> float:
        if self.kind == "fixed":
            return self.params[0]
        if self.kind == "uniform":
            return sum(self.params) / 2
        if self.kind == "lognormal":
            return math.exp(self.params[0] + self.params[1] ** 2 / 2)
        return sum(self.params) / len(self.params)

    def __str__(self) -> str:
        return f"{self.kind}:{','.join(f'{p:g}' for p in self.params)}"


def keyed_rng(seed: int, *key: Any) -> random.Random:
    """A random generator that depends only on the seed and the key (trace id, step, what)."""
    digest = hashlib.sha256(":".join(map(str, (seed, *key))).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


@dataclass(frozen=True)
class LatencyModel:
    """Where actor and tool times come from: a trace step's measured ``actor_seconds`` /
    ``tool_seconds`` when present (and ``prefer_measured``), else the distribution (per tool
    name when ``per_tool`` names it). Every draw is keyed by (trace, step), so every predictor
    is simulated on the same times."""

    actor: Distribution = Distribution("fixed", (2.0,))
    tool: Distribution = Distribution("fixed", (1.0,))
    per_tool: tuple[tuple[str, Distribution], ...] = ()
    prefer_measured: bool = True
    seed: int = 0

    @classmethod
    def from_specs(
        cls,
        actor: str | None = None,
        tool: Sequence[str] | str | None = None,
        prefer_measured: bool = True,
        seed: int = 0,
    ) -> LatencyModel:
        """``tool`` specs: ``DIST`` (every tool) or ``NAME=DIST`` (one tool), repeatable."""
        model = cls(prefer_measured=prefer_measured, seed=seed)
        if actor:
            model = replace(model, actor=Distribution.parse(actor))
        specs = [tool] if isinstance(tool, str) else list(tool or [])
        per: list[tuple[str, Distribution]] = []
        for spec in specs:
            name, eq, dist = spec.partition("=")
            if eq and ":" not in name:
                per.append((name.strip(), Distribution.parse(dist)))
            else:
                model = replace(model, tool=Distribution.parse(spec))
        return replace(model, per_tool=tuple(per))

    def actor_time(self, trace_id: str, step: int, measured: float | None = None) -> float:
        if measured is not None and self.prefer_measured:
            return float(measured)
        return self.actor.sample(keyed_rng(self.seed, trace_id, step, "actor"))

    def tool_time(self, trace_id: str, step: int, tool: str, measured: float | None = None) -> float:
        if measured is not None and self.prefer_measured:
            return float(measured)
        dist = dict(self.per_tool).get(tool, self.tool)
        return dist.sample(keyed_rng(self.seed, trace_id, step, "tool"))

    def describe(self) -> dict[str, Any]:
        return {
            "actor": str(self.actor),
            "tool": str(self.tool),
            "per_tool": {n: str(d) for n, d in self.per_tool},
            "prefer_measured": self.prefer_measured,
            "seed": self.seed,
        }


# --------------------------------------------------------------------------- timelines
@dataclass(frozen=True)
class Step:
    """One step of a trace as the simulator sees it (seconds)."""

    actor: float
    tool: float
    speculator: float = 0.0
    hit: bool = False
    launched: int = 0
    # total latency of the launched calls that are not the hit (default: ``tool`` each)
    wasted_tool_seconds: float | None = None


@dataclass(frozen=True)
class StepOutcome:
    baseline: float
    speculative: float
    saved: float
    hit_used: bool
    wasted_calls: int
    wasted_tool_seconds: float
    in_time: bool


def simulate_step(step: Step) -> StepOutcome:
    """One step with and without speculation (see the module docstring)."""
    baseline = step.actor + step.tool
    in_time = step.speculator <= step.actor
    launched = step.launched if in_time else 0
    hit = step.hit and in_time and launched > 0
    wasted = launched - 1 if hit else launched
    if not wasted:
        wasted_seconds = 0.0
    elif step.wasted_tool_seconds is not None:
        wasted_seconds = step.wasted_tool_seconds
    else:
        wasted_seconds = wasted * step.tool
    speculative = max(step.actor, step.speculator + step.tool) if hit else baseline
    return StepOutcome(
        baseline=baseline,
        speculative=speculative,
        saved=baseline - speculative,
        hit_used=hit,
        wasted_calls=wasted,
        wasted_tool_seconds=wasted_seconds,
        in_time=in_time,
    )


@dataclass
class Totals:
    """Sums over steps (one trace or many) and what follows from them."""

    steps: int = 0
    baseline: float = 0.0
    speculative: float = 0.0
    tool_time: float = 0.0
    hit_tool_time: float = 0.0
    hits: int = 0
    hits_used: int = 0
    launched: int = 0
    wasted_calls: int = 0
    wasted_tool_seconds: float = 0.0
    late: int = 0
    outcomes: list[StepOutcome] = field(default_factory=list, repr=False)

    def add(self, step: Step) -> StepOutcome:
        out = simulate_step(step)
        self.steps += 1
        self.baseline += out.baseline
        self.speculative += out.speculative
        self.tool_time += step.tool
        self.hits += int(step.hit)
        if out.hit_used:
            self.hits_used += 1
            self.hit_tool_time += step.tool
        self.launched += step.launched if out.in_time else 0
        self.wasted_calls += out.wasted_calls
        self.wasted_tool_seconds += out.wasted_tool_seconds
        self.late += int(not out.in_time and step.launched > 0)
        self.outcomes.append(out)
        return out

    @property
    def saved(self) -> float:
        return self.baseline - self.speculative

    @property
    def speedup(self) -> float:
        return self.baseline / self.speculative if self.speculative > 0 else 1.0

    @property
    def tool_fraction(self) -> float:
        return self.tool_time / self.baseline if self.baseline > 0 else 0.0

    @property
    def weighted_hit_rate(self) -> float:
        """Share of tool time on steps whose speculative result was used."""
        return self.hit_tool_time / self.tool_time if self.tool_time > 0 else 0.0

    @property
    def bound(self) -> float:
        return bound(self.weighted_hit_rate, self.tool_fraction)

    def summary(self, cost_per_call: float = 1.0) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "baseline_seconds": self.baseline,
            "speculative_seconds": self.speculative,
            "time_saved_seconds": self.saved,
            "time_saved_share": self.saved / self.baseline if self.baseline else 0.0,
            "speedup": self.speedup,
            "bound": self.bound,
            "bound_step_hit_rate": bound(self.hits / self.steps if self.steps else 0.0, self.tool_fraction),
            "tool_fraction": self.tool_fraction,
            "hit_rate": self.hits / self.steps if self.steps else 0.0,
            "hits_used": self.hits_used,
            "weighted_hit_rate": self.weighted_hit_rate,
            "launched_calls": self.launched,
            "wasted_calls": self.wasted_calls,
            "wasted_tool_seconds": self.wasted_tool_seconds,
            "wasted_cost": self.wasted_calls * cost_per_call,
            "late_predictions": self.late,
        }


def bound(hit_rate: float, tool_fraction: float) -> float:
    """The most a speculator can gain: ``1 / (1 - h·f)``."""
    hidden = hit_rate * tool_fraction
    return math.inf if hidden >= 1 else 1.0 / (1.0 - hidden)


def simulate(steps: Sequence[Step]) -> Totals:
    """Totals over any steps (one trace, or every step of every trace: steps are independent)."""
    totals = Totals()
    for step in steps:
        totals.add(step)
    return totals


def sweep(steps: Sequence[Step], fractions: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)):
    """Speed-up and bound when tool latencies are scaled so that tools take a fraction ``f`` of
    the baseline time (actor and speculator times and the hits unchanged)."""
    actor = sum(s.actor for s in steps)
    tool = sum(s.tool for s in steps)
    rows = []
    for f in fractions:
        if not 0 < f < 1 or tool <= 0:
            continue
        scale = f * actor / ((1 - f) * tool) if actor > 0 else 1.0
        scaled = [
            replace(
                s,
                tool=s.tool * scale,
                wasted_tool_seconds=None if s.wasted_tool_seconds is None else s.wasted_tool_seconds * scale,
            )
            for s in steps
        ]
        totals = simulate(scaled)
        rows.append(
            {
                "tool_fraction": f,
                "speedup": totals.speedup,
                "bound": totals.bound,
                "time_saved_share": totals.saved / totals.baseline if totals.baseline else 0.0,
            }
        )
    return rows
