"""Which side of a yes/no question a passage takes: a cross-encoder (question, passage) -> P(yes), P(no),
P(neither), initialised from the packaged MiniLM weights and trained on ConflictQA's opposite passages.

Why a model: a yes/no answer is a judgment, not a span, so string matching cannot tell which passages support
it, and the 0.5B reader's own per-passage yes/no scores did not separate real conflicts from agreeing passages
(docs/RESULTS.md, stop 13). With a stance per passage the pipeline can
- report a conflict when shown passages take opposite sides (`Answer.conflicts`), weighing the sides by how many
  independent passages take each (near-duplicates count once, so a planted cluster is one voice);
- follow the passages when they all take one side and the reader answered the other (its yes-bias).

Training data (`conflictqa_examples`): each ConflictQA (StrategyQA part) question has, per source model, a
passage for its memory claim and one for the opposite claim, plus evidence written for each. A claim is mapped to
yes/no by negation (`polarity`). "neither" examples pair a question with the nearest passage written for another
question, so passages on the topic that take no side are not read as a stance.

torch/transformers are imported inside functions: importing this module stays cheap.
"""

from __future__ import annotations

import math
import random
import re
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.defense import mean_pairwise_similarity
from rag.errors import InputError, ModelLoadError
from rag.metrics import normalize_answer
from rag.reader import ReaderOutput
from rag.types import Conflict, Evidence

LABELS: tuple[str, ...] = ("yes", "no", "neither")
WEIGHTS = "model.safetensors"
META = "stance.json"
# How a model is made: `make stance` in a kgrag checkout runs this on the embedded data/stance/ (no weights in git).
TRAIN_COMMAND = ("make stance, or python -m rag.align train-stance --data data/stance --skip 0 "
                 "--neither-corpus data/stance/neither.jsonl --out FOLDER")

# The passage ids of one source model's claims in a prepared ConflictQA record: the first two back its memory answer,
# the last two the counter answer.
PASSAGE_ID_KEYS = ("parametric_memory_id", "parametric_aligned_evidence_id", "counter_memory_id",
                   "counter_aligned_evidence_id")

_NEGATION = re.compile(r"\b(not|never|no|none|neither|nor|cannot)\b|n't\b", re.IGNORECASE)


def polarity(claim: str, other: str) -> str | None:
    """'yes' or 'no' for `claim` against its opposite `other`: of the pair, the claim with more negation words
    says "no"; None when negation does not tell them apart."""
    mine, theirs = len(_NEGATION.findall(claim)), len(_NEGATION.findall(other))
    if mine == theirs:
        return None
    return "no" if mine > theirs else "yes"


@dataclass(frozen=True)
class StanceExample:
    question_id: str
    question: str
    text: str
    label: str  # one of LABELS


def conflictqa_examples(questions: Sequence[dict], passages: dict[str, dict], *,
                        per_label: int | None = None) -> list[StanceExample]:
    """The yes/no examples of ConflictQA records (prepared format): every passage written for a claim whose
    polarity is known, once per question; a passage given both labels for one question is dropped.
    `per_label`: at most this many passages per side of a question (the source models' passages for one claim
    are much alike; more questions teach more than more copies of one)."""
    examples: list[StanceExample] = []
    for record in questions:
        labels: dict[str, str | None] = {}
        for claims in (record.get("per_model") or {}).values():
            memory_says = polarity(claims.get("memory_answer", ""), claims.get("counter_answer", ""))
            if memory_says is None:
                continue
            counter_says = "no" if memory_says == "yes" else "yes"
            for key, says in zip(PASSAGE_ID_KEYS, (memory_says, memory_says, counter_says, counter_says)):
                passage_id = claims.get(key)
                if passage_id in passages:
                    labels[passage_id] = says if labels.get(passage_id, says) == says else None
        taken = {"yes": 0, "no": 0}
        for passage_id, label in labels.items():
            if label is not None and (per_label is None or taken[label] < per_label):
                taken[label] += 1
                examples.append(StanceExample(record["id"], record["question"], passages[passage_id]["text"], label))
    return examples


