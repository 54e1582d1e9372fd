"""DPA-RAG reranker: a cross-encoder (question, passage) -> relevance logit, initialised from the packaged
MiniLM weights and trained on the reader's preference labels (rag.prefs) with three losses at once:
point-wise BCE (is this passage aligned?), pair-wise BPR (aligned above non-aligned of the same question)
and list-wise InfoNCE (the aligned passage against all candidates of its question).

The final order fuses the reranker with the dense retriever: alpha * z(reranker logit) + (1 - alpha) *
z(dense score), z-scored within the question's pool. Alpha is chosen after each epoch on questions held out of
training (NDCG@5 against their labels) and saved with the weights. With a few hundred training questions a
MiniLM cross-encoder alone ranked held-out HotpotQA worse than FAISS (NDCG@5 0.59 vs 0.77); fusion keeps what
the dense order knows, and alpha = 0 says plainly when the reranker adds nothing.

torch/transformers are imported inside functions: importing this module stays cheap.
"""

from __future__ import annotations

import json
import math
import random
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.errors import InputError, ModelLoadError
from rag.metrics import ndcg_at

if TYPE_CHECKING:
    from rag.prefs import PreferenceRecord

WEIGHTS = "model.safetensors"
META = "reranker.json"


@dataclass(frozen=True)
class RerankerTrainConfig:
    epochs: int = 2
    batch_questions: int = 4
    lr: float = 3e-5
    max_length: int = 160
    # Per question: every aligned candidate plus this many non-aligned ones (hardest = best dense rank first).
    negatives: int = 3
    temperature: float = 1.0  # InfoNCE
    seed: int = 0
    # Share of the questions held out of training to choose the fusion weight (0: no fusion, reranker order).
    validation: float = 0.2
    # Reader-labelled records: "agreed" keeps a reader label only where the distant labels agree
    # (`rag.prefs.agreed_labels`); "stored" trains on the reader's likelihood labels as they are.
    labels: str = "agreed"

    def __post_init__(self) -> None:
        if self.epochs <= 0 or self.batch_questions <= 0 or self.negatives <= 0:
            raise InputError(f"epochs, batch_questions and negatives must be > 0, got {self}")
        if not 0.0 <= self.validation < 1.0:
            raise InputError(f"validation must be in [0, 1), got {self.validation}")
        if self.labels not in ("agreed", "stored"):
            raise InputError(f"labels must be 'agreed' or 'stored', got {self.labels!r}")
        if not 16 <= self.max_length <= 512:
            raise InputError(f"max_length must be in [16, 512], got {self.max_length}")


def _model_class() -> Any:
    import torch
    from torch import nn

    class CrossEncoderModel(nn.Module):
        """BERT encoder, mean pooling (as the MiniLM sentence model was trained), a linear head -> one logit
        ([batch]), or `outputs` logits ([batch, outputs]) for a classifier (rag.stance)."""

        def __init__(self, encoder: nn.Module, outputs: int = 1) -> None:
            super().__init__()
            self.encoder = encoder
            self.outputs = outputs
            self.head = nn.Linear(encoder.config.hidden_size, outputs)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            logits = self.head(pooled)
            return logits.squeeze(-1) if self.outputs == 1 else logits

    return CrossEncoderModel


def build_model(base: str | Path | None = None, *, encoder_config: Any = None, outputs: int = 1) -> tuple[Any, Any]:
    """(model, tokenizer): the encoder from the packaged MiniLM folder, or a random one from `encoder_config`
    (tests). The tokenizer is always the packaged MiniLM one."""
    from transformers import AutoTokenizer, BertModel

    from indexes.embedder import DEFAULT_EMBEDDER, resolve_embedder_path

    folder = resolve_embedder_path(str(base) if base else DEFAULT_EMBEDDER)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    if encoder_config is not None:
        encoder = BertModel(encoder_config, add_pooling_layer=False)
    else:
        encoder = BertModel.from_pretrained(str(folder), local_files_only=True, add_pooling_layer=False)
    return _model_class()(encoder, outputs), tokenizer


