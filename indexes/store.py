"""Loading a built index: manifest checks, passages, the FAISS index and the knowledge graph."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

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
    return LoadedIndex(index_dir, manifest, passages, vectors, graph)
