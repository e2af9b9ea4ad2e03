"""``eval`` and ``compare``: one row per example (``R.jsonl``) and the summary beside it
(``R.summary.json``)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, create_model

from specdecode.results.base import Number, ResultModel, Versioned
from specdecode.results.common import Breakdown, Call, PairedTest, Rate


# --------------------------------------------------------------------------- rows
class ExampleFields(ResultModel):
    """What every results row says about its example."""

    id: str = ""
    level: int | None = None
    step: int | None = None
    gold_raw: str | None = None
    gold_calls: list[Call] = Field(default_factory=list)
    gold_tool: str | None = None


class Answer(ResultModel):
    """One model's answer to one example, parsed and scored (``evaluate.run.score``)."""

    pred_raw: str | None = None
    pred_calls: list[Call] = Field(default_factory=list)
    parse_format: str | None = None
    unknown_tools: list[str] = Field(default_factory=list)
    metrics: dict[str, Any] = Field(default_factory=dict, description="every metric of docs/metrics.md")
    latency: Number | None = None
    first_token_latency: Number | None = None
    batch_size: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tokens_per_s: Number | None = None

    def flag(self, metric: str) -> bool:
        return bool(self.metrics.get(metric))

    def value(self, metric: str) -> Any:
        """One metric of this answer (None when it was not computed)."""
        return self.metrics.get(metric)


class EvalRow(Answer, ExampleFields):
    """A row of ``eval``: the example, the answer, the prototype's ``accuracy``, the run id."""

    accuracy: Number | None = None
    run: str | None = None


class CompareRowBase(ExampleFields):
    """Methods of a ``compare`` row (its fields: :data:`CompareRow`)."""

    def side(self, name: str) -> Answer:
        """The base (``base``) or adapter (``lora``) answer of this row."""
        prefix = f"{name}_"
        data = self.model_dump(exclude_unset=True)
        return Answer.model_validate(
            {k.removeprefix(prefix): v for k, v in data.items() if k.startswith(prefix)}
        )


def _prefixed(prefix: str) -> dict[str, Any]:
    return {f"{prefix}{name}": (field.annotation, field) for name, field in Answer.model_fields.items()}


CompareRow = create_model(
    "CompareRow",
    __base__=CompareRowBase,
    __doc__="A row of ``compare``: the example, the judge's verdict (an LLM judge adds ``judge_*`` "
    "fields), then both answers with ``base_`` / ``lora_`` prefixes, and the run id.",
    base_score=(Number | None, None),
    lora_score=(Number | None, None),
    winner=(str | None, Field(None, description="base, lora, tie; LLM judges also inconsistent or error")),
    comparison_reason=(str | None, None),
    base_pred=(str | None, None),
    lora_pred=(str | None, None),
    **_prefixed("base_"),
    **_prefixed("lora_"),
    run=(str | None, None),
)


# --------------------------------------------------------------------------- summaries
class Fingerprint(ResultModel):
    """Everything a run's answers depend on (``evaluate.run.run_fingerprint``: model, adapter,
    mode, backend, registry hash, prompt and generation settings, input file hash; the judge's
    model for ``compare``); its hash is the ``run`` id of every row.

    Its keys are kept in the order the run wrote them: ``command``, ``judge``, ``base_model``,
    ``adapter``, ``lora_name``, ``mode``, ``backend``, ``dtype``, ``registry`` (hash),
    ``tool_style``, ``prompt_form``, ``constrained``, ``max_new_tokens``, ``temperature``,
    ``repetition_penalty``, ``seed``, ``test_file_sha256``.
    """

    def field(self, name: str) -> Any:
        """One recorded setting (None when the run did not record it)."""
        return (self.model_extra or {}).get(name)


class LatencySummary(ResultModel):
    """Per-request latency (batch start to the request's last token)."""

    mean_s: Number | None = None
    p50_s: Number | None = None
    p95_s: Number | None = None
    measured_at_batch_1: bool | None = None
    max_batch_size: int | None = None


class ModelSummary(ResultModel):
    """One model's rates over the examples (``evaluate.run.summarise``)."""

    n: int | None = None
    metrics: dict[str, Rate] = Field(default_factory=dict)
    per_level: dict[str, Breakdown] = Field(default_factory=dict, description="metric → level → rate")
    per_tool: dict[str, Breakdown] = Field(default_factory=dict, description="metric → gold tool → rate")
    confusion_first_tool: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="gold first tool → predicted first tool → count"
    )
    unknown_tools: int | None = None
    parse_formats: dict[str, int] = Field(default_factory=dict)
    latency_mean_s: Number | None = None
    latency: LatencySummary | None = None
    tokens_per_s: Number | None = None
    mode: str | None = None

    def rate(self, metric: str) -> Rate | None:
        """A metric's rate, None when the summary has none."""
        return self.metrics.get(metric)

    def groups(self, group: str, metric: str) -> Breakdown:
        """``per_level`` or ``per_tool`` of one metric (empty when absent)."""
        return getattr(self, group).get(metric) or {}


class EvalSummary(ModelSummary, Versioned):
    """``R.summary.json`` of ``eval``."""

    FILE = "R.summary.json (eval)"

    backend: str | None = None
    dtype: str | None = None
    adapter: bool | None = None
    seconds: Number | None = None
    run: str | None = None
    fingerprint: Fingerprint = Field(default_factory=Fingerprint)


class Agreement(ResultModel):
    """An LLM judge against the deterministic scorer (``judges.agreement``)."""

    n: int | None = None
    errors: int | None = None
    kappa: Number | None = None
    observed_agreement: Number | None = None
    confusion: dict[str, dict[str, int]] = Field(default_factory=dict)
    confusion_axes: str | None = None


class CompareSummary(Versioned):
    """``R.summary.json`` of ``compare``: base and adapter on the same examples."""

    FILE = "R.summary.json (compare)"

    n: int | None = None
    mode: str | None = None
    backend: str | None = None
    dtype: str | None = None
    judge: str | None = None
    base: ModelSummary = Field(default_factory=ModelSummary)
    lora: ModelSummary = Field(default_factory=ModelSummary)
    paired: dict[str, PairedTest] = Field(default_factory=dict, description="metric → adapter vs base")
    winners: dict[str, int] = Field(default_factory=dict)
    seconds: Number | None = None
    run: str | None = None
    fingerprint: Fingerprint = Field(default_factory=Fingerprint)
    judge_agreement: Agreement | None = None
    judge_score_agreement: Agreement | None = None
    judge_order_consistency: Number | None = None
    judge_position_picks: dict[str, int] | None = None
    judge_client: dict[str, Any] | None = None
    kappa: Number | None = Field(None, description="judge agreement as early judges wrote it")

    def test(self, metric: str) -> PairedTest:
        """The paired test of one metric (an empty one when there is none)."""
        return self.paired.get(metric) or PairedTest()
