"""Loading a built index: manifest checks, passages, the FAISS index and the knowledge graph."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexes import layout
from indexes.vector import VectorIndex
from kg.graph import KnowledgeGraph
from rag.errors import IndexLoadError
from rag.types import Passage


@dataclass
class LoadedIndex:
    path: Path
    manifest: dict
    passages: list[Passage]
    vectors: VectorIndex | None
    graph: KnowledgeGraph | None
    # Entity-name embeddings computed at build time (None when the build skipped them, e.g. a very large KG).
    entity_vectors: np.ndarray | None = None

    @property
    def embedder_name(self) -> str:
        return self.manifest["embedder"]["name"]

    @property
    def dimension(self) -> int:
        return int(self.manifest["embedder"]["dimension"])


def load_index(
    index_dir: str | Path, *, verify: bool = True, use_gpu: bool | None = None, nprobe: int | None = None
) -> LoadedIndex:
    index_dir = Path(index_dir)
    version = layout.live_version(index_dir)
    manifest = layout.read_manifest(version)
    if verify:
        layout.verify_checksums(version, manifest)
    passages: list[Passage] = []
    vectors = None
    if (version / layout.PASSAGES).is_file():
        with (version / layout.PASSAGES).open(encoding="utf-8") as handle:
            try:
                passages = [Passage.from_dict(json.loads(line)) for line in handle if line.strip()]
            except (ValueError, KeyError) as exc:
                raise IndexLoadError(f"corrupt passage store {version / layout.PASSAGES}: {exc}") from exc
        vectors = VectorIndex.load(version / layout.VECTORS, expected_dimension=int(manifest["embedder"]["dimension"]), use_gpu=use_gpu, nprobe=nprobe)
        if len(vectors) != len(passages):
            raise IndexLoadError(f"index {index_dir}: {len(vectors)} vectors but {len(passages)} passages")
    graph = KnowledgeGraph.load(version / layout.KG_DIR) if (version / layout.KG_DIR).is_dir() else None
    entity_vectors = None
    if graph is not None and (version / layout.ENTITY_VECTORS).is_file():
        try:
            entity_vectors = np.load(version / layout.ENTITY_VECTORS, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise IndexLoadError(f"cannot read {version / layout.ENTITY_VECTORS}: {exc}") from exc
        # Rows must match the entities; the width is checked against the embedder where both meet (the linker),
        # after the pipeline's own embedder-versus-manifest check has named any mismatch.
        if entity_vectors.ndim != 2 or entity_vectors.shape[0] != len(graph.entities):
            raise IndexLoadError(
                f"{version / layout.ENTITY_VECTORS} has shape {entity_vectors.shape}, expected ({len(graph.entities)}, d)"
            )
    return LoadedIndex(index_dir, manifest, passages, vectors, graph, entity_vectors)
