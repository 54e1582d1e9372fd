"""Amar's original form of the gate's output: gated evidence embeddings as soft prompt vectors.

Each evidence item the reader gets (a triple or a passage) is embedded by the index's sentence embedder, scaled
by its gate weight, and mapped by a small trained projector into the reader's input-embedding space. The
resulting vectors (one per item) sit at the start of the user turn, before the text prompt (`inputs_embeds`),
so the reader receives the gate's judgement as vectors as well as the evidence text.

The projector is trained on the gold answers of preference records (`python -m rag.align train-soft-prompt`),
with the reader frozen or, as in Amar, with a LoRA adapter on the reader trained jointly (`--lora-r N`, needs
the `train` extra). Both are saved as safetensors: the projector file, and the adapter in the folder
`<projector>.adapter/` that its metadata names; the pipeline merges that adapter into its reader. It is off
unless `PipelineConfig.soft_prompt_path` names the projector. torch is imported inside functions only.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.errors import InputError, ModelLoadError
from rag.prompt import assign_labels, build_messages
from rag.reader import ReaderOutput, TransformersReader
from rag.types import Evidence

if TYPE_CHECKING:
    from indexes.embedder import Embedder
    from rag.gate import EvidenceGate
    from rag.prefs import PreferenceRecord

# Put into the user message where the soft vectors go, then cut out of the rendered prompt.
_MARKER = "<<kgrag-soft-prompt>>"
MAX_SOFT_ITEMS = 17  # the pipeline shows at most 12 triples + 5 passages


def evidence_weight(evidence: Evidence) -> float:
    """The gate's weight for one evidence item: a passage's `scores["gate"]`; a gated triple's score is its gate
    weight (`QAPipeline.gate_triples`). Ungated evidence counts fully."""
    if "gate" in evidence.scores:
        return float(evidence.scores["gate"])
    if evidence.aspect == "triple":
        return min(max(float(evidence.score), 0.0), 1.0)
    return 1.0


def _projector(in_dim: int, hidden: int, out_dim: int) -> Any:
    from torch import nn

    return nn.Sequential(nn.Linear(in_dim + 2, hidden), nn.GELU(), nn.Linear(hidden, out_dim))


def projector_inputs(vectors: Any, evidence: Sequence[Evidence]) -> Any:
    """[gate weight x embedding, gate weight, is_triple] per item."""
    import torch

    weights = torch.tensor([evidence_weight(e) for e in evidence], dtype=torch.float32).unsqueeze(1)
    is_triple = torch.tensor([float(e.aspect == "triple") for e in evidence], dtype=torch.float32).unsqueeze(1)
    return torch.cat([vectors * weights, weights, is_triple], dim=1)


class SoftPrompt:
    """The trained projector plus the prompt assembly around it, shared by training and reading."""

    def __init__(self, reader: TransformersReader, embedder: Embedder, net: Any, meta: dict[str, Any]) -> None:
        self.reader = reader
        self.embedder = embedder
        self.net = net
        self.meta = meta

    @classmethod
    def new(cls, reader: TransformersReader, embedder: Embedder, *, hidden: int = 256) -> SoftPrompt:
        import torch

        model, _ = reader._loaded()
        d_model = model.get_input_embeddings().weight.shape[1]
        net = _projector(embedder.dimension, hidden, d_model)
        # Start near zero: an untrained soft prompt must not disturb the reader.
        torch.nn.init.zeros_(net[2].weight)
        torch.nn.init.zeros_(net[2].bias)
        return cls(reader, embedder, net, {"in_dim": embedder.dimension, "hidden": hidden, "d_model": d_model,
                                           "embedder": embedder.name, "reader": reader.config.model})

    @classmethod
    def load(cls, path: str | Path, reader: TransformersReader, embedder: Embedder) -> SoftPrompt:
        path = Path(path)
        meta, tensors = _read_projector(path)
        if meta.get("in_dim") != embedder.dimension:
            raise ModelLoadError(f"soft-prompt projector {path} expects {meta.get('in_dim')}-d evidence embeddings, "
                                 f"the embedder gives {embedder.dimension}-d")
        model, _ = reader._loaded()
        d_model = model.get_input_embeddings().weight.shape[1]
        if meta.get("d_model") != d_model:
            raise ModelLoadError(f"soft-prompt projector {path} was trained for a reader with {meta.get('d_model')}-d "
                                 f"embeddings; this reader ({reader.config.model}) has {d_model}-d")
        net = _projector(meta["in_dim"], meta["hidden"], meta["d_model"])
        net.load_state_dict(tensors)
        net.eval()
        return cls(reader, embedder, net, meta)

    def save(self, path: str | Path, train: dict[str, Any]) -> None:
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous() for k, v in self.net.state_dict().items()}
        save_file(tensors, str(path), metadata={"soft_prompt": json.dumps(self.meta), "train": json.dumps(train)})

    def prompt_embeds(self, question: str, evidence: Sequence[Evidence], instruction: str | None = None) -> Any:
        """[1, length, d_model] input embeddings: the chat prompt with one soft vector per evidence item at the
        start of the user turn. Keeps the graph for training when grad is enabled."""
        import torch

        model, tokenizer = self.reader._loaded()
        messages = build_messages(question, evidence, instruction=instruction,
                                  max_evidence_chars=self.reader.config.max_evidence_chars)
        messages[-1] = {**messages[-1], "content": _MARKER + "\n" + messages[-1]["content"]}
        rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        before, after = rendered.split(_MARKER, 1)
        embed = model.get_input_embeddings()
        device = embed.weight.device

        def ids(text: str) -> Any:
            return torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"], device=device)

        shown = list(evidence)[:MAX_SOFT_ITEMS]
        parts = [embed(ids(before))]
        if shown:
            vectors = torch.tensor(self.embedder.encode([e.text for e in shown]), dtype=torch.float32)
            soft = self.net(projector_inputs(vectors, shown)).to(device=device, dtype=embed.weight.dtype)
            parts.append(soft)
        parts.append(embed(ids(after)))
        return torch.cat(parts, dim=0).unsqueeze(0)


def _read_projector(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metadata, tensors) of a projector file, or one ModelLoadError naming what is wrong with it."""
    if not path.is_file():
        raise ModelLoadError(f"no soft-prompt projector at {path}; train one with: python -m rag.align "
                             "train-soft-prompt")
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {}).get("soft_prompt", "{}"))
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelLoadError(f"soft-prompt projector {path} is not a readable safetensors file ({exc})") from exc
    return meta, tensors


