"""Chunking long passages into overlapping word windows."""

from __future__ import annotations

from itertools import pairwise

import pytest

from indexes.chunking import ChunkingConfig, chunk_passage, chunk_passages
from rag.errors import InputError
from rag.types import Passage


def words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


def test_short_passage_is_one_chunk_keeping_its_id() -> None:
    passage = Passage(id="doc", text="a short text", title="T", source="s")
    [chunk] = chunk_passage(passage, ChunkingConfig(max_words=10, overlap_words=2))
    assert chunk.id == "doc" and chunk.parent_id == "doc" and chunk.text == "a short text" and chunk.title == "T"


def test_long_passage_windows_overlap_and_cover_everything() -> None:
    passage = Passage(id="doc", text=words(25), title="T", source="s", metadata={"k": 1})
    chunks = chunk_passage(passage, ChunkingConfig(max_words=10, overlap_words=3))
    assert [c.id for c in chunks] == ["doc#0", "doc#1", "doc#2", "doc#3"]
    assert all(c.parent_id == "doc" and c.title == "T" and c.source == "s" for c in chunks)
    texts = [c.text.split() for c in chunks]
    assert all(len(t) <= 10 for t in texts)
    assert texts[0] == [f"w{i}" for i in range(10)]
    # Consecutive windows share exactly `overlap_words` words.
    for left, right in pairwise(texts):
        assert left[-3:] == right[:3]
    covered = {w for t in texts for w in t}
    assert covered == set(words(25).split())
    assert texts[-1][-1] == "w24"


def test_exact_multiple_does_not_emit_a_tail_only_chunk() -> None:
    chunks = chunk_passage(Passage(id="d", text=words(17)), ChunkingConfig(max_words=10, overlap_words=3))
    # Windows start at 0 and 7; the second already reaches the end.
    assert [c.text.split()[0] for c in chunks] == ["w0", "w7"]


def test_chunk_passages_flattens() -> None:
    passages = [Passage(id="a", text=words(3)), Passage(id="b", text=words(12))]
    chunks = list(chunk_passages(passages, ChunkingConfig(max_words=5, overlap_words=0)))
    assert [c.id for c in chunks] == ["a", "b#0", "b#1", "b#2"]
    assert [c.parent_id for c in chunks] == ["a", "b", "b", "b"]


@pytest.mark.parametrize(("max_words", "overlap", "needle"), [(0, 0, "max_words"), (-1, 0, "max_words"), (5, 5, "overlap_words"), (5, -1, "overlap_words")])
def test_invalid_config(max_words: int, overlap: int, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        ChunkingConfig(max_words=max_words, overlap_words=overlap)
