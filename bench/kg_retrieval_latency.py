"""KG load time and subgraph-retrieval latency on a built index folder (a benchmark script, not a test).

    # MetaQA KB index (triples only), then its held-out questions
    python -m indexes build --out /tmp/idx_metaqa_kg --triples /tmp/data/metaqa/kb.tsv
    python bench/kg_retrieval_latency.py --index /tmp/idx_metaqa_kg \
        --questions /tmp/data/metaqa/1hop.jsonl /tmp/data/metaqa/2hop.jsonl /tmp/data/metaqa/3hop.jsonl --queries 300

    # a generated 2M-triple graph with readable names, its templated questions, and its index
    python bench/kg_retrieval_latency.py --make-generated 2000000 --workdir /tmp/kg_gen2m
    python bench/kg_retrieval_latency.py --index /tmp/kg_gen2m/index --questions /tmp/kg_gen2m/questions.jsonl --queries 300

What is timed, each in this one process (run it once per index so the figures do not share a warm cache):
- `load_index` of the folder (manifest, sha256 of every file, JSON name lists, `np.load`, CSR rebuild), and
  `KnowledgeGraph.load` alone;
- the retriever's setup (linker name table) and `warm_up` (relation / exemplar embeddings, entity-name vectors);
- `KGRetriever.retrieve(question)` on real questions, linking included: p50/p95/max over `--queries`
  questions taken round-robin from the files' held-out (even-numbered) lines, after one warm-up call.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import time
from pathlib import Path

import numpy as np

from kg_bench import latency  # noqa: E402  (bench/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEED = 13
# Readable relation names for the generated graph, so linking and relation scoring do their real work.
GENERATED_RELATIONS = (
    "born_in", "works_for", "married_to", "capital_of", "located_in", "member_of", "founded_by", "directed_by",
    "written_by", "produced_by", "plays_for", "speaks", "citizen_of", "educated_at", "child_of", "award_received",
    "has_genre", "employer_of", "instrument", "owned_by",
)  # fmt: skip
SYLLABLES = ("ka", "lo", "mi", "ren", "to", "sa", "vi", "dor", "el", "an", "ru", "pe", "zo", "bel", "ni", "gar")


def entity_name(i: int) -> str:
    """A two-word pseudo-name per id ("Kalomi Rento 1234"): unique, and looks like a name to the linker."""
    a, b = i % 4096, (i // 4096) % 4096
    first = SYLLABLES[a % 16] + SYLLABLES[(a // 16) % 16] + SYLLABLES[a // 256]
    last = SYLLABLES[b % 16] + SYLLABLES[(b // 16) % 16]
    return f"{first.capitalize()} {last.capitalize()} {i}"


def make_generated(n_triples: int, workdir: Path, n_questions: int) -> dict:
    """Write a Zipf-like generated KG (~n/5 entities, 20 relations) as TSV, templated questions, and its index."""
    from indexes.build import BuildConfig, build_index

    rng = np.random.default_rng(SEED)
    n_entities = max(10, n_triples // 5)
    popularity = 1.0 / np.arange(1, n_entities + 1) ** 0.9
    popularity /= popularity.sum()
    shuffle = rng.permutation(n_entities)
    # Draw 10% more and keep the first `n_triples` distinct ones: the build deduplicates.
    draw = int(n_triples * 1.1) + 10
    heads = shuffle[rng.choice(n_entities, size=draw, p=popularity)]
    tails = shuffle[rng.choice(n_entities, size=draw, p=popularity)]
    relations = rng.integers(0, len(GENERATED_RELATIONS), size=draw)
    _, first = np.unique(np.stack([heads, relations, tails], axis=1), axis=0, return_index=True)
    keep = np.sort(first)[:n_triples]
    heads, relations, tails = heads[keep], relations[keep], tails[keep]
    n_triples = len(keep)
    workdir.mkdir(parents=True, exist_ok=True)
    kb = workdir / "kb.tsv"
    names = [entity_name(i) for i in range(n_entities)]
    with kb.open("w", encoding="utf-8") as handle:
        for h, r, t in zip(heads.tolist(), relations.tolist(), tails.tolist()):
            handle.write(f"{names[h]}\t{GENERATED_RELATIONS[r]}\t{names[t]}\n")
    # Questions: "what is the <relation> of <head>?" (1 hop) and "... of the <r1> of <head>?" (2 hops).
    pick = random.Random(SEED)
    out_edges: dict[int, list[tuple[int, int]]] = {}
    for row in pick.sample(range(n_triples), min(n_triples, 20 * n_questions)):
        out_edges.setdefault(int(heads[row]), []).append((int(relations[row]), int(tails[row])))
    questions = []
    for number, (head, edges) in enumerate(out_edges.items()):
        if len(questions) >= 2 * n_questions:  # the bench uses the even lines
            break
        relation, tail = edges[0]
        words = GENERATED_RELATIONS[relation].replace("_", " ")
        name = names[head]
        if number % 3 == 2:
            # Every third question misspells the name (one letter dropped, lower case): the fuzzy linker's case.
            cut = 1 + pick.randrange(len(name.split()[0]) - 1)
            name = (name[:cut] + name[cut + 1 :]).lower()
        questions.append({"id": f"gen-{number}", "question": f"what is the {words} of {name}?", "answers": [names[tail]]})
    (workdir / "questions.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions), encoding="utf-8")
    if (workdir / "index" / "CURRENT").is_file():
        return {"built": str(workdir / "index"), "reused": True}  # the same seed wrote the same KB
    started = time.perf_counter()
    result = build_index(workdir / "index", BuildConfig(triples=(str(kb),), progress=False))
    return {"built": str(result.path), "build_s": time.perf_counter() - started, "counts": result.manifest["counts"]}


def held_out(paths: list[Path], n: int) -> list[str]:
    """Round-robin over the files' even-numbered lines (the exemplars were learned from the odd ones)."""
    per_file = []
    for path in paths:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()][1::2]
        per_file.append([json.loads(line)["question"] for line in lines])
    picked: list[str] = []
    for i in range(max(len(q) for q in per_file)):
        for qs in per_file:
            if i < len(qs) and len(picked) < n:
                picked.append(qs[i])
    return picked


