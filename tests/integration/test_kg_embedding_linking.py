"""Embedding-based entity linking end to end: the sample build stores entity-name vectors (checksummed in the
manifest), and the KG retriever links a name that exact and fuzzy matching miss, with the real embedder."""

from __future__ import annotations

import pytest

from indexes import layout
from indexes.embedder import Embedder
from indexes.store import load_index
from kg.retrieval import KGRetriever

pytestmark = pytest.mark.integration

QUESTION = "who directed hunchback notre dame"  # words reordered and dropped: no exact or fuzzy match


def test_build_stores_entity_name_vectors(sample_build) -> None:
    manifest = sample_build.manifest
    assert manifest["counts"]["entity_vectors"] == manifest["counts"]["entities"]
    assert layout.ENTITY_VECTORS in manifest["files"]  # so load_index verifies its checksum


def test_retriever_links_by_name_embedding_and_answers(sample_index) -> None:
    index = load_index(sample_index)
    assert index.entity_vectors is not None and index.entity_vectors.shape == (len(index.graph.entities), index.dimension)
    embedder = Embedder(index.embedder_name)

    without = KGRetriever(index.graph, embedder).retrieve(QUESTION)
    assert not without.entities

    subgraph = KGRetriever(index.graph, embedder, entity_vectors=index.entity_vectors).retrieve(QUESTION)
    top = subgraph.entities[0]
    assert (top.name, top.method, top.mention) == ("The Hunchback of Notre Dame", "embedding", "hunchback notre dame")
    assert {"Kirk Wise", "William Dieterle"} <= set(subgraph.candidates)
