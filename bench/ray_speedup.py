"""Ray build vs single-process build of the same passages: wall-clock seconds and speed-up.

    PYTHONPATH=. python bench/ray_speedup.py --passages /tmp/data/nq/passages.jsonl --limit 500

Both are full `build_index` runs (model load, chunking, embedding, FAISS, files); the Ray one includes starting
a local Ray instance and its workers (what `--ray auto` costs on a machine without a running cluster), so on a
2-core machine the speed-up is expected to be below 1. The vectors of both builds are compared too.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", default=str(REPO / "data" / "sample" / "passages.jsonl"))
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--ray", default="auto")
    args = parser.parse_args()

    import numpy as np

    from indexes.build import BuildConfig, build_index
    from indexes.store import load_index

    work = Path(tempfile.mkdtemp(prefix="kgrag-ray-bench-"))
    source = work / "passages.jsonl"
    with open(args.passages, encoding="utf-8") as handle:
        source.write_text("".join(line for _, line in zip(range(args.limit), handle)), encoding="utf-8")
    seconds = {}
    for mode in ("single", "ray"):
        config = BuildConfig(passages=(str(source),), device="cpu", progress=False, ray=args.ray if mode == "ray" else None)
        started = time.perf_counter()
        build_index(work / mode, config)
        seconds[mode] = time.perf_counter() - started
    single, ray = load_index(work / "single"), load_index(work / "ray")
    n = len(single.passages)
    same_ids = [p.id for p in single.passages] == [p.id for p in ray.passages]
    max_diff = float(np.abs(single.vectors._cpu_index.reconstruct_n(0, n) - ray.vectors._cpu_index.reconstruct_n(0, n)).max())
    print(json.dumps({"chunks": n, "single_s": seconds["single"], "ray_s": seconds["ray"],
                      "speedup": seconds["single"] / seconds["ray"], "same_ids": same_ids, "max_abs_vector_diff": max_diff}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
