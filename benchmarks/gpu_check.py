"""GPU check: run specdecode's CUDA code paths and print one table of checks and figures.

    python benchmarks/gpu_check.py functional --tokenizer DIR --work /tmp/gc
    python benchmarks/gpu_check.py throughput --tokenizer DIR --work /tmp/gc [--size 0.6b]

``--tokenizer``: a folder with a chat tokenizer (tokenizer.json, tokenizer_config.json,
chat_template.jinja), e.g. the converted SmolLM2 one from ``~/.cache/specdecode/models/*/``.
No hub access is needed: every model is RANDOM-weight, built from a ``Qwen3Config``.

functional — a 2-layer random Qwen3 (the tests' ``tiny_qwen3``):
  hf backend: batched decoding (shared-prefix prefill, rows leaving the batch) equals
  one-at-a-time ``model.generate`` (fp32 exact; bf16 agreement reported), constrained
  (xgrammar) rows, prefix reuse, seeded sampling, merged LoRA answers equal PEFT's unmerged
  ones and the base weights survive merge/unmerge; ``specdecode train`` on CUDA (padding-free
  default and padded), its loss falls, padded and padding-free losses agree; bitsandbytes.
throughput — the Qwen3-0.6B (or 1.7B) shapes with random weights: hf next-call generation
  tokens/s at batch 1 and 16 (random weights never end a call: every row runs to
  ``--max-new-tokens``), and LoRA training tokens/s, padding-free and padded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROWS: list[tuple[str, str, str]] = []  # (check, result, detail)


def row(check: str, ok: bool | str, detail: str = "") -> None:
    result = ok if isinstance(ok, str) else ("PASS" if ok else "FAIL")
    ROWS.append((check, result, detail))
    print(f"[{result}] {check}: {detail}", flush=True)


def guarded(check: str):
    def wrap(fn):
        def run(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # a broken path is a row, the others still run
                import traceback

                traceback.print_exc()
                row(
                    check,
                    "ERROR",
                    f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}",
                )
                return None

        return run

    return wrap


def print_table(title: str) -> None:
    print(f"\n## {title}\n")
    print("| check | result | detail |\n|---|---|---|")
    for check, result, detail in ROWS:
        print(f"| {check} | {result} | {detail} |")


def versions() -> str:
    import torch

    names = ["torch", "transformers", "peft", "trl", "accelerate", "datasets", "xgrammar", "pyarrow"]
    from importlib import metadata

    got = []
    for n in names:
        try:
            got.append(f"{n} {metadata.version(n)}")
        except metadata.PackageNotFoundError:
            got.append(f"{n} -")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{gpu}; python {sys.version.split()[0]}; " + ", ".join(got)


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


# -- models and data -----------------------------------------------------------------------


def build_model(tokenizer_dir: str, out: Path, size: str, dtype: str = "float32") -> Path:
    import torch
    from transformers import AutoModelForCausalLM, Qwen3Config

    from specdecode.models import load_tokenizer

    if (out / "config.json").is_file():
        return out
    tok = load_tokenizer(tokenizer_dir)
    shapes = {
        "tiny": dict(
            vocab_size=len(tok),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            max_position_embeddings=4096,
        ),
        # Qwen/Qwen3-0.6B and Qwen/Qwen3-1.7B config.json shapes (vocab 151936, tied embeddings)
        "0.6b": dict(
            vocab_size=151936,
            hidden_size=1024,
            intermediate_size=3072,
            num_hidden_layers=28,
            num_attention_heads=16,
            num_key_value_heads=8,
            head_dim=128,
            max_position_embeddings=40960,
            rope_theta=1000000.0,
            rms_norm_eps=1e-6,
        ),
        "1.7b": dict(
            vocab_size=151936,
            hidden_size=2048,
            intermediate_size=6144,
            num_hidden_layers=28,
            num_attention_heads=16,
            num_key_value_heads=8,
            head_dim=128,
            max_position_embeddings=40960,
            rope_theta=1000000.0,
            rms_norm_eps=1e-6,
        ),
    }[size]
    config = Qwen3Config(
        **shapes,
        tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def build_lora(model_dir: Path, out: Path) -> Path:
    """A random (non-zero) LoRA on all linear layers, saved like a trained adapter."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from specdecode.models import load_tokenizer

    if (out / "adapter_config.json").is_file():
        return out
    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    lora = LoraConfig(
        r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM", init_lora_weights=False
    )
    get_peft_model(base, lora).save_pretrained(out)
    load_tokenizer(str(model_dir)).save_pretrained(out)
    return out


