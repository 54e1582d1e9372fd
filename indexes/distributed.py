"""Chunking and embedding on a Ray cluster (`python -m indexes build --ray auto|ADDRESS`), Ray Data map_batches.

The result is exactly what the single-process path gives to the rest of `build_index` (the chunks in the same
order, one L2-normalised float32 vector each), so the index format and the FAISS/KG steps are shared.

`ray` is an optional extra (`pip install .[ray]`) imported only here, when asked for. Workers must be able to
import kgrag and the packaged embedder (true on the local instance `auto` starts: it inherits this environment).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np

from indexes.chunking import ChunkingConfig, chunk_passage
from rag.errors import InputError
from rag.types import Passage


def _ray():
    try:
        import ray
    except ImportError as exc:
        raise InputError("--ray needs the optional Ray extra: pip install 'kgrag[ray]' (ray[data]==2.52.1)") from exc
    return ray


def connect(address: str) -> bool:
    """Connect to `address` ('auto': a running cluster, else a new local instance). True when this call started
    Ray (so the caller shuts it down)."""
    ray = _ray()
    if ray.is_initialized():
        return False
    # Workers inherit these: offline model loading, and this checkout's code ahead of any installed copy.
    env = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    if address == "auto":
        try:
            ray.init(address="auto", runtime_env={"env_vars": env}, log_to_driver=False)
        except ConnectionError:
            ray.init(
                runtime_env={"env_vars": env}, include_dashboard=False, log_to_driver=False,
                object_store_memory=512 * 1024 * 1024,
            )
    else:
        ray.init(address=address, runtime_env={"env_vars": env}, log_to_driver=False)
    return True


def _chunk_batch(batch: dict, *, max_words: int, overlap_words: int) -> dict:
    """One Ray Data batch of documents -> their chunks, each tagged (document order, chunk order)."""
    config = ChunkingConfig(max_words=max_words, overlap_words=overlap_words)
    out: dict[str, list] = {"doc": [], "part": [], "passage": [], "text": []}
    for doc, encoded in zip(batch["doc"], batch["passage"]):
        passage = Passage.from_dict(json.loads(encoded))
        for part, chunk in enumerate(chunk_passage(passage, config)):
            out["doc"].append(int(doc))
            out["part"].append(part)
            out["passage"].append(json.dumps(chunk.to_dict(), ensure_ascii=False))
            out["text"].append(_embedding_text(chunk))
    return {key: np.array(values, dtype=object if key in ("passage", "text") else np.int64) for key, values in out.items()}


def _embedding_text(passage: Passage) -> str:
    from indexes.build import _embedding_text as text

    return text(passage)


class _EmbedBatch:
    """A Ray actor holding one embedder (loaded once per actor, not per batch)."""

    def __init__(self, embedder: str, device: str, batch_size: int, threads: int) -> None:
        import torch

        from indexes.embedder import Embedder

        torch.set_num_threads(threads)
        self.embedder = Embedder(embedder, device=device, batch_size=batch_size)
        self.embedder.warm_up()

    def __call__(self, batch: dict) -> dict:
        vectors = self.embedder.encode([str(t) for t in batch["text"]])
        return {"doc": batch["doc"], "part": batch["part"], "passage": batch["passage"], "vector": vectors}


def chunk_and_embed(
    documents: Sequence[Passage],
    *,
    address: str,
    embedder: str,
    device: str,
    chunking: ChunkingConfig,
    batch_size: int,
    actors: int | None = None,
) -> tuple[list[Passage], np.ndarray]:
    """Chunks (in the single-process order) and their vectors, computed with Ray Data."""
    ray = _ray()
    started_here = connect(address)
    try:
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        actors = actors or cpus
        rows = [{"doc": i, "passage": json.dumps(p.to_dict(), ensure_ascii=False)} for i, p in enumerate(documents)]
        dataset = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows), actors * 4)))
        chunked = dataset.map_batches(
            _chunk_batch, batch_format="numpy",
            fn_kwargs={"max_words": chunking.max_words, "overlap_words": chunking.overlap_words},
        )
        embedded = chunked.map_batches(
            _EmbedBatch, batch_format="numpy", batch_size=batch_size * 4, concurrency=actors, num_cpus=cpus / actors,
            fn_constructor_kwargs={"embedder": embedder, "device": device, "batch_size": batch_size,
                                   "threads": max(1, cpus // actors)},
        )
        docs, parts, passages, vectors = [], [], [], []
        for batch in embedded.iter_batches(batch_format="numpy", batch_size=None):
            docs.append(batch["doc"])
            parts.append(batch["part"])
            passages.extend(batch["passage"])
            vectors.append(batch["vector"])
    finally:
        if started_here:
            ray.shutdown()
    if not passages:
        return [], np.zeros((0, 0), dtype=np.float32)
    order = np.lexsort((np.concatenate(parts), np.concatenate(docs)))
    all_vectors = np.concatenate(vectors)[order]
    chunks = [Passage.from_dict(json.loads(passages[i])) for i in order]
    return chunks, np.ascontiguousarray(all_vectors, dtype=np.float32)
