"""LLM judges (Gemini or any OpenAI-compatible server) through the teacher client layer, so
every judge call is cached, retried with backoff and counted against a budget.

* ``gemini`` / ``openai`` — pointwise, the prototype's rubric on tool names: each answer gets
  1.0 (all tool names right), 0.5 (some right) or 0.0 (wrong or none), with a reason; the
  higher score wins. Row fields: ``judge_base_score``, ``judge_base_reason``,
  ``judge_lora_score``, ``judge_lora_reason``.
* ``pairwise-gemini`` / ``pairwise-openai`` — both answers side by side, asked twice with the
  order swapped (A = base first, then A = adapter first). A winner counts only when both orders
  agree, otherwise the verdict is ``inconsistent``. Row fields ``judge_order_ab`` and
  ``judge_order_ba`` keep both raw verdicts.

A reply that is not JSON, or has no usable score or winner, is dropped from the reply cache,
so a rerun asks again instead of replaying it. ``fingerprint()`` (the judge model and base URL)
goes into the compare run's fingerprint: a rerun with another judge model does not mix verdicts.

Settings (``make_judge(name, **settings)``, else environment variables):
``model`` (``SPECDECODE_JUDGE_MODEL``), ``base_url`` (``SPECDECODE_JUDGE_BASE_URL``),
``api_key_env`` (``SPECDECODE_JUDGE_API_KEY_ENV``; default ``GEMINI_API_KEY``/``GOOGLE_API_KEY``
or ``OPENAI_API_KEY``), ``max_calls`` (``SPECDECODE_JUDGE_MAX_CALLS``), ``timeout``
(``SPECDECODE_JUDGE_TIMEOUT``, seconds), ``max_attempts`` (``SPECDECODE_JUDGE_MAX_ATTEMPTS``),
``backoff`` (``SPECDECODE_JUDGE_BACKOFF``, first retry delay in seconds), ``cache``
(``SPECDECODE_JUDGE_CACHE=0`` turns it off), ``cache_path`` (``SPECDECODE_LLM_CACHE``).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from specdecode.errors import InputError
from specdecode.evaluate.judges.agreement import score_agreement, winner_agreement
from specdecode.evaluate.judges.base import Verdict
from specdecode.prompts import JUDGE_PAIRWISE_SYSTEM, JUDGE_POINTWISE_SYSTEM, judge_answer, judge_context
from specdecode.teacher.cache import public_url
from specdecode.teacher.client import CallFailed, ClientConfig, LLMClient, RetryPolicy
from specdecode.teacher.jsonfix import ReplyParseError, parse_reply
from specdecode.teacher.providers import GenerationSettings

DEFAULT_MODELS = {"gemini": "gemini-2.5-flash", "openai": "gpt-4o-mini"}
POINTWISE_SCHEMA = {
    "type": "object",
    "properties": {"score": {"type": "number"}, "reason": {"type": "string"}},
    "required": ["score", "reason"],
}
PAIRWISE_SCHEMA = {
    "type": "object",
    "properties": {"winner": {"type": "string", "enum": ["A", "B", "tie"]}, "reason": {"type": "string"}},
    "required": ["winner", "reason"],
}
Job = tuple[str, str, dict[str, Any]]  # (system prompt, user prompt, response schema)


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def client_config(provider: str, settings: dict[str, Any]) -> ClientConfig:
    """The judge's client settings: constructor arguments first, then environment variables."""

    def pick(key: str, env: str, cast: Callable[[str], Any] = str) -> Any:
        if settings.get(key) is not None:
            return settings[key]
        raw = _env(env)
        if raw is None:
            return None
        try:
            return cast(raw)
        except ValueError:
            raise InputError(f"environment variable {env}: not a valid value: {raw!r}") from None

    unknown = set(settings) - {
        "model",
        "base_url",
        "api_key_env",
        "max_calls",
        "timeout",
        "max_attempts",
        "backoff",
        "cache",
        "cache_path",
        "concurrency",
        "temperature",
        "json_mode",
    }
    if unknown:
        raise InputError(f"unknown judge setting(s): {', '.join(sorted(unknown))}")
    cache = settings.get("cache")
    if cache is None:
        cache = _env("SPECDECODE_JUDGE_CACHE") not in ("0", "false", "no", "off")
    cache_path = settings.get("cache_path")
    backoff = pick("backoff", "SPECDECODE_JUDGE_BACKOFF", float)
    return ClientConfig(
        provider=provider,
        model=pick("model", "SPECDECODE_JUDGE_MODEL") or DEFAULT_MODELS[provider],
        base_url=pick("base_url", "SPECDECODE_JUDGE_BASE_URL"),
        api_key_env=pick("api_key_env", "SPECDECODE_JUDGE_API_KEY_ENV"),
        timeout=pick("timeout", "SPECDECODE_JUDGE_TIMEOUT", float) or 60.0,
        generation=GenerationSettings(
            temperature=settings.get("temperature", 0.0),
            seed=0,
            max_tokens=512,
            json_mode=settings.get("json_mode") or "schema",
        ),
        retry=RetryPolicy(
            max_attempts=pick("max_attempts", "SPECDECODE_JUDGE_MAX_ATTEMPTS", int) or 6,
            base_delay=backoff if backoff is not None else 1.0,
            max_delay=60.0 if backoff is None else max(backoff * 8, backoff),
        ),
        max_calls=pick("max_calls", "SPECDECODE_JUDGE_MAX_CALLS", int),
        concurrency=int(settings.get("concurrency") or 4),
        cache=bool(cache),
        cache_path=Path(cache_path) if cache_path else None,
    )