def save_checkpoint(model: Any, folder: Path, meta: dict, *, meta_name: str = META) -> None:
    """`model`: a module, or a state dict (a part of one)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = model if isinstance(model, dict) else model.state_dict()
    state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    tmp = folder / (WEIGHTS + ".tmp")
    save_file(state, str(tmp), metadata={"format": "pt"})
    tmp.replace(folder / WEIGHTS)  # atomic: a crash mid-save never leaves half a checkpoint
    meta_tmp = folder / (meta_name + ".tmp")
    meta_tmp.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    meta_tmp.replace(folder / meta_name)


def read_checkpoint(folder: Path, *, meta_name: str = META, what: str = "reranker") -> tuple[dict, dict[str, Any]]:
    """(metadata, tensors) of a folder `save_checkpoint` wrote, or one ModelLoadError naming the unreadable file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        meta = json.loads((folder / meta_name).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{what} metadata {folder / meta_name} is not readable JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise ModelLoadError(f"{what} metadata {folder / meta_name} is not a JSON object")
    try:
        state = load_file(str(folder / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelLoadError(f"{what} weights {folder / WEIGHTS} are not a readable safetensors file ({exc})") from exc
    return meta, state


def load_trained(folder: str | Path) -> tuple[Any, Any]:
    """(model, tokenizer) of a saved reranker, e.g. to continue training it."""
    model, tokenizer, _ = _load_trained_with_meta(Path(folder))
    return model, tokenizer


def _load_trained_with_meta(folder: Path) -> tuple[Any, Any, dict]:
    """(model, tokenizer, metadata): one read of the saved files."""
    from transformers import BertConfig

    if not reranker_available(folder):
        raise ModelLoadError(f"no trained reranker in {folder} (expected {WEIGHTS} and {META}); "
                             "train one with: python -m rag.align train-reranker --prefs ... --out FOLDER")
    meta, state = read_checkpoint(folder)
    try:
        model, tokenizer = build_model(meta.get("base"), encoder_config=BertConfig(**meta["encoder_config"]))
        model.load_state_dict(state)
    except (KeyError, TypeError, RuntimeError) as exc:
        raise ModelLoadError(f"reranker in {folder} does not match its {META} ({exc!r}); retrain it") from exc
    return model, tokenizer, meta


FUSION_GRID = tuple(round(0.1 * k, 1) for k in range(11))


def _zscores(values: Sequence[float]) -> list[float]:
    if not values:
        return []
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return [(v - mean) / std if std > 1e-9 else 0.0 for v in values]


def fused_scores(dense: Sequence[float], rerank: Sequence[float], alpha: float) -> list[float]:
    """alpha * z(rerank) + (1 - alpha) * z(dense) over one question's pool (scales differ: logits vs cosines)."""
    if len(dense) != len(rerank):
        raise InputError(f"{len(dense)} dense scores for {len(rerank)} reranker scores")
    return [alpha * r + (1.0 - alpha) * d for d, r in zip(_zscores(dense), _zscores(rerank))]


def _ndcg5_of(scores: Sequence[float], labels: Sequence[float]) -> float:
    order = sorted(range(len(scores)), key=lambda k: (-scores[k], k))
    return ndcg_at([int(labels[k] > 0.5) for k in order])


def choose_fusion(lists: Sequence[tuple[Sequence[float], Sequence[float], Sequence[float]]]) -> dict[str, float]:
    """The alpha of `FUSION_GRID` with the best mean NDCG@5 over (dense, rerank, labels) lists; ties go to the
    smaller alpha (the dense order needs no model). Also the dense-only and reranker-only figures."""
    def mean_ndcg(alpha: float) -> float:
        values = [_ndcg5_of(fused_scores(d, r, alpha), y) for d, r, y in lists]
        values = [v for v in values if not math.isnan(v)]
        return sum(values) / len(values) if values else float("nan")

    by_alpha = {alpha: mean_ndcg(alpha) for alpha in FUSION_GRID}
    best = max(FUSION_GRID, key=lambda a: (by_alpha[a], -a))
    return {"alpha": best, "ndcg5_fused": round(by_alpha[best], 4), "ndcg5_dense": round(by_alpha[0.0], 4),
            "ndcg5_reranker": round(by_alpha[1.0], 4), "questions": len(lists)}


def _score_pairs(model: Any, tokenizer: Any, question: str, texts: Sequence[str], *, max_length: int,
                 batch_size: int = 16, device: str = "cpu") -> list[float]:
    import torch

    scores: list[float] = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            chunk = list(texts[start : start + batch_size])
            batch = tokenizer([question] * len(chunk), chunk, truncation="only_second", max_length=max_length,
                              padding=True, return_tensors="pt")
            batch = {k: v.to(device) for k, v in batch.items()}
            scores.extend(float(x) for x in model(**batch).float().cpu())
    return scores


def reranker_available(folder: str | Path | None) -> bool:
    return folder is not None and (Path(folder) / WEIGHTS).is_file() and (Path(folder) / META).is_file()


class CrossEncoderReranker:
    """Scores (question, passage) pairs with a trained cross-encoder. Cheap to construct; `warm_up()` loads."""

    def __init__(self, folder: str | Path, *, device: str = "cpu", batch_size: int = 16) -> None:
        self.folder = Path(folder)
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None
        self._tokenizer: Any = None
        self._max_length = 160
        self.fusion_alpha = 1.0  # folders saved before fusion existed: the reranker's own order
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            model, tokenizer, meta = _load_trained_with_meta(self.folder)
            self._max_length = int(meta.get("max_length", 160))
            self.fusion_alpha = float(meta.get("fusion_alpha", 1.0))
            model.eval().to(self.device)
            self._tokenizer = tokenizer
            self._model = model

    def score(self, question: str, texts: Sequence[str]) -> list[float]:
        """One relevance logit per text (higher = more useful to the reader)."""
        self.warm_up()
        if not texts:
            return []
        with self._lock:
            return _score_pairs(self._model, self._tokenizer, question, texts, max_length=self._max_length,
                                batch_size=self.batch_size, device=self.device)

    def fuse(self, dense: Sequence[float], rerank: Sequence[float]) -> list[float]:
        """The ranking score of each candidate: the reranker fused with the dense score by the trained alpha."""
        self.warm_up()
        return fused_scores(dense, rerank, self.fusion_alpha)


# ---- training ------------------------------------------------------------------------------------------


def joint_loss(scores: Any, labels: Any, *, temperature: float = 1.0) -> tuple[Any, dict[str, float]]:
    """Point-wise BCE + pair-wise BPR + list-wise InfoNCE over one question's candidates.

    `scores`: logits [n]; `labels`: 1.0 aligned, 0.0 otherwise. Pair and list terms need both kinds."""
    import torch
    import torch.nn.functional as F

    bce = F.binary_cross_entropy_with_logits(scores, labels)
    pos, neg = scores[labels > 0.5], scores[labels <= 0.5]
    zero = scores.new_zeros(())
    if len(pos) and len(neg):
        pair = -F.logsigmoid(pos.unsqueeze(1) - neg.unsqueeze(0)).mean()
        # Each aligned candidate against all non-aligned ones of its question.
        logits = torch.cat([pos.unsqueeze(1), neg.unsqueeze(0).expand(len(pos), -1)], dim=1) / temperature
        listwise = F.cross_entropy(logits, torch.zeros(len(pos), dtype=torch.long))
    else:
        pair = listwise = zero
    total = bce + pair + listwise
    return total, {"bce": bce.item(), "pair": pair.item(), "list": listwise.item()}


def _validation_lists(records: Sequence[PreferenceRecord]) -> list[tuple[str, list[str], list[float], list[float]]]:
    """(question, every passage candidate in dense order, their dense scores, labels) of each held-out question."""
    lists = []
    for record in records:
        passages = sorted(record.passages, key=lambda c: c.rank)
        if any(c.label == 1 for c in passages) and any(c.label != 1 for c in passages):
            lists.append((record.question, [c.text for c in passages], [c.dense for c in passages],
                          [float(c.label == 1) for c in passages]))
    return lists


def _split(records: Sequence[PreferenceRecord], share: float, seed: int) -> tuple[list, list]:
    """(training, validation) records; validation gets `share` of the questions that teach anything."""
    useful = [r for r in records if any(c.label == 1 for c in r.passages)]
    order = list(range(len(useful)))
    random.Random(seed).shuffle(order)
    n_val = int(len(useful) * share) if len(useful) >= 10 else 0
    held = set(order[:n_val])
    return [r for k, r in enumerate(useful) if k not in held], [r for k, r in enumerate(useful) if k in held]


def _training_groups(records: Sequence[PreferenceRecord], negatives: int) -> list[tuple[str, list[str], list[float]]]:
    groups = []
    for record in records:
        pos = [c for c in record.passages if c.label == 1]
        if not pos:
            continue  # nothing to prefer: no signal for the pair/list losses, and cost on this CPU
        # Misleading candidates first (the reader is hurt by them), then the hardest (best dense rank).
        neg = sorted((c for c in record.passages if c.label != 1), key=lambda c: (c.label != -1, c.rank))
        chosen = pos + neg[:negatives]
        groups.append((record.question, [c.text for c in chosen], [1.0] * len(pos) + [0.0] * len(chosen[len(pos):])))
    return groups


def train_reranker(
    records: Sequence[PreferenceRecord],
    out: str | Path,
    config: RerankerTrainConfig | None = None,
    *,
    model: Any = None,
    tokenizer: Any = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train and save to `out` (model.safetensors + reranker.json) after every epoch. `model`/`tokenizer`
    default to the packaged MiniLM encoder with a fresh head."""
    import torch
    from tqdm import tqdm

    from rag.prefs import agreed_labels

    config = config or RerankerTrainConfig()
    if config.labels == "agreed":
        records = [agreed_labels(r) for r in records]
    train_records, val_records = _split(records, config.validation, config.seed)
    groups = _training_groups(train_records, config.negatives)
    if not groups:
        raise InputError("no preference record has an aligned candidate: nothing to train on")
    validation = _validation_lists(val_records)
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    if model is None:
        model, tokenizer = build_model()
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    meta = {"base": None, "max_length": config.max_length, "encoder_config": model.encoder.config.to_dict(),
            "train": asdict(config), "questions": len(groups), "fusion_alpha": 1.0}
    out = Path(out)
    history = []
    steps = math.ceil(len(groups) / config.batch_questions)
    for epoch in range(1, config.epochs + 1):
        rng.shuffle(groups)
        bar = tqdm(range(steps), desc=f"reranker epoch {epoch}/{config.epochs}", unit="batch", disable=not progress)
        totals = {"loss": 0.0, "bce": 0.0, "pair": 0.0, "list": 0.0}
        for step in bar:
            batch = groups[step * config.batch_questions : (step + 1) * config.batch_questions]
            questions = [q for q, texts, _ in batch for _ in texts]
            texts = [t for _, ts, _ in batch for t in ts]
            encoded = tokenizer(questions, texts, truncation="only_second", max_length=config.max_length,
                                padding=True, return_tensors="pt")
            scores = model(**encoded)
            loss = scores.new_zeros(())
            offset = 0
            for _, ts, labels in batch:
                part, parts = joint_loss(scores[offset : offset + len(ts)], torch.tensor(labels),
                                         temperature=config.temperature)
                loss = loss + part / len(batch)
                for key, value in parts.items():
                    totals[key] += value / len(batch)
                offset += len(ts)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            totals["loss"] += loss.item()
            bar.set_postfix(loss=f"{totals['loss'] / (step + 1):.3f}")
        epoch_log: dict[str, Any] = {k: round(v / steps, 4) for k, v in totals.items()}
        if validation:
            model.eval()
            lists = [(dense, _score_pairs(model, tokenizer, q, texts, max_length=config.max_length), labels)
                     for q, texts, dense, labels in validation]
            model.train()
            epoch_log["validation"] = choose_fusion(lists)
            meta["fusion_alpha"] = epoch_log["validation"]["alpha"]
        history.append(epoch_log)
        save_checkpoint(model, out, {**meta, "epochs_done": epoch, "history": history})
    model.eval()
    return {"out": str(out), "questions": len(groups), "validation_questions": len(validation),
            "fusion_alpha": meta["fusion_alpha"], "epochs": config.epochs, "history": history}