def adapter_folder(path: str | Path) -> Path | None:
    """The LoRA adapter trained with the projector at `path` (None when it was trained with the reader frozen)."""
    path = Path(path)
    meta, _ = _read_projector(path)
    return path.parent / meta["adapter"] if meta.get("adapter") else None


class SoftPromptReader:
    """A reader that answers with the soft prompt in front of the text prompt. Everything else (log-likelihood
    scoring for the defense, validation, config) is the base reader's."""

    def __init__(self, base: TransformersReader, embedder: Embedder, path: str | Path) -> None:
        self.base = base
        self.embedder = embedder
        self.path = Path(path)
        self._soft: SoftPrompt | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.base, name)

    def warm_up(self) -> None:
        self.base.warm_up()
        if self._soft is None:
            self._soft = SoftPrompt.load(self.path, self.base, self.embedder)

    def read(self, question: str, evidence: Sequence[Evidence], *, instruction: str | None = None,
             max_new_tokens: int | None = None) -> ReaderOutput:
        import torch

        self.warm_up()
        assert self._soft is not None
        evidence = assign_labels(evidence)
        with torch.inference_mode():
            embeds = self._soft.prompt_embeds(question, evidence, instruction)
        return self.base.generate(evidence, inputs_embeds=embeds, max_new_tokens=max_new_tokens)


# ---- training ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SoftPromptTrainConfig:
    epochs: int = 1
    lr: float = 1e-3
    hidden: int = 256
    max_triples: int = 12
    max_passages: int = 5
    lora_r: int = 0  # > 0: also train a LoRA adapter of this rank on the reader's attention (q, v)
    seed: int = 0


