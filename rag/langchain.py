"""LangChain adapters: kgrag's retrievers as `BaseRetriever`s returning `Document`s (ids and scores in metadata).

    from rag.langchain import DenseDocumentRetriever, KGDocumentRetriever
    retriever = DenseDocumentRetriever.from_pipeline(qa, top_k=5)
    retriever.invoke("Who directed Inception?")   # -> list[Document]

The pipeline itself is a `Runnable` (`QAPipeline.invoke`), so `retriever | prompt | llm` chains and
`qa.invoke(...)` both work in LangChain applications.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from rag.errors import InputError


class DenseDocumentRetriever(BaseRetriever):
    """Top-k passages from the FAISS index."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    dense: Any
    top_k: int = 5

    @classmethod
    def from_pipeline(cls, pipeline: Any, *, top_k: int = 5) -> DenseDocumentRetriever:
        if pipeline.dense is None:
            raise InputError("this index has no passages: there is nothing for a dense retriever to search")
        return cls(dense=pipeline.dense, top_k=top_k)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [
            Document(
                id=hit.passage.id,
                page_content=hit.passage.text,
                metadata={
                    "id": hit.passage.id,
                    "score": hit.score,
                    "title": hit.passage.title,
                    "source": hit.passage.source,
                    "parent_id": hit.passage.parent_id,
                    "kind": "passage",
                },
            )
            for hit in self.dense.retrieve(query, top_k=self.top_k)
        ]


class KGDocumentRetriever(BaseRetriever):
    """The KG subgraph for a question, one `Document` per verbalised triple (answer path first)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    kg: Any

    @classmethod
    def from_pipeline(cls, pipeline: Any) -> KGDocumentRetriever:
        if pipeline.kg is None:
            raise InputError("this pipeline has no knowledge graph (index without triples, or use_kg=False)")
        return cls(kg=pipeline.kg)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        subgraph = self.kg.retrieve(query)
        return [
            Document(
                id=scored.triple.id,
                page_content=scored.triple.verbalize(),
                metadata={
                    "id": scored.triple.id,
                    "score": scored.score,
                    "head": scored.triple.head,
                    "relation": scored.triple.relation,
                    "tail": scored.triple.tail,
                    "kind": "triple",
                },
            )
            for scored in subgraph.triples
        ]
