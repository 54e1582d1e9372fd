"""1M-passage scale: IVF-PQ index RAM, build time, p50 search latency per nprobe and recall@10 vs exact.

    PYTHONPATH=. python bench/scale.py --n 1000000 --base-passages /tmp/data/*/passages.jsonl --out .kgrag/scale

How the 1M vectors are made (documented, seeded, reproducible):
- `--base` real passages (default 20k; fewer if the files hold fewer) are embedded with the packaged MiniLM
  (the embeddings are cached in --out, so a re-run does not re-embed).
- Rows 0..base-1 are those real vectors. Every further row is a perturbed mixture of two real passages:
  normalise(w * a + (1 - w) * b + sigma * noise) with a, b drawn uniformly, w ~ U(0.7, 1.0) and Gaussian noise
  of sigma 0.02 per dimension (about 0.4 in norm: cosine ~0.9 to its main parent), so the collection has the
  clustered shape of real embeddings rather than 50 exact copies of each passage.
  Or `--base-index DIR ...`: the vectors of kgrag indexes already built with the same packaged MiniLM (no
  re-embedding: on a loaded 2-core machine embedding 20k passages takes longer than the rest of the run).
- Queries: real questions from the `questions.jsonl` next to each passages file (or `--questions`), embedded with
  the same model.
- Exact top-10 ground truth is computed chunk by chunk while the vectors are generated (never 1.5 GB at once).

RAM is measured in a fresh subprocess that only loads the index and searches: RSS and USS (private memory)
before and after `read_index`, with `IO_FLAG_MMAP` (what `load_index` uses) and without. Searches are one query
at a time on all cores this process may use (`faiss.omp_get_max_threads()`); p50 over the queries.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

CHUNK = 100_000
SIGMA = 0.02


def perturbed_chunk(base, start: int, stop: int, seed: int):
    """Rows start..stop of the generated collection (see the module docstring)."""
    import numpy as np

    rows = []
    real_stop = min(stop, len(base))
    if start < real_stop:
        rows.append(base[start:real_stop])
    count = stop - max(start, real_stop)
    if count > 0:
        rng = np.random.default_rng([seed, start])
        a = base[rng.integers(0, len(base), count)]
        b = base[rng.integers(0, len(base), count)]
        w = rng.uniform(0.7, 1.0, size=(count, 1)).astype(np.float32)
        mixed = w * a + (1 - w) * b + rng.normal(0, SIGMA, size=a.shape).astype(np.float32)
        rows.append(mixed / np.linalg.norm(mixed, axis=1, keepdims=True))
    return np.ascontiguousarray(np.concatenate(rows), dtype=np.float32)


def merge_top_k(best_scores, best_rows, scores, offset: int, k: int):
    import numpy as np

    top = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
    cand_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, axis=1)], axis=1)
    cand_rows = np.concatenate([best_rows, top + offset], axis=1)
    order = np.argsort(-cand_scores, axis=1)[:, :k]
    return np.take_along_axis(cand_scores, order, axis=1), np.take_along_axis(cand_rows, order, axis=1)


def embed_base(files: list[str], limit: int, query_limit: int, cache: Path):
    import numpy as np

    if cache.is_file():
        data = np.load(cache, allow_pickle=False)
        return data["base"], data["queries"]
    from indexes.build import _embedding_text
    from indexes.embedder import Embedder
    from indexes.readers import read_passages

    passages, questions = [], []
    for file in files:
        passages.extend(read_passages(file))
        qfile = Path(file).with_name("questions.jsonl")
        if qfile.is_file():
            questions += [json.loads(line)["question"] for line in qfile.read_text(encoding="utf-8").splitlines() if line.strip()]
    passages = passages[:limit]
    step = max(1, len(questions) // query_limit)
    questions = questions[::step][:query_limit]
    embedder = Embedder(device="cpu")
    started = time.perf_counter()
    base = embedder.encode([_embedding_text(p) for p in passages])
    print(f"[scale] embedded {len(base)} passages in {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
    queries = embedder.encode(questions)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, base=base, queries=queries)
    return base, queries


def vectors_from_indexes(folders: list[str], limit: int, question_files: list[str], query_limit: int, cache: Path):
    """Real passage vectors taken from kgrag indexes already built with the packaged MiniLM (no re-embedding),
    and real questions embedded with the same model."""
    import numpy as np

    if cache.is_file():
        data = np.load(cache, allow_pickle=False)
        return data["base"], data["queries"]
    from indexes.embedder import DEFAULT_EMBEDDER, Embedder
    from indexes.store import load_index
    from indexes.vector import all_vectors

    parts = []
    for folder in folders:
        loaded = load_index(folder, use_gpu=False)
        if loaded.embedder_name != DEFAULT_EMBEDDER or loaded.vectors is None:
            raise SystemExit(f"{folder}: needs an index built with {DEFAULT_EMBEDDER}")
        parts.append(all_vectors(loaded.vectors._cpu_index))
    base = np.concatenate(parts)[:limit]
    questions = []
    for file in question_files:
        questions += [json.loads(line)["question"] for line in Path(file).read_text(encoding="utf-8").splitlines() if line.strip()]
    step = max(1, len(questions) // query_limit)
    queries = Embedder(device="cpu").encode(questions[::step][:query_limit])
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, base=base, queries=queries)
    return base, queries


def build(args) -> dict:
    import faiss
    import numpy as np

    from indexes.vector import make_index, training_sample_size

    out = Path(args.out)
    if args.base_index:
        base, queries = vectors_from_indexes(args.base_index, args.base, args.questions, args.queries, out / "base_index_vectors.npz")
    else:
        base, queries = embed_base(args.base_passages, args.base, args.queries, out / "base_embeddings.npz")
    dimension = base.shape[1]
    index = make_index(dimension, args.n, args.index_type, pq_m=args.pq_m)
    figures: dict = {"n": args.n, "base_passages": len(base), "queries": len(queries), "index_type": args.index_type}

    started = time.perf_counter()
    train_size = min(args.n, args.train_size or training_sample_size(index))
    # The training sample: the first train_size generated rows (real vectors first, then mixtures).
    sample = np.concatenate([perturbed_chunk(base, s, min(s + CHUNK, train_size), args.seed) for s in range(0, train_size, CHUNK)])
    figures["generate_train_sample_s"] = time.perf_counter() - started
    started = time.perf_counter()
    index.train(sample)
    figures["train_s"] = time.perf_counter() - started
    figures["train_size"] = len(sample)
    refine = None
    if args.refine:
        # A second, 8-bit scalar-quantised copy (1 byte a dimension) re-scores the PQ candidates.
        refine = faiss.IndexScalarQuantizer(dimension, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        refine.train(sample)
    del sample

    k = 10
    truth_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    truth_rows = np.zeros((len(queries), k), dtype=np.int64)
    add_s = generate_s = 0.0
    for start in range(0, args.n, CHUNK):
        t0 = time.perf_counter()
        chunk = perturbed_chunk(base, start, min(start + CHUNK, args.n), args.seed)
        truth_scores, truth_rows = merge_top_k(truth_scores, truth_rows, queries @ chunk.T, start, k)
        t1 = time.perf_counter()
        index.add(chunk)
        if refine is not None:
            refine.add(chunk)
        add_s += time.perf_counter() - t1
        generate_s += t1 - t0
        print(f"[scale] added {start + len(chunk)}", file=sys.stderr, flush=True)
    figures["add_s"] = add_s
    figures["build_s (train + add)"] = figures["train_s"] + add_s
    figures["generate_and_exact_truth_s"] = generate_s
    path = out / f"scale-{args.index_type}-{args.n}.faiss"
    faiss.write_index(index, str(path))
    figures["file_mb"] = path.stat().st_size / 2**20
    np.save(out / "queries.npy", queries, allow_pickle=False)
    np.save(out / "truth.npy", truth_rows, allow_pickle=False)
    paths = {args.index_type: str(path)}
    if refine is not None:
        refined = faiss.IndexRefine(index, refine)
        refined.k_factor = args.k_factor
        refined_path = out / f"scale-{args.index_type}+sq8-{args.n}.faiss"
        faiss.write_index(refined, str(refined_path))
        figures["file_mb (+sq8 refine)"] = refined_path.stat().st_size / 2**20
        paths[f"{args.index_type}+sq8 refine (k_factor {args.k_factor})"] = str(refined_path)
    del index
    return {"figures": figures, "indexes": paths}


def measure(index_path: str, out: str, nprobes: list[int], mmap: bool) -> dict:
    """In a fresh process: RAM of loading the index, and search latency / recall per nprobe."""
    import numpy as np
    import psutil

    queries = np.load(Path(out) / "queries.npy")
    truth = np.load(Path(out) / "truth.npy")
    import faiss

    from indexes.vector import read_index, read_index_writable, set_nprobe

    process = psutil.Process()
    before = process.memory_full_info()
    started = time.perf_counter()
    index = read_index(Path(index_path)) if mmap else read_index_writable(Path(index_path))
    load_s = time.perf_counter() - started
    loaded = process.memory_full_info()
    rows = []
    for nprobe in nprobes:
        set_nprobe(index, nprobe)
        index.search(queries[:5], 10)  # warm the probed pages
        latencies, found = [], []
        for q in range(len(queries)):
            t0 = time.perf_counter()
            _, ids = index.search(queries[q : q + 1], 10)
            latencies.append(time.perf_counter() - t0)
            found.append(ids[0])
        recall = float(np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found)]))
        rows.append({"nprobe": nprobe, "p50_ms": 1000 * float(np.median(latencies)), "p95_ms": 1000 * float(np.percentile(latencies, 95)), "recall@10": recall})
    after = process.memory_full_info()
    mb = 2**20
    return {
        "mmap": mmap,
        "threads": faiss.omp_get_max_threads(),
        "load_s": load_s,
        "rss_delta_after_load_mb": (loaded.rss - before.rss) / mb,
        "uss_delta_after_load_mb": (loaded.uss - before.uss) / mb,
        "rss_delta_after_search_mb": (after.rss - before.rss) / mb,
        "uss_delta_after_search_mb": (after.uss - before.uss) / mb,
        "peak_rss_mb": after.rss / mb,
        "search": rows,
    }


def render(report: dict) -> str:
    f = report["figures"]
    lines = [
        f"n={f['n']} ({f['base_passages']} real passages + perturbed mixtures), file {f['file_mb']:.0f} MB"
        + (f" (+sq8: {f['file_mb (+sq8 refine)']:.0f} MB)" if "file_mb (+sq8 refine)" in f else "")
        + f", train {f['train_s']:.1f}s on {f['train_size']} vectors, add {f['add_s']:.1f}s",
        "",
        "| index | load | RSS delta after load MB | USS delta after load MB | RSS delta after searches MB | USS delta after searches MB |",
        "|---|---|---|---|---|---|",
    ]
    for m in report["measurements"]:
        lines.append(
            f"| {m.get('index', f['index_type'])} | {'mmap' if m['mmap'] else 'read'} | {m['rss_delta_after_load_mb']:.0f} | "
            f"{m['uss_delta_after_load_mb']:.0f} | {m['rss_delta_after_search_mb']:.0f} | {m['uss_delta_after_search_mb']:.0f} |"
        )
    lines += ["", f"| index | nprobe | p50 ms | p95 ms | recall@10 vs exact ({f['queries']} queries, {report['measurements'][0]['threads']} threads) |", "|---|---|---|---|---|"]
    for m in report["measurements"]:
        if not m["mmap"]:
            continue
        for row in m["search"]:
            lines.append(f"| {m.get('index', f['index_type'])} | {row['nprobe']} | {row['p50_ms']:.2f} | {row['p95_ms']:.2f} | {row['recall@10']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--base-passages", nargs="+", default=[str(REPO / "data" / "sample" / "passages.jsonl")])
    parser.add_argument("--base", type=int, default=20_000, help="real passages embedded (the rest are perturbed)")
    parser.add_argument("--base-index", nargs="+", help="take the real vectors from these kgrag indexes instead of embedding")
    parser.add_argument("--questions", nargs="+", default=[], help="questions.jsonl files for the queries (with --base-index)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--index-type", default="ivfpq", choices=["ivfpq", "ivf", "flat", "hnsw"])
    parser.add_argument("--pq-m", type=int, default=None, help="PQ bytes a vector (default: dimension / 8)")
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--refine", action="store_true", help="also an IVF-PQ + SQ8 re-scoring variant (IndexRefine)")
    parser.add_argument("--k-factor", type=int, default=4, help="candidates re-scored = k_factor x 10")
    parser.add_argument("--out", default=".kgrag/scale")
    parser.add_argument("--measure", nargs=2, metavar=("INDEX", "MMAP"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure[0], args.out, args.nprobe, args.measure[1] == "1")))
        return 0
    Path(args.out).mkdir(parents=True, exist_ok=True)
    built = build(args)
    measurements = []
    for name, path in built["indexes"].items():
        for mmap in (True, False):
            result = subprocess.run(
                [sys.executable, __file__, "--out", args.out, "--nprobe", *map(str, args.nprobe), "--measure", path, "1" if mmap else "0"],
                capture_output=True, text=True, check=True,
            )
            measurements.append({"index": name, **json.loads(result.stdout.strip().splitlines()[-1])})
    report = {"command": " ".join(["python", "bench/scale.py", *(argv if argv is not None else sys.argv[1:])]), "figures": built["figures"], "measurements": measurements}
    Path(args.out, "scale.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    text = render(report)
    Path(args.out, "scale.md").write_text(text, encoding="utf-8")
    for path in built["indexes"].values():
        Path(path).unlink()  # hundreds of MB; the figures are in scale.json
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
