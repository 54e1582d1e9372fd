"""The LangChain face of kgrag: retrievers return Documents with ids and scores; the pipeline is a Runnable."""

from __future__ import annotations

import pytest
from langchain_core.documents import Document
from langchain_core.runnables import RunnableLambda

from rag.langchain import DenseDocumentRetriever, KGDocumentRetriever
from rag.types import Answer

pytestmark = pytest.mark.integration


def test_dense_retriever_returns_documents_with_ids_and_scores(kg_only_pipeline) -> None:
    docs = DenseDocumentRetriever.from_pipeline(kg_only_pipeline, top_k=3).invoke("when was son of a preacher man released")
    assert len(docs) == 3
    assert all(isinstance(d, Document) for d in docs)
    assert docs[0].id == docs[0].metadata["id"] == "nq-0099"
    scores = [d.metadata["score"] for d in docs]
    assert scores == sorted(scores, reverse=True)


def test_kg_retriever_returns_the_answer_path_triples_first(kg_only_pipeline) -> None:
    docs = KGDocumentRetriever.from_pipeline(kg_only_pipeline).invoke("Sara Kestelman appears in which movies")
    assert docs, "the KG retriever found no triples"
    first = docs[0].metadata
    assert first["kind"] == "triple"
    assert {first["head"], first["tail"]} == {"Zardoz", "Sara Kestelman"}
    assert kg_only_pipeline.index.graph.entity_ids.get(first["head"]) is not None


def test_pipeline_is_a_runnable_that_composes(kg_only_pipeline) -> None:
    chain = kg_only_pipeline | RunnableLambda(lambda answer: answer.text.upper())
    assert chain.invoke("Sara Kestelman appears in which movies") == "ZARDOZ"
    answer = kg_only_pipeline.invoke({"question": "Sara Kestelman appears in which movies"})
    assert isinstance(answer, Answer) and not answer.refused