def split(work: Path) -> Path:
    from specdecode.data import synthesize
    from specdecode.gaia import stratified_split
    from specdecode.jsonl import write_jsonl

    out = work / "synth"
    if not (out / "test.jsonl").is_file():
        out.mkdir(parents=True, exist_ok=True)
        rows = [t.model_dump(exclude_none=True) for t in synthesize(160, seed=0)]
        for name, part in stratified_split(rows, seed=0).items():
            write_jsonl(out / f"{name}.jsonl", part)
    return out


def requests(data: Path, n: int, constrained: bool = False) -> list[Any]:
    from specdecode import load_registry
    from specdecode.evaluate.run import load_examples
    from specdecode.prompts import PromptOptions

    examples = load_examples(
        data / "test.jsonl", "next-call", load_registry("tools4"), PromptOptions(), constrained=constrained
    )
    reqs = [e.request for e in examples]
    while len(reqs) < n:
        reqs += reqs
    return reqs[:n]


def reference(backend: Any, prompt: list[int], adapter: bool, max_new_tokens: int) -> list[int]:
    """``model.generate``, one prompt, no padding (the tests' reference)."""
    from contextlib import nullcontext

    import torch

    ids = torch.tensor([prompt], device=backend.device)
    ctx = backend.model.disable_adapter() if backend.has_adapter and not adapter else nullcontext()
    with ctx, torch.inference_mode():
        out = backend.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=max_new_tokens,
            pad_token_id=backend.tokenizer.pad_token_id,
        )
    return out[0, len(prompt) :].tolist()


# -- functional checks ---------------------------------------------------------------------


@guarded("hf: batched == one-at-a-time generate")
def check_batched(model: Path, lora: Path | None, reqs: list[Any], dtype: str, adapter: bool) -> None:
    from specdecode.evaluate.backends import GenerationConfig, HFBackend, cut_first_call

    backend = HFBackend(str(model), str(lora) if lora else None, dtype=dtype)
    import torch

    assert backend.device.type == ("cuda" if torch.cuda.is_available() else "cpu"), backend.device
    config = GenerationConfig(max_new_tokens=40, stop_at_first_call=True, batch_size=8)
    got = backend.generate(reqs, config, adapter=adapter)
    equal = 0
    for request, g in zip(reqs, got):
        ref = reference(backend, backend.prompt_ids(request), adapter, 40)
        equal += g.text == cut_first_call(backend.tokenizer.decode(ref, skip_special_tokens=True))
    name = f"hf {dtype}{' + merged LoRA' if adapter else ''}: batch 8 == one-at-a-time generate"
    ok = equal == len(reqs) if dtype == "float32" else ("PASS" if equal == len(reqs) else "INFO")
    row(name, ok, f"{equal}/{len(reqs)} texts equal")


