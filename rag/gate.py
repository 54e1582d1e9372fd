"""Amar-style soft relevance gate: self-alignment features relate each piece of evidence to the question and
to the other aspects (linked entities, retrieved triples, KG answer path, other passages), and a small torch
module maps question x evidence features to a weight in [0, 1]. Evidence under the threshold is dropped; the
gate may drop everything (the reader then answers from memory or refuses).

Features are pure Python (`alignment_features`), so they are unit-testable without torch; the module is a
few KB of safetensors trained with `python -m rag.align train-gate` into INDEX/models/ (not shipped in git).
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.errors import InputError, ModelLoadError
from rag.metrics import normalize_answer

if TYPE_CHECKING:
    from rag.prefs import PreferenceRecord


FEATURES = (
    "dense", "dense_gap", "dense_rank", "rerank_prob", "rerank_gap", "rerank_rank", "has_rerank",
    "question_coverage", "entity_coverage", "title_in_question", "bridge", "triple_support", "answer_path",
    "is_triple", "log_length", "number_for_numeric_question",
)

_STOP = frozenset(
    "a an the of in on at to for from by with and or is are was were be been who whom whose what which when where "
    "why how did does do that this these those as it its his her their he she they there than also has have had "
    "name named many much".split()
)
_CAPITALISED = re.compile(r"\b[A-Z][\w'\-]*(?:\s+(?:of|the|de)?\s*[A-Z][\w'\-]*)*")
_NUMBER = re.compile(r"\b\d{1,4}\b")
_NUMERIC_QUESTION = re.compile(r"^\s*(when|how many|how much|how old|how long|what year|in what year|in which year)",
                               re.IGNORECASE)


@dataclass(frozen=True)
class GateItem:
    """One piece of evidence as the gate sees it: aspect, text, and the retrieval scores it has so far."""

    aspect: str
    text: str
    dense: float
    rerank: float | None = None
    title: str = ""


@dataclass(frozen=True)
class GateContext:
    """The other aspects of the same question: linked entity names, triple entities, KG candidate answers."""

    entities: tuple[str, ...] = ()
    triple_entities: tuple[str, ...] = ()
    path_answers: tuple[str, ...] = ()

    @classmethod
    def from_subgraph(cls, subgraph: Any) -> GateContext:
        """What a KG subgraph (`kg.types.Subgraph`, or None) tells the gate about a question."""
        if subgraph is None:
            return cls()
        return cls(
            entities=tuple(e.name for e in subgraph.entities),
            triple_entities=tuple(sorted({e for st in subgraph.triples for e in (st.triple.head, st.triple.tail)})),
            path_answers=tuple(subgraph.candidates),
        )


def _words(text: str) -> set[str]:
    return {w for w in normalize_answer(text).split() if w not in _STOP}


def _mentions(text_norm: str, name: str) -> bool:
    needle = normalize_answer(name)
    return bool(needle) and f" {needle} " in text_norm


def question_entities(question: str) -> tuple[str, ...]:
    """Capitalised spans of the question (not its first word alone): the entity linker's stand-in when
    there is no KG."""
    spans = []
    for match in _CAPITALISED.finditer(question):
        span = match.group(0).strip()
        if match.start() == 0 and " " not in span:
            continue  # "Who", "What", a sentence-initial word
        if normalize_answer(span) and normalize_answer(span) not in _STOP:
            spans.append(span)
    return tuple(dict.fromkeys(spans))


def _within_aspect(items: Sequence[GateItem], values: Sequence[float]) -> tuple[list[float], list[float]]:
    """(rank / group size, best value of the group) of each item among the items of its own aspect: triple
    and passage scores come from different retrievers and are not comparable."""
    groups: dict[str, list[int]] = {}
    for k, item in enumerate(items):
        groups.setdefault(item.aspect, []).append(k)
    rank, best = [0.0] * len(items), [0.0] * len(items)
    for members in groups.values():
        ordered = sorted(members, key=lambda k: -values[k])
        top = values[ordered[0]]
        for r, k in enumerate(ordered):
            rank[k], best[k] = r / len(members), top
    return rank, best


def alignment_features(question: str, items: Sequence[GateItem], context: GateContext | None = None) -> list[list[float]]:
    """One feature row per item, in FEATURES order. Scores are ranked within each aspect."""
    context = context or GateContext()
    if not items:
        return []
    n = len(items)
    dense = [i.dense for i in items]
    dense_rank, top_dense = _within_aspect(items, dense)
    rerank = [float(i.rerank) if i.rerank is not None else 0.0 for i in items]
    rerank_rank, top_rerank = _within_aspect(items, rerank)
    q_words = _words(question)
    q_norm = f" {normalize_answer(question)} "
    entities = context.entities or question_entities(question)
    numeric = bool(_NUMERIC_QUESTION.match(question))
    norms = [f" {normalize_answer(i.text)} " for i in items]
    titles = [normalize_answer(i.title or (i.text.split(":", 1)[0] if ":" in i.text[:120] else "")) for i in items]
    rows = []
    for k, item in enumerate(items):
        text_norm = norms[k]
        words = set(text_norm.split())
        coverage = len(q_words & words) / len(q_words) if q_words else 0.0
        entity_cov = sum(_mentions(text_norm, e) for e in entities) / len(entities) if entities else 0.0
        title = titles[k]
        title_in_q = float(bool(title) and f" {title} " in q_norm)
        # Agreement between passages: this one names another's title (a bridge entity), or another names its.
        bridge = 0.0
        for j in range(n):
            if j == k:
                continue
            if (titles[j] and f" {titles[j]} " in text_norm) or (title and f" {title} " in norms[j]):
                bridge = 1.0
                break
        triple_support = (sum(_mentions(text_norm, e) for e in context.triple_entities) / len(context.triple_entities)
                          if context.triple_entities else 0.0)
        answer_path = float(any(_mentions(text_norm, a) for a in context.path_answers))
        has_rerank = item.rerank is not None
        rows.append([
            dense[k],
            dense[k] - top_dense[k],
            dense_rank[k],
            1.0 / (1.0 + math.exp(-rerank[k])) if has_rerank else 0.5,
            max(rerank[k] - top_rerank[k], -10.0) / 10.0 if has_rerank else 0.0,
            rerank_rank[k] if has_rerank else dense_rank[k],
            float(has_rerank),
            coverage,
            entity_cov,
            title_in_q,
            bridge,
            triple_support,
            answer_path,
            float(item.aspect == "triple"),
            math.log1p(len(words)) / 6.0,
            float(numeric and bool(_NUMBER.search(item.text))),
        ])
    return rows


# ---- the module ----------------------------------------------------------------------------------------


def _net(n_features: int, hidden: int) -> Any:
    from torch import nn

    return nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))


class EvidenceGate:
    """question x evidence features -> weight in [0, 1]. Loads from safetensors lazily."""

    def __init__(self, path: str | Path, *, threshold: float | None = None) -> None:
        self.path = Path(path)
        self._threshold_override = threshold
        self.threshold = 0.5
        self._aspect_thresholds: dict[str, float] = {}
        self._net: Any = None
        self._mean: Any = None
        self._std: Any = None

    def warm_up(self) -> None:
        if self._net is not None:
            return
        if not self.path.is_file():
            raise ModelLoadError(f"no gate weights at {self.path}; train them with: python -m rag.align train-gate")
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(self.path), framework="pt") as handle:
                meta = handle.metadata() or {}
                tensors = {k: handle.get_tensor(k) for k in handle.keys()}
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelLoadError(f"gate weights {self.path} are not a readable safetensors file ({exc})") from exc
        if json.loads(meta.get("features", "[]")) != list(FEATURES):
            raise ModelLoadError(f"gate {self.path} was trained on other features; retrain it")
        net = _net(len(FEATURES), int(meta.get("hidden", 16)))
        net.load_state_dict({k[len("net."):]: v for k, v in tensors.items() if k.startswith("net.")})
        net.eval()
        self._mean, self._std = tensors["mean"], tensors["std"]
        learned = float(meta.get("threshold", 0.5))
        self.threshold = self._threshold_override if self._threshold_override is not None else learned
        if self._threshold_override is None:
            self._aspect_thresholds = {k: float(v) for k, v in json.loads(meta.get("aspect_thresholds", "{}")).items()}
        self._net = net

    def threshold_for(self, aspect: str) -> float:
        """The keep threshold of one aspect (learned per aspect: triple and passage weights are distributed
        differently), or the override / overall threshold."""
        self.warm_up()
        return self._aspect_thresholds.get(aspect, self.threshold)

    def weights(self, question: str, items: Sequence[GateItem], context: GateContext | None = None) -> list[float]:
        import torch

        self.warm_up()
        rows = alignment_features(question, items, context)
        if not rows:
            return []
        with torch.inference_mode():
            x = (torch.tensor(rows, dtype=torch.float32) - self._mean) / self._std
            return [float(w) for w in torch.sigmoid(self._net(x).squeeze(-1))]


def kept_best_first(weights: Sequence[float], threshold: float) -> list[int]:
    """Indexes of the weights above `threshold`, highest first (ties in the given order): what the gate passes
    on, in the order the reader gets it."""
    return sorted((k for k, w in enumerate(weights) if w > threshold), key=lambda k: -weights[k])


@dataclass(frozen=True)
class GateTrainConfig:
    epochs: int = 300
    hidden: int = 16
    lr: float = 1e-2
    weight_decay: float = 1e-3
    seed: int = 0
    extra: dict[str, float] = field(default_factory=dict)


def auc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Area under the ROC curve (probability a positive outranks a negative; ties count half). NaN when
    one class is missing."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    if not pos or not neg:
        return float("nan")
    wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


def items_from_record(record: PreferenceRecord, rerank_scores: Sequence[float] | None = None) -> list[GateItem]:
    """The record's candidates as the pipeline shows them to the gate; `rerank_scores` are the passages'."""
    scores = iter(rerank_scores) if rerank_scores is not None else None
    return [
        GateItem(c.aspect, c.text, c.dense, next(scores) if scores is not None and c.aspect == "passage" else None,
                 c.title)
        for c in record.candidates
    ]


def context_from_record(record: PreferenceRecord) -> GateContext:
    return GateContext(**{k: tuple(v) for k, v in record.context.items() if k in GateContext.__dataclass_fields__})


def train_gate(
    records: Sequence[PreferenceRecord],
    out: str | Path,
    config: GateTrainConfig | None = None,
    *,
    reranker: Any = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Fit the gate on the preference labels (aligned = 1) and save it with its normalisation and the
    threshold that maximises F1 on the training candidates."""
    import torch
    from safetensors.torch import save_file
    from tqdm import tqdm

    config = config or GateTrainConfig()
    rows: list[list[float]] = []
    labels: list[int] = []
    aspects: list[str] = []
    for record in tqdm(records, desc="gate features", unit="q", disable=not progress):
        # With a reranker, each candidate appears twice: with its scores and without (has_rerank = 0), so one
        # gate serves the pipeline with the reranker on or off.
        variants = [None]
        if reranker is not None:
            variants.append(reranker.score(record.question, [c.text for c in record.passages]))
        for scores in variants:
            rows.extend(alignment_features(record.question, items_from_record(record, scores), context_from_record(record)))
            labels.extend(int(c.label == 1) for c in record.candidates)
            aspects.extend(c.aspect for c in record.candidates)
    if not rows or not any(labels) or all(labels):
        raise InputError("gate training needs both aligned and non-aligned candidates")
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    x = torch.tensor(rows, dtype=torch.float32)
    y = torch.tensor(labels, dtype=torch.float32)
    mean, std = x.mean(0), x.std(0).clamp(min=1e-3)
    x = (x - mean) / std
    net = _net(len(FEATURES), config.hidden)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    pos_weight = torch.tensor((len(labels) - sum(labels)) / max(sum(labels), 1))
    for _ in tqdm(range(config.epochs), desc="gate", unit="epoch", disable=not progress):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x).squeeze(-1), y, pos_weight=pos_weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        probs = torch.sigmoid(net(x).squeeze(-1)).tolist()
    best_threshold, best_f1 = best_f1_threshold(probs, labels)
    aspect_thresholds = {}
    for aspect in sorted(set(aspects)):
        members = [k for k, a in enumerate(aspects) if a == aspect]
        if 0 < sum(labels[k] for k in members) < len(members):
            aspect_thresholds[aspect] = best_f1_threshold([probs[k] for k in members], [labels[k] for k in members])[0]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"net.{k}": v.detach().contiguous() for k, v in net.state_dict().items()}
    tensors.update({"mean": mean.contiguous(), "std": std.contiguous()})
    save_file(tensors, str(out), metadata={"features": json.dumps(list(FEATURES)), "hidden": str(config.hidden),
                                           "threshold": str(best_threshold), "aspect_thresholds": json.dumps(aspect_thresholds),
                                           "train": json.dumps(asdict(config))})
    return {"out": str(out), "candidates": len(labels), "aligned": sum(labels), "train_auc": round(auc(probs, labels), 4),
            "threshold": best_threshold, "aspect_thresholds": aspect_thresholds, "train_f1": round(best_f1, 4),
            "loss": round(loss.item(), 4)}


def best_f1_threshold(probs: Sequence[float], labels: Sequence[int]) -> tuple[float, float]:
    """(threshold in 0.10 .. 0.90, its F1) keeping items with weight > threshold, best F1 on these labels."""
    best_threshold, best_f1 = 0.5, -1.0
    for threshold in [t / 20 for t in range(2, 19)]:
        kept = [p > threshold for p in probs]
        tp = sum(k and l for k, l in zip(kept, labels))
        precision = tp / max(sum(kept), 1)
        recall = tp / max(sum(labels), 1)
        f1 = 2 * precision * recall / max(precision + recall, 1e-9)
        if f1 > best_f1:
            best_threshold, best_f1 = threshold, f1
    return best_threshold, best_f1
