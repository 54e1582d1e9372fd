"""Load test: N concurrent askers (threads) against ONE loaded QAPipeline on the sample index.

    PYTHONPATH=. python bench/load_test.py [--index DIR] [--preset kg-only] [--threads 50] [--questions 200] [--max-seconds 120]

Builds the sample index into a temp folder when --index is not given. Mixed KG and text questions from
data/sample/questions.jsonl, cycled. Prints throughput, p50/p95 latency, errors and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SAMPLE = REPO / "data" / "sample"


def current_rss_mb() -> float:
    """Resident memory now (Linux /proc; ru_maxrss only gives the peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--index")
    parser.add_argument("--preset", default=None)
    parser.add_argument("--threads", type=int, default=50)
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    args = parser.parse_args()

    from indexes.build import BuildConfig, build_index
    from rag.pipeline import QAPipeline

    index = args.index
    if index is None:
        index = str(Path(tempfile.mkdtemp()) / "index")
        build_index(index, BuildConfig(passages=(str(SAMPLE / "passages.jsonl"),), triples=(str(SAMPLE / "triples.tsv"),),
                                       kg_passages=True, progress=False))
    kwargs = {"device": "cpu"} | ({"preset": args.preset} if args.preset else {})
    pipeline = QAPipeline.load(index, **kwargs)
    if hasattr(pipeline, "warm_up"):
        pipeline.warm_up()
    rss_before = current_rss_mb()
    pool = [json.loads(line)["question"] for line in (SAMPLE / "questions.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    questions = [pool[i % len(pool)] for i in range(args.questions)]
    deadline = time.perf_counter() + args.max_seconds
    latencies: list[float] = []
    errors: list[str] = []
    skipped = 0
    lock = threading.Lock()

    def ask(question: str) -> None:
        nonlocal skipped
        if time.perf_counter() > deadline:
            with lock:
                skipped += 1
            return
        start = time.perf_counter()
        try:
            pipeline.ask(question)
        except Exception as exc:  # noqa: BLE001 - counted and reported
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}")
            return
        with lock:
            latencies.append(time.perf_counter() - start)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.threads) as executor:
        list(executor.map(ask, questions))
    wall = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else float("nan")

    report = {
        "preset": args.preset or "default", "threads": args.threads, "asked": len(latencies) + len(errors),
        "answered": len(latencies), "errors": len(errors), "not_started_deadline": skipped, "wall_s": round(wall, 2),
        "throughput_qps": round(len(latencies) / wall, 2), "p50_s": round(pct(0.50), 3), "p95_s": round(pct(0.95), 3),
        "rss_after_warm_up_mb": rss_before, "rss_after_load_mb": current_rss_mb(),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(report))
    for message in sorted(set(errors))[:5]:
        print("error:", message, file=sys.stderr)


if __name__ == "__main__":
    main()
