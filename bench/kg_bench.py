"""KG store and algorithm benchmark (not a test): MetaQA's KB, a generated power-law graph, and networkx.

    python bench/kg_bench.py --kb /work/data_prepared/metaqa/kb.tsv --generated 2000000 --queries 200 --out .kgrag/bench

Each section runs in its own subprocess so its peak RSS (ru_maxrss) is its own, not the sum of everything
that ran before it. See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEED = 13


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def latency(fn: Callable[[object], object], inputs: list) -> dict[str, float]:
    """p50/p95/max in milliseconds of `fn` over `inputs` (one warm-up call first)."""
    if not inputs:
        return {"p50_ms": float("nan"), "p95_ms": float("nan"), "max_ms": float("nan"), "n": 0}
    fn(inputs[0])
    times = []
    for item in inputs:
        start = time.perf_counter()
        fn(item)
        times.append((time.perf_counter() - start) * 1000)
    arr = np.array(times)
    return {
        "p50_ms": float(np.percentile(arr, 50)),
        "p95_ms": float(np.percentile(arr, 95)),
        "max_ms": float(arr.max()),
        "n": len(arr),
    }


def dir_size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.iterdir()) / 2**20


# ---- graphs -------------------------------------------------------------------------------------------


def read_kb(path: Path) -> list[tuple[str, str, str]]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 3 and all(p.strip() for p in parts):
                rows.append((parts[0], parts[1], parts[2]))
    return rows


def build_metaqa(rows: list[tuple[str, str, str]]):
    from kg.graph import KnowledgeGraph
    from kg.types import Triple

    return KnowledgeGraph.from_triples(Triple(h, r, t) for h, r, t in rows)


def build_generated(n_triples: int):
    """~n/5 entities, 20 relations, heads and tails drawn from a Zipf-like (power-law) popularity."""
    from kg.graph import KnowledgeGraph

    rng = np.random.default_rng(SEED)
    n_entities = max(10, n_triples // 5)
    popularity = 1.0 / np.arange(1, n_entities + 1) ** 0.9
    popularity /= popularity.sum()
    shuffle = rng.permutation(n_entities)  # hubs are not the low ids
    heads = shuffle[rng.choice(n_entities, size=n_triples, p=popularity)]
    tails = shuffle[rng.choice(n_entities, size=n_triples, p=popularity)]
    relations = rng.integers(0, 20, size=n_triples)
    triples = np.stack([heads, relations, tails], axis=1).astype(np.int32)
    entities = [f"entity_{i}" for i in range(n_entities)]
    return KnowledgeGraph(entities, [f"relation_{i}" for i in range(20)], triples)


# ---- workloads ----------------------------------------------------------------------------------------


def sample_workload(graph, n: int) -> dict[str, list]:
    """Random entities with at least one edge; 2-hop relation paths and the pairs they join (random walks)."""
    rng = random.Random(SEED)
    entities, paths, pairs, far_pairs = [], [], [], []
    n_entities = len(graph.entities)
    while len(entities) < n:
        e = rng.randrange(n_entities)
        if graph.degree(e):
            entities.append(e)
    for e in entities:
        r1, inv1, _ = rng.choice(graph.relations_at(e))
        x = int(rng.choice(graph.hop(e, r1, inverse=inv1).tolist()))
        r2, inv2, _ = rng.choice(graph.relations_at(x))
        y = int(rng.choice(graph.hop(x, r2, inverse=inv2).tolist()))
        paths.append((e, ((graph.relations[r1], inv1), (graph.relations[r2], inv2))))
        if y != e:
            pairs.append([e, y])
        far_pairs.append([e, rng.choice(entities)])
    return {"entities": entities, "paths": paths, "pairs": pairs, "random_pairs": far_pairs}


def kg_ops(graph, n: int) -> dict[str, dict]:
    from kg.algorithms import personalized_pagerank, shortest_paths_between
    from kg.paths import follow

    work = sample_workload(graph, n)

    def one_hop(e: int) -> int:
        return sum(len(graph.hop(e, r, inverse=inv)) for r, inv, _ in graph.relations_at(e))

    return {
        "1-hop relations_at+hop": latency(one_hop, work["entities"]),
        "follow 2-hop path": latency(lambda q: follow(graph, q[0], q[1]), work["paths"]),
        "personalized_pagerank": latency(lambda e: personalized_pagerank(graph, {e: 1.0}), work["entities"]),
        "shortest_paths (<=2 hops apart)": latency(lambda p: shortest_paths_between(graph, p), work["pairs"]),
        "shortest_paths (random pairs)": latency(lambda p: shortest_paths_between(graph, p), work["random_pairs"]),
    }


def store_section(name: str, build: Callable[[], object], n: int) -> dict:
    from kg.graph import KnowledgeGraph

    base_rss = peak_rss_mb()
    build_s, graph = timed(build)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "kg"
        save_s, _ = timed(lambda: graph.save(folder))
        size = dir_size_mb(folder)
        del graph
        load_s, graph = timed(lambda: KnowledgeGraph.load(folder))
    return {
        "section": name,
        "triples": len(graph),
        "entities": len(graph.entities),
        "build_s": build_s,
        "save_s": save_s,
        "load_s": load_s,
        "disk_mb": size,
        "rss_after_imports_mb": base_rss,
        "peak_rss_mb_before_queries": peak_rss_mb(),
        "ops": kg_ops(graph, n),
        "peak_rss_mb": peak_rss_mb(),
    }


def networkx_section(kb: Path, n: int) -> dict:
    import networkx as nx

    base_rss = peak_rss_mb()
    rows = read_kb(kb)

    def build():
        g = nx.MultiDiGraph()
        for h, r, t in rows:
            g.add_edge(h, t, key=r, relation=r)
        return g

    build_s, g = timed(build)
    rng = random.Random(SEED)
    nodes = list(g.nodes)
    picks = [rng.choice(nodes) for _ in range(n)]
    return {
        "section": "networkx",
        "triples": g.number_of_edges(),
        "entities": g.number_of_nodes(),
        "build_s": build_s,
        "rss_after_imports_mb": base_rss,
        "ops": {"ego_graph radius=1 (out-edges)": latency(lambda v: nx.ego_graph(g, v, radius=1), picks)},
        "peak_rss_mb": peak_rss_mb(),
    }


def retrieve_section(kb: Path, questions: Path, n: int) -> dict:
    from indexes.embedder import Embedder
    from kg.retrieval import KGRetriever

    graph = build_metaqa(read_kb(kb))
    with questions.open(encoding="utf-8") as handle:
        qs = [json.loads(line)["question"] for line in handle if line.strip()][:n]
    setup_s, retriever = timed(lambda: KGRetriever(graph, Embedder()))
    warm_s, _ = timed(retriever.warm_up)
    return {
        "section": "retrieve",
        "triples": len(graph),
        "setup_s": setup_s,
        "warm_up_s": warm_s,
        "ops": {"KGRetriever.retrieve (MetaQA 1-hop)": latency(retriever.retrieve, qs)},
        "peak_rss_mb": peak_rss_mb(),
    }


def run_section(args: argparse.Namespace) -> dict:
    if args.section == "metaqa":
        rows = read_kb(args.kb)  # parsed outside the timing, as for networkx
        return store_section("metaqa", lambda: build_metaqa(rows), args.queries)
    if args.section == "generated":
        return store_section(f"generated-{args.generated}", lambda: build_generated(args.generated), args.queries)
    if args.section == "networkx":
        return networkx_section(args.kb, args.queries)
    if args.section == "retrieve":
        return retrieve_section(args.kb, args.questions, args.queries)
    raise SystemExit(f"unknown section {args.section}")


# ---- report -------------------------------------------------------------------------------------------


def markdown(results: list[dict], command: str) -> str:
    by = {r["section"]: r for r in results}
    lines = [f"Command: `{command}`", "", "## Stores", ""]
    lines += [
        "| graph | triples | entities | build s | save s | load s | disk MB | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if "triples" in r and r["section"] != "retrieve":
            cells = [r["section"], f"{r['triples']:,}", f"{r['entities']:,}", f"{r['build_s']:.2f}"]
            cells += [f"{r[k]:.2f}" if k in r else "-" for k in ("save_s", "load_s", "disk_mb")]
            cells.append(f"{r['peak_rss_mb']:.0f} (imports {r['rss_after_imports_mb']:.0f})")
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Latency (ms)", "", "| graph | operation | p50 | p95 | max | n |", "|---|---|---:|---:|---:|---:|"]
    for r in results:
        for op, s in r.get("ops", {}).items():
            lines.append(
                f"| {r['section']} | {op} | {s['p50_ms']:.3f} | {s['p95_ms']:.3f} | {s['max_ms']:.1f} | {s['n']} |"
            )
    if "retrieve" in by:
        r = by["retrieve"]
        lines += [
            "",
            f"Retriever setup {r['setup_s']:.2f} s, warm-up (relation + exemplar embeddings) {r['warm_up_s']:.2f} s.",
        ]
    if "metaqa" in by and "networkx" in by:
        ours, nx_ = by["metaqa"], by["networkx"]
        hop = ours["ops"]["1-hop relations_at+hop"]["p50_ms"]
        ego = nx_["ops"]["ego_graph radius=1 (out-edges)"]["p50_ms"]
        lines += [
            "",
            "## MetaQA vs networkx",
            "",
            "| figure | KnowledgeGraph | networkx MultiDiGraph | networkx / ours |",
            "|---|---:|---:|---:|",
            f"| build s (from the same parsed rows, TSV parsing excluded) | {ours['build_s']:.2f} | {nx_['build_s']:.2f} | {nx_['build_s'] / ours['build_s']:.1f}x |",
            f"| load s (ours) vs build s (networkx has no store) | {ours['load_s']:.3f} | {nx_['build_s']:.2f} | {nx_['build_s'] / ours['load_s']:.1f}x |",
            f"| peak RSS MB minus imports | {ours['peak_rss_mb'] - ours['rss_after_imports_mb']:.0f} | {nx_['peak_rss_mb'] - nx_['rss_after_imports_mb']:.0f} | {(nx_['peak_rss_mb'] - nx_['rss_after_imports_mb']) / max(1.0, ours['peak_rss_mb'] - ours['rss_after_imports_mb']):.1f}x |",
            f"| 1-hop p50 ms (ours: both directions, per relation; nx: ego_graph out-edges) | {hop:.3f} | {ego:.3f} | {ego / hop:.1f}x |",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kb", type=Path, required=True, help="MetaQA kb.tsv (head<TAB>relation<TAB>tail)")
    parser.add_argument("--questions", type=Path, default=None, help="MetaQA 1hop.jsonl (default: next to --kb)")
    parser.add_argument("--generated", type=int, default=2_000_000, help="triples in the generated graph (0: skip)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / ".kgrag" / "bench")
    parser.add_argument("--skip-retrieve", action="store_true", help="skip KGRetriever.retrieve (loads the embedder)")
    parser.add_argument("--section", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.questions = args.questions or args.kb.parent / "1hop.jsonl"
    if args.section:
        print(json.dumps(run_section(args)))
        return
    sections = (
        ["metaqa", "networkx"]
        + (["generated"] if args.generated else [])
        + ([] if args.skip_retrieve else ["retrieve"])
    )
    results = []
    for section in sections:
        print(f"-- {section} ...", file=sys.stderr, flush=True)
        cmd = [sys.executable, __file__, "--section", section, *sys.argv[1:]]
        done = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=ROOT)
        if done.returncode:
            print(done.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"section {section} failed")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    command = "python bench/kg_bench.py " + " ".join(sys.argv[1:])
    report = markdown(results, command)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "kg_bench.json").write_text(json.dumps({"command": command, "results": results}, indent=2))
    (args.out / "kg_bench.md").write_text(report)
    print(report)
    print(f"wrote {args.out / 'kg_bench.json'} and {args.out / 'kg_bench.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
