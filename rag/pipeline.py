"""`QAPipeline`: loads an index and its components, and answers questions. It composes components and
nothing else: retrieval lives in `kg` and `rag.retrievers`, answer logic in `rag.answering`, the model in
`rag.reader`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from langchain_core.runnables import Runnable, RunnableConfig

from indexes.build import KG_PASSAGE_SOURCE
from indexes.embedder import Embedder
from indexes.store import LoadedIndex, load_index
from kg.retrieval import KGRetriever
from kg.types import ScoredTriple, Subgraph
from rag import answering, calibration, chains, injection, path_choice, stance
from rag.config import MAX_QUESTION_CHARS, PipelineConfig, make_config
from rag.defense import PoisonDefense
from rag.errors import InputError, ModelLoadError
from rag.gate import EvidenceGate, GateContext, GateItem, kept_best_first
from rag.models import ADAPTER_CONFIG, ADAPTER_WEIGHTS, resolve_cache_dir
from rag.prefs import passage_text
from rag.reader import ReaderConfig, ReaderOutput, TransformersReader
from rag.rerank import CrossEncoderReranker, reranker_available
from rag.retrievers import DenseRetriever
from rag.server_reader import OpenAIReader
from rag.soft_prompt import SoftPromptReader, adapter_folder
from rag.stance import TRAIN_COMMAND, StanceModel, stance_available
from rag.types import Answer, Conflict, Evidence, ScoredPassage


def validate_question(question: object) -> str:
    if not isinstance(question, str):
        raise InputError(f"question must be a string, got {type(question).__name__}")
    stripped = question.strip()
    if not stripped:
        raise InputError("question is empty")
    if len(stripped) > MAX_QUESTION_CHARS:
        raise InputError(f"question is too long: {len(stripped)} characters (at most {MAX_QUESTION_CHARS})")
    return stripped


class QAPipeline(Runnable[Any, Answer]):
    """Question answering over one index. Thread-safe: one instance may serve many concurrent askers."""

    def __init__(
        self,
        index: LoadedIndex,
        config: PipelineConfig,
        *,
        embedder: Embedder,
        reader: TransformersReader | SoftPromptReader | OpenAIReader | None,
        reranker: CrossEncoderReranker | None = None,
        gate: EvidenceGate | None = None,
        stance_model: StanceModel | None = None,
    ) -> None:
        self.index = index
        self.reranker = reranker
        self.gate = gate
        self.stance = stance_model
        self.config = config
        self.embedder = embedder
        self.reader = reader
        self.dense = DenseRetriever(index.passages, index.vectors, embedder) if index.vectors is not None else None
        self.kg = (
            KGRetriever(index.graph, embedder, config.kg, entity_vectors=index.entity_vectors)
            if index.graph is not None and config.use_kg
            else None
        )
        self.defense = (
            PoisonDefense(config.defense, encoder=embedder, reader=reader)
            if config.poison_defense and reader is not None
            else None
        )
        self._warm_lock = threading.Lock()
        self._warm = False

    @classmethod
    def load(cls, index_dir: str | Path, *, preset: str = "default", **options: Any) -> QAPipeline:
        """Load an index and the components its preset needs. Options override `PipelineConfig` fields."""
        config = make_config(preset, **options)
        index = load_index(index_dir, verify=config.verify_checksums, use_gpu=config.use_gpu)
        embedder = Embedder(index.embedder_name, device=config.reader.device)
        embedder.warm_up()
        if embedder.dimension != index.dimension:
            raise InputError(
                f"embedder {index.embedder_name!r} gives {embedder.dimension}-d vectors but the index holds {index.dimension}-d"
            )
        reader = make_reader(index_dir, config, embedder)
        reranker, gate = load_alignment(index_dir, config)
        return cls(index, config, embedder=embedder, reader=reader, reranker=reranker, gate=gate,
                   stance_model=load_stance(index_dir, config))

    def warm_up(self) -> None:
        """Load every model now rather than on the first question."""
        with self._warm_lock:
            if self._warm:
                return
            if self.kg is not None:
                self.kg.warm_up()
            if self.reader is not None:
                self.reader.warm_up()
            if self.reranker is not None:
                self.reranker.warm_up()
            if self.gate is not None:
                self.gate.warm_up()
            if self.stance is not None:
                self.stance.warm_up()
            self._warm = True

    # ---- answering ---------------------------------------------------------------------------------------

    def ask(self, question: str, instruction: str | None = None) -> Answer:
        question = validate_question(question)
        if instruction is not None:
            instruction = instruction.strip() or None
            if instruction and len(instruction) > MAX_QUESTION_CHARS:
                raise InputError(f"instruction is too long: {len(instruction)} characters (at most {MAX_QUESTION_CHARS})")
        # Only what every question needs; the reader loads on the first question that reaches it (a CLI call
        # answered from the KG never pays for it). `warm_up()` loads everything up front.
        if self.kg is not None:
            self.kg.warm_up()
        timings: dict[str, float] = {}

        started = time.perf_counter()
        subgraph = self.kg.retrieve(question) if self.kg is not None else None
        timings["kg"] = time.perf_counter() - started

        # A confident KG path answers directly: the answer is the entity set at the end of that path.
        # A user instruction may change the premise, so it always goes through the reader.
        if (
            subgraph is not None
            and subgraph.candidates
            and (subgraph.confidence >= self.config.kg_answer_threshold or self.reader is None)
            and not instruction
        ):
            if self.config.kg_reader_choice and self.reader is not None and len(subgraph.alternatives) > 1:
                started = time.perf_counter()
                subgraph, _ = path_choice.choose_path(self.reader, question, subgraph)
                timings["choice"] = time.perf_counter() - started
            answer = answering.kg_answer(question, subgraph, max_answers=self.config.max_answers)
            return self._timed(answer, timings)

        if subgraph is not None and subgraph.confidence < self.config.min_kg_evidence_confidence:
            subgraph = None  # a word linked by chance ("war") brings only noise
        context = GateContext.from_subgraph(subgraph)  # before the gate trims the triples: what the KG found, whole
        if self.gate is not None and self.config.gate_on_triples and subgraph is not None:
            subgraph, _ = self.gate_triples(question, subgraph, context)
        started = time.perf_counter()
        if self.uses_chains:
            passages, pool = self.select_chain(question)
        elif not self._trained_passage_selection:
            # The defense looks for a planted group in a wider pool; the reader still sees the top_k.
            pool = self._dense(question, top_k=self._pool_size())
            passages = pool[: self.config.top_k]
        else:
            passages, pool = self.select_passages(question, context)
        timings["dense"] = time.perf_counter() - started
        evidence = answering.make_evidence(subgraph, passages, max_triples=self.config.max_kg_evidence)
        if self.config.injection_guard:
            evidence, _ = injection.quarantine(evidence)  # triples too: entity names are user data
        if self.reader is None:
            return self._timed(answering.refusal(question, evidence, method="kg"), timings)

        started = time.perf_counter()
        output = self.reader.read(question, evidence, instruction=instruction)
        if self.config.injection_guard and output.text and not output.refused:
            obeyed = set(injection.answer_from_instructions(output.text, [e.text for e in evidence]))
            if obeyed:  # the answer was copied from an order, not read from a fact: read again without it
                evidence = [e for number, e in enumerate(evidence) if number not in obeyed]
                output = self.reader.read(question, evidence, instruction=instruction)
        timings["reader"] = time.perf_counter() - started
        if output.refused or not output.text:
            return self._timed(answering.refusal(question, evidence, method="reader"), timings)
        conflicts: tuple[Conflict, ...] = ()
        method = "reader"
        polar = answering.polar_answer(question, output.text)
        # A user instruction may state a counterfactual premise on purpose: it is followed, not cross-checked.
        if self.defense is not None and not instruction:
            started = time.perf_counter()
            trusted = [e for e in evidence if e.aspect == "triple"]
            pool_evidence = answering.make_evidence(None, pool, max_triples=0)
            verdict = self.defense.check(question, output, pool_evidence, trusted=trusted, polar=polar)
            timings["defense"] = time.perf_counter() - started
            conflicts = verdict.conflicts
            if verdict.action == "refuse":
                answer = answering.refusal(question, evidence, method="defense")
                return self._timed(replace(answer, conflicts=conflicts), timings)
            if verdict.action == "switch" and verdict.output is not None:
                output, evidence, method = verdict.output, list(verdict.evidence), "defense"
        cited: list[Evidence] | None = None
        tied = False
        if self.stance is not None and polar and method == "reader" and not instruction:
            started = time.perf_counter()
            output, sides, followed = self._weigh_stances(question, output, evidence, pool)
            timings["stance"] = time.perf_counter() - started
            conflicts += sides.conflicts
            cited, tied = list(sides.evidence), sides.tied
            method = "stance" if followed else method
        signals = calibration.signals(output, evidence, question=question,
                                      kg_confidence=subgraph.confidence if subgraph else 0.0, instruction=instruction)
        confidence, threshold = self._confidence(output, signals)
        if tied:  # the passages are split evenly: nothing but the reader's pick stands behind the answer
            confidence = min(confidence, self.config.stance_tie_confidence)
        if self.config.refusal and confidence < threshold:
            refused = answering.refusal(question, evidence, method="refusal", confidence=confidence)
            return self._timed(replace(refused, conflicts=conflicts, signals=signals), timings)
        answer = Answer(
            question=question,
            text=output.text,
            refused=False,
            confidence=confidence,
            citations=tuple(answering.cite(cited) if cited else answering.reader_citations(
                output, evidence, polar=answering.polar_answer(question, output.text))),
            conflicts=conflicts,
            method=method,
            signals=signals,
        )
        return self._timed(answer, timings)

    def _weigh_stances(self, question: str, output: ReaderOutput, evidence: list[Evidence],
                       pool: list[ScoredPassage]) -> tuple[ReaderOutput, stance.PolarVerdict, bool]:
        """(output, the verdict: conflicts and the passages the answer rests on, whether the answer now follows the
        passages rather than the reader) for a yes/no answer, from the sides the shown passages take (rag.stance);
        `pool`: the wider set of passages the defense examines, where a planted group shows itself."""
        assert self.stance is not None
        shown = [e for e in evidence if e.aspect == "passage"]
        if not shown:
            return output, stance.PolarVerdict("", "no passage shown"), False
        texts = [e.text for e in shown]
        stances = self.stance.stances(question, texts)
        pool_texts = [e.text for e in answering.make_evidence(None, pool, max_triples=0)]
        vectors = self.embedder.encode(texts + pool_texts)
        defense = self.config.defense
        grouped = stance.in_pool_group(vectors[: len(texts)], vectors[len(texts):],
                                       defense.coordination_similarity, defense.min_group)
        verdict = stance.polar_verdict(output.text, shown, stances, vectors[: len(texts)],
                                       threshold=self.config.stance_threshold,
                                       similarity=defense.coordination_similarity,
                                       min_group=defense.min_group, grouped=grouped)
        if verdict.answer and verdict.answer != stance.side_of(output.text):
            certainty = max(stances[shown.index(e)][verdict.answer] for e in verdict.evidence)
            return stance.follow(output, verdict.answer, certainty), verdict, True
        return output, verdict, False

    def _confidence(self, output, signals: dict[str, float]) -> tuple[float, float]:
        """(confidence, refusal threshold) of a reader answer (rag.calibration.confidence_rule)."""
        model = calibration.packaged_model() if self.config.calibrated else None
        return calibration.confidence_rule(output, signals, model, reader=self._plain_reader(),
                                           refusal_threshold=self.config.refusal_threshold)

    def _plain_reader(self) -> str | None:
        """The local reader's model name when it reads as packaged: the calibrated model was fitted on such a reader's
        answers, and a server, an adapter or soft prompts make another reader."""
        plain = type(self.reader) is TransformersReader and self.reader.config.adapter is None
        return self.reader.config.model if plain else None

    def components(self) -> dict[str, str | None]:
        """What this pipeline's answers rest on besides the packaged embedder: the reader, and each trained piece by
        where it was loaded from (None = not used). `rag eval --out` saves it as components.json; the UI shows it."""
        reader = self.reader
        if reader is None:
            reader_name = None
        elif isinstance(reader, OpenAIReader):
            reader_name = f"{reader.config.server_model or 'the served model'} at {reader.config.server_url}"
        else:
            reader_name = reader.config.model
        model = calibration.packaged_model() if self.config.calibrated else None
        calibrated = reader is not None and model is not None and model.fits(self._plain_reader())
        return {
            "reader": reader_name,
            "reader_adapter": reader.config.adapter if reader is not None else None,
            "soft_prompt": str(reader.path) if isinstance(reader, SoftPromptReader) else None,
            "reranker": str(self.reranker.folder) if self.reranker is not None else None,
            "gate": str(self.gate.path) if self.gate is not None else None,
            "stance": str(self.stance.folder) if self.stance is not None else None,
            "confidence": ("calibrated model " + calibration.PACKAGED if calibrated
                           else "hand-set rule" if reader is not None else None),
        }

    @property
    def uses_chains(self) -> bool:
        """Whether the reader's passages come from `select_chain` (PipelineConfig.passage_chains: None = unless a
        trained passage reranker or passage gate selects them)."""
        if self.config.passage_chains is not None:
            return self.config.passage_chains
        return not self._trained_passage_selection

    @property
    def _trained_passage_selection(self) -> bool:
        """A trained passage reranker or passage gate is loaded: `select_passages` picks the reader's passages."""
        return self.reranker is not None or (self.gate is not None and self.config.gate_on_passages)

    def _pool_size(self) -> int:
        if self.defense is None:
            return self.config.top_k
        return max(self.config.top_k, self.config.defense.pool_size)

    def _dense(self, question: str, *, top_k: int | None = None) -> list[ScoredPassage]:
        if self.dense is None:
            return []
        hits = self._candidates(question, top_k or self.config.top_k)
        if not hits:
            return []
        floor = max(self.config.min_passage_score, self.config.relative_passage_score * hits[0].score)
        return [h for h in hits if h.score >= floor]

    def _without_orders(self, hits: list[ScoredPassage]) -> list[ScoredPassage]:
        """A passage that gives the reader orders is no source, for the reader or the defense (rag.injection)."""
        if not self.config.injection_guard:
            return hits
        return [h for h in hits if not injection.inspect(f"{h.passage.title}\n{h.passage.text}").suspicious]

    def gate_triples(self, question: str, subgraph: Subgraph,
                     context: GateContext | None = None) -> tuple[Subgraph, list[float]]:
        """The Amar gate over the triple aspect: (the subgraph keeping the triples weighted above the threshold,
        highest weight first, possibly none, each scored by its gate weight; the weights of the first
        `gate_triple_pool` triples in retrieval order, for diagnostics)."""
        scored = subgraph.triples[: self.config.gate_triple_pool]
        items = [GateItem("triple", st.triple.verbalize(), st.score, None, st.triple.head) for st in scored]
        weights = self.gate.weights(question, items, context or GateContext.from_subgraph(subgraph))
        kept = kept_best_first(weights, self.gate.threshold_for("triple"))
        return replace(subgraph, triples=tuple(ScoredTriple(scored[k].triple, round(weights[k], 4)) for k in kept)), weights

    def select_passages(self, question: str, context: GateContext | None = None) -> tuple[list[ScoredPassage], list[ScoredPassage]]:
        """Rerank + gate stage between dense retrieval and `make_evidence`: (kept passages for the reader,
        the whole scored candidate pool for diagnostics). Stage scores go into `ScoredPassage.scores`.
        `context` is what the KG aspects tell the gate (`GateContext.from_subgraph`)."""
        if self.dense is None:
            return [], []
        pool_size = max(self.config.rerank_pool if self.reranker is not None else self.config.gate_pool, self.config.top_k)
        hits = self._candidates(question, pool_size)
        if self.reranker is not None and hits:
            scores = self.reranker.score(question, [passage_text(h) for h in hits])
            fused = self.reranker.fuse([h.score for h in hits], scores)
            hits = [ScoredPassage(h.passage, h.score, {**h.scores, "rerank": round(s, 4), "fused": round(f, 4)})
                    for h, s, f in zip(hits, scores, fused)]
            hits.sort(key=lambda h: -h.scores["fused"])
        if self.gate is None or not self.config.gate_on_passages:
            return hits[: self.config.top_k], hits
        candidates = hits[: self.config.gate_pool]
        items = [GateItem("passage", passage_text(h), h.score, h.scores.get("rerank"), h.passage.title) for h in candidates]
        weights = self.gate.weights(question, items, context)
        candidates = [ScoredPassage(h.passage, h.score, {**h.scores, "gate": round(w, 4)}) for h, w in zip(candidates, weights)]
        # Highest weight first: the gate picks the reader's top_k from its whole pool, not the first ones it keeps.
        kept = [candidates[k] for k in kept_best_first(weights, self.gate.threshold_for("passage"))]
        return kept[: self.config.top_k], candidates + hits[len(candidates) :]

    def select_chain(self, question: str) -> tuple[list[ScoredPassage], list[ScoredPassage]]:
        """Multi-hop passage selection (rag.chains): (the best two-passage chain for the reader, every candidate
        of both hops, closest to the question first, for the poison defense and diagnostics)."""
        if self.dense is None:
            return [], []
        settings = self.config.chains
        first_hop = self._candidates(question, settings.pool)
        candidates = {chains.document_id(h): h for h in first_hop}
        for seed in first_hop[: settings.seeds]:
            query = chains.second_hop_query(question, seed.passage, settings.seed_chars)
            for hit in self._candidates(query, settings.second_hop):
                candidates.setdefault(chains.document_id(hit), hit)
        if not candidates:
            return [], []
        # Second-hop hits were scored against another query: score every candidate against the question itself.
        vectors = self.embedder.encode([h.passage.text for h in candidates.values()] + [question])
        pool = [ScoredPassage(h.passage, round(float(score), 4), {**h.scores, "question": round(float(score), 4)})
                for h, score in zip(candidates.values(), vectors[:-1] @ vectors[-1])]
        chain = chains.best_chain(question, pool, [h.score for h in pool], settings)
        ranked = sorted(pool, key=lambda h: -h.score)
        # The dense stage's absolute floor applies to the passage nearest the question: below it the question is off
        # the corpus and the reader should see nothing (it then refuses). The bridge passage is exempt: it is far
        # from the question by nature.
        if not chain or chain[0].score < self.config.min_passage_score:
            return [], ranked
        return chain, ranked

    def _candidates(self, query: str, count: int) -> list[ScoredPassage]:
        """Dense hits for `query` without the verbalised KG passages (with the KG retriever on, its triples carry
        the facts those repeat) and without passages that give orders; no score floor."""
        hits = self.dense.retrieve(query, top_k=count * (2 if self.kg is not None else 1))
        if self.kg is not None:
            hits = [h for h in hits if h.passage.source != KG_PASSAGE_SOURCE]
        return self._without_orders(hits)[:count]

    @staticmethod
    def _timed(answer: Answer, timings: dict[str, float]) -> Answer:
        timings["total"] = sum(timings.values())
        answer.timings.update({k: round(v, 4) for k, v in timings.items()})
        return answer

    # ---- LangChain Runnable ------------------------------------------------------------------------------

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Answer:  # noqa: A002
        """`pipeline.invoke("question")` or `pipeline.invoke({"question": ..., "instruction": ...})`."""
        if isinstance(input, dict):
            return self.ask(input.get("question", ""), instruction=input.get("instruction"))
        return self.ask(input)


