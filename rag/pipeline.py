"""`QAPipeline`: loads an index and its components, and answers questions. It composes components and
nothing else: retrieval lives in `kg` and `rag.retrievers`, answer logic in `rag.answering`, the model in
`rag.reader`.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from langchain_core.runnables import Runnable, RunnableConfig

from indexes.build import KG_PASSAGE_SOURCE
from indexes.embedder import Embedder
from indexes.store import LoadedIndex, load_index
from kg.retrieval import KGRetriever
from rag import answering, path_choice
from rag.config import MAX_QUESTION_CHARS, PipelineConfig, make_config
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
        self.kg = (
            KGRetriever(index.graph, embedder, config.kg, entity_vectors=index.entity_vectors)
            if index.graph is not None and config.use_kg
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
            if self.config.kg_reader_choice and self.reader is not None and len(subgraph.alternatives) > 1:
                started = time.perf_counter()
                subgraph, _ = path_choice.choose_path(self.reader, question, subgraph)
                timings["choice"] = time.perf_counter() - started
            answer = answering.kg_answer(question, subgraph, max_answers=self.config.max_answers)
            return self._timed(answer, timings)

        started = time.perf_counter()
        passages = self._dense(question)
        timings["dense"] = time.perf_counter() - started
        if subgraph is not None and subgraph.confidence < self.config.min_kg_evidence_confidence:
            subgraph = None  # a word linked by chance ("war") brings only noise
        evidence = answering.make_evidence(subgraph, passages, max_triples=self.config.max_kg_evidence)
        if self.reader is None:
            return self._timed(answering.refusal(question, evidence, method="kg"), timings)

        started = time.perf_counter()
        output = self.reader.read(question, evidence, instruction=instruction)
        timings["reader"] = time.perf_counter() - started
        supported = answering.supported_by(output.text, evidence)
        confidence = answering.reader_confidence(output, supported)
        if output.refused or not output.text:
            return self._timed(answering.refusal(question, evidence, method="reader"), timings)
        if self.config.refusal and confidence < self.config.refusal_threshold:
            return self._timed(answering.refusal(question, evidence, method="refusal", confidence=confidence), timings)
        answer = Answer(
            question=question,
            text=output.text,
            refused=False,
            confidence=confidence,
            citations=tuple(answering.reader_citations(output, evidence)),
            method="reader",
        )
        return self._timed(answer, timings)

    def _dense(self, question: str) -> list[ScoredPassage]:
        if self.dense is None:
            return []
        hits = self.dense.retrieve(question, top_k=self.config.top_k * (2 if self.kg is not None else 1))
        if self.kg is not None:
            # With the KG retriever on, its triples carry the facts the verbalised KG passages repeat.
            hits = [h for h in hits if h.passage.source != KG_PASSAGE_SOURCE]
        if not hits:
            return []
        floor = max(self.config.min_passage_score, self.config.relative_passage_score * hits[0].score)
        return [h for h in hits if h.score >= floor][: self.config.top_k]

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
