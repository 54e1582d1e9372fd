"""Learn relation-path exemplars from QA data: each question, its entity masked, labelled with the relation
path that leads from its topic entity to its gold answers in the KG.

    python -m kg.exemplars --kb kb.tsv --questions 1hop.jsonl 2hop.jsonl --out kg/resources/relation_paths.jsonl

The KG retriever scores paths by similarity to these exemplars. Questions need `topic_entity` (else the top
linked entity is used) and `answers`; the number of hops is tried from 1 up to `--max-hops`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from indexes.readers import read_triples
from kg.graph import KnowledgeGraph
from kg.linking import EntityLinker
from kg.paths import Path as RelationPathSteps, best_paths_for_answers
from kg.retrieval import mask_mention


def gold_path(graph: KnowledgeGraph, record: dict, start: int) -> RelationPathSteps | None:
    """The annotated relation path (`gold_path_triples`, as PathQuestion ships), when it runs from the topic
    entity through the KG. Preferred over searching for the shortest path to the answers: that search labels
    "the gender of X's artist's producer" with a 1-hop shortcut that happens to reach the same answer.
    """
    triples = record.get("gold_path_triples")
    if not triples:
        return None
    steps: list[tuple[str, bool]] = []
    at = start
    for head, relation, tail in triples:
        relation_id = graph.relation_ids.get(relation)
        ids = graph.entity_ids
        if relation_id is None or head not in ids or tail not in ids:
            return None
        if ids[head] == at and ids[tail] in set(graph.hop(at, relation_id, inverse=False).tolist()):
            steps.append((relation, False))
            at = ids[tail]
        elif ids[tail] == at and ids[head] in set(graph.hop(at, relation_id, inverse=True).tolist()):
            steps.append((relation, True))
            at = ids[head]
        else:
            return None
    return tuple(steps)


def label_question(graph: KnowledgeGraph, linker: EntityLinker, record: dict, max_hops: int) -> list[dict]:
    """Exemplar rows for one question: one per relation path that best explains its gold answers."""
    topic = record.get("topic_entity")
    mention = topic
    if topic is None or topic not in graph.entity_ids:
        links = linker.link(record["question"])
        if not links:
            return []
        topic, mention = links[0].name, links[0].mention
    answers = {graph.entity_ids[a] for a in record["answers"] if a in graph.entity_ids}
    if not answers:
        return []
    start = graph.entity_ids[topic]
    gold = gold_path(graph, record, start)
    if gold is not None:
        question = mask_mention(record["question"], mention)
        return [{"question": question, "path": [[r, inv] for r, inv in gold], "f1": 1.0, "source": record.get("id", "")}]
    hops = [int(record["hops"])] if record.get("hops") else range(1, max_hops + 1)
    best: tuple[list, float] = ([], 0.0)
    for hop in hops:
        paths, f1 = best_paths_for_answers(graph, start, answers, hops=hop)
        if paths and f1 > best[1]:
            best = (paths, f1)
    paths, f1 = best
    if f1 < 0.5:
        return []
    question = mask_mention(record["question"], mention)
    return [
        {"question": question, "path": [[r, inv] for r, inv in path], "f1": round(f1, 3), "source": record.get("id", "")}
        for path in paths
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kg.exemplars", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kb", required=True, nargs="+")
    parser.add_argument("--questions", required=True, nargs="+", help="JSONL; a file name containing 'Nhop' fixes N")
    parser.add_argument("--out", required=True)
    parser.add_argument("--max-hops", type=int, default=3)
    parser.add_argument("--every", type=int, default=1, help="use every N-th question (keep the rest for evaluation)")
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--append", action="store_true")
    args = parser.parse_args(argv)

    graph = KnowledgeGraph.from_triples(t for path in args.kb for t in read_triples(path))
    linker = EntityLinker(graph)
    rows, seen, total = [], set(), 0
    for path in args.questions:
        records = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
        name = Path(path).name.lower()
        fixed_hops = next((n for n in (1, 2, 3) if f"{n}hop" in name or f"{n}h" in name.replace("-", "")), None)
        for record in tqdm(records[args.offset :: args.every], desc=Path(path).name):
            total += 1
            if fixed_hops and "hops" not in record:
                record["hops"] = fixed_hops
            for row in label_question(graph, linker, record, args.max_hops):
                key = (row["question"].lower(), json.dumps(row["path"]))
                if key not in seen:
                    seen.add(key)
                    rows.append(row)
    mode = "a" if args.append else "w"
    with open(args.out, mode, encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"labelled {len(rows)} exemplars from {total} questions -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
