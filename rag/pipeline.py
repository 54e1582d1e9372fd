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
from rag import answering, calibration, injection
from rag.config import MAX_QUESTION_CHARS, PipelineConfig, make_config
from rag.defense import PoisonDefense
from rag.errors import InputError
from rag.reader import TransformersReader
from rag.retrievers import DenseRetriever
from rag.types import Answer, ScoredPassage


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
        reader: TransformersReader | None,
    ) -> None:
        self.index = index
        self.config = config
        self.embedder = embedder
        self.reader = reader
        self.dense = DenseRetriever(index.passages, index.vectors, embedder) if index.vectors is not None else None
        self.kg = KGRetriever(index.graph, embedder, config.kg) if index.graph is not None and config.use_kg else None
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
        reader = TransformersReader(config.reader) if config.use_reader else None
        if reader is not None:
            reader.validate()
        return cls(index, config, embedder=embedder, reader=reader)

    def warm_up(self) -> None:
        """Load every model now rather than on the first question."""
        with self._warm_lock:
            if self._warm:
                return
            if self.kg is not None:
                self.kg.warm_up()
            if self.reader is not None:
                self.reader.warm_up()
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
            answer = answering.kg_answer(question, subgraph, max_answers=self.config.max_answers)
            return self._timed(answer, timings)

        started = time.perf_counter()
        # The defense looks for a planted group in a wider pool; the reader still sees the top_k.
        pool = self._dense(question, top_k=self._pool_size())
        if self.config.injection_guard:  # a passage that gives orders is no source, for the reader or the defense
            pool = [h for h in pool if not injection.inspect(f"{h.passage.title}\n{h.passage.text}").suspicious]
        passages = pool[: self.config.top_k]
        timings["dense"] = time.perf_counter() - started
        if subgraph is not None and subgraph.confidence < self.config.min_kg_evidence_confidence:
            subgraph = None  # a word linked by chance ("war") brings only noise
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
        conflicts: tuple = ()
        method = "reader"
        # A user instruction may state a counterfactual premise on purpose: it is followed, not cross-checked.
        if self.defense is not None and not instruction:
            started = time.perf_counter()
            trusted = [e for e in evidence if e.aspect == "triple"]
            pool_evidence = answering.make_evidence(None, pool, max_triples=0)
            verdict = self.defense.check(question, output, pool_evidence, trusted=trusted)
            timings["defense"] = time.perf_counter() - started
            conflicts = verdict.conflicts
            if verdict.action == "refuse":
                answer = answering.refusal(question, evidence, method="defense")
                return self._timed(replace(answer, conflicts=conflicts), timings)
            if verdict.action == "switch" and verdict.output is not None:
                output, evidence, method = verdict.output, list(verdict.evidence), "defense"
        signals = calibration.signals(
            output, evidence, kg_confidence=subgraph.confidence if subgraph else 0.0, instruction=instruction
        )
        confidence, threshold = self._confidence(output, signals)
        if self.config.refusal and confidence < threshold:
            refused = answering.refusal(question, evidence, method="refusal", confidence=confidence)
            return self._timed(replace(refused, conflicts=conflicts, signals=signals), timings)
        answer = Answer(
            question=question,
            text=output.text,
            refused=False,
            confidence=confidence,
            citations=tuple(answering.reader_citations(output, evidence)),
            conflicts=conflicts,
            method=method,
            signals=signals,
        )
        return self._timed(answer, timings)

    def _confidence(self, output, signals: dict[str, float]) -> tuple[float, float]:
        """(confidence, refusal threshold): the calibrated model's when one ships, else the hand-set rule."""
        model = calibration.packaged_model() if self.config.calibrated else None
        if model is not None:
            threshold = self.config.refusal_threshold if self.config.refusal_threshold is not None else model.threshold
            return model.confidence(signals), threshold
        threshold = self.config.refusal_threshold if self.config.refusal_threshold is not None else 0.4
        return answering.reader_confidence(output, bool(signals["supported"])), threshold

    def _pool_size(self) -> int:
        if self.defense is None:
            return self.config.top_k
        return max(self.config.top_k, self.config.defense.pool_size)

    def _dense(self, question: str, *, top_k: int | None = None) -> list[ScoredPassage]:
        if self.dense is None:
            return []
        top_k = top_k or self.config.top_k
        hits = self.dense.retrieve(question, top_k=top_k * (2 if self.kg is not None else 1))
        if self.kg is not None:
            # With the KG retriever on, its triples carry the facts the verbalised KG passages repeat.
            hits = [h for h in hits if h.passage.source != KG_PASSAGE_SOURCE]
        if not hits:
            return []
        floor = max(self.config.min_passage_score, self.config.relative_passage_score * hits[0].score)
        return [h for h in hits if h.score >= floor][:top_k]

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
