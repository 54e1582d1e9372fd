"""Knowledge graph: parsing triples, the graph store, entity linking and subgraph retrieval."""

from kg.types import LinkedEntity, RelationPath, ScoredTriple, Subgraph, Triple

__all__ = ["LinkedEntity", "RelationPath", "ScoredTriple", "Subgraph", "Triple"]
