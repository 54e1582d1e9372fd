"""Calibrated answer confidence: a small logistic regression over the reader's signals.

The hand-set rule (answering.reader_confidence) mixes two signals with fixed weights. Here the weights are fit
on dev data (the odd lines of SQuAD 2.0, NQ, HotpotQA and MuSiQue, and 40 PUQA questions: answerable questions
answered right = 1; wrong answers and answers to unanswerable questions = 0), so `Answer.confidence` estimates
P(answer is right), and the refusal threshold is the one with the best refusal F1 on those lines among those that
refuse answerable questions no more often than the hand-set rule did. Parameters are plain JSON
(rag/resources/calibration.json, 8 weights), never pickle. Fitting: `python -m rag.calibrate` (see its doc);
figures in docs/RESULTS.md ("The calibrated confidence model ships").
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from rag import answering
from rag.errors import InputError
from rag.metrics import normalize_answer
from rag.reader import ReaderOutput
from rag.types import Evidence

# Order matters: it is the order of the weights in the JSON file.
SIGNALS: tuple[str, ...] = (
    "min_logprob",  # lowest generated-token log-prob, clipped at -20
    "mean_logprob",
    "supported",  # 1 when the answer occurs in the evidence
    "agreement",  # share of the evidence passages that contain the answer
    "top_score",  # best dense passage score shown
    "kg_confidence",  # the KG retriever's path confidence (0 without KG evidence)
    "answer_words",  # log(1 + words in the answer): long answers are often copied sentences
    "polar",  # 1 for a yes/no answer to a yes/no question: right about half the time by chance alone
)
PACKAGED = "calibration.json"


def _contains(needle: str, text: str) -> bool:
    return bool(needle) and f" {needle} " in f" {normalize_answer(text)} "


def signals(
    output: ReaderOutput,
    evidence: Sequence[Evidence],
    *,
    question: str = "",
    kg_confidence: float = 0.0,
    instruction: str | None = None,
) -> dict[str, float]:
    """An answer is `supported` when some evidence states it, and
    - a user premise ("Assume the director of X is Y") supports it like evidence does;
    - a yes/no answer to a yes/no question (answering.polar_answer) is supported when passages were shown: "yes"
      occurs in no passage, and counting only spans refused every yes/no question (ConflictQA, stop 13);
    - evidence that never names what the question quotes supports nothing (answering.off_topic)."""
    needle = normalize_answer(output.text)
    passages = [e for e in evidence if e.aspect == "passage"]
    hits = [e for e in evidence if _contains(needle, e.text)]
    instructed = bool(instruction) and _contains(needle, instruction or "")
    polar = answering.polar_answer(question, output.text)
    stated = bool(hits) or (polar and bool(passages))
    supported = instructed or (stated and not answering.off_topic(question, evidence))
    return {
        "min_logprob": round(max(output.min_logprob, -20.0), 4),
        "mean_logprob": round(max(output.mean_logprob, -20.0), 4),
        "supported": float(supported),
        "agreement": round(sum(1 for e in passages if e in hits) / len(passages), 4) if passages else 0.0,
        "top_score": round(max((float(e.score) for e in passages), default=0.0), 4),
        "kg_confidence": round(float(kg_confidence), 4),
        "answer_words": round(math.log1p(len(output.text.split())), 4),
        "polar": float(polar),
    }


@dataclass(frozen=True)
class ConfidenceModel:
    weights: tuple[float, ...]
    bias: float
    mean: tuple[float, ...]  # feature standardisation, from the fit data
    scale: tuple[float, ...]
    threshold: float  # refuse below this
    fitted_on: str = ""
    # The reader whose answers it was fitted on: log-probabilities and hit rates are that model's own, so another
    # reader (a server, an adapter, another model) gets the hand-set rule. "" = any reader.
    reader: str = ""

    def __post_init__(self) -> None:
        n = len(SIGNALS)
        if not (len(self.weights) == len(self.mean) == len(self.scale) == n):
            raise InputError(f"calibration model needs {n} weights/means/scales ({', '.join(SIGNALS)})")
        if not 0.0 <= self.threshold <= 1.0:
            raise InputError(f"calibration threshold must be in [0, 1], got {self.threshold}")

    def fits(self, reader: str | None) -> bool:
        """Whether it applies to `reader` (the plain local model's name; None for any other reader)."""
        return not self.reader or self.reader == reader

    def confidence(self, values: Mapping[str, float]) -> float:
        missing = [s for s in SIGNALS if s not in values]
        if missing:
            raise InputError(f"missing confidence signal(s): {', '.join(missing)}")
        z = self.bias + sum(
            w * (float(values[s]) - m) / sc for w, s, m, sc in zip(self.weights, SIGNALS, self.mean, self.scale)
        )
        return round(1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0))), 4)

    def to_json(self) -> str:
        return json.dumps({"signals": list(SIGNALS), **asdict(self)}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> ConfidenceModel:
        data = json.loads(text)
        if list(data.get("signals", [])) != list(SIGNALS):
            raise InputError(f"calibration file is for signals {data.get('signals')}, expected {list(SIGNALS)}")
        return cls(tuple(data["weights"]), float(data["bias"]), tuple(data["mean"]), tuple(data["scale"]),
                   float(data["threshold"]), str(data.get("fitted_on", "")), str(data.get("reader", "")))

    @classmethod
    def load(cls, path: str | Path) -> ConfidenceModel:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"calibration file does not exist: {path}")
        return cls.from_json(path.read_text(encoding="utf-8"))


