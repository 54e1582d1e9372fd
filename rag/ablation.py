"""One-command ablation of the alignment stage: vanilla / +gate / +reranker / +both on held-out questions.

All four share one loaded index, embedder, reader, reranker and gate; only `use_reranker`/`use_gate` differ
(on top of the vanilla preset). Per configuration: Hits@1 and F1 of the reader's answer (unless
`with_reader=False`), evidence precision (share of passages passed to the reader that contain a gold
answer), passages/characters passed, added latency of the stage, and over the candidate pool: gate AUC
(gate weight vs. "contains the answer or is a gold supporting passage") and NDCG@5 / answer-recall@5 of the
reranker's order against the FAISS order.

With a KG in the index the evidence is multi-aspect: every configuration gets the KG subgraph as well (vanilla:
its first `max_kg_evidence` triples in retrieval order, as the pipeline shows them; with the gate: the triples
it keeps), the reader always reads (no KG shortcut), evidence figures count triples and passages alike, and the
gate AUC counts triples against their gold-path label (`rag.prefs.gold_path_triples`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rag.gate import auc
from rag.metrics import contains_answer, ndcg_at, token_f1
from rag.prefs import contains_answer as passage_contains, is_supporting, passage_text

# name -> (reranker, gate, passage chains). +gate+soft: the gate, and its kept evidence also as soft prompt vectors;
# +chain: the two-passage chain of rag.chains instead of the dense top 5 (needs no trained weights).
CONFIGS = {"vanilla": (False, False, False), "+gate": (False, True, False), "+reranker": (True, False, False),
           "+both": (True, True, False), "+gate+soft": (False, True, False), "+chain": (False, False, True)}
BASE_CONFIGS = ("vanilla", "+gate", "+reranker", "+both")


@dataclass
class Row:
    name: str
    n: int = 0
    hits1: float = float("nan")
    f1: float = float("nan")
    evidence_precision: float = 0.0
    answer_in_evidence: float = 0.0  # share of questions where some passed passage contains a gold answer
    passages: float = 0.0
    chars: float = 0.0
    empty: float = 0.0
    gate_auc: float = float("nan")
    ndcg5: float = float("nan")
    recall5: float = float("nan")
    added_ms: float = 0.0


def _relevant(hit, answers: Sequence[str], gold: set[str]) -> int:
    """A candidate's NDCG label: it contains a gold answer or is (a chunk of) an annotated supporting passage."""
    return int(passage_contains(passage_text(hit), answers) or is_supporting(hit, gold))