@guarded("hf: backend features on CUDA")
def check_features(model: Path, data: Path) -> None:
    from specdecode import load_registry
    from specdecode.evaluate.backends import GenerationConfig, HFBackend, Request

    backend = HFBackend(str(model))
    chat = lambda q, h=(): Request(  # noqa: E731
        q + str(len(h)),
        [
            {"role": "system", "content": "You predict the next tool call."},
            {"role": "user", "content": f"Question: {q}\n\n" + "\n".join(h) + "\n\nNext tool call?"},
        ],
    )
    # constrained row (boolean) leaves the batch long before the free row
    short = Request("short", chat("q").messages, response_schema={"type": "boolean"})
    got = backend.generate(
        [short, chat("q")], GenerationConfig(max_new_tokens=40, batch_size=2), adapter=False
    )
    ok = (
        got[0].text in ("true", "false")
        and got[1].completion_tokens == 40
        and got[0].latency < got[1].latency
    )
    row(
        "hf: xgrammar row + free row, rows leave the batch",
        ok,
        f"{got[0].text!r} in {got[0].completion_tokens} tok, {got[0].latency * 1e3:.0f} ms vs "
        f"{got[1].completion_tokens} tok, {got[1].latency * 1e3:.0f} ms",
    )
    # constrained next-call answers: JSON call to an offered tool
    reqs = requests(data, 8, constrained=True)
    names = {t.name for t in load_registry("tools4").tools}
    gens = backend.generate(reqs, GenerationConfig(max_new_tokens=96, batch_size=8), adapter=False)
    good = 0
    for g in gens:
        try:
            call = json.loads(g.text)
            good += call["tool_name"] in names and isinstance(call["arguments"], dict)
        except (ValueError, KeyError, TypeError):
            pass
    row(
        "hf: constrained next-call (call schema), batch 8",
        "PASS" if good == len(gens) else "INFO",
        f"{good}/{len(gens)} valid calls (max_new_tokens 96: a random model can run out inside a string)",
    )
    # prefix reuse
    history = [f'{n}. {{"tool_name": "search", "arguments": {{"query": "step {n}"}}}}' for n in range(1, 5)]
    live = [chat("How tall is the tower?", history[:k]) for k in range(4)]
    config = GenerationConfig(max_new_tokens=12, batch_size=1)
    texts, prefilled = {}, {}
    for reuse in (False, True):
        backend.reuse_prefix, backend._kept = reuse, None
        before = backend.prefilled_tokens
        texts[reuse] = [backend.generate([r], config, adapter=False)[0].text for r in live]
        prefilled[reuse] = backend.prefilled_tokens - before
    backend.reuse_prefix, backend._kept = False, None
    row(
        "hf: prefix reuse (batch 1) answers the same",
        texts[True] == texts[False] and prefilled[True] < prefilled[False],
        f"prefilled {prefilled[True]} vs {prefilled[False]} tokens, reused {backend.reused_tokens}",
    )
    # seeded sampling on CUDA
    dup = [chat("same")] * 3
    sample = GenerationConfig(max_new_tokens=8, temperature=1.0, batch_size=3)
    first = [g.text for g in backend.generate(dup, sample, adapter=False)]
    again = [g.text for g in backend.generate(dup, sample, adapter=False)]
    row(
        "hf: seeded sampling (cuda generator)",
        len(set(first)) == 3 and first == again,
        "3 duplicates differ, rerun equal",
    )


@guarded("hf: merge/unmerge leaves base weights")
def check_merge_drift(model: Path, lora: Path, reqs: list[Any], dtype: str, cycles: int = 20) -> None:
    import torch

    from specdecode.evaluate.backends import GenerationConfig, HFBackend

    backend = HFBackend(str(model), str(lora), dtype=dtype)
    base = {n: p.detach().clone() for n, p in backend.model.named_parameters() if "lora_" not in n}
    ids = torch.tensor([backend.prompt_ids(reqs[0])], device=backend.device)
    with torch.inference_mode(), backend.model.disable_adapter():
        before = backend.model(input_ids=ids).logits.float()
    for _ in range(cycles):
        backend.generate(reqs[:1], GenerationConfig(max_new_tokens=1), adapter=True)
    drift = max(
        (p.detach().float() - base[n].float()).abs().max().item()
        for n, p in backend.model.named_parameters()
        if n in base
    )
    with torch.inference_mode(), backend.model.disable_adapter():
        after = backend.model(input_ids=ids).logits.float()
    logit = (after - before).abs().max().item()
    row(
        f"hf {dtype}: base weights after {cycles} merge/unmerge cycles",
        drift == 0.0 or logit < 1e-4,
        f"max |dW| {drift:.2e}, max |d logit| {logit:.2e}",
    )