def neither_examples(questions: Sequence[tuple[str, str]], question_vectors: np.ndarray,
                     texts: Sequence[tuple[str, str]], text_vectors: np.ndarray, *, per_question: int = 1) -> list[StanceExample]:
    """For each (question id, question), the `per_question` passages most similar to it among those written for
    other questions (`texts`: (question id, text)), labelled "neither". Vectors are normalised rows."""
    if len(questions) != len(question_vectors) or len(texts) != len(text_vectors):
        raise InputError("need one vector per question and per passage")
    owners = np.array([owner for owner, _ in texts])
    sims = question_vectors @ text_vectors.T
    examples = []
    for row, (question_id, question) in enumerate(questions):
        scores = np.where(owners == question_id, -np.inf, sims[row])
        for column in np.argsort(-scores)[:per_question]:
            if np.isfinite(scores[column]):
                examples.append(StanceExample(question_id, question, texts[column][1], "neither"))
    return examples


def negated_sentences(texts: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """(question id, sentence) for the sentences of (question id, text) pairs that contain a negation word."""
    found = {(owner, part.strip()) for owner, text in texts for part in re.split(r"(?<=[.!?])\s+", text)}
    return sorted((owner, s) for owner, s in found if _NEGATION.search(s) and 5 <= len(s.split()) <= 40)


def with_distractors(examples: Sequence[StanceExample], sentences: Sequence[tuple[str, str]], *, share: float,
                     seed: int = 0) -> list[StanceExample]:
    """`share` of the examples get one negated sentence of another question's passage (`sentences`: (question
    id, sentence)) added at the start or end, label unchanged. ConflictQA's "no" passages are the ones that
    negate, so without this the model learns "a negation word means no" ("Petco sells no electronics" read as a
    no to "Does Petco sell pet food?")."""
    rng = random.Random(seed)
    out = []
    for example in examples:
        if sentences and rng.random() < share:
            owner, extra = sentences[rng.randrange(len(sentences))]
            if owner != example.question_id:
                text = f"{example.text} {extra}" if rng.random() < 0.5 else f"{extra} {example.text}"
                example = StanceExample(example.question_id, example.question, text, example.label)
        out.append(example)
    return out


# ---- the model -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StanceTrainConfig:
    epochs: int = 2
    batch_size: int = 16
    lr: float = 5e-5
    max_length: int = 192
    seed: int = 0
    # > 0: train low-rank deltas of the encoder's linear layers (LoRA) and the head only, and save just those
    # (about 1 MB against 90 MB for the whole encoder), merged into the packaged MiniLM when loaded.
    lora_rank: int = 0

    def __post_init__(self) -> None:
        if self.epochs <= 0 or self.batch_size <= 0:
            raise InputError(f"epochs and batch_size must be > 0, got {self}")
        if not isinstance(self.lora_rank, int) or not 0 <= self.lora_rank <= 64:
            raise InputError(f"lora_rank must be in [0, 64], got {self.lora_rank!r}")
        if not self.lr > 0:
            raise InputError(f"lr must be > 0, got {self.lr}")
        if not 16 <= self.max_length <= 512:
            raise InputError(f"max_length must be in [16, 512], got {self.max_length}")


def stance_available(folder: str | Path | None) -> bool:
    return folder is not None and (Path(folder) / WEIGHTS).is_file() and (Path(folder) / META).is_file()


def _load(folder: Path) -> tuple[Any, Any, dict]:
    from transformers import BertConfig

    from rag.rerank import build_model, read_checkpoint

    if not stance_available(folder):
        raise ModelLoadError(f"no trained stance model in {folder} (expected {WEIGHTS} and {META}); train one "
                             f"with: {TRAIN_COMMAND}")
    meta, state = read_checkpoint(folder, meta_name=META, what="stance model")
    if list(meta.get("labels", [])) != list(LABELS):
        raise ModelLoadError(f"{folder / META} is for labels {meta.get('labels')}, expected {list(LABELS)}")
    try:
        if meta.get("lora_rank"):
            # Low-rank deltas of the packaged MiniLM (the base's hash is checked when the package is installed).
            model, tokenizer = build_model(outputs=len(LABELS))
            merge_lora(model, state, float(meta["lora_scale"]))
            model.head.load_state_dict({k[len("head."):]: v for k, v in state.items() if k.startswith("head.")})
        else:
            model, tokenizer = build_model(encoder_config=BertConfig(**meta["encoder_config"]), outputs=len(LABELS))
            model.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"stance model in {folder} does not fit its {META} or the packaged MiniLM ({exc!r}); "
                             "retrain it") from exc
    return model, tokenizer, meta