def _question(example: Any) -> str:
    messages = getattr(getattr(example, "request", None), "messages", None) or []
    users = [m.get("content") or "" for m in messages if m.get("role") == "user"]
    return users[-1] if users else ""


def _gold(example: Any, mode: str) -> list[dict[str, Any]]:
    calls = [{"tool_name": c.tool_name, "arguments": c.arguments} for c in getattr(example, "gold", [])]
    return calls[:1] if mode == "next-call" else calls


def _answer(scored: dict[str, Any]) -> str:
    return judge_answer(str(scored.get("pred_raw") or ""), scored.get("pred_calls") or [])


def _context(example: Any, mode: str) -> str:
    return judge_context(_question(example), _gold(example, mode), mode)


class LLMJudge:
    """Shared plumbing: a client, two calls per comparison run side by side, error verdicts."""

    name = "llm"

    def __init__(self, provider: str, client: LLMClient | None = None, **settings: Any):
        self.provider = provider
        self.client = client or LLMClient(client_config(provider, settings))

    def fingerprint(self) -> dict[str, Any]:
        """What decides the verdicts besides the judge's name: its model and server (never the key)."""
        config = self.client.config
        return {"judge_model": config.model, "judge_base_url": public_url(config.base_url)}

    @staticmethod
    def _messages(job: Job) -> list[dict[str, str]]:
        system, user, _ = job
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def _ask(self, job: Job) -> dict[str, Any]:
        """The judge's reply object; raises CallFailed (kind ``parse`` when it is not JSON)."""
        completion = self.client.complete(self._messages(job), job[2])
        try:
            obj, _ = parse_reply(completion.text)
        except ReplyParseError as exc:
            self._forget(job)
            raise CallFailed(f"judge reply is not JSON: {exc}", "parse", completion.attempts) from None
        return obj

    def _forget(self, job: Job) -> None:
        """Drop an unusable reply from the cache, so that a rerun asks again instead of replaying it."""
        if self.client.cache is not None:
            self.client.cache.forget(self.client.key(self._messages(job), job[2]))

    def _both(self, jobs: Sequence[Job]) -> list[dict[str, Any] | CallFailed]:
        def run(job: Job) -> dict[str, Any] | CallFailed:
            try:
                return self._ask(job)
            except CallFailed as exc:
                return exc

        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            return list(pool.map(run, jobs))

    def stats(self) -> dict[str, Any]:
        return self.client.stats()