def gated_evidence(record: PreferenceRecord, gate: EvidenceGate | None, config: SoftPromptTrainConfig) -> list[Evidence]:
    """The evidence the pipeline would show for a preference record: the gate's kept triples (highest weight
    first, scored by weight) and passages, or, without a gate, the first triples and passages."""
    from rag.gate import context_from_record, items_from_record, kept_best_first

    items = items_from_record(record)
    weights = gate.weights(record.question, items, context_from_record(record)) if gate is not None else [1.0] * len(items)

    def kept(aspect: str, limit: int) -> list[int]:
        members = [k for k, c in enumerate(record.candidates) if c.aspect == aspect]
        threshold = gate.threshold_for(aspect) if gate is not None else -1.0
        return [members[k] for k in kept_best_first([weights[m] for m in members], threshold)][:limit]

    candidates = record.candidates
    evidence = [Evidence("triple", candidates[k].id, candidates[k].text, round(weights[k], 4))
                for k in kept("triple", config.max_triples)]
    evidence += [Evidence("passage", candidates[k].id, candidates[k].text, candidates[k].dense,
                          scores={"gate": round(weights[k], 4)}) for k in kept("passage", config.max_passages)]
    return evidence


def _target(record: PreferenceRecord, evidence: Sequence[Evidence]) -> str:
    """The gold answer to teach: the first one the evidence states, else the first."""
    from rag.prefs import contains_answer

    for answer in record.answers:
        if answer.strip() and any(contains_answer(e.text, [answer]) for e in evidence):
            return answer.strip()
    return record.answers[0].strip()


def train_soft_prompt(
    records: Sequence[PreferenceRecord],
    reader: TransformersReader,
    embedder: Embedder,
    out: str | Path,
    config: SoftPromptTrainConfig | None = None,
    *,
    gate: EvidenceGate | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Fit the projector (reader frozen) to raise the likelihood of the gold answer, then save it."""
    import torch
    from tqdm import tqdm

    config = config or SoftPromptTrainConfig()
    records = [r for r in records if any(a.strip() for a in r.answers)]
    if not records:
        raise InputError("soft-prompt training needs preference records with gold answers")
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    model, tokenizer = reader._loaded()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    soft = SoftPrompt.new(reader, embedder, hidden=config.hidden)
    soft.net.train()
    trained = list(soft.net.parameters())
    peft_model = None
    if config.lora_r > 0:
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError as exc:
            raise InputError(f"--lora-r needs peft: pip install -e '.[train]' ({exc})") from exc
        # Adds the LoRA layers into `model` in place: the forward passes below go through them.
        peft_model = get_peft_model(model, LoraConfig(r=config.lora_r, lora_alpha=2 * config.lora_r, lora_dropout=0.0,
                                                      target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
        trained += [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=config.lr)
    stop = tokenizer.convert_tokens_to_ids("<|im_end|>")
    stop_ids = [stop] if isinstance(stop, int) and stop != tokenizer.unk_token_id else [tokenizer.eos_token_id]
    examples = []
    for record in records:
        evidence = assign_labels(gated_evidence(record, gate, config))
        examples.append((record.question, evidence, _target(record, evidence)))
    losses: list[float] = []
    for epoch in range(config.epochs):
        rng.shuffle(examples)
        bar = tqdm(examples, desc=f"soft prompt epoch {epoch + 1}/{config.epochs}", unit="q", disable=not progress)
        for question, evidence, target in bar:
            prompt = soft.prompt_embeds(question, evidence)
            target_ids = torch.tensor(tokenizer(target, add_special_tokens=False)["input_ids"] + stop_ids)
            embeds = torch.cat([prompt, model.get_input_embeddings()(target_ids).unsqueeze(0)], dim=1)
            logits = model(inputs_embeds=embeds).logits[0, prompt.shape[1] - 1 : -1].float()
            loss = torch.nn.functional.cross_entropy(logits, target_ids)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
    soft.net.eval()
    if peft_model is not None:
        folder = Path(out).with_suffix(".adapter")
        peft_model.save_pretrained(str(folder), safe_serialization=True)
        soft.meta["adapter"] = folder.name
    soft.save(out, asdict(config))
    head = losses[: max(1, len(examples) // 5)]
    tail = losses[-max(1, len(examples) // 5) :]
    return {"out": str(out), "examples": len(examples), "steps": len(losses),
            "loss_first": round(sum(head) / len(head), 4), "loss_last": round(sum(tail) / len(tail), 4)}