LORA_TARGETS = ("query", "key", "value", "dense")  # every linear layer of the BERT blocks


def add_lora(model: Any, rank: int, alpha: float) -> float:
    """Freeze the encoder and wrap each linear layer of its blocks with a trainable low-rank delta
    (x -> base(x) + scale * x A^T B^T, B starting at zero); returns scale = alpha / rank."""
    import torch
    from torch import nn

    scale = alpha / rank

    class LoraLinear(nn.Module):
        def __init__(self, base: nn.Linear) -> None:
            super().__init__()
            self.base = base
            self.lora_A = nn.Parameter(torch.randn(rank, base.in_features) / math.sqrt(base.in_features))
            self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.base(x) + scale * (x @ self.lora_A.T) @ self.lora_B.T

    for parameter in model.encoder.parameters():
        parameter.requires_grad_(False)
    for block in model.encoder.encoder.layer:
        for parent in list(block.modules()):
            for name, child in list(parent.named_children()):
                if name in LORA_TARGETS and isinstance(child, nn.Linear):
                    setattr(parent, name, LoraLinear(child))
    return scale


def lora_state(model: Any) -> dict[str, Any]:
    """The trained part of a LoRA model: the deltas, keyed by the weight they change, and the head."""
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith((".lora_A", ".lora_B")):
            state[key.replace(".base", "")] = value
        elif key.startswith("head."):
            state[key] = value
    return state


def merge_lora(model: Any, state: dict[str, Any], scale: float) -> None:
    """Add each saved delta (scale * B @ A) to the weight it was trained for in a plain model."""
    import torch

    weights = dict(model.named_parameters())
    with torch.no_grad():
        for key, a in state.items():
            if not key.endswith(".lora_A"):
                continue
            target = key[: -len(".lora_A")] + ".weight"
            b = state.get(key[: -len("A")] + "B")
            if target not in weights or b is None:
                raise ModelLoadError(f"stance model delta {key} matches no weight of the base encoder")
            weights[target].add_(scale * b.float() @ a.float())


def _probabilities(model: Any, tokenizer: Any, pairs: Sequence[tuple[str, str]], *, max_length: int,
                   batch_size: int = 16, device: str = "cpu") -> list[dict[str, float]]:
    import torch

    out: list[dict[str, float]] = []
    with torch.inference_mode():
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            batch = tokenizer([q for q, _ in chunk], [t for _, t in chunk], truncation="only_second",
                              max_length=max_length, padding=True, return_tensors="pt")
            probs = torch.softmax(model(**{k: v.to(device) for k, v in batch.items()}).float(), dim=-1).cpu()
            out.extend({label: round(float(p), 4) for label, p in zip(LABELS, row)} for row in probs)
    return out


class StanceModel:
    """Scores the stance of passages toward a yes/no question. Cheap to construct; `warm_up()` loads."""

    def __init__(self, folder: str | Path, *, device: str = "cpu", batch_size: int = 16) -> None:
        self.folder = Path(folder)
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None
        self._tokenizer: Any = None
        self._max_length = 256
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            model, tokenizer, meta = _load(self.folder)
            self._max_length = int(meta.get("max_length", 256))
            self._tokenizer = tokenizer
            self._model = model.eval().to(self.device)

    def stances(self, question: str, texts: Sequence[str]) -> list[dict[str, float]]:
        """One {yes, no, neither} probability dict per text."""
        self.warm_up()
        if not texts:
            return []
        with self._lock:
            return _probabilities(self._model, self._tokenizer, [(question, t) for t in texts],
                                  max_length=self._max_length, batch_size=self.batch_size, device=self.device)


def accuracy(model: Any, tokenizer: Any, examples: Sequence[StanceExample], *, max_length: int) -> dict[str, float]:
    """Accuracy overall and on the yes/no examples, and how often a "neither" passage is read as a side."""
    probs = _probabilities(model, tokenizer, [(e.question, e.text) for e in examples], max_length=max_length)
    predicted = [max(LABELS, key=p.__getitem__) for p in probs]
    sided = [k for k, e in enumerate(examples) if e.label != "neither"]
    neither = [k for k, e in enumerate(examples) if e.label == "neither"]
    return {
        "accuracy": round(sum(p == e.label for p, e in zip(predicted, examples)) / max(len(examples), 1), 4),
        "yes_no_accuracy": round(sum(predicted[k] == examples[k].label for k in sided) / max(len(sided), 1), 4),
        "neither_read_as_side": round(sum(predicted[k] != "neither" for k in neither) / max(len(neither), 1), 4),
        "examples": len(examples),
    }


