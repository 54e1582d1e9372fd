"""Dense vector index over FAISS: exact inner product for small collections, IVF / HNSW / IVF-PQ for large ones.

Vectors are L2-normalised, so inner product is cosine similarity. The file on disk is FAISS's own format
(`faiss.write_index`), never pickle; a GPU copy is made only for searching and never written. IVF indexes are
memory-mapped on load (`IO_FLAG_MMAP`), so a 1M-vector IVF-PQ index costs little private RAM.

GPU search: a faiss build with GPUs gets a GPU clone; a CPU-only faiss with torch CUDA gets an exact
matmul + top-k on the GPU for flat indexes (`TorchFlatSearch`).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from rag.errors import IndexLoadError, InputError

if TYPE_CHECKING:
    import numpy as np

IndexType = Literal["auto", "flat", "ivf", "hnsw", "ivfpq", "ivfpq-sq8"]
INDEX_TYPES: tuple[str, ...] = ("auto", "flat", "ivf", "hnsw", "ivfpq", "ivfpq-sq8")
# ivfpq-sq8: the PQ candidates (k_factor x top_k) re-scored with 8-bit scalar-quantised vectors. At 1M x 384-d
# recall@10 rose from 0.51 to 0.88 for 366 MB more (bench/README.md).
REFINE_K_FACTOR = 4
# Below this many vectors an exact search is fast enough (about 15 ms per query for 100k on 2 cores).
EXACT_LIMIT = 200_000


def _faiss():
    import faiss

    return faiss


def ivf_lists(count: int) -> int:
    return max(1, min(65536, int(4 * count**0.5)))


def pq_layout(dimension: int, count: int) -> tuple[int, int]:
    """(sub-quantizers, bits each): ~8 dimensions per byte-sized code (384-d -> 48 bytes a vector); fewer bits
    when there are too few vectors to train 256 centroids per sub-quantizer (FAISS wants ~39 points each)."""
    m = next(m for m in range(max(1, dimension // 8), 0, -1) if dimension % m == 0)
    bits = 8
    while bits > 4 and count < 39 * 2**bits:
        bits -= 1
    return m, bits


def make_index(
    dimension: int, count: int, index_type: IndexType = "auto", *, nprobe: int | None = None, pq_m: int | None = None
):
    """An empty (untrained) FAISS index for `count` vectors of `dimension`."""
    faiss = _faiss()
    if nprobe is not None and nprobe <= 0:
        raise InputError(f"nprobe must be greater than 0, got {nprobe}")
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
        index.nprobe = min(lists, nprobe or 16)
        return index
    if index_type == "ivfpq-sq8":
        base = make_index(dimension, count, "ivfpq", nprobe=nprobe, pq_m=pq_m)
        refine = faiss.IndexScalarQuantizer(dimension, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        index = faiss.IndexRefine(base, refine)  # faiss's wrapper keeps both parts alive with the index
        index.k_factor = REFINE_K_FACTOR
        return index
    if index_type == "ivfpq":
        # Residual product quantisation: m bytes a vector instead of 4 x dimension (1M x 384-d: 48 MB of codes).
        lists = ivf_lists(count)
        m, bits = pq_layout(dimension, count)
        if pq_m is not None:
            if pq_m <= 0 or dimension % pq_m:
                raise InputError(f"pq_m must divide the dimension {dimension}, got {pq_m}")
            m = pq_m
        quantizer = faiss.IndexFlatIP(dimension)
        index = faiss.IndexIVFPQ(quantizer, dimension, lists, m, bits, faiss.METRIC_INNER_PRODUCT)
        index.nprobe = min(lists, nprobe or 32)
        return index
    raise InputError(f"index_type must be one of {', '.join(INDEX_TYPES)}, got {index_type!r}")


def training_sample_size(index) -> int:
    """Enough points for FAISS's k-means on the coarse lists (~40 a list), at least 100k when there are."""
    lists = int(getattr(index, "nlist", 1))
    return max(100_000, 40 * lists)


def train(index, sample: np.ndarray) -> None:
    if not index.is_trained:
        index.train(sample)


def train_and_add(index, vectors: np.ndarray, *, train_size: int | None = None) -> None:
    """Train on a random sample (not the whole collection: k-means cost grows with it), then add everything."""
    if not index.is_trained:
        import numpy as np

        size = train_size or training_sample_size(index)
        rng = np.random.default_rng(0)
        sample = vectors if len(vectors) <= size else vectors[np.sort(rng.choice(len(vectors), size, replace=False))]
        index.train(sample)
    index.add(vectors)


def set_nprobe(index, nprobe: int) -> None:
    """Lists searched by an IVF index (more: better recall, slower); a no-op for the others."""
    if nprobe <= 0:
        raise InputError(f"nprobe must be greater than 0, got {nprobe}")
    ivf = _ivf_of(index)
    if ivf is not None:
        ivf.nprobe = min(int(ivf.nlist), nprobe)


