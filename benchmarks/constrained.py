"""Constrained next-call decoding: base and adapter, with and without `--constrained`, per backend.

Every next-call step of the test traces is asked once per (backend, model, constrained) row.
Constrained rows carry the JSON schema of one call among the step's offered tools
(`specdecode.evaluate.constrain.call_schema`): vLLM's structured outputs, xgrammar for hf.
Greedy decoding, the next-call defaults (96 new tokens, answer cut after its first call), batch 16.

parse ok            — share of answers from which a call (or an explicit no-call) was extracted
unknown tools       — predicted calls naming a tool that is not offered
first_call_name     — the predicted first call names the gold tool
first_call_exact    — name and arguments equal after normalisation
tokens/s            — generated tokens / wall seconds of the whole row (engine start-up excluded)

    make demo
    .venv/bin/python benchmarks/constrained.py --lora_dir runs/demo/adapter --backend hf
    .venv/bin/python benchmarks/constrained.py --lora_dir runs/demo/adapter --backend vllm
"""

from __future__ import annotations

import argparse
import os
import platform
import time


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base_model", default="smollm2-135m")
    parser.add_argument("--lora_dir", default="runs/demo/adapter")
    parser.add_argument("--test_file", default="runs/demo/traces/test.jsonl")
    parser.add_argument("--registry", default="tools4")
    parser.add_argument("--backend", action="append", choices=["hf", "vllm"], help="Repeatable.")
    parser.add_argument("--n", type=int, default=0, help="First N steps only (0: all).")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--dtype", default="auto")
    opts = parser.parse_args()

    import torch

    from specdecode import load_registry
    from specdecode.evaluate.backends import GenerationConfig, make_backend
    from specdecode.evaluate.run import load_examples, score
    from specdecode.models import adapter_form
    from specdecode.prompts import PromptOptions

    registry = load_registry(opts.registry)
    form = adapter_form(opts.lora_dir)  # prompts in the form the adapter was trained on
    free = load_examples(opts.test_file, "next-call", registry, PromptOptions(), prompt_form=form)
    constrained = load_examples(
        opts.test_file, "next-call", registry, PromptOptions(), prompt_form=form, constrained=True
    )
    if opts.n:
        free, constrained = free[: opts.n], constrained[: opts.n]
    config = GenerationConfig(max_new_tokens=96, stop_at_first_call=True, batch_size=opts.batch_size)

    lines = []
    for kind in opts.backend or ["hf", "vllm"]:
        start = time.perf_counter()
        backend = make_backend(kind, opts.base_model, opts.lora_dir, dtype=opts.dtype)
        startup = time.perf_counter() - start
        if kind == "vllm":  # compile the grammar path and warm the engine once
            backend.generate([constrained[0].request], config, adapter=True)
        for adapter, model in ((False, "base"), (True, "LoRA")):
            for examples, mode in ((free, "free"), (constrained, "constrained")):
                start = time.perf_counter()
                generations = backend.generate([e.request for e in examples], config, adapter=adapter)
                seconds = time.perf_counter() - start
                rows = [score(e, g, registry, "next-call") for e, g in zip(examples, generations)]
                n = len(rows)

                def share(name: str, rows=rows, n=n) -> str:
                    return f"{100 * sum(bool(r['metrics'][name]) for r in rows) / n:.1f} %"

                tokens = sum(g.completion_tokens for g in generations)
                unknown = sum(len(r["unknown_tools"]) for r in rows)
                lines.append(
                    f"| {kind} | {model} | {mode} | {share('parse_ok')} | {unknown} | "
                    f"{share('first_call_name')} | {share('first_call_exact')} | {tokens} | "
                    f"{seconds:.1f} | {tokens / seconds:.1f} | {startup:.0f} |"
                )
                print(lines[-1], flush=True)
        del backend

    print(
        f"\n{len(free)} next-call steps of {opts.test_file} ({opts.registry}), {opts.base_model} + "
        f"{opts.lora_dir} ({form} prompts), dtype {opts.dtype}, batch {opts.batch_size}; "
        f"{platform.machine()}, {os.cpu_count()} cores, CUDA: {torch.cuda.is_available()}"
    )
    print(
        "| backend | model | decoding | parse ok | unknown tools | first_call_name | first_call_exact "
        "| tokens | seconds | tokens/s | start-up s |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