def make_reader(index_dir: str | Path, config: PipelineConfig,
                embedder: Embedder) -> TransformersReader | SoftPromptReader | OpenAIReader | None:
    """The reader the config names: a reader server, or the local model with its adapter and soft prompt."""
    if not config.use_reader:
        return None
    if config.reader.server_url:
        return OpenAIReader(config.reader)  # no network here: warm_up() or the first question reaches the server
    reader = TransformersReader(aligned_reader_config(index_dir, config))
    reader.validate()
    return SoftPromptReader(reader, embedder, config.soft_prompt_path) if config.soft_prompt_path else reader


def soft_prompt_reader_config(config: PipelineConfig) -> ReaderConfig:
    """The reader's config, with the LoRA adapter trained together with the soft-prompt projector, if any."""
    if not config.soft_prompt_path:
        return config.reader
    if not Path(config.soft_prompt_path).is_file():
        raise ModelLoadError(f"soft_prompt_path {config.soft_prompt_path}: no such file; train one with: "
                             "python -m rag.align train-soft-prompt")
    adapter = adapter_folder(config.soft_prompt_path)
    if adapter is None:
        return config.reader
    if config.reader.adapter and Path(config.reader.adapter).resolve() != adapter.resolve():
        raise InputError(f"the soft prompt {config.soft_prompt_path} was trained with the reader adapter {adapter}, "
                         f"but the reader is set to {config.reader.adapter}: use one")
    return replace(config.reader, adapter=str(adapter))


