"""Entity linking: MetaQA-style questions (no brackets), typos, case, frame words, ambiguity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from indexes.readers import read_triples
from kg.graph import KnowledgeGraph
from kg.linking import EntityLinker, LinkerConfig
from kg.types import Triple

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"


@pytest.fixture(scope="module")
def linker() -> EntityLinker:
    graph = KnowledgeGraph.from_triples(
        [
            Triple("Zardoz", "starred_actors", "Sean Connery"),
            Triple("Zardoz", "has_tags", "film"),  # a tag named like a frame word
            Triple("Zardoz", "has_genre", "Drama"),
            Triple("Crash", "directed_by", "Paul Haggis"),
            Triple("Crash", "has_genre", "Drama"),
            Triple("Hot Pursuit", "has_tags", "crash"),  # same normalised name as the film Crash
            Triple("Stephen Rea", "acted_in", "The Crying Game"),
            Triple("Rea", "acted_in", "Other Film"),
            Triple("Amélie", "in_language", "French"),
        ]
    )
    return EntityLinker(graph)


def top(linker: EntityLinker, question: str) -> str:
    links = linker.link(question)
    assert links, question
    return links[0].name


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("what films did Sean Connery star in", "Sean Connery"),
        ("Sean Connery appears in which movies", "Sean Connery"),
        ("who starred in zardoz", "Zardoz"),  # lower case
        ("WHO STARRED IN ZARDOZ", "Zardoz"),
        ("which film did Stephen Rea act in", "Stephen Rea"),  # the longer name wins over "Rea"
        ("what language is amelie in", "Amélie"),  # accents are normalised away
    ],
)
def test_links_names_without_brackets(linker: EntityLinker, question: str, expected: str) -> None:
    assert top(linker, question) == expected


def test_exact_link_records_mention_and_method(linker: EntityLinker) -> None:
    [link] = [e for e in linker.link("who starred in zardoz") if e.name == "Zardoz"]
    assert link.mention == "zardoz" and link.method == "exact" and 0.0 < link.score <= 1.0


def test_exact_case_match_scores_higher(linker: EntityLinker) -> None:
    exact = next(e for e in linker.link("who starred in Zardoz") if e.name == "Zardoz")
    lowered = next(e for e in linker.link("who starred in zardoz") if e.name == "Zardoz")
    assert exact.score > lowered.score


def test_frame_word_entity_is_not_preferred_over_a_name(linker: EntityLinker) -> None:
    links = linker.link("what film did Sean Connery star in")
    assert links[0].name == "Sean Connery"
    film = [e for e in links if e.name == "film"]
    assert not film or film[0].score < 0.2


def test_fuzzy_link_for_a_typo(linker: EntityLinker) -> None:
    links = linker.link("what films did Sean Conery star in")
    assert links and links[0].name == "Sean Connery" and links[0].method == "fuzzy"
    assert links[0].mention == "Sean Conery"
    exact = linker.link("what films did Sean Connery star in")[0]
    assert links[0].score < exact.score


def test_fuzzy_can_be_turned_off(linker: EntityLinker) -> None:
    strict = EntityLinker(linker.graph, LinkerConfig(fuzzy=False))
    assert "Sean Connery" not in {e.name for e in strict.link("what films did Sean Conery star in")}


def test_ambiguity_is_kept(linker: EntityLinker) -> None:
    names = {e.name for e in linker.link("who directed crash")}
    assert {"Crash", "crash"} <= names


def test_no_entity_in_question(linker: EntityLinker) -> None:
    assert linker.link("what is the meaning of life") == []
    assert linker.link("") == []


def test_max_candidates_bounds_the_result(linker: EntityLinker) -> None:
    limited = EntityLinker(linker.graph, LinkerConfig(max_candidates=1))
    assert len(limited.link("did Sean Connery star in Zardoz or Crash")) == 1


def test_sample_metaqa_questions_link_their_topic_entity_first() -> None:
    graph = KnowledgeGraph.from_triples(read_triples(SAMPLE / "triples.tsv"))
    sample_linker = EntityLinker(graph)
    questions = [json.loads(line) for line in (SAMPLE / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    metaqa = [q for q in questions if q.get("topic_entity")]
    assert len(metaqa) >= 20
    wrong = [(q["question"], [e.name for e in sample_linker.link(q["question"])[:2]]) for q in metaqa
             if not sample_linker.link(q["question"]) or sample_linker.link(q["question"])[0].name != q["topic_entity"]]
    assert not wrong, wrong


# ---- embedding match over entity names (vectors from the index build; a fake embedder here) -------------


class _FakeEmbedder:
    """Maps known strings to fixed unit vectors, anything else to a vector orthogonal to all of them."""

    def __init__(self, table: dict[str, list[float]], dimension: int) -> None:
        self.table = table
        self.dimension = dimension
        self.calls = 0

    def encode(self, texts: list[str], **_: object):
        import numpy as np

        self.calls += 1
        rows = [self.table.get(t, [0.0] * (self.dimension - 1) + [1.0]) for t in texts]
        vectors = np.array(rows, dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _embedding_linker(config: LinkerConfig | None = None):
    import numpy as np

    graph = KnowledgeGraph.from_triples(
        [
            Triple("New York City", "located_in", "United States"),
            Triple("New York State", "located_in", "United States"),
            Triple("Zardoz", "starred_actors", "Sean Connery"),
        ]
    )
    # Entity ids: New York City 0, United States 1, New York State 2, Zardoz 3, Sean Connery 4.
    # The fake embedder maps unknown strings to the last axis, which no name uses.
    names = np.zeros((5, 5), dtype=np.float32)
    names[0] = [1.0, 0.0, 0.0, 0.0, 0.0]
    names[2] = [0.8, 0.6, 0.0, 0.0, 0.0]
    names[1] = [0.0, 1.0, 0.0, 0.0, 0.0]
    names[3] = [0.0, 0.0, 1.0, 0.0, 0.0]
    names[4] = [0.0, 0.0, 0.0, 1.0, 0.0]
    embedder = _FakeEmbedder({"big apple": [0.98, 0.2, 0.0, 0.0, 0.0]}, dimension=5)
    return EntityLinker(graph, config, entity_vectors=names, embedder=embedder), embedder


def test_embedding_match_links_a_paraphrased_name_and_keeps_ambiguity() -> None:
    linker, embedder = _embedding_linker()
    links = linker.link("where is the big apple")
    assert [link.name for link in links[:2]] == ["New York City", "New York State"]
    assert all(link.method == "embedding" and link.mention == "big apple" for link in links[:2])
    # Ranked by similarity, each with its own score, both below an exact match's.
    assert 0.0 < links[1].score < links[0].score < 0.95
    assert embedder.calls == 1


def test_embedding_match_is_not_tried_when_exact_linking_is_strong() -> None:
    linker, embedder = _embedding_linker()
    assert linker.link("who starred in Zardoz")[0].name == "Zardoz"
    assert embedder.calls == 0


def test_embedding_match_needs_a_close_name() -> None:
    linker, embedder = _embedding_linker()
    assert linker.link("where is the small pear") == []
    assert embedder.calls == 1


def test_embedding_match_is_off_without_vectors_or_by_config() -> None:
    linker, embedder = _embedding_linker(LinkerConfig(embedding=False))
    assert linker.link("where is the big apple") == []
    assert embedder.calls == 0
    plain = EntityLinker(linker.graph)  # a large KG built without name vectors
    assert plain.link("where is the big apple") == []


def test_entity_vectors_must_match_the_graph() -> None:
    import numpy as np

    linker, embedder = _embedding_linker()
    with pytest.raises(ValueError, match="rows"):
        EntityLinker(linker.graph, entity_vectors=np.zeros((2, 4), dtype=np.float32), embedder=embedder)


def test_fuzzy_match_on_a_large_kg_compares_only_names_sharing_a_word_prefix() -> None:
    names = [f"Person {i} Smith" for i in range(60)] + ["Kalomi Rento", "Zardoz"]
    graph = KnowledgeGraph.from_triples(Triple(n, "knows", "Zardoz") for n in names[:-1])
    blocked = EntityLinker(graph, LinkerConfig(fuzzy_full_scan=10))
    blocked.warm_up()
    assert blocked._fuzzy_blocks is not None
    assert blocked.link("who does kalomi rennto know")[0].name == "Kalomi Rento"  # shares "kal"/"ren"
    # Each candidate list is the names sharing a prefix, not all 62.
    assert blocked._blocked_keys(["kalomi", "rennto"]) == ["kalomi rento"]
    assert EntityLinker(graph).link("who does kalomi rennto know")[0].name == "Kalomi Rento"  # full scan


def test_entity_vectors_must_have_the_embedders_width() -> None:
    import numpy as np

    linker, embedder = _embedding_linker()
    with pytest.raises(ValueError, match="5-d"):
        EntityLinker(linker.graph, entity_vectors=np.zeros((5, 3), dtype=np.float32), embedder=embedder)
