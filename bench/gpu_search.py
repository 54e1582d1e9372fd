"""Exact (flat) search at 1M vectors: FAISS on the CPU vs the CUDA path of `indexes.vector.VectorIndex`.

    PYTHONPATH=. python bench/gpu_search.py --n 1000000 --out .kgrag/gpu_search.json

Needs a CUDA GPU that torch sees. With `faiss-gpu` installed the GPU backend is FAISS's own (float16 copy);
with `faiss-cpu` it is the torch matmul + top-k path (`TorchFlatSearch`, float32). The same index object goes to
both sides, so the figures differ only by where the search runs.

Vectors: a seeded mixture of 2,000 Gaussian clusters in 384 dimensions (MiniLM's size), unit-normalised, so
the collection is clustered like real embeddings; queries are further members of the same clusters. Printed:
time to put the index on the GPU, p50 latency of single-query search, throughput of one batch of queries, and
agreement of the GPU's top-10 with the CPU's exact top-10 (recall@10, top-1 equality).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def clustered_vectors(count: int, dimension: int, clusters: int, seed: int, chunk: int = 200_000):
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dimension)).astype("float32")
    out = np.empty((count, dimension), dtype="float32")
    for start in range(0, count, chunk):
        stop = min(start + chunk, count)
        rows = centres[rng.integers(0, clusters, stop - start)] + 0.6 * rng.standard_normal((stop - start, dimension))
        out[start:stop] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return out


def p50_single(vector_index, queries, k: int) -> float:
    times = []
    for row in range(len(queries)):
        started = time.perf_counter()
        vector_index.search(queries[row : row + 1], k)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dimension", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000, help="batch size; the first 100 are also timed one by one")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=".kgrag/gpu_search.json")
    args = parser.parse_args()

    import faiss
    import numpy as np
    import torch

    from indexes.vector import VectorIndex

    if not torch.cuda.is_available():
        print("error: no CUDA GPU visible to torch; this benchmark compares CPU and GPU search", file=sys.stderr)
        return 2
    data = clustered_vectors(args.n + args.queries, args.dimension, 2000, args.seed)
    vectors, queries = data[: args.n], data[args.n :]
    index = faiss.IndexFlatIP(args.dimension)
    index.add(vectors)

    cpu = VectorIndex(index, use_gpu=False)
    started = time.perf_counter()
    gpu = VectorIndex(index, use_gpu=True)
    torch.cuda.synchronize()
    to_gpu = time.perf_counter() - started
    gpu.search(queries[:8], args.k)  # CUDA context and kernels warmed before timing

    single = queries[:100]
    figures: dict[str, object] = {
        "n": args.n, "dimension": args.dimension, "k": args.k, "batch": len(queries),
        "gpu": torch.cuda.get_device_name(0), "gpu_backend": gpu.backend,
        "cpu_threads": faiss.omp_get_max_threads(), "index_to_gpu_s": round(to_gpu, 2),
    }
    for name, vector_index in (("cpu", cpu), ("gpu", gpu)):
        figures[f"{name}_single_p50_ms"] = round(1000 * p50_single(vector_index, single, args.k), 3)
        started = time.perf_counter()
        _, rows = vector_index.search(queries, args.k)
        elapsed = time.perf_counter() - started
        figures[f"{name}_batch_s"] = round(elapsed, 3)
        figures[f"{name}_batch_qps"] = round(len(queries) / elapsed, 1)
        figures[f"{name}_rows"] = rows
    cpu_rows, gpu_rows = figures.pop("cpu_rows"), figures.pop("gpu_rows")
    recall = np.mean([len(set(c) & set(g)) / args.k for c, g in zip(cpu_rows, gpu_rows)])
    figures["gpu_recall_at_10_vs_cpu"] = round(float(recall), 4)
    figures["gpu_top1_equal"] = round(float(np.mean(cpu_rows[:, 0] == gpu_rows[:, 0])), 4)
    figures["single_speedup"] = round(figures["cpu_single_p50_ms"] / figures["gpu_single_p50_ms"], 1)
    figures["batch_speedup"] = round(figures["cpu_batch_s"] / figures["gpu_batch_s"], 1)
    for key, value in figures.items():
        print(f"{key:28s} {value}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