READER_ADAPTER_DIR = "reader-lora"


def aligned_reader_config(index_dir: str | Path, config: PipelineConfig) -> ReaderConfig:
    """The reader's config with its LoRA adapter: the one named in the config (or trained with the soft prompt),
    else INDEX/models/reader-lora when it holds one and `use_reader_adapter` is not False."""
    reader = soft_prompt_reader_config(config)
    if reader.adapter or config.use_reader_adapter is False:
        return reader
    folder = Path(index_dir) / "models" / READER_ADAPTER_DIR
    if (folder / ADAPTER_CONFIG).is_file() and (folder / ADAPTER_WEIGHTS).is_file():
        return replace(reader, adapter=str(folder))
    if config.use_reader_adapter:
        raise ModelLoadError(f"use_reader_adapter is on but no adapter in {folder}; train one with: "
                             f"python -m rag.train_reader train --prefs PREFS --out {folder}")
    return reader


def load_alignment(index_dir: str | Path, config: PipelineConfig) -> tuple[CrossEncoderReranker | None, EvidenceGate | None]:
    """The reranker and gate the config asks for: None in the config = on when trained weights are found."""
    reranker = gate = None
    if config.use_reranker is not False:
        candidates = [Path(config.reranker_path)] if config.reranker_path else [
            Path(index_dir) / "models" / "reranker", resolve_cache_dir() / "reranker"]
        found = next((c for c in candidates if reranker_available(c)), None)
        if found is not None:
            reranker = CrossEncoderReranker(found, device="cpu")
        elif config.use_reranker:
            raise ModelLoadError(f"use_reranker is on but no trained reranker in {', '.join(map(str, candidates))}; "
                                 "train one with: python -m rag.align train-reranker")
    if config.use_gate is not False:
        # Weights are trained per deployment (python -m rag.align train-gate), never shipped in git.
        candidates = [Path(config.gate_path)] if config.gate_path else [Path(index_dir) / "models" / "gate.safetensors"]
        found = next((c for c in candidates if c.is_file()), None)
        if found is not None:
            gate = EvidenceGate(found, threshold=config.gate_threshold)
        elif config.use_gate:
            raise ModelLoadError(f"use_gate is on but no gate weights in {', '.join(map(str, candidates))}; "
                                 "train them with: python -m rag.align train-gate")
    return reranker, gate


def load_stance(index_dir: str | Path, config: PipelineConfig) -> StanceModel | None:
    """The yes/no stance model the config asks for: None in the config = on when trained weights are found."""
    if config.use_stance is False or not config.use_reader:
        return None
    candidates = [Path(config.stance_path)] if config.stance_path else [
        Path(index_dir) / "models" / "stance", resolve_cache_dir() / "stance"]
    found = next((c for c in candidates if stance_available(c)), None)
    if found is None and config.use_stance:
        raise ModelLoadError(f"use_stance is on but no trained stance model in {', '.join(map(str, candidates))}; "
                             f"train one with: {TRAIN_COMMAND}")
    return StanceModel(found, device="cpu") if found is not None else None