def confidence_rule(output: ReaderOutput, values: Mapping[str, float], model: ConfidenceModel | None, *,
                    reader: str | None, refusal_threshold: float | None = None) -> tuple[float, float]:
    """(confidence, refusal threshold) of a reader answer: the calibrated model's when there is one, it was fitted on
    this reader (`reader`: the plain local model's name; None for any other reader) and the answer has token
    log-probabilities (the model weighs them); else the hand-set rule (answering.reader_confidence, 0.4).
    `refusal_threshold` overrides the threshold."""
    if model is not None and output.token_logprobs and model.fits(reader):
        threshold = model.threshold
        confidence = model.confidence(values)
    else:
        threshold = answering.HAND_SET_THRESHOLD
        confidence = answering.reader_confidence(output, bool(values["supported"]))
    return confidence, refusal_threshold if refusal_threshold is not None else threshold


@lru_cache(maxsize=1)
def packaged_model() -> ConfidenceModel | None:
    """The shipped model, or None when the package holds none (the hand-set rule is used then)."""
    resource = resources.files("rag") / "resources" / PACKAGED
    if not resource.is_file():
        return None
    return ConfidenceModel.from_json(resource.read_text(encoding="utf-8"))


# ---- fitting (numpy only) -------------------------------------------------------------------------------


def fit(rows: Sequence[Mapping[str, float]], labels: Sequence[int], *, l2: float = 1.0, steps: int = 3000,
        fitted_on: str = "", reader: str = "") -> ConfidenceModel:
    """L2-regularised logistic regression by gradient descent on standardised signals (threshold 0.5 here;
    choose_threshold sets the real one)."""
    if len(rows) != len(labels) or not rows:
        raise InputError("need as many labels as rows, and at least one row")
    if len(set(labels)) < 2:
        raise InputError("need both right (1) and wrong (0) examples to fit")
    x = np.array([[float(r[s]) for s in SIGNALS] for r in rows], dtype=np.float64)
    y = np.array(labels, dtype=np.float64)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-6] = 1.0
    xs = (x - mean) / scale
    w, b = np.zeros(x.shape[1]), 0.0
    lr = 0.1
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(xs @ w + b)))
        grad_w = xs.T @ (p - y) / len(y) + l2 * w / len(y)
        grad_b = float(np.mean(p - y))
        w -= lr * grad_w
        b -= lr * grad_b
    return ConfidenceModel(tuple(round(float(v), 6) for v in w), round(float(b), 6),
                           tuple(round(float(v), 6) for v in mean), tuple(round(float(v), 6) for v in scale),
                           0.5, fitted_on, reader)


def refusal_metrics(confidences: Sequence[float | None], answerable: Sequence[bool], threshold: float) -> dict:
    """Refusal precision/recall/F1 and over-refusal when refusing below `threshold` (None = reader refused)."""
    refused = [c is None or c < threshold for c in confidences]
    correct = sum(1 for r, a in zip(refused, answerable) if r and not a)
    n_refused, n_unanswerable = sum(refused), sum(1 for a in answerable if not a)
    n_answerable = len(answerable) - n_unanswerable
    precision = correct / n_refused if n_refused else 0.0
    recall = correct / n_unanswerable if n_unanswerable else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    over = sum(1 for r, a in zip(refused, answerable) if r and a) / n_answerable if n_answerable else 0.0
    return {"refusal_precision": round(precision, 4), "refusal_recall": round(recall, 4),
            "refusal_f1": round(f1, 4), "over_refusal": round(over, 4), "threshold": round(threshold, 4)}


def choose_threshold(confidences: Sequence[float | None], answerable: Sequence[bool], *,
                     max_over_refusal: float = 0.1) -> float:
    """The threshold with the best refusal F1 among those with over-refusal <= max_over_refusal (else the
    lowest over-refusal)."""
    candidates = sorted({0.0, *(c for c in confidences if c is not None), 1.0})
    scored = [(refusal_metrics(confidences, answerable, t), t) for t in candidates]
    allowed = [(m, t) for m, t in scored if m["over_refusal"] <= max_over_refusal]
    if allowed:
        return max(allowed, key=lambda mt: (mt[0]["refusal_f1"], -mt[1]))[1]
    return min(scored, key=lambda mt: (mt[0]["over_refusal"], mt[1]))[1]