class PointwiseJudge(LLMJudge):
    """The prototype's rubric, asked once per answer; the higher score wins."""

    def __init__(self, provider: str, client: LLMClient | None = None, **settings: Any):
        super().__init__(provider, client, **settings)
        self.name = provider

    def compare(self, example: Any, base: dict[str, Any], lora: dict[str, Any], mode: str) -> Verdict:
        context = _context(example, mode)
        jobs: list[Job] = [
            (JUDGE_POINTWISE_SYSTEM, f"{context}\n\nAgent's answer:\n{_answer(s)}", POINTWISE_SCHEMA)
            for s in (base, lora)
        ]
        results = self._both(jobs)
        extra: dict[str, Any] = {}
        scores: list[float] = []
        for side, job, result in zip(("base", "lora"), jobs, results):
            if isinstance(result, CallFailed):
                extra[f"judge_{side}_error"] = result.message
                continue
            try:
                value = float(result.get("score"))
                if not math.isfinite(value):
                    raise ValueError(value)
            except (TypeError, ValueError):
                self._forget(job)
                extra[f"judge_{side}_error"] = f"no numeric score in the reply: {result!r}"[:300]
                continue
            score = min((1.0, 0.5, 0.0), key=lambda level: abs(level - value))  # snap to the rubric
            scores.append(score)
            extra[f"judge_{side}_score"] = score
            extra[f"judge_{side}_reason"] = str(result.get("reason", ""))
        if len(scores) < 2:
            errors = "; ".join(v for k, v in extra.items() if k.endswith("_error"))
            return Verdict(0.0, 0.0, "error", f"judge failed: {errors}", extra)
        sb, sl = scores
        winner = "tie" if sb == sl else ("lora" if sl > sb else "base")
        reason = f"base {sb}: {extra['judge_base_reason']} | lora {sl}: {extra['judge_lora_reason']}"
        return Verdict(sb, sl, winner, reason, extra)

    def summarise(self, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return {
            "judge_agreement": winner_agreement(rows),
            "judge_score_agreement": score_agreement(rows),
            "judge_client": self.stats(),
        }


class PairwiseJudge(LLMJudge):
    """Base and adapter side by side, asked in both orders; only an order-independent verdict counts."""

    def __init__(self, provider: str, client: LLMClient | None = None, **settings: Any):
        super().__init__(provider, client, **settings)
        self.name = f"pairwise-{provider}"

    def compare(self, example: Any, base: dict[str, Any], lora: dict[str, Any], mode: str) -> Verdict:
        context = _context(example, mode)
        orders = (("ab", base, lora, ("base", "lora")), ("ba", lora, base, ("lora", "base")))
        jobs: list[Job] = [
            (
                JUDGE_PAIRWISE_SYSTEM,
                f"{context}\n\nAnswer A:\n{_answer(a)}\n\nAnswer B:\n{_answer(b)}",
                PAIRWISE_SCHEMA,
            )
            for _, a, b, _ in orders
        ]
        results = self._both(jobs)
        extra: dict[str, Any] = {}
        means: list[str] = []
        for (tag, _, _, (side_a, side_b)), job, result in zip(orders, jobs, results):
            record: dict[str, Any] = {"A": side_a, "B": side_b}
            if isinstance(result, CallFailed):
                record["error"] = result.message
            else:
                raw = str(result.get("winner", "")).strip()
                label = raw.upper() if raw.upper() in ("A", "B") else raw.lower()
                meaning = {"A": side_a, "B": side_b, "tie": "tie"}.get(label)
                record.update(
                    winner=label, means=meaning or "unreadable", reason=str(result.get("reason", ""))
                )
                if meaning is None:
                    self._forget(job)
                    record["error"] = f"winner must be A, B or tie, got {raw!r}"
                else:
                    means.append(meaning)
            extra[f"judge_order_{tag}"] = record
        ab, ba = extra["judge_order_ab"], extra["judge_order_ba"]
        if len(means) < 2:
            errors = "; ".join(r["error"] for r in (ab, ba) if "error" in r)
            return Verdict(0.0, 0.0, "error", f"judge failed: {errors}", extra)
        winner = means[0] if means[0] == means[1] else "inconsistent"
        points = {"base": 0.0, "lora": 0.0}
        for meaning in means:
            for side in points:
                points[side] += 0.5 if meaning == "tie" else float(meaning == side)
        reason = (
            f"A=base,B=lora: {ab['means']} ({ab['reason']}) | A=lora,B=base: {ba['means']} ({ba['reason']})"
            + (" → orders disagree" if winner == "inconsistent" else "")
        )
        return Verdict(points["base"] / 2, points["lora"] / 2, winner, reason, extra)

    def summarise(self, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        positions: Counter[str] = Counter()
        for row in rows:
            for tag in ("ab", "ba"):
                order = row.get(f"judge_order_{tag}") or {}
                if order.get("winner") in ("A", "B", "tie"):
                    positions[order["winner"]] += 1
        usable = [r for r in rows if r.get("winner") != "error"]
        consistent = sum(1 for r in usable if r.get("winner") != "inconsistent")
        return {
            "judge_agreement": winner_agreement(rows),
            "judge_order_consistency": round(consistent / len(usable), 4) if usable else None,
            "judge_position_picks": dict(sorted(positions.items())),
            "judge_client": self.stats(),
        }