def measure(index_dir: Path, questions: list[Path], n: int) -> dict:
    from indexes import layout
    from indexes.embedder import Embedder
    from indexes.store import load_index
    from kg.graph import KnowledgeGraph
    from kg.retrieval import KGRetriever

    kg_dir = layout.live_version(index_dir) / layout.KG_DIR
    graph_load_s = min(_timed(lambda: KnowledgeGraph.load(kg_dir))[0] for _ in range(3))
    index_load_s, index = _timed(lambda: load_index(index_dir))
    embedder = Embedder(index.embedder_name)
    embedder_s, _ = _timed(embedder.warm_up)
    setup_s, retriever = _timed(lambda: KGRetriever(index.graph, embedder, entity_vectors=index.entity_vectors))
    warm_s, _ = _timed(retriever.warm_up)
    qs = held_out(questions, n)
    load_before = os.getloadavg()[0]
    retrieve = {k: round(v, 2) for k, v in latency(retriever.retrieve, qs).items()}
    return {
        "index": str(index_dir),
        "triples": len(index.graph),
        "entities": len(index.graph.entities),
        "kg_load_s": round(graph_load_s, 3),
        "index_load_s": round(index_load_s, 3),
        "entity_vectors": index.entity_vectors is not None,
        "embedder_load_s": round(embedder_s, 2),
        "retriever_setup_s": round(setup_s, 3),
        "retriever_warm_up_s": round(warm_s, 2),
        "retrieve": retrieve,
        # The machine is shared: the 1-minute load average before and after the timed queries (2 cores).
        "load_avg_1m": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path)
    parser.add_argument("--questions", type=Path, nargs="+")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--make-generated", type=int, default=0, metavar="N_TRIPLES")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    if args.make_generated:
        if args.workdir is None:
            parser.error("--make-generated needs --workdir")
        print(json.dumps(make_generated(args.make_generated, args.workdir, args.queries)))
        return
    if args.index is None or not args.questions:
        parser.error("--index and --questions are required (or --make-generated N --workdir DIR)")
    print(json.dumps(measure(args.index, args.questions, args.queries)))


if __name__ == "__main__":
    main()
