"""Write the embedded training data of the yes/no stance model (data/stance): the records and passages of ConflictQA
that `python -m rag.align train-stance` reads, and the general-corpus paragraphs it takes as "neither" examples.

The selection is exactly what train-stance would take from the full prepared folders (same questions, the same
passages per side, the same nearest paragraphs), so training on data/stance gives the model that training on the
full folders gives. The ConflictQA evaluation sets (scripts/make_conflictqa.py) come from the first lines of the
prepared file: those lines are skipped and never embedded.

    python scripts/make_stance_data.py --conflictqa /tmp/data/conflictqa --out data/stance \\
        --neither-corpus /tmp/data/hotpotqa/passages.jsonl /tmp/data/nq/passages.jsonl /tmp/data/musique/passages.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag.align import titled  # noqa: E402
from rag.preferences import read_jsonl  # noqa: E402
from rag.stance import PASSAGE_ID_KEYS, conflictqa_examples, neither_examples  # noqa: E402


def _write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conflictqa", required=True, type=Path, help="prepared ConflictQA folder")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--skip", type=int, default=200, help="evaluation lines never embedded (train-stance's default)")
    ap.add_argument("--limit", type=int, default=700, help="training questions after --skip")
    ap.add_argument("--per-label", type=int, default=2)
    ap.add_argument("--neither", type=int, default=2, help="nearest general-corpus paragraphs kept per question")
    ap.add_argument("--neither-corpus", nargs="+", required=True, type=Path)
    args = ap.parse_args()

    from indexes.embedder import Embedder

    records = read_jsonl(args.conflictqa / "questions.jsonl")[args.skip :][: args.limit]
    passages = {p["id"]: p for p in read_jsonl(args.conflictqa / "passages.jsonl")}
    sided = conflictqa_examples(records, passages, per_label=args.per_label)
    texts = {e.text for e in sided}
    kept_passages = [p for p in passages.values() if p["text"] in texts]
    asked = [r for r in records if any(e.question_id == r["id"] for e in sided)]
    # Every record stays (train-stance holds out every tenth one for validation, counting them all). A record's
    # model rows that name no kept passage are dropped; the rest keep their ids, so the labels (and which two
    # passages per side come first) are what the full folder gives.
    kept_ids = {p["id"] for p in kept_passages}
    def names_kept(claims: dict) -> bool:
        return any(claims.get(k) in kept_ids for k in PASSAGE_ID_KEYS)

    slim = [{**r, "per_model": {m: c for m, c in r["per_model"].items() if names_kept(c)}} for r in records]

    # Each row keeps its fields and says which prepared set it came from (data/stance/ATTRIBUTION.md).
    corpus_rows = {titled(p): {**p, "metadata": {**(p.get("metadata") or {}), "dev_set": path.parent.name}}
                   for path in args.neither_corpus for p in read_jsonl(path)}
    corpus = sorted(corpus_rows)
    embedder = Embedder(device="cpu")
    questions = [(r["id"], r["question"]) for r in asked]
    picked = neither_examples(questions, embedder.encode([q for _, q in questions]), [("", t) for t in corpus],
                              embedder.encode(corpus), per_question=args.neither)
    neither = [corpus_rows[t] for t in sorted({e.text for e in picked})]

    args.out.mkdir(parents=True, exist_ok=True)
    _write(args.out / "questions.jsonl", slim)
    _write(args.out / "passages.jsonl", kept_passages)
    _write(args.out / "neither.jsonl", neither)
    check = conflictqa_examples(slim, {p["id"]: p for p in kept_passages}, per_label=args.per_label)
    if [(e.question_id, e.text, e.label) for e in check] != [(e.question_id, e.text, e.label) for e in sided]:
        raise SystemExit("the slimmed records do not give the same examples as the full folder")
    print(json.dumps({"questions": len(slim), "passages": len(kept_passages), "neither": len(neither),
                      "examples": len(sided)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
