"""Offline index building: passages -> chunks -> embeddings -> FAISS; triples -> knowledge graph.

Resumable (embedding shards are kept in DIR/.staging keyed by what they embed) and atomic (see `layout`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from indexes import layout
from indexes.chunking import ChunkingConfig, chunk_passages
from indexes.embedder import DEFAULT_BATCH_SIZE, DEFAULT_EMBEDDER, Embedder
from indexes.readers import ReadReport, read_passages, read_triples
from indexes.vector import IndexType, make_index, train_and_add, write_index
from kg.graph import KnowledgeGraph
from rag.errors import InputError
from rag.types import Passage

log = logging.getLogger(__name__)

SHARD_SIZE = 2048
KG_PASSAGE_SOURCE = "kg"


@dataclass(frozen=True)
class BuildConfig:
    passages: tuple[str, ...] = ()
    triples: tuple[str, ...] = ()
    embedder: str = DEFAULT_EMBEDDER
    device: str = "auto"
    index_type: IndexType = "auto"
    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    # Entity-centred passages verbalised from the KG, so that dense retrieval (and so the vanilla baseline) can
    # see the KG's facts. Off by default: embedding one passage per entity dominates the build time of a large
    # KG, and the default pipeline reads the KG through its own retriever.
    kg_passages: bool = False
    skip_bad_lines: bool = False
    # Entity-name embeddings for embedding-based entity linking, computed here so no query ever embeds the
    # KG's names. Only for KGs of at most `max_entity_vectors` entities (0: never): 400k names would dominate a
    # 2M-triple build (and its index size) for a fallback that exact and fuzzy matching usually make unnecessary.
    max_entity_vectors: int = 100_000
    batch_size: int = DEFAULT_BATCH_SIZE
    progress: bool = True
    # Chunk and embed on Ray ("auto": a running cluster, else a local instance; or a cluster address). Not
    # resumable: a killed Ray build starts its embedding again.
    ray: str | None = None
    # IVF / IVF-PQ: lists searched per query (stored in the index file; `load_index(nprobe=...)` overrides it).
    nprobe: int | None = None

    def __post_init__(self) -> None:
        if not self.passages and not self.triples:
            raise InputError("build needs at least one of --passages / --triples")
        if self.batch_size <= 0:
            raise InputError(f"batch_size must be greater than 0, got {self.batch_size}")
        if self.nprobe is not None and self.nprobe <= 0:
            raise InputError(f"nprobe must be greater than 0, got {self.nprobe}")
        if self.max_entity_vectors < 0:
            raise InputError(f"max_entity_vectors must be 0 or more, got {self.max_entity_vectors}")


@dataclass(frozen=True)
class BuildResult:
    path: Path
    manifest: dict
    skipped: tuple[str, ...]
    seconds: float


def verbalize_entities(graph: KnowledgeGraph, *, max_values: int = 25) -> Iterable[Passage]:
    """One passage per entity with outgoing edges: 'Inception. directed by: Christopher Nolan. release year: 2010.'"""
    for entity_id in range(len(graph.entities)):
        passage = verbalize_entity(graph, entity_id, max_values=max_values)
        if passage is not None:
            yield passage


def verbalize_entity(graph: KnowledgeGraph, entity_id: int, *, max_values: int = 25) -> Passage | None:
    rows = graph.out_rows(entity_id)
    if not len(rows):
        return None
    name = graph.entities[entity_id]
    by_relation: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        _, r, t = graph.triples[row]
        by_relation[graph.relations[r]].append(graph.entities[t])
    parts = [
        f"{relation.replace('_', ' ')}: {', '.join(sorted(values)[:max_values])}"
        for relation, values in sorted(by_relation.items())
    ]
    return Passage(id=f"kg:{name}", text=f"{name}. " + ". ".join(parts) + ".", title=name, source=KG_PASSAGE_SOURCE)


def _fingerprint(embedder: str, passages: Sequence[Passage]) -> str:
    digest = hashlib.sha256(embedder.encode())
    for passage in passages:
        digest.update(passage.id.encode())
        digest.update(b"\0")
        digest.update(passage.text.encode())
        digest.update(b"\1")
    return digest.hexdigest()[:24]


def embed_resumable(
    embedder: Embedder, passages: Sequence[Passage], staging: Path, *, batch_size: int, progress: bool
) -> np.ndarray:
    """Embed in shards saved under `staging`; a re-run after a crash reuses the shards already written."""
    texts = [_embedding_text(p) for p in passages]
    return embed_texts_resumable(embedder, texts, staging, batch_size=batch_size, progress=progress, what="passage")


def embed_texts_resumable(
    embedder: Embedder, texts: Sequence[str], staging: Path, *, batch_size: int, progress: bool, what: str
) -> np.ndarray:
    staging.mkdir(parents=True, exist_ok=True)
    shards = []
    bar = tqdm(total=len(texts), desc=f"embedding {what}s", unit=what, disable=not progress)
    for number, start in enumerate(range(0, len(texts), SHARD_SIZE)):
        shard_path = staging / f"shard-{number:06d}.npy"
        batch = texts[start : start + SHARD_SIZE]
        vectors = None
        if shard_path.is_file():
            try:
                vectors = np.load(shard_path, allow_pickle=False)
            except ValueError:
                vectors = None
            if vectors is not None and vectors.shape[0] != len(batch):
                vectors = None
        if vectors is None:
            vectors = embedder.encode(list(batch), batch_size=batch_size)
            tmp = staging / f".shard-{number:06d}.tmp.npy"
            np.save(tmp, vectors, allow_pickle=False)
            tmp.replace(shard_path)
        shards.append(vectors)
        bar.update(len(batch))
    bar.close()
    return np.concatenate(shards) if shards else np.zeros((0, embedder.dimension), dtype=np.float32)


def entity_display_name(name: str) -> str:
    """The name as words ("tasha_tudor" -> "tasha tudor"): the embedder reads words, not identifiers."""
    return name.replace("_", " ").strip() or name


def _fingerprint_texts(embedder: str, texts: Sequence[str]) -> str:
    digest = hashlib.sha256(embedder.encode())
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\0")
    return "names-" + digest.hexdigest()[:24]


def _embedding_text(passage: Passage) -> str:
    if passage.title and not passage.text.startswith(passage.title):
        return f"{passage.title}. {passage.text}"
    return passage.text


def build_index(out: str | Path, config: BuildConfig) -> BuildResult:
    started = time.perf_counter()
    out = Path(out)
    layout.prepare_output(out)
    report = ReadReport() if config.skip_bad_lines else None

    graph = None
    if config.triples:
        triples = []
        for path in config.triples:
            triples.extend(tqdm(read_triples(path, report=report), desc=f"reading {Path(path).name}", unit=" triples", disable=not config.progress))
        if not triples:
            raise InputError(f"no triples found in {', '.join(config.triples)}")
        graph = KnowledgeGraph.from_triples(triples)

    documents: list[Passage] = []
    for path in config.passages:
        documents.extend(tqdm(read_passages(path, report=report), desc=f"reading {Path(path).name}", unit=" passages", disable=not config.progress))
    if config.passages and not documents:
        raise InputError(f"no passages found in {', '.join(config.passages)}")
    ids = {p.id for p in documents}
    if len(ids) != len(documents):
        raise InputError("passage ids must be unique across all --passages inputs")
    kg_documents = list(verbalize_entities(graph)) if graph is not None and config.kg_passages else []
    if config.ray:
        from indexes.distributed import chunk_and_embed

        chunks, vectors = chunk_and_embed(
            documents + kg_documents, address=config.ray, embedder=config.embedder, device=config.device,
            chunking=config.chunking, batch_size=config.batch_size,
        )
        embedder = None
        dimension = int(vectors.shape[1]) if len(chunks) else Embedder(config.embedder, device=config.device).dimension
    else:
        chunks = list(chunk_passages(documents + kg_documents, config.chunking))
        embedder = Embedder(config.embedder, device=config.device, batch_size=config.batch_size)
        fingerprint = _fingerprint(config.embedder, chunks)
        staging = out / layout.STAGING / fingerprint
        vectors = embed_resumable(embedder, chunks, staging, batch_size=config.batch_size, progress=config.progress)
        dimension = int(embedder.dimension)
    entity_vectors = None
    if graph is not None and 0 < len(graph.entities) <= config.max_entity_vectors:
        if embedder is None:  # the Ray build embedded on its workers
            embedder = Embedder(config.embedder, device=config.device, batch_size=config.batch_size)
        names = [entity_display_name(name) for name in graph.entities]
        names_staging = out / layout.STAGING / _fingerprint_texts(config.embedder, names)
        entity_vectors = embed_texts_resumable(
            embedder, names, names_staging, batch_size=config.batch_size, progress=config.progress, what="entity name"
        )

    with layout.staged_version(out) as version:
        files = _write_version(version, chunks, vectors, graph, config)
        if entity_vectors is not None:
            np.save(version / layout.ENTITY_VECTORS, entity_vectors.astype(np.float32), allow_pickle=False)
            files.append(layout.ENTITY_VECTORS)
        manifest = {
            "format": layout.FORMAT_NAME,
            "format_version": layout.FORMAT_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "embedder": {"name": config.embedder, "dimension": dimension},
            "vector_index": {"type": _index_kind(config.index_type, len(chunks)), "count": len(chunks)},
            "counts": {
                "documents": len(documents),
                "kg_passages": len(kg_documents),
                "chunks": len(chunks),
                "triples": len(graph) if graph is not None else 0,
                "entities": len(graph.entities) if graph is not None else 0,
                "relations": len(graph.relations) if graph is not None else 0,
                "entity_vectors": len(entity_vectors) if entity_vectors is not None else 0,
            },
            # str(): the API accepts Path objects too, and the manifest is JSON.
            "inputs": {"passages": [str(p) for p in config.passages], "triples": [str(p) for p in config.triples]},
        }
        layout.publish_with_manifest(out, version, manifest, files)
    shutil.rmtree(out / layout.STAGING, ignore_errors=True)
    return BuildResult(out, manifest, tuple(report.skipped) if report else (), time.perf_counter() - started)


def _index_kind(index_type: IndexType, count: int) -> str:
    return ("flat" if count <= 200_000 else "ivf") if index_type == "auto" else index_type


def _write_version(version: Path, chunks: list[Passage], vectors: np.ndarray, graph, config: BuildConfig) -> list[str]:
    files = []
    if chunks:
        with (version / layout.PASSAGES).open("w", encoding="utf-8") as handle:
            for passage in chunks:
                handle.write(json.dumps(passage.to_dict(), ensure_ascii=False) + "\n")
        index = make_index(vectors.shape[1], len(vectors), config.index_type, nprobe=config.nprobe)
        train_and_add(index, vectors)
        write_index(index, version / layout.VECTORS)
        files += [layout.PASSAGES, layout.VECTORS]
    if graph is not None:
        names = graph.save(version / layout.KG_DIR)
        files += [f"{layout.KG_DIR}/{name}" for name in names]
    return files