def train_cli(model: Path, data: Path, out: Path, *extra: str) -> dict[str, Any]:
    args = [
        sys.executable,
        "-m",
        "specdecode",
        "train",
        "--train_file",
        str(data / "train.jsonl"),
        "--val_file",
        str(data / "val.jsonl"),
        "--model_name",
        str(model),
        "--output_dir",
        str(out),
        "--per_device_train_batch_size",
        "2",
        "--gradient_accumulation_steps",
        "1",
        "--logging_steps",
        "1",
        "--max_steps",
        "16",
        "--eval_steps",
        "8",
        "--save_steps",
        "8",
        "--learning_rate",
        "1e-2",
        *extra,
    ]
    started = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, timeout=400)
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-6000:], sep="\n")
        raise RuntimeError(
            f"specdecode train exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"
        )
    summary = json.loads((out / "training_summary.json").read_text())
    summary["wall"] = time.perf_counter() - started
    return summary


@guarded("train: specdecode train on CUDA")
def check_train(model: Path, data: Path, work: Path) -> None:
    runs = {}
    for name, extra in (("padding-free (default)", ()), ("padded", ("--padding_free", "off"))):
        s = train_cli(model, data, work / f"train-{name.split()[0]}", *extra)
        runs[name] = s
        ok = s["device"] == "cuda" and s["final_eval_loss"] < s["initial_eval_loss"]
        row(
            f"train tiny, {name}",
            ok,
            f"{s['device']}, {s['mixed_precision']}, "
            f"eval loss {s['initial_eval_loss']:.3f} → {s['final_eval_loss']:.3f}, "
            f"{s['global_step']} steps, {s['wall']:.0f} s",
        )
    a, b = (runs[k]["initial_eval_loss"] for k in runs)
    row(
        "train: padding-free loss == padded loss (same weights)", abs(a - b) / b < 2e-2, f"{a:.4f} vs {b:.4f}"
    )
    # the trained adapter answers through the hf backend
    from specdecode.evaluate.backends import GenerationConfig, HFBackend

    backend = HFBackend(str(model), str(work / "train-padding-free"))
    g = backend.generate(requests(data, 4), GenerationConfig(max_new_tokens=16, batch_size=4), adapter=True)
    row(
        "train → hf backend with the trained adapter",
        len(g) == 4,
        f"{sum(x.completion_tokens for x in g)} tokens",
    )


def check_bnb() -> None:
    import importlib.util

    found = importlib.util.find_spec("bitsandbytes") is not None
    row(
        "--load_in_4bit (bitsandbytes)",
        "PASS" if found else "SKIP",
        "bitsandbytes present" if found else "bitsandbytes not in the image (not carried): QLoRA not run",
    )


def functional(opts: argparse.Namespace) -> None:
    work = Path(opts.work)
    model = build_model(opts.tokenizer, work / "tiny", "tiny")
    lora = build_lora(model, work / "tiny-lora")
    data = split(work)
    reqs = requests(data, 8)
    for dtype in ("float32", "bfloat16"):
        check_batched(model, None, reqs, dtype, adapter=False)
        check_batched(model, lora, reqs, dtype, adapter=True)
    check_features(model, data)
    for dtype in ("float32", "bfloat16"):
        check_merge_drift(model, lora, reqs, dtype)
    if not opts.skip_train:
        check_train(model, data, work)
    check_bnb()
    print_table("functional (" + versions() + ")")


# -- throughput ----------------------------------------------------------------------------


