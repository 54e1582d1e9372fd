"""End-to-end benchmark: our figures next to raw baselines measured in the same run, as ratios.

    PYTHONPATH=. python bench/run.py --quick --out .kgrag/bench
    PYTHONPATH=. python bench/run.py --passages /tmp/data/nq/passages.jsonl --limit 1000 --out .kgrag/bench

Sections (each figure is measured here, now, on this machine; compare ratios, not absolute numbers):

- build: chunk + embed (our `chunk_passages` + `embed_resumable` through `Embedder`, shards written as in a
  real build) vs raw `SentenceTransformer.encode` of the same chunk texts with its defaults; both with the
  model already loaded, alternated `--repeats` times, best of each kept (the machine is shared). The full
  `build_index` time (model load, FAISS, files, checksums) is reported too.
- dense search: `VectorIndex.search` (one query at a time) vs `faiss.Index.search` on the very same index
  object; plus `DenseRetriever.retrieve` (query embedding included) for reference.
- stages: `Answer.timings` of `QAPipeline` (default preset, CPU) on the sample index for the sample questions,
  p50/p95 per stage. Stages a question does not reach are not counted for it (a KG answer has no reader time).
- reader tokens/s: generated tokens / `reader.read` seconds, over the questions that reached the reader.
- peak RSS of this process (`ru_maxrss`).

Writes bench.json, bench.md (also printed) and bench.png (when matplotlib is installed: `pip install .[dev]`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
SAMPLE = REPO / "data" / "sample"


# ---- pure helpers (unit-tested) ---------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def sample_questions(path: Path, limit: int) -> list[str]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    # Evenly spaced over the file, so a short run still mixes KG questions and text questions.
    step = max(1, len(rows) // max(1, limit))
    return [row["question"] for row in rows[::step][:limit]]


def peak_rss_mb() -> float:
    # ru_maxrss is KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclass(frozen=True)
class Ratio:
    name: str
    ours: float
    raw: float
    unit: str
    higher_is_better: bool
    goal: float | None = None  # minimum acceptable ours-vs-raw ratio (1.0 = as good as raw)

    @property
    def ratio(self) -> float:
        """ours relative to raw, >1 better: throughput ours/raw, latency raw/ours."""
        if self.higher_is_better:
            return self.ours / self.raw if self.raw else float("nan")
        return self.raw / self.ours if self.ours else float("nan")

    @property
    def meets_goal(self) -> bool | None:
        return None if self.goal is None else self.ratio >= self.goal


def render_markdown(report: dict) -> str:
    lines = ["## Ratios against raw baselines (same run)", "", "| figure | ours | raw | unit | ours vs raw | goal |", "|---|---|---|---|---|---|"]
    for r in report["ratios"]:
        goal = "" if r["goal"] is None else f">= {r['goal']:.2f} ({'met' if r['meets_goal'] else 'NOT met'})"
        lines.append(f"| {r['name']} | {r['ours']:.4g} | {r['raw']:.4g} | {r['unit']} | {r['ratio']:.3f} | {goal} |")
    lines += ["", "## Per-stage latency of one question (seconds)", "", "| stage | n | p50 | p95 |", "|---|---|---|---|"]
    for stage, row in report["stages"].items():
        lines.append(f"| {stage} | {row['n']} | {row['p50']:.4f} | {row['p95']:.4f} |")
    lines += ["", "## Other figures", "", "| figure | value |", "|---|---|"]
    for key, value in report["figures"].items():
        lines.append(f"| {key} | {value:.4g} |" if isinstance(value, float) else f"| {key} | {value} |")
    return "\n".join(lines) + "\n"


def write_plot(report: dict, path: Path) -> bool:
    """Two panels: ours-vs-raw ratios, per-stage p50/p95. False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    names = [r["name"] for r in report["ratios"]]
    left.barh(names, [r["ratio"] for r in report["ratios"]], color="tab:blue")
    left.axvline(1.0, color="black", linewidth=0.8)
    left.set_xlabel("ours vs raw (>1 better)")
    left.set_title("ratios")
    stages = list(report["stages"])
    positions = range(len(stages))
    right.bar([p - 0.2 for p in positions], [report["stages"][s]["p50"] for s in stages], width=0.4, label="p50")
    right.bar([p + 0.2 for p in positions], [report["stages"][s]["p95"] for s in stages], width=0.4, label="p95")
    right.set_xticks(list(positions), stages)
    right.set_ylabel("seconds")
    right.set_title("per-stage latency")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_report(report: dict, out: Path) -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    files = {"json": str(out / "bench.json"), "markdown": str(out / "bench.md")}
    Path(files["json"]).write_text(json.dumps(report, indent=2), encoding="utf-8")
    Path(files["markdown"]).write_text(render_markdown(report), encoding="utf-8")
    if write_plot(report, out / "bench.png"):
        files["plot"] = str(out / "bench.png")
    return files


# ---- measurements ------------------------------------------------------------------------------------------


def _load_passages(paths: list[str], limit: int | None):
    from indexes.readers import read_passages

    passages = []
    for path in paths:
        passages.extend(read_passages(path))
    return passages[:limit] if limit else passages


