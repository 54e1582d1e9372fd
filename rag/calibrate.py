"""Fit the calibrated confidence model (rag.calibration) on dev questions with answerable + unanswerable ones.

    # 1. run the pipeline with the refusal gate off and record each answer's signals (odd lines = fit data,
    #    even lines = held out)
    python -m rag.calibrate collect --index IDX --questions /tmp/data/squad2/questions.jsonl --lines odd --out fit.jsonl
    python -m rag.calibrate collect --index IDX --questions /tmp/data/squad2/questions.jsonl --lines even --out test.jsonl
    # 2. fit the weights and choose the threshold on the fit rows (several files: one set each); writes
    #    rag/resources/calibration.json
    python -m rag.calibrate fit --features fit.jsonl [more.jsonl ...]
    # 3. per file: refusal precision / recall / F1, over-refusal, right answers and brier, model vs hand-set rule
    python -m rag.calibrate report --features test.jsonl [more.jsonl ...]

Step 3 applies the same rule the pipeline applies (refuse when the reader refuses or confidence < threshold; a KG
answer is not gated) to recorded signals, so it equals a `rag eval` of the default preset on those questions
without rerunning the reader. An answer counts as right when it contains a gold answer or has token F1 >= 0.5.
The commands that fitted the shipped model are in docs/RESULTS.md ("The calibrated confidence model ships").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

from rag.answering import HAND_SET_THRESHOLD, reader_confidence
from rag.calibration import PACKAGED, ConfidenceModel, choose_threshold, fit, refusal_metrics
from rag.errors import KgragError
from rag.models import DEFAULT_READER
from rag.reader import ReaderOutput
from rag.evaluate import read_questions
from rag.metrics import contains_answer, token_f1

PACKAGED_PATH = Path(__file__).resolve().parent / "resources" / PACKAGED


def collect(index: str, questions: str, lines: str, limit: int | None, out: str) -> int:
    from rag.pipeline import QAPipeline

    chosen = list(read_questions(questions))
    if lines == "odd":
        chosen = chosen[0::2]  # 1-based odd lines
    elif lines == "even":
        chosen = chosen[1::2]
    chosen = chosen[:limit]
    pipeline = QAPipeline.load(index, refusal=False)
    pipeline.warm_up()
    with open(out, "w", encoding="utf-8") as handle:
        for q in chosen:
            answer = pipeline.ask(q.question)
            right = bool(q.answers) and not answer.refused and (
                contains_answer(answer.text, q.answers) or token_f1(answer.text, q.answers) >= 0.5
            )
            row = {"id": q.id, "answerable": bool(q.answers), "right": right, "text": answer.text,
                   "reader_refused": answer.refused, "method": answer.method, "signals": answer.signals}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            handle.flush()
    return len(chosen)


def _rows(paths: list[str]) -> list[dict]:
    rows = []
    for path in paths:
        found = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
        if not found:
            raise KgragError(f"no rows in {path}")
        rows.extend(found)
    return rows


def _confidences(model: ConfidenceModel, rows: list[dict]) -> list[float | None]:
    """Per row: None when refused before the confidence rule, 1.0 for an answer the rule does not gate (a KG path's:
    it carries no reader signals), else the model's confidence."""
    return [None if r["reader_refused"] else model.confidence(r["signals"]) if r["signals"] else 1.0 for r in rows]


def _hand_set(rows: list[dict]) -> list[float | None]:
    """answering.reader_confidence on recorded signals (the rule the pipeline uses when no model ships); it reads
    only the answer's lowest token log-probability and whether the evidence supports it."""
    def confidence(values: dict) -> float:
        lowest = ReaderOutput("answer", "answer", (), (values["min_logprob"],), False)
        return reader_confidence(lowest, bool(values["supported"]))

    return [None if r["reader_refused"] else confidence(r["signals"]) if r["signals"] else 1.0 for r in rows]


def summary(rows: list[dict], confidences: list[float | None], threshold: float) -> dict:
    """What `rag eval` would report for these rows under this rule: refusal metrics (when some rows are
    unanswerable), the share of answerable questions answered right (`right`, Hits@1 or token F1 >= 0.5), and
    `brier` over the answered answerable ones that the rule gates (reader answers)."""
    answerable = [bool(r["answerable"]) for r in rows]
    result = refusal_metrics(confidences, answerable, threshold)
    if all(answerable):  # nothing to refuse rightly: only over-refusal means something
        result = {"over_refusal": result["over_refusal"]}
    kept = [(c, bool(r["right"]), bool(r["signals"])) for c, r in zip(confidences, rows)
            if r["answerable"] and c is not None and c >= threshold]
    n_answerable = sum(answerable)
    if n_answerable:
        result["right"] = round(sum(right for _, right, _ in kept) / n_answerable, 4)
    gated = [(c, right) for c, right, has_signals in kept if has_signals]
    if gated:
        result["brier"] = round(sum((c - right) ** 2 for c, right in gated) / len(gated), 4)
    return {"rows": len(rows), **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rag.calibrate", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("collect", help="record answers and signals with the refusal gate off")
    c.add_argument("--index", required=True)
    c.add_argument("--questions", required=True)
    c.add_argument("--lines", choices=["odd", "even", "all"], default="all")
    c.add_argument("--limit", type=int)
    c.add_argument("--out", required=True)
    f = sub.add_parser("fit", help="fit weights + threshold on collected rows (of one or more files)")
    f.add_argument("--features", required=True, nargs="+")
    f.add_argument("--out", default=str(PACKAGED_PATH))
    f.add_argument("--reader", default=DEFAULT_READER,
                   help="the reader that answered the collected rows (the pipeline uses the model only with it)")
    f.add_argument("--max-over-refusal", type=float,
                   help="over-refusal the threshold may reach on these rows (default: the hand-set rule's)")
    r = sub.add_parser("report", help="per file: the fitted model's metrics next to the hand-set rule's")
    r.add_argument("--features", required=True, nargs="+")
    r.add_argument("--model", default=str(PACKAGED_PATH))
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        if args.command == "collect":
            print(json.dumps({"rows": collect(args.index, args.questions, args.lines, args.limit, args.out)}))
            return 0
        if args.command == "fit":
            rows = _rows(args.features)
            answerable = [bool(r["answerable"]) for r in rows]
            usable = [r for r in rows if not r["reader_refused"] and r["signals"]]
            model = fit([r["signals"] for r in usable], [int(r["right"]) for r in usable],
                        fitted_on=f"{' '.join(Path(p).name for p in args.features)}: {len(rows)} rows",
                        reader=args.reader)
            # By default the model may refuse answerable questions no more often than the rule it replaces does.
            cap = args.max_over_refusal
            if cap is None:
                cap = refusal_metrics(_hand_set(rows), answerable, HAND_SET_THRESHOLD)["over_refusal"]
            confidences = _confidences(model, rows)  # the threshold does not change them
            threshold = choose_threshold(confidences, answerable, max_over_refusal=cap)
            model = replace(model, threshold=threshold)
            Path(args.out).write_text(model.to_json() + "\n", encoding="utf-8")
            print(json.dumps({"out": args.out, **summary(rows, confidences, threshold)}))
            return 0
        model = ConfidenceModel.load(args.model)
        for path in args.features:
            rows = _rows([path])
            print(json.dumps({"features": path,
                              "calibrated": summary(rows, _confidences(model, rows), model.threshold),
                              "hand_set": summary(rows, _hand_set(rows), HAND_SET_THRESHOLD)}))
        return 0
    except KgragError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