def _mean(values: Sequence[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values) if values else float("nan")


def run_ablation(index_dir: str, questions_path: str, *, lines: str = "even", limit: int | None = 30,
                 reader: str | None = None, reranker_path: str | None = None, gate_path: str | None = None,
                 out: str | None = None, with_reader: bool = True, configs: Sequence[str] = BASE_CONFIGS,
                 gate_threshold: float | None = None, soft_prompt_path: str | None = None) -> list[Row]:
    from indexes.embedder import Embedder
    from indexes.store import load_index
    from kg.retrieval import KGRetriever
    from rag.align import _gold_passage_ids
    from rag.answering import make_evidence
    from rag.config import make_config
    from rag.evaluate import read_questions, select_lines
    from rag.gate import GateContext
    from rag.pipeline import QAPipeline, load_alignment
    from rag.prefs import gold_path_triples
    from rag.reader import TransformersReader

    questions = select_lines(list(read_questions(questions_path)), lines)[:limit]
    gold_ids = _gold_passage_ids(questions_path)
    options = {"reader": reader} if reader else {}
    both = make_config("vanilla", use_reranker=any(CONFIGS[c][0] for c in configs),
                       use_gate=any(CONFIGS[c][1] for c in configs) or bool(soft_prompt_path), reranker_path=reranker_path, gate_path=gate_path,
                       gate_threshold=gate_threshold, **options)
    index = load_index(index_dir, verify=False)
    embedder = Embedder(index.embedder_name, device="cpu")
    reranker, gate = load_alignment(index_dir, both)
    text_reader = TransformersReader(both.reader) if with_reader else None
    configs = [c for c in configs if c != "+gate+soft"]
    readers = {name: text_reader for name in configs}
    if soft_prompt_path and text_reader is not None:
        from dataclasses import replace

        from rag.soft_prompt import SoftPromptReader, adapter_folder

        # A LoRA adapter trained with the projector is merged into a reader of its own, not the shared one.
        adapter = adapter_folder(soft_prompt_path)
        base = TransformersReader(replace(both.reader, adapter=str(adapter))) if adapter else text_reader
        configs.append("+gate+soft")
        readers["+gate+soft"] = SoftPromptReader(base, embedder, soft_prompt_path)
    kg = (KGRetriever(index.graph, embedder, both.kg, entity_vectors=index.entity_vectors)
          if index.graph is not None else None)
    # One KG retrieval (and its gold-path labels) per question, shared by the configurations: not what they vary.
    subgraphs: dict[str, tuple[Any, set[int]]] = {}
    rows: list[Row] = []
    dump = []
    for name in configs:
        use_reranker, use_gate, use_chains = CONFIGS[name]
        config = make_config("vanilla", use_reranker=use_reranker, use_gate=use_gate, use_kg=False,
                             passage_chains=use_chains, **options)
        reader_for = readers[name]
        pipeline = QAPipeline(index, config, embedder=embedder, reader=reader_for,
                              reranker=reranker if use_reranker else None, gate=gate if use_gate else None)
        pipeline.kg = kg  # dense retrieval then leaves out the verbalised KG passages, as the pipeline does
        row = Row(name, n=len(questions))
        hits, f1s, precisions, counts, chars, empties, added, covered = [], [], [], [], [], [], [], []
        gate_scores, gate_labels, ndcgs, recalls = [], [], [], []
        for q in tqdm(questions, desc=name, unit="q"):
            if kg is not None and q.id not in subgraphs:
                found = kg.retrieve(q.question)
                found = found if found.confidence >= config.min_kg_evidence_confidence else None
                subgraphs[q.id] = (found, gold_path_triples(found, q.answers) if found is not None else set())
            subgraph, on_path = subgraphs.get(q.id, (None, set()))
            context = GateContext.from_subgraph(subgraph)
            started = time.perf_counter()
            baseline = pipeline._dense(q.question)
            dense_seconds = time.perf_counter() - started
            started = time.perf_counter()
            shown = subgraph
            if use_gate and subgraph is not None:
                shown, triple_weights = pipeline.gate_triples(q.question, subgraph, context)
                gate_scores.extend(triple_weights)
                gate_labels.extend(int(k in on_path) for k in range(len(triple_weights)))
            if use_chains:
                kept, pool = pipeline.select_chain(q.question)
            elif use_reranker or use_gate:
                kept, pool = pipeline.select_passages(q.question, context)
            else:
                kept, pool = baseline, baseline
            # The stage re-runs dense retrieval over a larger pool: what it adds is its time minus the baseline's.
            staged = use_reranker or use_gate or use_chains
            added.append(max(time.perf_counter() - started - dense_seconds, 0.0) if staged else 0.0)
            evidence = make_evidence(shown, kept, max_triples=config.max_kg_evidence)
            texts = [e.text for e in evidence]
            counts.append(len(evidence))
            chars.append(sum(len(t) for t in texts))
            empties.append(float(not texts))
            covered.append(float(any(passage_contains(t, q.answers) for t in texts)))
            if texts:
                precisions.append(sum(passage_contains(t, q.answers) for t in texts) / len(texts))
            gold = set(gold_ids.get(q.id, ()))
            if use_gate:
                for h in pool:
                    if "gate" in h.scores:
                        gate_scores.append(h.scores["gate"])
                        gate_labels.append(_relevant(h, q.answers, gold))
            if use_reranker:
                reranked = [_relevant(h, q.answers, gold) for h in pool]
                ndcgs.append(ndcg_at(reranked))
                recalls.append(float(any(passage_contains(passage_text(h), q.answers) for h in pool[:5])))
            answer = ""
            if reader_for is not None:
                output = reader_for.read(q.question, evidence)
                answer = "" if output.refused else output.text
                hits.append(contains_answer(answer, q.answers))
                f1s.append(token_f1(answer, q.answers))
            dump.append({"config": name, "id": q.id, "answer": answer, "gold": list(q.answers),
                         "kept": [e.source_id for e in evidence], "scores": [e.scores or {"score": e.score} for e in evidence]})
        if text_reader is not None:
            row.hits1, row.f1 = _mean(hits), _mean(f1s)
        row.evidence_precision = _mean(precisions) if precisions else 0.0
        row.answer_in_evidence = _mean(covered)
        row.passages, row.chars, row.empty = _mean(counts), _mean(chars), _mean(empties)
        row.gate_auc = auc(gate_scores, gate_labels) if gate_scores else float("nan")
        row.ndcg5, row.recall5 = _mean(ndcgs), _mean(recalls)
        row.added_ms = 1000 * _mean(added)
        rows.append(row)
    # The FAISS order's NDCG@5 / answer-recall@5 on the same pool: the reranker's baseline.
    faiss_ndcg, faiss_recall = [], []
    vanilla = make_config("vanilla", **options)
    dense = QAPipeline(index, vanilla, embedder=embedder, reader=None).dense
    for q in questions:
        pool = dense.retrieve(q.question, top_k=vanilla.rerank_pool)
        gold = set(gold_ids.get(q.id, ()))
        rel = [_relevant(h, q.answers, gold) for h in pool]
        faiss_ndcg.append(ndcg_at(rel))
        faiss_recall.append(float(any(passage_contains(passage_text(h), q.answers) for h in pool[:5])))
    for row in rows:
        if row.name == "vanilla":
            row.ndcg5, row.recall5 = _mean(faiss_ndcg), _mean(faiss_recall)
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        with (Path(out) / "ablation.jsonl").open("w", encoding="utf-8") as handle:
            for item in dump:
                handle.write(json.dumps(item, ensure_ascii=False) + "\n")
        (Path(out) / "table.md").write_text(format_table(rows) + "\n", encoding="utf-8")
    return rows


def format_table(rows: Sequence[Row]) -> str:
    def f(value: float, digits: int = 3) -> str:
        return "-" if isinstance(value, float) and math.isnan(value) else f"{value:.{digits}f}"

    lines = ["| config | n | Hits@1 | F1 | evidence precision | answer in evidence | items | chars | empty | gate AUC | NDCG@5 | "
             "answer-recall@5 | added ms/q |", "|" + "---|" * 13]
    for r in rows:
        lines.append(f"| {r.name} | {r.n} | {f(r.hits1)} | {f(r.f1)} | {f(r.evidence_precision)} | {f(r.answer_in_evidence)} | {f(r.passages, 2)} | "
                     f"{f(r.chars, 0)} | {f(r.empty, 2)} | {f(r.gate_auc)} | {f(r.ndcg5)} | {f(r.recall5)} | "
                     f"{f(r.added_ms, 0)} |")
    lines.append("(vanilla row's NDCG@5 / answer-recall@5 = FAISS order over the same 20-candidate pool)")
    return "\n".join(lines)