def measure_build(passages, *, repeats: int, batch_size: int) -> tuple[list[Ratio], dict]:
    from sentence_transformers import SentenceTransformer

    from indexes import build as build_module
    from indexes.chunking import ChunkingConfig, chunk_passages
    from indexes.embedder import DEFAULT_EMBEDDER, Embedder, resolve_embedder_path

    embedder = Embedder(DEFAULT_EMBEDDER, device="cpu", batch_size=batch_size)
    embedder.warm_up()
    raw_model = SentenceTransformer(str(resolve_embedder_path(DEFAULT_EMBEDDER)), device="cpu", local_files_only=True)
    texts_for_raw = [build_module._embedding_text(p) for p in chunk_passages(passages, ChunkingConfig())]
    raw_model.encode(texts_for_raw[:32])  # first-call overhead out of both timings
    embedder.encode(texts_for_raw[:32])

    ours_times, raw_times = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        raw_model.encode(texts_for_raw, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        raw_times.append(time.perf_counter() - started)
        staging = Path(tempfile.mkdtemp(prefix="kgrag-bench-staging-"))
        try:
            started = time.perf_counter()
            chunks = list(chunk_passages(passages, ChunkingConfig()))
            build_module.embed_resumable(embedder, chunks, staging, batch_size=batch_size, progress=False)
            ours_times.append(time.perf_counter() - started)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    n = len(texts_for_raw)
    ratio = Ratio("build: chunk+embed throughput", n / min(ours_times), n / min(raw_times), "chunks/s", True, goal=0.9)
    return [ratio], {"build chunks": n, "build ours seconds (best)": min(ours_times), "build raw seconds (best)": min(raw_times)}


def measure_full_build(passages_path: str, limit: int | None, workdir: Path) -> dict:
    from indexes.build import BuildConfig, build_index

    source = Path(passages_path)
    if limit:
        source = workdir / "passages.limit.jsonl"
        with open(passages_path, encoding="utf-8") as handle, source.open("w", encoding="utf-8") as out:
            for number, line in enumerate(handle):
                if number >= limit:
                    break
                out.write(line)
    result = build_index(workdir / "full-build", BuildConfig(passages=(str(source),), device="cpu", progress=False))
    return {"full build_index seconds (incl. model load)": result.seconds, "full build chunks": result.manifest["counts"]["chunks"]}


def _alternate_search(ours_index, raw_index, vectors, *, repeats: int, top_k: int = 10) -> tuple[list[float], list[float]]:
    """Per-query latencies of ours and raw, alternated query by query so machine noise hits both alike."""
    import numpy as np

    queries = [np.ascontiguousarray(vectors[row : row + 1]) for row in range(len(vectors))]
    ours, raw = [], []
    for _ in range(repeats):
        for query in queries:
            started = time.perf_counter()
            raw_index.search(query, top_k)
            raw.append(time.perf_counter() - started)
            started = time.perf_counter()
            ours_index.search(query, top_k)
            ours.append(time.perf_counter() - started)
    return ours, raw


def measure_synthetic_search(count: int, queries, *, repeats: int) -> tuple[list[Ratio], dict]:
    """The same comparison on `count` vectors (real query embeddings + seeded perturbations of them), where the
    search itself, not the call overhead, dominates."""
    import numpy as np

    from indexes.vector import VectorIndex, make_index

    rng = np.random.default_rng(0)
    vectors = queries[rng.integers(0, len(queries), count)] + rng.normal(0, 0.05, size=(count, queries.shape[1]))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    index = make_index(vectors.shape[1], count, "flat")
    index.add(vectors)
    ours_index = VectorIndex(index, use_gpu=False)
    ours, raw = _alternate_search(ours_index, index, queries, repeats=repeats)
    name = f"dense search p50 latency, flat {count // 1000}k vectors"
    return [Ratio(name, percentile(ours, 50), percentile(raw, 50), "s", False, goal=0.9)], {}


def measure_search(index_dir: Path, queries: list[str], *, repeats: int, synthetic: int) -> tuple[list[Ratio], dict]:
    from indexes.embedder import Embedder
    from indexes.store import load_index
    from rag.retrievers import DenseRetriever

    loaded = load_index(index_dir, use_gpu=False)
    embedder = Embedder(loaded.embedder_name, device="cpu")
    vectors = embedder.encode(queries)
    ours_index = loaded.vectors
    raw_index = ours_index._cpu_index  # the very same FAISS object: the ratio is our wrapper's overhead
    top_k = 10
    ours, raw = _alternate_search(ours_index, raw_index, vectors, repeats=repeats, top_k=top_k)
    retriever = DenseRetriever(loaded.passages, ours_index, embedder)
    retrieve = []
    for question in queries:
        started = time.perf_counter()
        retriever.retrieve(question, top_k=top_k)
        retrieve.append(time.perf_counter() - started)
    ratio = Ratio("dense search p50 latency, sample index", percentile(ours, 50), percentile(raw, 50), "s", False, goal=0.9)
    synthetic_ratios, _ = measure_synthetic_search(synthetic, vectors, repeats=max(1, repeats // 10))
    figures = {
        "dense index vectors": len(ours_index),
        "dense search ours p95 s": percentile(ours, 95),
        "dense search raw p95 s": percentile(raw, 95),
        "DenseRetriever.retrieve p50 s (embed+search)": percentile(retrieve, 50),
    }
    return [ratio, *synthetic_ratios], figures


def measure_stages(index_dir: Path, questions: list[str]) -> tuple[dict, dict]:
    from rag.pipeline import QAPipeline

    pipeline = QAPipeline.load(index_dir, device="cpu")
    pipeline.warm_up()
    reader_runs: list[tuple[int, float]] = []
    prompt_tokens: list[int] = []
    if pipeline.reader is not None:
        real_read = pipeline.reader.read
        real_prompt_ids = pipeline.reader._prompt_ids

        def counted_read(*args, **kwargs):
            started = time.perf_counter()
            output = real_read(*args, **kwargs)
            reader_runs.append((len(output.token_logprobs) + 1, time.perf_counter() - started))  # +1: stop token
            return output

        def counted_prompt_ids(*args, **kwargs):
            ids = real_prompt_ids(*args, **kwargs)
            prompt_tokens.append(len(ids))
            return ids

        # Instance attributes: instrumentation for this run only.
        pipeline.reader.read = counted_read
        pipeline.reader._prompt_ids = counted_prompt_ids
    per_stage: dict[str, list[float]] = {}
    methods: dict[str, int] = {}
    for question in questions:
        answer = pipeline.ask(question)
        methods[answer.method] = methods.get(answer.method, 0) + 1
        for stage, seconds in answer.timings.items():
            per_stage.setdefault(stage, []).append(seconds)
    stages = {
        stage: {"n": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95)}
        for stage, values in per_stage.items()
    }
    tokens = sum(t for t, _ in reader_runs)
    seconds = sum(s for _, s in reader_runs)
    figures = {
        "questions asked": len(questions),
        "answer methods": json.dumps(methods, sort_keys=True),
        "reader calls": len(reader_runs),
        "reader tokens generated": tokens,
        "reader prompt tokens (mean)": sum(prompt_tokens) / len(prompt_tokens) if prompt_tokens else float("nan"),
        "reader generated tokens/s (incl. prompt prefill)": tokens / seconds if seconds else float("nan"),
        "reader prompt+generated tokens/s": (tokens + sum(prompt_tokens)) / seconds if seconds else float("nan"),
    }
    return stages, figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=".kgrag/bench", help="folder for bench.json / bench.md / bench.png")
    parser.add_argument("--passages", nargs="+", default=[str(SAMPLE / "passages.jsonl")], help="passages for the build figures")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N passages")
    parser.add_argument("--questions", type=int, default=50, help="sample questions asked for the stage figures")
    parser.add_argument("--repeats", type=int, default=3, help="alternated repeats of ours vs raw (best kept)")
    parser.add_argument("--batch-size", type=int, default=None, help="our Embedder's batch size (default: the build's)")
    parser.add_argument("--quick", action="store_true", help="a few minutes on 2 cores: 2 repeats, 12 questions")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = min(args.repeats, 2)
        args.questions = min(args.questions, 12)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from indexes.embedder import DEFAULT_BATCH_SIZE

    args.batch_size = args.batch_size or DEFAULT_BATCH_SIZE

    from indexes.build import BuildConfig, build_index

    started = time.perf_counter()
    ratios: list[Ratio] = []
    figures: dict = {"quick": args.quick}
    workdir = Path(tempfile.mkdtemp(prefix="kgrag-bench-"))
    try:
        passages = _load_passages(args.passages, args.limit)
        build_ratios, build_figures = measure_build(passages, repeats=args.repeats, batch_size=args.batch_size)
        ratios += build_ratios
        figures.update(build_figures)
        _log(f"build: {build_figures}")
        if not args.quick:
            figures.update(measure_full_build(args.passages[0], args.limit, workdir))

        sample = workdir / "sample-index"
        built = build_index(
            sample,
            BuildConfig(passages=(str(SAMPLE / "passages.jsonl"),), triples=(str(SAMPLE / "triples.tsv"),), kg_passages=True, device="cpu", progress=False),
        )
        figures["sample build_index seconds (incl. model load)"] = built.seconds
        questions = sample_questions(SAMPLE / "questions.jsonl", args.questions)
        search_ratios, search_figures = measure_search(
            sample, questions, repeats=max(1, args.repeats * 10), synthetic=20_000 if args.quick else 100_000
        )
        ratios += search_ratios
        figures.update(search_figures)
        _log(f"search: {search_figures}")
        stages, stage_figures = measure_stages(sample, questions)
        figures.update(stage_figures)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    figures["peak RSS MB"] = peak_rss_mb()
    figures["bench seconds"] = time.perf_counter() - started
    report = {
        "command": " ".join(["python", "bench/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "ratios": [{**r.__dict__, "ratio": r.ratio, "meets_goal": r.meets_goal} for r in ratios],
        "stages": stages,
        "figures": figures,
    }
    files = write_report(report, Path(args.out))
    print(render_markdown(report))
    print(json.dumps(files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
