"""Typed pipeline configuration and the named presets. The only place a preset name becomes settings."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any, Literal, get_args

from kg.retrieval import KGRetrieverConfig
from rag.chains import ChainConfig
from rag.defense import DefenseConfig
from rag.errors import InputError
from rag.reader import ReaderConfig

Preset = Literal["default", "vanilla", "kg-only"]
PRESETS: tuple[str, ...] = get_args(Preset)
MAX_QUESTION_CHARS = 2000


@dataclass(frozen=True)
class PipelineConfig:
    preset: Preset = "default"
    top_k: int = field(default=5, metadata={"help": "dense passages given to the reader"})
    use_kg: bool = True
    use_reader: bool = True
    # KG candidates answer directly when the retriever is at least this sure of the relation path.
    kg_answer_threshold: float = 0.35
    max_answers: int = field(default=10, metadata={"help": "entities listed when a KG answer is a set"})
    # When the KG leaves several near-equal relation paths with different answers, let the reader choose among
    # them by log-likelihood (rag.path_choice); needs a reader. See docs/RESULTS.md for the measured effect.
    kg_reader_choice: bool = False
    # A first relevance gate on dense hits (the learned gate is future work): keep a passage when its cosine
    # similarity reaches `min_passage_score` and `relative_passage_score` x the best hit's.
    min_passage_score: float = 0.3
    relative_passage_score: float = 0.6
    # Triples reach the reader only when the question matched a KG path at least this well.
    min_kg_evidence_confidence: float = 0.1
    max_kg_evidence: int = field(default=12, metadata={"help": "triples shown to the reader"})
    # Keep retrieved texts that give the reader orders out of its evidence, and re-read without the texts an
    # answer was only obeyed from (rag.injection). Off in vanilla: plain RAG is the baseline it is measured against.
    injection_guard: bool = True
    # DPA-RAG reranker and Amar-style gate (rag.rerank, rag.gate). None = on when trained weights are found
    # (reranker: `reranker_path`, else INDEX/models/reranker, else the user cache's reranker/; gate: `gate_path`,
    # else INDEX/models/gate.safetensors). True = required (an error names the training command when missing).
    use_reranker: bool | None = None
    use_gate: bool | None = None
    reranker_path: str | None = None
    gate_path: str | None = None
    rerank_pool: int = field(default=20, metadata={"help": "dense candidates the reranker reorders"})
    gate_pool: int = field(default=10, metadata={"help": "best candidates the gate weighs (it was trained on 10)"})
    gate_triple_pool: int = field(default=50, metadata={"help": "KG subgraph triples the gate weighs"})
    # Which aspects a loaded gate weighs (measured: it helps on KG triples, and costs answer recall on multi-hop
    # text passages; docs/RESULTS.md).
    gate_on_triples: bool = True
    gate_on_passages: bool = True
    gate_threshold: float | None = field(default=None, metadata={"help": "None = the threshold learned with the gate"})
    # Multi-hop passage selection (rag.chains): second-hop queries from the best first-hop passages, then the reader
    # sees the passage nearest the question and the candidate that scores best with it (or that passage alone) instead
    # of the top_k. None = on unless a trained passage reranker or passage gate is loaded (they select the passages
    # then; the gate weighs triples either way); True = chains even then; False = the dense top_k. Measured in
    # docs/RESULTS.md ("Two-passage chains").
    passage_chains: bool | None = None
    chains: ChainConfig = field(default_factory=ChainConfig)
    # Amar's original form (rag.soft_prompt): gated evidence embeddings as soft prompt vectors in front of the
    # text prompt. None = off; a path = the projector trained by `python -m rag.align train-soft-prompt`.
    soft_prompt_path: str | None = None
    # The reader's LoRA-DPO adapter (python -m rag.train_reader train --out INDEX/models/reader-lora). None = on
    # when that folder holds one and `reader.adapter` is unset; True = required; False = the base reader.
    use_reader_adapter: bool | None = None
    refusal: bool = True
    # Answer.confidence is the packaged calibrated model's (rag.calibration, shipped since stop 22) when one ships
    # and this is True, else the hand-set rule (answering.reader_confidence). The reader's answer is kept when
    # confidence reaches the threshold: None = the calibration's own (chosen on dev), or 0.4 with the hand-set rule.
    calibrated: bool = True
    refusal_threshold: float | None = None
    # Cross-check an answer that a coordinated group of near-duplicate passages asserts (rag.defense).
    poison_defense: bool = True
    defense: DefenseConfig = field(default_factory=DefenseConfig)
    # Weigh the sides the shown passages take on a yes/no question (rag.stance): report opposite sides as a
    # conflict and follow the passages when all that take a side take the other one. None = on when a trained
    # stance model is found (`stance_path`, else INDEX/models/stance, else the user cache's stance/); True =
    # required. A passage takes a side when the model gives that side at least `stance_threshold`.
    use_stance: bool | None = None
    stance_path: str | None = None
    stance_threshold: float = 0.7
    # When as many independent passages say yes as say no, the answer rests on the reader's pick alone: its
    # confidence is at most this (0.5: the evidence favours neither side). Below the refusal threshold, such a tie
    # is refused instead.
    stance_tie_confidence: float = 0.5
    reader: ReaderConfig = field(default_factory=ReaderConfig)
    kg: KGRetrieverConfig = field(default_factory=KGRetrieverConfig)
    verify_checksums: bool = True
    use_gpu: bool | None = None

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise InputError(f"preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        if not isinstance(self.top_k, int) or self.top_k <= 0:
            raise InputError(f"top_k must be greater than 0, got {self.top_k!r}")
        if self.max_answers <= 0:
            raise InputError(f"max_answers must be greater than 0, got {self.max_answers!r}")
        for name in ("kg_answer_threshold", "refusal_threshold", "relative_passage_score", "min_kg_evidence_confidence",
                     "stance_threshold", "stance_tie_confidence"):
            value = getattr(self, name)
            if value is None and name == "refusal_threshold":
                continue
            if not 0.0 <= value <= 1.0:
                raise InputError(f"{name} must be in [0, 1], got {value!r}")
        for name in ("rerank_pool", "gate_pool", "gate_triple_pool"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                raise InputError(f"{name} must be greater than 0, got {getattr(self, name)!r}")
        if self.gate_threshold is not None and not 0.0 <= self.gate_threshold <= 1.0:
            raise InputError(f"gate_threshold must be in [0, 1], got {self.gate_threshold!r}")
        if not self.use_kg and not self.use_reader:
            raise InputError("a pipeline needs the KG or the reader (use_kg and use_reader are both off)")
        if self.reader.server_url and (self.kg_reader_choice or self.soft_prompt_path or self.use_reader_adapter):
            raise InputError("kg_reader_choice, soft_prompt_path and use_reader_adapter need a local reader; "
                             "a reader server (reader_server_url) gives answers only")


_PRESET_SETTINGS: dict[str, dict[str, Any]] = {
    "default": {},
    # Plain RAG: dense top-k passages straight into the same reader; no KG, no refusal logic.
    "vanilla": {
        "use_kg": False,
        "refusal": False,
        "injection_guard": False,
        "poison_defense": False,
        "min_passage_score": 0.0,
        "relative_passage_score": 0.0,
        "use_reranker": False,
        "use_gate": False,
        "use_reader_adapter": False,
        "use_stance": False,
        "passage_chains": False,
    },
    # Structure only: KG candidates, no reader; refuses when the KG has no answer.
    "kg-only": {"use_reader": False},
}


def make_config(preset: str = "default", **options: Any) -> PipelineConfig:
    """A config from a preset plus keyword overrides; `reader="smollm2-135m-instruct"` etc. are shortcuts."""
    if preset not in PRESETS:
        raise InputError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    reader_options = {k[len("reader_"):]: options.pop(k) for k in list(options) if k.startswith("reader_")}
    if isinstance(options.get("reader"), str):
        reader_options["model"] = options.pop("reader")
    if "device" in options:
        reader_options.setdefault("device", options.pop("device"))
    # "section.field" sets one field of a nested config: chains.partner_share=0.9, defense.pool_size=20, ...
    nested: dict[str, dict[str, Any]] = {}
    for key in [k for k in options if "." in k]:
        section, _, name = key.partition(".")
        nested.setdefault(section, {})[name] = options.pop(key)
    known = {f.name for f in fields(PipelineConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise InputError(f"unknown pipeline option(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    config = PipelineConfig(preset=preset, **{**_PRESET_SETTINGS[preset], **options})
    if reader_options:
        nested["reader"] = {**reader_options, **nested.get("reader", {})}
    for section, values in nested.items():
        current = getattr(config, section, None)
        if section not in known or not is_dataclass(current):
            raise InputError(f"unknown pipeline option section {section!r}; sections: {', '.join(_sections(config))}")
        names = {f.name for f in fields(current)}
        wrong = sorted(set(values) - names)
        if wrong:
            raise InputError(f"unknown {section} option(s): {', '.join(wrong)}; known: {', '.join(sorted(names))}")
        config = replace(config, **{section: replace(current, **values)})
    return config


def _sections(config: PipelineConfig) -> list[str]:
    return [f.name for f in fields(config) if is_dataclass(getattr(config, f.name))]
