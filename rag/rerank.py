"""DPA-RAG reranker: a cross-encoder (question, passage) -> relevance logit, initialised from the packaged
MiniLM weights and trained on the reader's preference labels (rag.prefs) with three losses at once:
point-wise BCE (is this passage aligned?), pair-wise BPR (aligned above non-aligned of the same question)
and list-wise InfoNCE (the aligned passage against all candidates of its question).

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

    def __post_init__(self) -> None:
        if self.epochs <= 0 or self.batch_questions <= 0 or self.negatives <= 0:
            raise InputError(f"epochs, batch_questions and negatives must be > 0, got {self}")
        if not 16 <= self.max_length <= 512:
            raise InputError(f"max_length must be in [16, 512], got {self.max_length}")


def _model_class() -> Any:
    import torch
    from torch import nn

    class CrossEncoderModel(nn.Module):
        """BERT encoder, mean pooling (as the MiniLM sentence model was trained), a linear head -> logit."""

        def __init__(self, encoder: nn.Module) -> None:
            super().__init__()
            self.encoder = encoder
            self.head = nn.Linear(encoder.config.hidden_size, 1)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            return self.head(pooled).squeeze(-1)

    return CrossEncoderModel


def build_model(base: str | Path | None = None, *, encoder_config: Any = None) -> tuple[Any, Any]:
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
    return _model_class()(encoder), tokenizer


def _save(model: Any, folder: Path, meta: dict) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = folder / (WEIGHTS + ".tmp")
    save_file(state, str(tmp), metadata={"format": "pt"})
    tmp.replace(folder / WEIGHTS)  # atomic: a crash mid-save never leaves half a checkpoint
    (folder / META).write_text(json.dumps(meta, indent=2), encoding="utf-8")


def load_trained(folder: str | Path) -> tuple[Any, Any]:
    """(model, tokenizer) of a saved reranker, e.g. to continue training it."""
    from safetensors.torch import load_file
    from transformers import BertConfig

    folder = Path(folder)
    if not reranker_available(folder):
        raise ModelLoadError(f"no trained reranker in {folder} (expected {WEIGHTS} and {META}); "
                             "train one with: python -m rag.align train-reranker --prefs ... --out FOLDER")
    meta = json.loads((folder / META).read_text(encoding="utf-8"))
    model, tokenizer = build_model(meta.get("base"), encoder_config=BertConfig(**meta["encoder_config"]))
    model.load_state_dict(load_file(str(folder / WEIGHTS)))
    return model, tokenizer


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
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            model, tokenizer = load_trained(self.folder)
            meta = json.loads((self.folder / META).read_text(encoding="utf-8"))
            self._max_length = int(meta.get("max_length", 160))
            model.eval().to(self.device)
            self._tokenizer = tokenizer
            self._model = model

    def score(self, question: str, texts: Sequence[str]) -> list[float]:
        """One relevance logit per text (higher = more useful to the reader)."""
        import torch

        self.warm_up()
        if not texts:
            return []
        scores: list[float] = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                chunk = list(texts[start : start + self.batch_size])
                batch = self._tokenizer([question] * len(chunk), chunk, truncation="only_second",
                                        max_length=self._max_length, padding=True, return_tensors="pt")
                batch = {k: v.to(self.device) for k, v in batch.items()}
                scores.extend(float(x) for x in self._model(**batch).float().cpu())
        return scores


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

    config = config or RerankerTrainConfig()
    groups = _training_groups(records, config.negatives)
    if not groups:
        raise InputError("no preference record has an aligned candidate: nothing to train on")
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    if model is None:
        model, tokenizer = build_model()
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    meta = {"base": None, "max_length": config.max_length, "encoder_config": model.encoder.config.to_dict(),
            "train": asdict(config), "questions": len(groups)}
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
        history.append({k: round(v / steps, 4) for k, v in totals.items()})
        _save(model, out, {**meta, "epochs_done": epoch, "history": history})
    model.eval()
    return {"out": str(out), "questions": len(groups), "epochs": config.epochs, "history": history}
