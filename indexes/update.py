"""Incremental updates: add or delete passages and triples without re-embedding what the index already holds.

Atomic like a build: the live version is read, a complete new version folder is written (the old vectors are
copied, only new passages are embedded), then `layout.publish` switches CURRENT. A crash before the switch
leaves the previous version live and loadable; the next build or update removes the leftovers.

Row i of passages.jsonl is FAISS id i, so a deletion rebuilds the FAISS index from the stored vectors
(`all_vectors` + `empty_like`: the same type and training, no re-training). For IVF-PQ the stored vectors are
the decoded codes, and re-encoding a decoded vector gives back (almost always) the same code.

When the index holds verbalised KG passages (`--kg-passages` at build time), the passages of the entities whose
outgoing facts changed are re-verbalised and re-embedded (only those).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexes import layout
from indexes.build import KG_PASSAGE_SOURCE, _embedding_text, entity_display_name, verbalize_entity
from indexes.chunking import ChunkingConfig, chunk_passages
from indexes.embedder import DEFAULT_BATCH_SIZE, Embedder
from indexes.readers import read_passages, read_triples
from indexes.vector import all_vectors, empty_like, read_index_writable, write_index
from kg.graph import KnowledgeGraph
from kg.types import Triple
from rag.errors import InputError
from rag.types import Passage


@dataclass(frozen=True)
class UpdateResult:
    path: Path
    manifest: dict
    added_passages: int
    removed_passages: int
    added_triples: int
    removed_triples: int
    seconds: float


@dataclass
class _Live:
    """The live version, read fully into memory (the FAISS index not memory-mapped: it will be changed)."""

    version: Path
    manifest: dict
    passages: list[Passage]
    vectors: object | None  # a faiss.Index
    graph: KnowledgeGraph | None
    entity_vectors: np.ndarray | None  # row i = graph.entities[i] (embedding entity linking), when built

    @classmethod
    def read(cls, index_dir: Path) -> _Live:
        version = layout.live_version(index_dir)
        manifest = layout.read_manifest(version)
        layout.verify_checksums(version, manifest)
        passages: list[Passage] = []
        vectors = None
        if (version / layout.PASSAGES).is_file():
            with (version / layout.PASSAGES).open(encoding="utf-8") as handle:
                passages = [Passage.from_dict(json.loads(line)) for line in handle if line.strip()]
            vectors = read_index_writable(version / layout.VECTORS)
        graph = KnowledgeGraph.load(version / layout.KG_DIR) if (version / layout.KG_DIR).is_dir() else None
        entity_vectors = None
        if (version / layout.ENTITY_VECTORS).is_file():
            entity_vectors = np.load(version / layout.ENTITY_VECTORS, allow_pickle=False)
        return cls(version, manifest, passages, vectors, graph, entity_vectors)

    @property
    def has_kg_passages(self) -> bool:
        return int(self.manifest.get("counts", {}).get("kg_passages", 0)) > 0


def graph_triples(graph: KnowledgeGraph | None) -> list[Triple]:
    if graph is None:
        return []
    e, r = graph.entities, graph.relations
    return [Triple(e[h], r[rel], e[t]) for h, rel, t in graph.triples.tolist()]


def add_to_index(
    index_dir: str | Path,
    *,
    passages: Sequence[str | Path] = (),
    triples: Sequence[str | Path] = (),
    chunking: ChunkingConfig | None = None,
    device: str = "auto",
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> UpdateResult:
    """Add the passages (JSONL files / folders) and triples (TSV / JSONL files) to the live index."""
    started = time.perf_counter()
    if not passages and not triples:
        raise InputError("add needs at least one of --passages / --triples")
    index_dir = Path(index_dir)
    live = _Live.read(index_dir)
    documents = [p for path in passages for p in read_passages(path)]
    if passages and not documents:
        raise InputError(f"no passages found in {', '.join(map(str, passages))}")
    new_triples = [t for path in triples for t in read_triples(path)]
    if triples and not new_triples:
        raise InputError(f"no triples found in {', '.join(map(str, triples))}")

    known = {p.id for p in live.passages} | {p.parent_id for p in live.passages if p.parent_id}
    clashes = sorted({d.id for d in documents} & known)
    if clashes:
        raise InputError(f"passage ids already in the index: {clashes[:5]} (delete them first to replace them)")
    if len({d.id for d in documents}) != len(documents):
        raise InputError("passage ids must be unique across all --passages inputs")
    new_chunks = list(chunk_passages(documents, chunking or ChunkingConfig()))

    graph = live.graph
    old_triples = graph_triples(graph)
    if new_triples:
        graph = KnowledgeGraph.from_triples(old_triples + new_triples)
    added_triples = (len(graph) if graph is not None else 0) - len(old_triples)
    touched = {t.head for t in new_triples}
    return _publish(
        index_dir, live, graph, new_chunks, remove=set(), touched_heads=touched, device=device, batch_size=batch_size,
        started=started, triple_delta=(added_triples, 0), operation="add",
    )


def delete_from_index(
    index_dir: str | Path,
    *,
    ids: Iterable[str] = (),
    triples: Sequence[str | Path] = (),
    device: str = "auto",
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> UpdateResult:
    """Delete passages by id (a document id removes all its chunks) and the triples listed in the files."""
    started = time.perf_counter()
    ids = {i.strip() for i in ids if i.strip()}
    if not ids and not triples:
        raise InputError("delete needs --ids / --ids-file and/or --triples-file")
    index_dir = Path(index_dir)
    live = _Live.read(index_dir)
    remove = {row for row, p in enumerate(live.passages) if p.id in ids or (p.parent_id and p.parent_id in ids)}
    found = {live.passages[row].id for row in remove} | {live.passages[row].parent_id for row in remove}
    missing = sorted(ids - found)
    if missing:
        raise InputError(f"passage ids not in the index: {missing[:5]}" + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))

    graph = live.graph
    removed_triples = 0
    touched: set[str] = set()
    if triples:
        if graph is None:
            raise InputError("the index holds no knowledge graph to delete triples from")
        doomed = {t for path in triples for t in read_triples(path)}
        old = graph_triples(graph)
        absent = sorted(f"{t.head}|{t.relation}|{t.tail}" for t in doomed - set(old))
        if absent:
            raise InputError(f"triples not in the index: {absent[:5]}")
        kept = [t for t in old if t not in doomed]
        if not kept:
            raise InputError("deleting these triples would leave an empty knowledge graph (rebuild the index instead)")
        graph = KnowledgeGraph.from_triples(kept)
        removed_triples = len(old) - len(kept)
        touched = {t.head for t in doomed}
    return _publish(
        index_dir, live, graph, [], remove=remove, touched_heads=touched, device=device, batch_size=batch_size,
        started=started, triple_delta=(0, removed_triples), operation="delete",
    )


def _publish(
    index_dir: Path,
    live: _Live,
    graph: KnowledgeGraph | None,
    new_chunks: list[Passage],
    *,
    remove: set[int],
    touched_heads: set[str],
    device: str,
    batch_size: int,
    started: float,
    triple_delta: tuple[int, int],
    operation: str,
) -> UpdateResult:
    removed_documents = len(remove)
    if live.has_kg_passages and touched_heads:
        # The verbalised passages of entities whose facts changed: drop the old text, embed the new one.
        stale = {f"kg:{head}" for head in touched_heads}
        remove |= {row for row, p in enumerate(live.passages) if p.source == KG_PASSAGE_SOURCE and p.id in stale}
        assert graph is not None
        for head in sorted(touched_heads):
            entity = graph.entity_ids.get(head)
            passage = verbalize_entity(graph, entity) if entity is not None else None
            if passage is not None:
                new_chunks.append(passage)

    kept = [p for row, p in enumerate(live.passages) if row not in remove]
    dimension = int(live.manifest["embedder"]["dimension"])
    embedder: Embedder | None = None

    def embed(texts: list[str]) -> np.ndarray:
        nonlocal embedder
        if not texts:
            return np.zeros((0, dimension), dtype=np.float32)
        embedder = embedder or Embedder(live.manifest["embedder"]["name"], device=device, batch_size=batch_size)
        vectors = embedder.encode(texts, batch_size=batch_size)
        if vectors.shape[1] != dimension:
            raise InputError(f"embedder gives {vectors.shape[1]}-d vectors but the index holds {dimension}-d")
        return vectors

    new_vectors = embed([_embedding_text(p) for p in new_chunks])
    entity_vectors = _updated_entity_vectors(live, graph, embed)

    index = live.vectors
    if index is None and new_chunks:
        from indexes.vector import make_index, train_and_add

        index = make_index(dimension, len(new_chunks), "flat")
        train_and_add(index, new_vectors)
    elif index is not None:
        if remove:
            kept_rows = np.array([row for row in range(len(live.passages)) if row not in remove], dtype=np.int64)
            old_vectors = all_vectors(index)[kept_rows]
            index = empty_like(index)
            if len(old_vectors):
                index.add(old_vectors)
        if len(new_vectors):
            index.add(new_vectors)
    passages = kept + new_chunks

    out = Path(index_dir)
    with layout.staged_version(out) as version:
        files: list[str] = []
        if passages:
            with (version / layout.PASSAGES).open("w", encoding="utf-8") as handle:
                for passage in passages:
                    handle.write(json.dumps(passage.to_dict(), ensure_ascii=False) + "\n")
            write_index(index, version / layout.VECTORS)
            files += [layout.PASSAGES, layout.VECTORS]
        if graph is not None:
            files += [f"{layout.KG_DIR}/{name}" for name in graph.save(version / layout.KG_DIR)]
        if entity_vectors is not None:
            np.save(version / layout.ENTITY_VECTORS, entity_vectors.astype(np.float32), allow_pickle=False)
            files.append(layout.ENTITY_VECTORS)
        manifest = json.loads(json.dumps(live.manifest))
        counts = manifest.setdefault("counts", {})
        counts["chunks"] = len(passages)
        counts["kg_passages"] = sum(1 for p in passages if p.source == KG_PASSAGE_SOURCE)
        counts["documents"] = len({p.parent_id or p.id for p in passages if p.source != KG_PASSAGE_SOURCE})
        counts["triples"] = len(graph) if graph is not None else 0
        counts["entities"] = len(graph.entities) if graph is not None else 0
        counts["relations"] = len(graph.relations) if graph is not None else 0
        counts["entity_vectors"] = len(entity_vectors) if entity_vectors is not None else 0
        manifest["vector_index"]["count"] = len(passages)
        manifest["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        manifest.setdefault("updates", []).append(
            {
                "operation": operation,
                "at": manifest["created"],
                "from_version": live.version.name,
                "passages_added": len(new_chunks),
                "passages_removed": len(remove),
                "triples_added": triple_delta[0],
                "triples_removed": triple_delta[1],
            }
        )
        layout.publish_with_manifest(out, version, manifest, files)
    return UpdateResult(
        out, manifest, len(new_chunks), removed_documents, triple_delta[0], triple_delta[1], time.perf_counter() - started
    )


def _updated_entity_vectors(live: _Live, graph: KnowledgeGraph | None, embed) -> np.ndarray | None:
    """The entity-name vectors for the updated graph: rows of names the live version had are copied, only new
    names are embedded. None when the live version had none (the build skipped them) or there is no graph."""
    if live.entity_vectors is None or live.graph is None or graph is None:
        return None
    old_rows = {name: row for row, name in enumerate(live.graph.entities)}
    new_names = [name for name in graph.entities if name not in old_rows]
    new_vectors = embed([entity_display_name(name) for name in new_names])
    new_rows = {name: row for row, name in enumerate(new_names)}
    return np.stack(
        [live.entity_vectors[old_rows[n]] if n in old_rows else new_vectors[new_rows[n]] for n in graph.entities]
    ).astype(np.float32)
