"""Fit the calibrated confidence model (rag.calibration) on dev questions with answerable + unanswerable ones.

    # 1. run the pipeline with the refusal gate off and record each answer's signals (odd lines = fit data,
    #    even lines = held out)
    python -m rag.calibrate collect --index IDX --questions /tmp/data/squad2/questions.jsonl --lines odd --out fit.jsonl
    python -m rag.calibrate collect --index IDX --questions /tmp/data/squad2/questions.jsonl --lines even --out test.jsonl
    # 2. fit the weights and choose the threshold on fit.jsonl; writes rag/resources/calibration.json
    python -m rag.calibrate fit --features fit.jsonl
    # 3. refusal precision / recall / F1 / over-refusal of the fitted model on the held-out rows
    python -m rag.calibrate report --features test.jsonl

Step 3 applies the same rule the pipeline applies (refuse when the reader refuses or confidence < threshold)
to recorded signals, so it equals a `rag eval` of the default preset on those questions without rerunning the
reader. An answer counts as right when it contains a gold answer or has token F1 >= 0.5.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from rag.calibration import PACKAGED, ConfidenceModel, choose_threshold, fit, refusal_metrics
from rag.errors import KgragError
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


def _rows(path: str) -> list[dict]:
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows:
        raise KgragError(f"no rows in {path}")
    return rows


def _confidences(model: ConfidenceModel, rows: list[dict]) -> list[float | None]:
    return [None if r["reader_refused"] or not r["signals"] else model.confidence(r["signals"]) for r in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rag.calibrate", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("collect", help="record answers and signals with the refusal gate off")
    c.add_argument("--index", required=True)
    c.add_argument("--questions", required=True)
    c.add_argument("--lines", choices=["odd", "even", "all"], default="all")
    c.add_argument("--limit", type=int)
    c.add_argument("--out", required=True)
    f = sub.add_parser("fit", help="fit weights + threshold on collected rows")
    f.add_argument("--features", required=True)
    f.add_argument("--out", default=str(PACKAGED_PATH))
    f.add_argument("--max-over-refusal", type=float, default=0.1)
    r = sub.add_parser("report", help="refusal metrics of a fitted model on collected rows")
    r.add_argument("--features", required=True)
    r.add_argument("--model", default=str(PACKAGED_PATH))
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        if args.command == "collect":
            print(json.dumps({"rows": collect(args.index, args.questions, args.lines, args.limit, args.out)}))
            return 0
        rows = _rows(args.features)
        answerable = [bool(r["answerable"]) for r in rows]
        if args.command == "fit":
            usable = [r for r in rows if not r["reader_refused"] and r["signals"]]
            model = fit([r["signals"] for r in usable], [int(r["right"]) for r in usable],
                        fitted_on=f"{Path(args.features).name}: {len(rows)} rows")
            threshold = choose_threshold(_confidences(model, rows), answerable, max_over_refusal=args.max_over_refusal)
            model = ConfidenceModel(model.weights, model.bias, model.mean, model.scale, threshold, model.fitted_on)
            Path(args.out).write_text(model.to_json() + "\n", encoding="utf-8")
            print(json.dumps({"out": args.out, **refusal_metrics(_confidences(model, rows), answerable, threshold)}))
            return 0
        model = ConfidenceModel.load(args.model)
        metrics = refusal_metrics(_confidences(model, rows), answerable, model.threshold)
        hand = [None if r["reader_refused"] or not r["signals"] else
                0.5 * min(1.0, 2.718281828 ** r["signals"]["min_logprob"]) + 0.5 * r["signals"]["supported"]
                for r in rows]
        print(json.dumps({"rows": len(rows), "calibrated": metrics,
                          "hand_set_0.4": refusal_metrics(hand, answerable, 0.4)}))
        return 0
    except KgragError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