@guarded("throughput: hf generation")
def gen_throughput(model: Path, lora: Path, data: Path, n: int, max_new: int) -> None:

    from specdecode.evaluate.backends import GenerationConfig, HFBackend

    backend = HFBackend(str(model), str(lora))
    reqs = requests(data, n)
    prompt = sum(len(backend.prompt_ids(r)) for r in reqs) / len(reqs)
    backend.generate(reqs[:2], GenerationConfig(max_new_tokens=4, batch_size=2), adapter=False)  # warm-up
    for adapter in (False, True):
        for size in (1, 16):
            config = GenerationConfig(max_new_tokens=max_new, stop_at_first_call=True, batch_size=size)
            sync()
            started = time.perf_counter()
            gens = backend.generate(reqs, config, adapter=adapter)
            sync()
            seconds = time.perf_counter() - started
            tokens = sum(g.completion_tokens for g in gens)
            lat = sorted(g.latency for g in gens)[len(gens) // 2]
            row(
                f"generate {'merged LoRA' if adapter else 'base'}, batch {size}",
                "INFO",
                f"{n} requests (mean prompt {prompt:.0f} tok), {tokens} new tok in {seconds:.2f} s = "
                f"{tokens / seconds:.0f} tok/s, median latency {lat * 1e3:.0f} ms",
            )


@guarded("throughput: training")
def train_throughput(model: Path, data: Path, work: Path, steps: int, batch: int) -> None:
    import torch
    from transformers import TrainerCallback

    from specdecode.train import TrainConfig
    from specdecode.train.sft import setup

    for padding_free in ("on", "off"):
        config = TrainConfig(
            train_file=str(data / "train.jsonl"),
            val_file=str(data / "val.jsonl"),
            model_name=str(model),
            output_dir=str(work / f"tt-{padding_free}"),
            max_steps=steps,
            eval_steps=steps,
            save_steps=steps,
            per_device_train_batch_size=batch,
            gradient_accumulation_steps=1,
            logging_steps=1,
            padding_free=padding_free,
        )
        run = setup(config)
        marks: list[tuple[int, float]] = []

        class Clock(TrainerCallback):
            def __init__(self, marks: list[tuple[int, float]]):
                self.marks = marks

            def on_step_end(self, args, state, control, **kw):
                sync()
                self.marks.append((state.global_step, time.perf_counter()))

        run.trainer.add_callback(Clock(marks))
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        run.trainer.train()
        logs = {e["step"]: e for e in run.trainer.state.log_history if "num_tokens" in e}
        warm = 2  # steps 1-2 are warm-up
        tokens = logs[steps]["num_tokens"] - logs[warm]["num_tokens"]
        seconds = dict(marks)[steps] - dict(marks)[warm]
        peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0
        row(
            f"train LoRA, padding_free={padding_free}, micro-batch {batch}",
            "INFO",
            f"steps {warm + 1}-{steps}: {tokens:.0f} tok in {seconds:.2f} s = {tokens / seconds:.0f} tok/s, "
            f"peak {peak:.1f} GiB, loss {logs[steps].get('loss', float('nan')):.3f}",
        )
        del run
        torch.cuda.empty_cache()


def throughput(opts: argparse.Namespace) -> None:
    work = Path(opts.work)
    model = build_model(opts.tokenizer, work / f"qwen3-{opts.size}", opts.size, dtype="bfloat16")
    lora = build_lora(model, work / f"qwen3-{opts.size}-lora")
    data = split(work)
    gen_throughput(model, lora, data, opts.n, opts.max_new_tokens)
    if not opts.skip_train:
        train_throughput(model, data, work, opts.steps, opts.batch)
    print_table(f"throughput, random-weight Qwen3-{opts.size} shapes ({versions()})")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["functional", "throughput", "both"])
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--work", default="/tmp/gpu_check")
    parser.add_argument("--size", default="0.6b", choices=["0.6b", "1.7b", "tiny"])
    parser.add_argument("--n", type=int, default=32, help="Next-call requests for generation throughput.")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--json", help="Also write the rows here.")
    opts = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if opts.what in ("functional", "both"):
        functional(opts)
    if opts.what in ("throughput", "both"):
        ROWS.clear() if opts.what == "throughput" else None
        throughput(opts)
    if opts.json:
        Path(opts.json).write_text(json.dumps(ROWS, indent=1))


if __name__ == "__main__":
    main()
