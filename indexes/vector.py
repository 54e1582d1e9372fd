"""Dense vector index over FAISS: exact inner product for small collections, IVF / HNSW for large ones.

Vectors are L2-normalised, so inner product is cosine similarity. The file on disk is FAISS's own format
(`faiss.write_index`), never pickle; a GPU copy is made only for searching and never written.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from rag.errors import IndexLoadError, InputError

if TYPE_CHECKING:
    import numpy as np

IndexType = Literal["auto", "flat", "ivf", "hnsw"]
# Below this many vectors an exact search is fast enough (about 15 ms per query for 100k on 2 cores).
EXACT_LIMIT = 200_000


def _faiss():
    import faiss

    return faiss


def make_index(dimension: int, count: int, index_type: IndexType = "auto"):
    """An empty (untrained) FAISS index for `count` vectors of `dimension`."""
    faiss = _faiss()
    if index_type == "auto":
        index_type = "flat" if count <= EXACT_LIMIT else "ivf"
    if index_type == "flat":
        return faiss.IndexFlatIP(dimension)
    if index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dimension, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = 64
        return index
    if index_type == "ivf":
        lists = max(1, min(4096, int(4 * count**0.5)))
        quantizer = faiss.IndexFlatIP(dimension)
        index = faiss.IndexIVFFlat(quantizer, dimension, lists, faiss.METRIC_INNER_PRODUCT)
        index.nprobe = min(lists, 16)
        return index
    raise InputError(f"index_type must be auto, flat, ivf or hnsw, got {index_type!r}")


def train_and_add(index, vectors: np.ndarray) -> None:
    if not index.is_trained:
        import numpy as np

        rng = np.random.default_rng(0)
        sample = vectors if len(vectors) <= 100_000 else vectors[rng.choice(len(vectors), 100_000, replace=False)]
        index.train(sample)
    index.add(vectors)


def write_index(index, path: Path) -> None:
    _faiss().write_index(index, str(path))


class VectorIndex:
    """A loaded FAISS index; searches on the GPU when faiss has GPUs, else on the CPU."""

    def __init__(self, index, *, use_gpu: bool | None = None) -> None:
        faiss = _faiss()
        self.dimension = int(index.d)
        self._cpu_index = index
        gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
        self.on_gpu = bool(gpus) if use_gpu is None else (use_gpu and bool(gpus))
        if self.on_gpu:
            options = faiss.GpuMultipleClonerOptions()
            options.useFloat16 = True
            self._index = faiss.index_cpu_to_all_gpus(index, co=options)
        else:
            self._index = index
        # FAISS CPU search is thread-safe for reads, but GPU resources are not shared safely.
        self._lock = threading.Lock() if self.on_gpu else None

    @classmethod
    def load(cls, path: Path, *, expected_dimension: int, use_gpu: bool | None = None) -> VectorIndex:
        faiss = _faiss()
        try:
            index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        except RuntimeError:
            try:
                index = faiss.read_index(str(path))
            except RuntimeError as exc:
                raise IndexLoadError(f"corrupt FAISS index file {path}: {str(exc).splitlines()[0]}") from exc
        if index.d != expected_dimension:
            raise IndexLoadError(
                f"FAISS index {path} holds {index.d}-d vectors but the manifest's embedder gives {expected_dimension}-d"
            )
        return cls(index, use_gpu=use_gpu)

    def __len__(self) -> int:
        return int(self._cpu_index.ntotal)

    def search(self, queries: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
        if top_k <= 0:
            raise InputError(f"top_k must be greater than 0, got {top_k}")
        if queries.ndim != 2 or queries.shape[1] != self.dimension:
            raise InputError(f"query vectors must have shape (n, {self.dimension}), got {tuple(queries.shape)}")
        k = min(top_k, len(self))
        if k == 0:
            import numpy as np

            return np.zeros((len(queries), 0), dtype=np.float32), np.zeros((len(queries), 0), dtype=np.int64)
        if self._lock is None:
            return self._index.search(queries, k)
        with self._lock:
            return self._index.search(queries, k)
