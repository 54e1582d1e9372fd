"""`rag eval`: run a pipeline over a questions file and compute the contract's metrics."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from indexes.readers import decode_lines, parse_json_line
from rag.errors import InputError
from rag.metrics import Prediction, aggregate


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answers: tuple[str, ...]
    instruction: str | None = None
    # The attacker's / planted answer (PoisonedRAG, RGB counterfactual): scored by the `asr` metric.
    target: str | None = None


def select_lines(items: list, lines: str) -> list:
    """odd = 1st, 3rd, ... (training, as `sed -n '1~2p'`); even = 2nd, 4th, ... (held out); all."""
    if lines == "odd":
        return items[0::2]
    if lines == "even":
        return items[1::2]
    if lines == "all":
        return items
    raise InputError(f"lines must be odd, even or all, got {lines!r}")


def read_questions(path: str | Path) -> Iterator[Question]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"questions file does not exist: {path}")
    seen: set[str] = set()
    for number, line in decode_lines(path):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        record, problem = parse_json_line(line)
        if problem:
            raise InputError(f"{where}: {problem}")
        if not isinstance(record, dict):
            raise InputError(f"{where}: expected a JSON object")
        qid, question, answers = record.get("id"), record.get("question"), record.get("answers")
        if not isinstance(qid, str) or not qid:
            raise InputError(f'{where}: missing or empty "id"')
        if qid in seen:
            raise InputError(f"{where}: duplicate question id {qid!r}")
        if not isinstance(question, str):
            raise InputError(f'{where}: missing "question" (a string is required)')
        if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            raise InputError(f'{where}: "answers" must be a list of strings')
        instruction = record.get("instruction")
        if instruction is not None and not isinstance(instruction, str):
            raise InputError(f'{where}: "instruction" must be a string')
        target = record.get("target")
        if target is not None and (not isinstance(target, str) or not target.strip()):
            raise InputError(f'{where}: "target" must be a non-empty string')
        seen.add(qid)
        yield Question(qid, question, tuple(answers), instruction, target)


def run_eval(pipeline, questions_path: str | Path, *, out: str | Path | None = None, limit: int | None = None,
             progress: bool = True) -> dict[str, float]:
    if limit is not None and limit <= 0:
        raise InputError(f"limit must be greater than 0, got {limit}")
    questions = list(read_questions(questions_path))[:limit]
    if not questions:
        raise InputError(f"no questions in {questions_path}")
    pipeline.warm_up()
    predictions: list[Prediction] = []
    handle = None
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        # What the answers rest on (reader, trained pieces and where they were loaded from), so a run's figures can
        # be told apart from another configuration's; written first, so a stopped run has it too.
        (out / "components.json").write_text(json.dumps(pipeline.components(), indent=2), encoding="utf-8")
        # Written row by row: a long run stopped early still leaves the answers so far (see score_predictions).
        handle = (out / "predictions.jsonl").open("w", encoding="utf-8")
    try:
        for q in tqdm(questions, desc="answering", unit="q", disable=not progress):
            started = time.perf_counter()
            try:
                prediction = pipeline.ask(q.question, instruction=q.instruction).to_dict()
            except InputError as exc:
                # One unusable question (empty, too long) is reported and counted as declined; the run goes on.
                prediction = {"text": "", "refused": True, "confidence": 0.0, "citations": [], "conflicts": [],
                              "error": str(exc)}
            seconds = time.perf_counter() - started
            predictions.append(Prediction(q.answers, prediction["text"], prediction["refused"], seconds,
                                          target=q.target, conflicts=len(prediction.get("conflicts") or ()),
                                          confidence=_confidence(prediction)))
            row = {"id": q.id, "question": q.question, "answers": list(q.answers), "prediction": prediction,
                   "seconds": round(seconds, 4)}
            if q.target is not None:
                row["target"] = q.target
            if handle is not None:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                handle.flush()
    finally:
        if handle is not None:
            handle.close()
    metrics = aggregate(predictions)
    if out is not None:
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    return metrics


def _confidence(prediction: dict) -> float | None:
    value = prediction.get("confidence")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def score_predictions(path: str | Path) -> dict[str, float]:
    """Metrics of a predictions.jsonl written by `run_eval` (also a partial one from a stopped run)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"predictions file does not exist: {path}")
    predictions = []
    for number, line in decode_lines(path):
        if not line.strip():
            continue
        record, problem = parse_json_line(line)
        if problem or not isinstance(record, dict) or not isinstance(record.get("prediction"), dict):
            raise InputError(f"{path}:{number}: not a run_eval prediction row")
        p = record["prediction"]
        predictions.append(Prediction(tuple(record.get("answers") or ()), p.get("text", ""), bool(p.get("refused")),
                                      float(record.get("seconds", 0.0)), target=record.get("target"),
                                      conflicts=len(p.get("conflicts") or ()), confidence=_confidence(p)))
    if not predictions:
        raise InputError(f"no predictions in {path}")
    return aggregate(predictions)