def _ivf_of(index):
    faiss = _faiss()
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def read_index(path: Path):
    """Read a FAISS file; IVF inverted lists are memory-mapped (pages load on demand and are shared)."""
    faiss = _faiss()
    try:
        return faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    except RuntimeError:
        try:
            return faiss.read_index(str(path))
        except RuntimeError as exc:
            raise IndexLoadError(f"corrupt FAISS index file {path}: {str(exc).splitlines()[0]}") from exc


def read_index_writable(path: Path):
    """Read a FAISS file fully into memory (for an update that adds or removes vectors)."""
    faiss = _faiss()
    try:
        return faiss.read_index(str(path))
    except RuntimeError as exc:
        raise IndexLoadError(f"corrupt FAISS index file {path}: {str(exc).splitlines()[0]}") from exc


def all_vectors(index) -> np.ndarray:
    """Every stored vector, in id order (exact for flat / IVF-flat / HNSW; decoded codes for IVF-PQ)."""
    import numpy as np

    count = int(index.ntotal)
    if count == 0:
        return np.zeros((0, int(index.d)), dtype=np.float32)
    ivf = _ivf_of(index)
    if ivf is not None:
        ivf.make_direct_map()
    return np.ascontiguousarray(index.reconstruct_n(0, count), dtype=np.float32)


def empty_like(index):
    """The same index type and training (IVF centroids, PQ codebooks), with no vectors: no re-training."""
    faiss = _faiss()
    if isinstance(index, faiss.IndexHNSW):
        fresh = faiss.IndexHNSWFlat(int(index.d), int(index.hnsw.nb_neighbors(1)), index.metric_type)
        fresh.hnsw.efSearch = index.hnsw.efSearch
        return fresh
    fresh = faiss.clone_index(index)
    fresh.reset()
    return fresh


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
        self.backend = "faiss-cpu"
        if self.on_gpu:
            options = faiss.GpuMultipleClonerOptions()
            options.useFloat16 = True
            self._index = faiss.index_cpu_to_all_gpus(index, co=options)
            self.backend = "faiss-gpu"
        elif use_gpu is not False and isinstance(index, faiss.IndexFlat) and _torch_cuda(required=bool(use_gpu)):
            self._index = TorchFlatSearch(index)
            self.on_gpu = True
            self.backend = "torch-cuda"
        else:
            self._index = index
        # FAISS CPU search is thread-safe for reads, but GPU resources are not shared safely.
        self._lock = threading.Lock() if self.on_gpu else None

    @classmethod
    def load(
        cls, path: Path, *, expected_dimension: int, use_gpu: bool | None = None, nprobe: int | None = None
    ) -> VectorIndex:
        index = read_index(path)
        if nprobe is not None:
            set_nprobe(index, nprobe)
        if index.d != expected_dimension:
            raise IndexLoadError(
                f"FAISS index {path} holds {index.d}-d vectors but the manifest's embedder gives {expected_dimension}-d"
            )
        return cls(index, use_gpu=use_gpu)

    def __len__(self) -> int:
        return int(self._cpu_index.ntotal)

    def search(self, queries: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
        # Checks kept to plain attribute reads: on a small index the search itself takes ~20 microseconds.
        if top_k <= 0:
            raise InputError(f"top_k must be greater than 0, got {top_k}")
        shape = queries.shape
        if len(shape) != 2 or shape[1] != self.dimension:
            raise InputError(f"query vectors must have shape (n, {self.dimension}), got {tuple(shape)}")
        count = self._cpu_index.ntotal
        k = top_k if top_k < count else count
        if k == 0:
            import numpy as np

            return np.zeros((len(queries), 0), dtype=np.float32), np.zeros((len(queries), 0), dtype=np.int64)
        if self._lock is None:
            return self._index.search(queries, k)
        with self._lock:
            return self._index.search(queries, k)


def _torch_cuda(*, required: bool) -> bool:
    """CUDA through torch; only looked up when torch is already loaded (the embedder loads it) or asked for."""
    import sys

    if not required and "torch" not in sys.modules:
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


class TorchFlatSearch:
    """Exact inner-product top-k on a CUDA GPU with torch (matmul + topk), for faiss builds without GPUs."""

    def __init__(self, index, *, device: str = "cuda") -> None:
        import torch

        self._torch = torch
        self.device = device
        self._vectors = torch.from_numpy(all_vectors(index)).to(device)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            scores = torch.from_numpy(queries).to(self.device) @ self._vectors.T
            top = torch.topk(scores, k, dim=1)
        return top.values.float().cpu().numpy(), top.indices.cpu().numpy().astype("int64")
