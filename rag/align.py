"""`python -m rag.align build-prefs | train-reranker | train-gate | train-soft-prompt | train-stance | ablation`:
DPA-RAG preference data, the reranker and gate trained on it, the soft-prompt projector, the yes/no stance model
(rag.stance) and the one-command ablation (vanilla / +gate / +reranker / +both, and +gate+soft with a projector).

    python -m rag.align build-prefs --index IDX --questions Q.jsonl --lines odd --out prefs.jsonl
    python -m rag.align train-reranker --prefs prefs.jsonl --out MODEL_DIR
    python -m rag.align train-gate --prefs prefs.jsonl --reranker MODEL_DIR --out INDEX/models/gate.safetensors
    python -m rag.align train-soft-prompt --prefs prefs.jsonl --gate INDEX/models/gate.safetensors --out soft.safetensors
    python -m rag.align train-stance --data data/stance --skip 0 --out $KGRAG_CACHE/stance \
        --neither-corpus data/stance/neither.jsonl      # what `make stance` runs; the same model as from the full
                                                        # ConflictQA folder with --limit 700 (data/stance/ATTRIBUTION.md)
    python -m rag.align ablation --index IDX --questions Q.jsonl --lines even --limit 30
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from rag.ablation import BASE_CONFIGS, CONFIGS
from rag.errors import InputError, KgragError
from rag.evaluate import select_lines


def _build_prefs(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from indexes.build import KG_PASSAGE_SOURCE
    from indexes.embedder import Embedder
    from indexes.store import load_index
    from kg.retrieval import KGRetriever
    from rag.config import PipelineConfig
    from rag.evaluate import read_questions
    from rag.prefs import build_record, build_record_gold, knowledge_identification
    from rag.reader import ReaderConfig, TransformersReader
    from rag.retrievers import DenseRetriever

    questions = select_lines(list(read_questions(args.questions)), args.lines)[: args.limit]
    gold_ids = _gold_passage_ids(args.questions)
    questions = [q for q in questions if any(a.strip() for a in q.answers)]
    if not questions:
        raise InputError(f"no answerable questions in {args.questions} ({args.lines} lines)")
    index = load_index(args.index)
    if index.vectors is None:
        raise InputError(f"index {args.index} has no passages to retrieve")
    embedder = Embedder(index.embedder_name, device="cpu")
    dense = DenseRetriever(index.passages, index.vectors, embedder)
    # With a KG, its subgraph triples are gate candidates too, and the verbalised KG passages are left out of
    # the passages exactly as the pipeline leaves them out.
    pipeline_config = PipelineConfig()
    kg = (KGRetriever(index.graph, embedder, pipeline_config.kg, entity_vectors=index.entity_vectors)
          if index.graph is not None and args.labeler == "gold" else None)
    reader = None
    if args.labeler == "reader":
        reader = TransformersReader(ReaderConfig(model=args.reader) if args.reader else ReaderConfig())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    dataset = args.dataset or Path(args.questions).parent.name
    kid_path = Path(args.knowledge_id) if args.knowledge_id else out.with_name(out.stem + ".kid.jsonl")
    mode = "a" if args.append else "w"
    counts = {"questions": 0, "candidates": 0, "aligned": 0, "misleading": 0, "kid_examples": 0}
    with out.open(mode, encoding="utf-8") as handle, kid_path.open(mode, encoding="utf-8") as kid:
        for q in tqdm(questions, desc=f"prefs {dataset}", unit="q"):
            hits = dense.retrieve(q.question, top_k=args.top_k * (2 if kg is not None else 1))
            subgraph = None
            if kg is not None:
                hits = [h for h in hits if h.passage.source != KG_PASSAGE_SOURCE]
                subgraph = kg.retrieve(q.question)
                if subgraph.confidence < pipeline_config.min_kg_evidence_confidence:
                    subgraph = None
            hits = hits[: args.top_k]
            if reader is None:
                record = build_record_gold(q.id, q.question, q.answers, hits, gold_ids.get(q.id, ()), dataset=dataset,
                                           subgraph=subgraph)
            else:
                record = build_record(reader, q.id, q.question, q.answers, hits, dataset=dataset, margin=args.margin,
                                      gold_ids=gold_ids.get(q.id, ()))
            handle.write(record.to_json() + "\n")
            handle.flush()
            counts["questions"] += 1
            counts["candidates"] += len(record.candidates)
            counts["aligned"] += sum(c.label == 1 for c in record.candidates)
            counts["misleading"] += sum(c.label == -1 for c in record.candidates)
            example = knowledge_identification(record)
            if example is not None:
                kid.write(json.dumps(example, ensure_ascii=False) + "\n")
                counts["kid_examples"] += 1
    print(json.dumps({"prefs": str(out), "knowledge_identification": str(kid_path), **counts}))
    return 0


def _gold_passage_ids(path: str) -> dict[str, tuple[str, ...]]:
    """`gold_passage_ids` of each question (an optional field of the prepared dev sets)."""
    found: dict[str, tuple[str, ...]] = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                record = json.loads(line)
                found[record["id"]] = tuple(record.get("gold_passage_ids") or ())
    return found


def _train_reranker(args: argparse.Namespace) -> int:
    from rag.prefs import read_records
    from rag.rerank import RerankerTrainConfig, train_reranker

    records = [r for path in args.prefs for r in read_records(path)]
    config = RerankerTrainConfig(epochs=args.epochs, batch_questions=args.batch_questions, lr=args.lr,
                                 max_length=args.max_length, seed=args.seed, validation=args.validation,
                                 labels=args.labels)
    model = tokenizer = None
    if args.init:
        from rag.rerank import load_trained

        model, tokenizer = load_trained(args.init)  # continue training a saved reranker
    summary = train_reranker(records, args.out, config, model=model, tokenizer=tokenizer)
    print(json.dumps(summary))
    return 0


def _train_gate(args: argparse.Namespace) -> int:
    from rag.gate import GateTrainConfig, train_gate
    from rag.prefs import read_records

    records = [r for path in args.prefs for r in read_records(path)]
    reranker = None
    if args.reranker:
        from rag.rerank import CrossEncoderReranker

        reranker = CrossEncoderReranker(args.reranker)
    summary = train_gate(records, args.out, GateTrainConfig(epochs=args.epochs, seed=args.seed), reranker=reranker)
    print(json.dumps(summary))
    return 0


def _train_soft_prompt(args: argparse.Namespace) -> int:
    from indexes.embedder import Embedder
    from rag.gate import EvidenceGate
    from rag.prefs import read_records
    from rag.reader import ReaderConfig, TransformersReader
    from rag.soft_prompt import SoftPromptTrainConfig, train_soft_prompt

    records = [r for path in args.prefs for r in read_records(path)]
    if args.limit:
        records = records[: args.limit]
    gate = EvidenceGate(args.gate) if args.gate else None
    if gate is not None:
        gate.warm_up()
    reader = TransformersReader(ReaderConfig(model=args.reader) if args.reader else ReaderConfig())
    embedder = Embedder(args.embedder, device="cpu") if args.embedder else Embedder(device="cpu")
    config = SoftPromptTrainConfig(epochs=args.epochs, lr=args.lr, lora_r=args.lora_r, seed=args.seed)
    print(json.dumps(train_soft_prompt(records, reader, embedder, args.out, config, gate=gate)))
    return 0


def titled(row: dict) -> str:
    """A passages-JSONL row as the reader sees it (answering.make_evidence)."""
    title, text = row.get("title") or "", str(row.get("text", ""))
    return f"{title}: {text}" if title and not text.startswith(title) else text


def _train_stance(args: argparse.Namespace) -> int:
    from indexes.embedder import Embedder
    from rag.preferences import read_jsonl
    from rag.stance import (
        StanceTrainConfig,
        conflictqa_examples,
        negated_sentences,
        neither_examples,
        train_stance,
        with_distractors,
    )

    data = Path(args.data)
    records = read_jsonl(data / "questions.jsonl")
    passages = {p["id"]: p for p in read_jsonl(data / "passages.jsonl")}
    # The first --skip lines are where the ConflictQA evaluation sets come from (scripts/make_conflictqa.py):
    # never trained on. A share of the rest, whole questions, is held out to keep the best epoch.
    pool = records[args.skip :][: args.limit]
    if not pool:
        raise InputError(f"no ConflictQA questions left after skipping {args.skip} lines of {data / 'questions.jsonl'}")
    if not 0.0 <= args.validation < 1.0:
        raise InputError(f"validation must be in [0, 1), got {args.validation}")
    held = set(range(0, len(pool), max(round(1 / args.validation), 2))) if args.validation > 0 else set()
    splits: dict[str, list] = {"train": [], "validation": []}
    embedder = Embedder(device="cpu")
    # Passages on the question's topic that take no side: the nearest of a general corpus (e.g. Wikipedia
    # paragraphs of the other dev sets), so a biography of the person asked about is not read as a "no".
    corpus = sorted({("", titled(p)) for path in args.neither_corpus or () for p in read_jsonl(Path(path))})
    corpus_vectors = embedder.encode([t for _, t in corpus]) if corpus else None
    for name, chosen in (("train", [r for k, r in enumerate(pool) if k not in held]),
                         ("validation", [r for k, r in enumerate(pool) if k in held])):
        sided = conflictqa_examples(chosen, passages, per_label=args.per_label)
        texts = sorted({(e.question_id, e.text) for e in sided})
        asked = sorted({(e.question_id, e.question) for e in sided})
        if not asked:
            continue
        asked_vectors = embedder.encode([q for _, q in asked])
        neither = neither_examples(asked, asked_vectors, texts, embedder.encode([t for _, t in texts]),
                                   per_question=args.neither)
        if corpus_vectors is not None:
            neither += neither_examples(asked, asked_vectors, corpus, corpus_vectors, per_question=args.neither)
        splits[name] = sided + neither
        if args.distractors > 0:
            splits[name] = with_distractors(splits[name], negated_sentences(texts),
                                            share=args.distractors, seed=args.seed)
    if not splits["train"]:
        raise InputError(f"no yes/no stance examples in {data}: is it the prepared ConflictQA folder?")
    lr = args.lr if args.lr is not None else 5e-4 if args.lora_rank else 5e-5
    config = StanceTrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=lr,
                               max_length=args.max_length, seed=args.seed, lora_rank=args.lora_rank)
    print(json.dumps(train_stance(splits["train"], splits["validation"], args.out, config)))
    return 0


def _ablation(args: argparse.Namespace) -> int:
    from rag.ablation import format_table, run_ablation

    rows = run_ablation(args.index, args.questions, lines=args.lines, limit=args.limit, reader=args.reader,
                        reranker_path=args.reranker, gate_path=args.gate, out=args.out,
                        with_reader=not args.no_reader, configs=args.configs, gate_threshold=args.gate_threshold,
                        soft_prompt_path=args.soft_prompt)
    print(format_table(rows))
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rag.align", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    prefs = sub.add_parser("build-prefs", help="label dense candidates by what the reader needs (JSONL)")
    prefs.add_argument("--index", required=True)
    prefs.add_argument("--questions", required=True)
    prefs.add_argument("--lines", choices=["odd", "even", "all"], default="odd", help="odd = training lines")
    prefs.add_argument("--limit", type=int, help="at most this many questions (after --lines)")
    prefs.add_argument("--top-k", type=int, default=8, help="dense candidates scored per question")
    prefs.add_argument("--margin", type=float, default=0.2,
                       help="mean log-likelihood change (nats/token) that makes a candidate aligned/misleading")
    prefs.add_argument("--dataset", help="name stored with each record (default: the questions folder name)")
    prefs.add_argument("--reader", help="reader model (default: the pipeline's)")
    prefs.add_argument("--labeler", choices=["reader", "gold"], default="reader",
                       help="reader = DPA-RAG labels from the reader's gold-answer likelihood; gold = distant labels "
                       "(contains the answer or is a gold supporting passage; with a KG in the index its subgraph "
                       "triples too, aligned when on a gold path), no model run")
    prefs.add_argument("--out", required=True, help="preference JSONL")
    prefs.add_argument("--knowledge-id", help="knowledge-identification JSONL (default: OUT with .kid.jsonl)")
    prefs.add_argument("--append", action="store_true", help="append to OUT instead of replacing it")

    rr = sub.add_parser("train-reranker", help="train the cross-encoder reranker (BCE + pairwise + InfoNCE)")
    rr.add_argument("--prefs", nargs="+", required=True)
    rr.add_argument("--out", required=True, help="model folder (e.g. INDEX/models/reranker)")
    rr.add_argument("--epochs", type=int, default=2)
    rr.add_argument("--batch-questions", type=int, default=4)
    rr.add_argument("--lr", type=float, default=3e-5)
    rr.add_argument("--max-length", type=int, default=192)
    rr.add_argument("--seed", type=int, default=0)
    rr.add_argument("--validation", type=float, default=0.2,
                    help="share of questions held out to choose the reranker/dense fusion weight (0: reranker order)")
    rr.add_argument("--labels", choices=["agreed", "stored"], default="agreed",
                    help="reader-labelled records: keep a label only where the distant labels agree, or as stored")
    rr.add_argument("--init", help="start from this saved reranker folder instead of the packaged MiniLM")

    gate = sub.add_parser("train-gate", help="train the soft relevance gate (a few KB of safetensors)")
    gate.add_argument("--prefs", nargs="+", required=True)
    gate.add_argument("--reranker", help="reranker folder whose scores become gate features")
    gate.add_argument("--out", required=True, help="gate weights (.safetensors)")
    gate.add_argument("--epochs", type=int, default=300)
    gate.add_argument("--seed", type=int, default=0)

    sp = sub.add_parser("train-soft-prompt", help="train the projector of gated evidence embeddings into soft "
                        "prompt vectors (Amar's original form; reader frozen)")
    sp.add_argument("--prefs", nargs="+", required=True)
    sp.add_argument("--gate", help="gate weights: train on the evidence this gate keeps, with its weights")
    sp.add_argument("--out", required=True, help="projector weights (.safetensors)")
    sp.add_argument("--reader")
    sp.add_argument("--embedder", help="the index's embedder (default: the packaged MiniLM)")
    sp.add_argument("--epochs", type=int, default=1)
    sp.add_argument("--lr", type=float, default=1e-3)
    sp.add_argument("--limit", type=int, help="at most this many records")
    sp.add_argument("--lora-r", type=int, default=0, help="also train a LoRA adapter of this rank on the reader "
                    "(saved next to OUT as OUT.adapter/; needs the train extra); 0 = reader frozen")
    sp.add_argument("--seed", type=int, default=0)

    st = sub.add_parser("train-stance", help="train the yes/no stance model (question, passage -> yes/no/neither) "
                        "on ConflictQA's opposite passages")
    st.add_argument("--data", required=True, help="prepared ConflictQA folder (questions.jsonl, passages.jsonl)")
    st.add_argument("--out", required=True, help="model folder (e.g. INDEX/models/stance or $KGRAG_CACHE/stance)")
    st.add_argument("--skip", type=int, default=200, help="leave out the first SKIP questions (evaluation lines)")
    st.add_argument("--limit", type=int, help="at most this many questions after --skip")
    st.add_argument("--validation", type=float, default=0.1, help="share of questions held out to keep the best epoch")
    st.add_argument("--per-label", type=int, default=2, help="at most this many passages per side of a question")
    st.add_argument("--neither", type=int, default=2, help="'neither' passages (other questions') per question")
    st.add_argument("--neither-corpus", nargs="+", help="passages JSONL files whose nearest passages to each "
                    "question are also 'neither' examples (on the topic, taking no side)")
    st.add_argument("--distractors", type=float, default=0.5, help="share of examples given a negated sentence "
                    "about something else, label unchanged (0: none)")
    st.add_argument("--epochs", type=int, default=2)
    st.add_argument("--batch-size", type=int, default=16)
    st.add_argument("--lr", type=float, help="default 5e-4 with --lora-rank > 0, else 5e-5")
    st.add_argument("--max-length", type=int, default=192)
    st.add_argument("--seed", type=int, default=0)
    st.add_argument("--lora-rank", type=int, default=8, help="> 0: train and save only low-rank deltas of the "
                    "encoder (about 1.3 MB) and the head; 0: fine-tune the whole encoder (90 MB)")

    ab = sub.add_parser("ablation", help="vanilla / +gate / +reranker / +both on one questions file")
    ab.add_argument("--index", required=True)
    ab.add_argument("--questions", required=True)
    ab.add_argument("--lines", choices=["odd", "even", "all"], default="even", help="even = held-out lines")
    ab.add_argument("--limit", type=int, default=30)
    ab.add_argument("--reader")
    ab.add_argument("--reranker", help="reranker folder (default: INDEX/models/reranker, then the user cache)")
    ab.add_argument("--gate", help="gate weights (default: INDEX/models/gate.safetensors)")
    ab.add_argument("--out", help="folder for per-question rows (JSONL) and the table")
    ab.add_argument("--configs", nargs="+", choices=[name for name in CONFIGS if name != "+gate+soft"],
                    default=list(BASE_CONFIGS),
                    help="+chain: the two-passage multi-hop chain (rag.chains) instead of the dense top 5; "
                         "+gate+soft comes with --soft-prompt")
    ab.add_argument("--gate-threshold", type=float, help="override the gate's learned threshold")
    ab.add_argument("--soft-prompt", help="projector weights: adds a +gate+soft row (gate with soft prompts)")
    ab.add_argument("--no-reader", action="store_true", help="retrieval metrics only (no Hits@1/F1; much faster)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if getattr(args, "limit", None) is not None and args.limit <= 0:
        print(f"error: limit must be greater than 0, got {args.limit}", file=sys.stderr)
        return 2
    handlers = {"build-prefs": _build_prefs, "train-reranker": _train_reranker, "train-gate": _train_gate,
                "train-soft-prompt": _train_soft_prompt, "train-stance": _train_stance,
                "ablation": _ablation}
    try:
        return handlers[args.command](args)
    except KgragError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
