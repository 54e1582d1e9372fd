"""Split long passages into overlapping word windows the embedder can read whole."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from rag.errors import InputError
from rag.types import Passage


@dataclass(frozen=True)
class ChunkingConfig:
    # MiniLM reads 256 word pieces; ~160 words stays inside that for ordinary English.
    max_words: int = 160
    overlap_words: int = 30

    def __post_init__(self) -> None:
        if self.max_words <= 0:
            raise InputError(f"max_words must be greater than 0, got {self.max_words}")
        if not 0 <= self.overlap_words < self.max_words:
            raise InputError(f"overlap_words must be in [0, max_words), got {self.overlap_words}")


def chunk_passage(passage: Passage, config: ChunkingConfig) -> list[Passage]:
    words = passage.text.split()
    if len(words) <= config.max_words:
        return [replace(passage, parent_id=passage.parent_id or passage.id)]
    step = config.max_words - config.overlap_words
    chunks = []
    for number, start in enumerate(range(0, len(words), step)):
        window = words[start : start + config.max_words]
        chunks.append(replace(passage, id=f"{passage.id}#{number}", text=" ".join(window), parent_id=passage.id))
        if start + config.max_words >= len(words):
            break
    return chunks


def chunk_passages(passages: Iterable[Passage], config: ChunkingConfig) -> Iterator[Passage]:
    for passage in passages:
        yield from chunk_passage(passage, config)
