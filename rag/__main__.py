"""`python -m rag ask|eval` (also installed as `kgrag`)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from rag.config import PRESETS
from rag.errors import InputError, KgragError


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rag", description="Ask questions over a kgrag index.")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--index", required=True, help="index folder built by python -m indexes build")
        p.add_argument("--preset", choices=PRESETS, default="default")
        p.add_argument("--reader", help="packaged reader name, or a local .gguf file / HF model folder")
        p.add_argument("--reader-url", help="read with an OpenAI-compatible chat server instead, e.g. "
                       "http://localhost:8000/v1 (vLLM, llama.cpp server); API key from $OPENAI_API_KEY")
        p.add_argument("--reader-model", help="the model's name on that server (default: the one it serves)")
        p.add_argument("--reader-adapter", help="LoRA adapter folder from python -m rag.train_reader train")
        p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where the reader runs")
        p.add_argument("--top-k", type=int, help="dense passages given to the reader")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="settings",
                       help="any PipelineConfig field, e.g. --set use_gate=false --set gate_threshold=0.6 (repeatable)")

    ask = sub.add_parser("ask", help="answer one question")
    common(ask)
    ask.add_argument("--instruction", help="a user instruction that takes precedence over evidence and memory")
    ask.add_argument("--json", action="store_true", help="print the Answer as one JSON object")
    ask.add_argument("question")

    evaluate = sub.add_parser("eval", help="evaluate on a questions JSONL file")
    common(evaluate)
    evaluate.add_argument("--questions", required=True)
    evaluate.add_argument("--out", help="folder for predictions.jsonl and metrics.json")
    evaluate.add_argument("--limit", type=int)

    score = sub.add_parser("score", help="metrics of a predictions.jsonl from rag eval (also a stopped run's)")
    score.add_argument("--predictions", required=True)

    ui = sub.add_parser("ui", help="open the Streamlit chat UI")
    ui.add_argument("--index", required=True)
    ui.add_argument("--reader-url", help="an OpenAI-compatible chat server to read with (as for ask/eval)")
    ui.add_argument("--reader-model", help="the model's name on that server")
    return parser


def parse_setting(text: str) -> tuple[str, object]:
    """"key=value" -> (key, value); true/false/none and numbers are converted, anything else stays a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise InputError(f"--set expects KEY=VALUE, got {text!r}")
    lowered = raw.strip().lower()
    if lowered in ("true", "false"):
        return key.strip(), lowered == "true"
    if lowered in ("none", "null"):
        return key.strip(), None
    for kind in (int, float):
        try:
            return key.strip(), kind(raw)
        except ValueError:
            pass
    return key.strip(), raw


def _options(args: argparse.Namespace) -> dict:
    options = dict(parse_setting(s) for s in getattr(args, "settings", []))
    if args.reader:
        options["reader"] = args.reader
    if args.reader_adapter:
        options["reader_adapter"] = args.reader_adapter
    if args.reader_url:
        options["reader_server_url"] = args.reader_url
    if args.reader_model:
        options["reader_server_model"] = args.reader_model
    if args.device:
        options["device"] = args.device
    if args.top_k is not None:
        options["top_k"] = args.top_k
    return options


def _print_answer(answer) -> None:
    if answer.refused:
        print("I don't know: the evidence does not answer this question.")
    else:
        print(answer.text)
    print(f"confidence: {answer.confidence:.2f}")
    for number, citation in enumerate(answer.citations, start=1):
        label = "closest evidence" if answer.refused else "source"
        snippet = citation.text if len(citation.text) <= 160 else citation.text[:157] + "..."
        print(f"  [{number}] {label} ({citation.kind} {citation.id}): {snippet}")
    for conflict in answer.conflicts:
        print(f"  conflict: {conflict.source_a} says {conflict.claim_a!r}; {conflict.source_b} says {conflict.claim_b!r}")


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.command == "ui":
        app = Path(__file__).resolve().parent.parent / "ui" / "app.py"
        return subprocess.call([sys.executable, "-m", "streamlit", "run", str(app), "--browser.gatherUsageStats", "false",
             "--server.maxUploadSize", "50", "--", "--index", args.index,
             *(["--reader-url", args.reader_url] if args.reader_url else []),
             *(["--reader-model", args.reader_model] if args.reader_model else [])])
    if args.command == "score":
        from rag.evaluate import score_predictions

        try:
            print(json.dumps(score_predictions(args.predictions)))
            return 0
        except KgragError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    from rag.pipeline import QAPipeline

    try:
        if args.command == "eval":
            from rag.evaluate import read_questions

            # Check the questions file before spending seconds on loading models.
            for _ in read_questions(args.questions):
                pass
        options = _options(args)
        pipeline = QAPipeline.load(args.index, preset=args.preset, **options)
        if args.command == "ask":
            answer = pipeline.ask(args.question, instruction=args.instruction)
            if args.json:
                print(json.dumps(answer.to_dict(), ensure_ascii=False))
            else:
                _print_answer(answer)
            return 0
        from rag.evaluate import run_eval

        metrics = run_eval(pipeline, args.questions, out=args.out, limit=args.limit)
        print(json.dumps({"preset": args.preset, **metrics}))
        return 0
    except KgragError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