def train_stance(train: Sequence[StanceExample], validation: Sequence[StanceExample], out: str | Path,
                 config: StanceTrainConfig | None = None, *, model: Any = None, tokenizer: Any = None,
                 progress: bool = True) -> dict[str, Any]:
    """Cross-entropy training; after each epoch the model is scored on `validation` and saved to `out`
    (model.safetensors + stance.json, atomically) when it is the best so far (the first epoch always)."""
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    from rag.rerank import build_model, save_checkpoint

    config = config or StanceTrainConfig()
    bad = sorted({e.label for e in train} - set(LABELS))
    if bad:
        raise InputError(f"unknown stance label(s) {bad}; expected {list(LABELS)}")
    if len({e.label for e in train}) < 2:
        raise InputError("stance training needs examples of at least two labels")
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    if model is None:
        model, tokenizer = build_model(outputs=len(LABELS))
    scale = add_lora(model, config.lora_rank, alpha=2.0 * config.lora_rank) if config.lora_rank else 0.0
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=0.01)
    counts = {label: sum(e.label == label for e in train) for label in LABELS}
    meta = {"labels": list(LABELS), "max_length": config.max_length, "encoder_config": model.encoder.config.to_dict(),
            "train": asdict(config), "examples": counts, "lora_rank": config.lora_rank, "lora_scale": scale}
    order = list(train)
    steps = math.ceil(len(order) / config.batch_size)
    history: list[dict[str, Any]] = []
    best = -1.0
    for epoch in range(1, config.epochs + 1):
        model.train()
        rng.shuffle(order)
        bar = tqdm(range(steps), desc=f"stance epoch {epoch}/{config.epochs}", unit="batch", disable=not progress)
        total = 0.0
        for step in bar:
            batch = order[step * config.batch_size : (step + 1) * config.batch_size]
            encoded = tokenizer([e.question for e in batch], [e.text for e in batch], truncation="only_second",
                                max_length=config.max_length, padding=True, return_tensors="pt")
            target = torch.tensor([LABELS.index(e.label) for e in batch])
            loss = F.cross_entropy(model(**encoded), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
            bar.set_postfix(loss=f"{total / (step + 1):.3f}")
        model.eval()
        log: dict[str, Any] = {"epoch": epoch, "loss": round(total / steps, 4)}
        if validation:
            log["validation"] = accuracy(model, tokenizer, validation, max_length=config.max_length)
        history.append(log)
        score = log["validation"]["accuracy"] if validation else float(epoch)
        if score > best:
            best = score
            save_checkpoint(lora_state(model) if config.lora_rank else model, Path(out),
                            {**meta, "epoch": epoch, "history": history}, meta_name=META)
    return {"out": str(out), "train_examples": counts, "validation_examples": len(validation), "history": history}


# ---- the decision (pure) -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolarVerdict:
    """`answer`: the yes/no the passages support ("" = keep the reader's); `evidence`: the passages it rests on;
    `tied`: as many independent passages say yes as say no, so the answer rests on the reader's pick alone."""

    answer: str
    reason: str
    conflicts: tuple[Conflict, ...] = ()
    evidence: tuple[Evidence, ...] = ()
    tied: bool = False


def independent_count(vectors: np.ndarray, similarity: float) -> int:
    """How many independent voices: rows at cosine >= `similarity` to an earlier kept row are near-duplicates of
    it and do not count again (normalised rows)."""
    kept: list[int] = []
    for row in range(len(vectors)):
        if not kept or float(np.max(vectors[kept] @ vectors[row])) < similarity:
            kept.append(row)
    return len(kept)


def in_pool_group(shown: np.ndarray, pool: np.ndarray, similarity: float, min_group: int) -> list[bool]:
    """For each shown passage: is it one of a coordinated group in the wider pool, i.e. does the pool hold at least
    `min_group` passages (itself included) at cosine >= `similarity` to it (normalised rows)? The reader may see only
    one or two passages of a planted group (a passage chain shows at most two), so the group is looked for where
    the defense looks for it."""
    if len(shown) == 0 or len(pool) == 0:
        return [False] * len(shown)
    return [int(count) >= min_group for count in ((shown @ pool.T) >= similarity).sum(axis=1)]


def side_of(answer: str) -> str:
    """'yes' or 'no' for a yes/no answer ("Yes, it was." -> yes), '' for any other."""
    tokens = normalize_answer(answer).split()
    return tokens[0] if tokens and tokens[0] in ("yes", "no") else ""


def polar_verdict(reader_answer: str, passages: Sequence[Evidence], stances: Sequence[dict[str, float]],
                  vectors: np.ndarray, *, threshold: float, similarity: float, lean: float = 0.5,
                  min_group: int = 3, grouped: Sequence[bool] | None = None) -> PolarVerdict:
    """Weigh the sides the shown passages take (stance >= `threshold`) against the reader's yes/no answer.
    - No passage takes a side: keep the reader's answer.
    - One side only: that side (the reader's answer when it agrees; else it follows the passages, unless some
      passage still leans the reader's way, stance >= `lean`, or the side is a coordinated group: >= `min_group`
      passages at mean similarity >= `similarity`, as rag.defense defines it; PoisonedRAG plants five; or every
      passage of the side is `grouped`, one of such a group in the wider pool: see `in_pool_group`).
    - Both sides: a conflict is reported; the side with more independent passages wins (near-duplicates count
      once, a coordinated group as one voice), and on a tie the reader's answer, which read both, is kept."""
    if not (len(passages) == len(stances) == len(vectors)):
        raise InputError("need one stance and one vector per passage")
    sides = {side: [k for k, s in enumerate(stances) if s[side] >= threshold] for side in ("yes", "no")}
    if not sides["yes"] and not sides["no"]:
        return PolarVerdict("", "no passage takes a side")
    # A coordinated group is one unverified source, as rag.defense defines it (PoisonedRAG plants five).
    if grouped is not None and len(grouped) != len(passages):
        raise InputError("need one `grouped` flag per passage")
    coordinated = {side: (len(rows) >= min_group and mean_pairwise_similarity(vectors[rows]) >= similarity)
                   or (grouped is not None and bool(rows) and all(grouped[k] for k in rows))
                   for side, rows in sides.items()}
    voices = {side: 1 if coordinated[side] else independent_count(vectors[rows], similarity)
              for side, rows in sides.items()}
    said = side_of(reader_answer)
    if not sides["yes"] or not sides["no"]:
        side = "yes" if sides["yes"] else "no"
        if said and said != side and any(s[said] >= lean for s in stances):
            # A passage leans the reader's way, below the bar: too close to overrule the reader.
            return PolarVerdict("", f"passages say {side}, one leans {said}: the reader's reading is kept")
        if said and said != side and coordinated[side]:
            return PolarVerdict("", f"only passages of one near-duplicate group ({len(sides[side])} shown) say "
                                f"{side}: not followed")
        return PolarVerdict(side, f"{voices[side]} independent passage(s) say {side}, none the opposite",
                            evidence=tuple(passages[k] for k in sides[side]))
    if voices["yes"] != voices["no"]:
        winner = "yes" if voices["yes"] > voices["no"] else "no"
        note = f"{voices['yes']} independent passage(s) say yes, {voices['no']} say no: the majority is kept"
    else:
        winner = said
        note = f"{voices['yes']} independent passage(s) on each side: the reader's reading of both is kept"
    first = winner or "yes"
    second = "no" if first == "yes" else "yes"
    conflict = Conflict(claim_a=first.capitalize(), source_a=",".join(passages[k].source_id for k in sides[first]),
                        claim_b=second.capitalize(), source_b=",".join(passages[k].source_id for k in sides[second]),
                        note=note)
    return PolarVerdict(winner, note, (conflict,), tuple(passages[k] for k in sides[winner]) if winner else (),
                        tied=voices["yes"] == voices["no"])


def follow(output: ReaderOutput, side: str, probability: float) -> ReaderOutput:
    """The reader's output with its yes/no answer replaced by `side`; its certainty is the stance's."""
    text = side.capitalize()
    return ReaderOutput(text=text, raw_text=output.raw_text, cited_labels=(),
                        token_logprobs=(math.log(max(probability, 1e-6)),), refused=False)
