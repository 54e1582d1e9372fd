"""Path answers through the reader: choosing among near-equal KG paths by the reader's option scores."""

from __future__ import annotations

from rag import answering
from rag.path_choice import choose_path, option_text, path_evidence
from kg.types import PathAnswer, RelationPath, Subgraph, Triple

DIRECTED = PathAnswer(
    "Crash", "directed_by", ("Paul Haggis",), (Triple("Crash", "directed_by", "Paul Haggis"),), 0.80, 0.5
)
WRITTEN = PathAnswer(
    "Crash", "written_by", ("Bobby Moresco", "Paul Haggis"),
    (Triple("Crash", "written_by", "Bobby Moresco"), Triple("Crash", "written_by", "Paul Haggis")), 0.78, 0.4,
)  # fmt: skip
SUBGRAPH = Subgraph(
    candidates=DIRECTED.answers,
    candidate_triples=DIRECTED.triples,
    path=RelationPath("directed_by", False, 0.9),
    confidence=0.9,
    alternatives=(DIRECTED, WRITTEN),
)


class Scorer:
    def __init__(self, scores: list[float]) -> None:
        self.scores = scores
        self.calls: list[tuple] = []

    def score_options(self, question, evidence, options):
        self.calls.append((question, list(evidence), list(options)))
        return self.scores


def test_reader_choice_repoints_answer_and_citations_at_the_chosen_path() -> None:
    scorer = Scorer([-3.0, -0.5])
    chosen, scores = choose_path(scorer, "who wrote Crash", SUBGRAPH)
    assert scores == [-3.0, -0.5]
    assert chosen.candidates == ("Bobby Moresco", "Paul Haggis")
    assert chosen.path is not None and chosen.path.relation == "written_by"
    answer = answering.kg_answer("who wrote Crash", chosen, max_answers=10)
    assert answer.text == "Bobby Moresco, Paul Haggis"
    assert {c.id for c in answer.citations} == {t.id for t in WRITTEN.triples}
    # The reader saw every path's triples and one option per path.
    _, evidence, options = scorer.calls[0]
    assert options == ["Paul Haggis", "Bobby Moresco, Paul Haggis"]
    assert {e.source_id for e in evidence} == {t.id for t in DIRECTED.triples + WRITTEN.triples}


def test_reader_agreeing_with_the_retriever_changes_nothing() -> None:
    chosen, _ = choose_path(Scorer([-0.1, -2.0]), "who directed Crash", SUBGRAPH)
    assert chosen is SUBGRAPH


def test_no_alternatives_no_reader_call() -> None:
    scorer = Scorer([0.0])
    single = Subgraph(candidates=("x",), alternatives=())
    assert choose_path(scorer, "q", single) == (single, [])
    assert scorer.calls == []


def test_evidence_interleaves_paths_and_options_are_short() -> None:
    many = PathAnswer("E", "p", tuple(f"a{i}" for i in range(9)), tuple(Triple("E", "p", f"a{i}") for i in range(9)), 0.7, 0.1)
    evidence = path_evidence([many, DIRECTED], max_triples=3)
    assert [e.source_id for e in evidence] == ["E|p|a0", DIRECTED.triples[0].id, "E|p|a1"]
    assert [e.label for e in evidence] == ["T1", "T2", "T3"]
    assert option_text(many) == "a0, a1, a2"
