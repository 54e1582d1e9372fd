"""FAISS index types: IVF-PQ on a few thousand vectors (recall vs exact), nprobe, memory-mapped loading, the
helpers incremental updates rely on, and the GPU paths (skipped without CUDA)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexes.vector import (
    VectorIndex,
    all_vectors,
    empty_like,
    make_index,
    pq_layout,
    set_nprobe,
    train_and_add,
    write_index,
)
from rag.errors import InputError


def clustered(count: int, dimension: int = 64, seed: int = 0) -> np.ndarray:
    """Unit vectors around 50 random centres: some structure, like real embeddings, unlike uniform noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, dimension))
    vectors = centres[rng.integers(0, 50, count)] + 0.5 * rng.normal(size=(count, dimension))
    vectors = vectors.astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def recall_at_10(index, vectors: np.ndarray, queries: np.ndarray) -> float:
    exact = make_index(vectors.shape[1], len(vectors), "flat")
    exact.add(vectors)
    _, truth = exact.search(queries, 10)
    _, found = index.search(queries, 10)
    return float(np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found)]))


def test_pq_layout_uses_about_8_dimensions_a_byte_and_fewer_bits_for_small_collections() -> None:
    assert pq_layout(384, 1_000_000) == (48, 8)
    assert pq_layout(64, 1_000_000) == (8, 8)
    m, bits = pq_layout(64, 3000)
    assert m == 8 and 39 * 2**bits <= 3000 and bits < 8


def test_ivfpq_on_a_few_thousand_vectors_finds_most_exact_neighbours(tmp_path: Path) -> None:
    vectors = clustered(4000)
    queries = clustered(100, seed=1)
    index = make_index(64, len(vectors), "ivfpq")
    train_and_add(index, vectors)
    assert index.ntotal == 4000 and type(index).__name__ == "IndexIVFPQ"
    set_nprobe(index, index.nlist)  # every list: only the quantisation error is left
    full = recall_at_10(index, vectors, queries)
    set_nprobe(index, 1)
    one = recall_at_10(index, vectors, queries)
    assert full >= 0.35, full  # 8-byte codes of 64-d noisy clusters; a random guess scores 0.0025
    assert one < full  # nprobe reaches the search
    # Written, memory-mapped back, searched with an nprobe given at load time.
    path = tmp_path / "v.faiss"
    write_index(index, path)
    loaded = VectorIndex.load(path, expected_dimension=64, use_gpu=False, nprobe=10_000)
    assert len(loaded) == 4000
    scores, rows = loaded.search(queries, 10)
    assert rows.shape == (100, 10) and (rows >= 0).all()
    assert recall_at_10(loaded._cpu_index, vectors, queries) == pytest.approx(full)


def test_nprobe_must_be_positive() -> None:
    with pytest.raises(InputError, match="nprobe"):
        make_index(64, 1000, "ivfpq", nprobe=0)
    with pytest.raises(InputError, match="index_type"):
        make_index(64, 1000, "lsh")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_all_vectors_and_empty_like_rebuild_an_index_without_retraining(kind: str) -> None:
    vectors = clustered(1500)
    index = make_index(64, len(vectors), kind)
    train_and_add(index, vectors)
    np.testing.assert_allclose(all_vectors(index), vectors, atol=1e-6)
    fresh = empty_like(index)
    assert fresh.ntotal == 0 and fresh.is_trained and type(fresh) is type(index)
    fresh.add(vectors[:10])
    _, rows = fresh.search(vectors[:3], 1)
    assert rows[:, 0].tolist() == [0, 1, 2]


def test_ivfpq_decoded_vectors_are_close_to_the_originals() -> None:
    vectors = clustered(4000)
    index = make_index(64, len(vectors), "ivfpq")
    train_and_add(index, vectors)
    decoded = all_vectors(index)
    cosine = np.sum(decoded * vectors, axis=1) / np.linalg.norm(decoded, axis=1)
    assert float(np.median(cosine)) > 0.9


# ---- GPU paths: run where CUDA is, skip cleanly elsewhere ---------------------------------------------------


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def test_cpu_only_machines_search_on_the_cpu() -> None:
    index = make_index(64, 100, "flat")
    index.add(clustered(100))
    vector_index = VectorIndex(index, use_gpu=False)
    assert vector_index.backend == "faiss-cpu" and not vector_index.on_gpu


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU")
def test_gpu_search_matches_the_cpu_search() -> None:
    vectors = clustered(5000)
    index = make_index(64, len(vectors), "flat")
    index.add(vectors)
    cpu_scores, cpu_rows = VectorIndex(index, use_gpu=False).search(vectors[:20], 5)
    gpu = VectorIndex(index, use_gpu=True)
    assert gpu.on_gpu and gpu.backend in ("faiss-gpu", "torch-cuda")
    gpu_scores, gpu_rows = gpu.search(vectors[:20], 5)
    assert (gpu_rows[:, 0] == cpu_rows[:, 0]).all()
    np.testing.assert_allclose(gpu_scores, cpu_scores, atol=1e-2)  # faiss-gpu stores float16


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU")
def test_torch_cuda_top_k_matches_faiss() -> None:
    from indexes.vector import TorchFlatSearch

    vectors = clustered(3000)
    index = make_index(64, len(vectors), "flat")
    index.add(vectors)
    scores, rows = TorchFlatSearch(index).search(vectors[:10], 5)
    faiss_scores, faiss_rows = index.search(vectors[:10], 5)
    assert (rows[:, 0] == faiss_rows[:, 0]).all()
    np.testing.assert_allclose(scores, faiss_scores, atol=1e-4)


def test_ivfpq_sq8_refine_beats_plain_ivfpq_and_survives_a_round_trip(tmp_path: Path) -> None:
    vectors = clustered(4000)
    queries = clustered(100, seed=1)
    plain = make_index(64, len(vectors), "ivfpq")
    train_and_add(plain, vectors)
    refined = make_index(64, len(vectors), "ivfpq-sq8")
    train_and_add(refined, vectors)
    for index in (plain, refined):
        set_nprobe(index, 16)
    assert recall_at_10(refined, vectors, queries) > recall_at_10(plain, vectors, queries) + 0.2
    path = tmp_path / "r.faiss"
    write_index(refined, path)
    loaded = VectorIndex.load(path, expected_dimension=64, use_gpu=False, nprobe=16)
    assert recall_at_10(loaded._cpu_index, vectors, queries) == pytest.approx(recall_at_10(refined, vectors, queries))
    np.testing.assert_allclose(all_vectors(refined), vectors, atol=0.02)  # the 8-bit copy
    fresh = empty_like(refined)
    assert fresh.ntotal == 0 and fresh.is_trained
    fresh.add(vectors[:50])
    assert fresh.search(vectors[:1], 1)[1][0, 0] == 0
