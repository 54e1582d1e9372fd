"""Answer assembly: evidence labels, KG set answers, support, reader confidence, citations, refusal."""

from __future__ import annotations

import json

import pytest

from kg.types import LinkedEntity, RelationPath, ScoredTriple, Subgraph, Triple
from rag import answering
from rag.reader import ReaderOutput
from rag.types import Answer, Evidence, Passage, ScoredPassage

NOLAN_FILMS = [
    Triple("Inception", "directed_by", "Christopher Nolan"),
    Triple("Interstellar", "directed_by", "Christopher Nolan"),
    Triple("Dunkirk", "directed_by", "Christopher Nolan"),
]


def subgraph(candidates: tuple[str, ...], confidence: float = 0.8) -> Subgraph:
    return Subgraph(
        entities=(LinkedEntity("Christopher Nolan", "Christopher Nolan", 0.9, "exact"),),
        triples=tuple(ScoredTriple(t, confidence) for t in NOLAN_FILMS),
        candidates=candidates,
        candidate_triples=tuple(NOLAN_FILMS),
        path=RelationPath("~directed_by", True, confidence),
        confidence=confidence,
    )


def output(text: str, logprobs: tuple[float, ...] = (-0.1, -0.2), *, refused: bool = False, labels=()) -> ReaderOutput:
    return ReaderOutput(text=text, raw_text=text, cited_labels=tuple(labels), token_logprobs=logprobs, refused=refused)


def test_make_evidence_labels_triples_then_passages() -> None:
    passages = [
        ScoredPassage(Passage(id="p1", text="He is a director.", title="Nolan"), 0.7),
        ScoredPassage(Passage(id="p2", text="Nolan was born in London.", title="Nolan"), 0.6),
    ]
    evidence = answering.make_evidence(subgraph(("Inception",)), passages, max_triples=2)
    assert [e.label for e in evidence] == ["T1", "T2", "P1", "P2"]
    assert [e.aspect for e in evidence] == ["triple", "triple", "passage", "passage"]
    assert evidence[0].source_id == NOLAN_FILMS[0].id == "Inception|directed_by|Christopher Nolan"
    assert evidence[0].text == "Inception directed by Christopher Nolan"
    # The title is prefixed unless the text already starts with it.
    assert evidence[2].text == "Nolan: He is a director." and evidence[2].score == 0.7
    assert evidence[3].text == "Nolan was born in London."
    assert answering.make_evidence(None, [], max_triples=5) == []


def test_kg_answer_lists_candidates_and_cites_their_triples() -> None:
    answer = answering.kg_answer("which films did Nolan direct", subgraph(("Dunkirk", "Inception", "Interstellar")), max_answers=10)
    assert answer.text == "Dunkirk, Inception, Interstellar"
    assert not answer.refused and answer.method == "kg" and answer.confidence == pytest.approx(0.8)
    assert {c.id for c in answer.citations} == {t.id for t in NOLAN_FILMS}
    assert all(c.kind == "triple" for c in answer.citations)


def test_kg_answer_truncates_and_cites_only_shown_entities() -> None:
    answer = answering.kg_answer("q", subgraph(("Dunkirk", "Inception", "Interstellar")), max_answers=2)
    assert answer.text == "Dunkirk, Inception (and 1 more)"
    cited_heads = {c.id.split("|")[0] for c in answer.citations}
    assert "Interstellar" not in cited_heads and cited_heads <= {"Dunkirk", "Inception"}


def test_kg_answer_confidence_is_clamped() -> None:
    assert answering.kg_answer("q", subgraph(("Inception",), confidence=1.7), max_answers=3).confidence == 1.0


def test_supported_by_whole_normalised_words() -> None:
    evidence = [Evidence("passage", "p", "The film was directed by Christopher Nolan in 2010.", 1.0, "P1")]
    assert answering.supported_by("christopher nolan", evidence)
    assert answering.supported_by("The 2010!", evidence)
    assert not answering.supported_by("Nol", evidence)  # not a whole word
    assert not answering.supported_by("James Cameron", evidence)
    assert not answering.supported_by("", evidence)
    assert not answering.supported_by("the", evidence)  # normalises to nothing


def test_reader_confidence_is_monotonic_in_logprob_and_support() -> None:
    values = [answering.reader_confidence(output("x", (lp,)), supported=False) for lp in (-8.0, -2.0, -0.5, -0.01)]
    assert values == sorted(values) and values[0] < values[-1]
    for lp in (-8.0, -1.0, -0.01):
        assert answering.reader_confidence(output("x", (lp,)), True) > answering.reader_confidence(output("x", (lp,)), False)
    # The *lowest* token decides: one unsure token lowers confidence.
    assert answering.reader_confidence(output("x", (-0.01, -3.0)), True) < answering.reader_confidence(output("x", (-0.01, -0.02)), True)
    assert all(0.0 <= v <= 1.0 for v in values)
    assert answering.reader_confidence(output("x", (-1e4,)), False) >= 0.0


def test_reader_confidence_zero_when_refused_or_empty() -> None:
    assert answering.reader_confidence(output("Paris", refused=True), True) == 0.0
    assert answering.reader_confidence(output(""), True) == 0.0


def test_reader_citations_by_label_or_by_support() -> None:
    evidence = [
        Evidence("triple", "A|r|B", "A r B", 0.9, "T1"),
        Evidence("passage", "p1", "Paris is the capital of France.", 0.5, "P1"),
        Evidence("passage", "p2", "London is big.", 0.4, "P2"),
    ]
    cited = answering.reader_citations(output("Paris", labels=("P1", "P9")), evidence)
    assert [(c.kind, c.id) for c in cited] == [("passage", "p1")]
    # No labels: attribute to the evidence that contains the answer.
    assert [c.id for c in answering.reader_citations(output("London"), evidence)] == ["p2"]
    assert answering.reader_citations(output("Berlin"), evidence) == []


def test_yes_no_answers() -> None:
    assert answering.polar_answer("Can you buy Casio products at Petco?", "Yes, you can buy them")
    assert answering.polar_answer("Is Disneyland Paris the largest Disney resort?", "No.")
    assert not answering.polar_answer("Is Disneyland Paris the largest Disney resort?", "Walt Disney World")
    assert not answering.polar_answer("Who says yes?", "Yes")  # not a yes/no question
    assert not answering.polar_answer("Is it?", "Yesterday")


def test_a_yes_no_answer_cites_the_passages_it_was_judged_on() -> None:
    evidence = [
        Evidence("triple", "A|r|B", "A r B", 0.9, "T1"),
        Evidence("passage", "p1", "Petco sells pet food.", 0.5, "P1"),
        Evidence("passage", "p2", "Casio makes watches.", 0.4, "P2"),
    ]
    assert answering.reader_citations(output("No"), evidence) == []
    assert [c.id for c in answering.reader_citations(output("No"), evidence, polar=True)] == ["p1", "p2"]


def test_evidence_that_never_names_the_quoted_title_is_off_topic() -> None:
    question = 'Who wrote the paper "Perfectly Secure Steganography Using Minimum Entropy Coupling"?'
    assert answering.quoted_names(question) == ["Perfectly Secure Steganography Using Minimum Entropy Coupling"]
    assert answering.quoted_names("Who sang \u201cThriller\u201d?") == ["Thriller"]
    assert answering.quoted_names('Who said "hi"?') == []  # too short to name anything
    packet = Evidence("passage", "p1", "Donald Davies designed packet switching at the NPL.", 0.3, "P1")
    paper = Evidence("passage", "p2", "Perfectly secure steganography using minimum-entropy coupling was "
                     "written by Christian Schroeder de Witt and others.", 0.3, "P2")
    assert answering.off_topic(question, [packet])
    assert not answering.off_topic(question, [packet, paper])
    assert not answering.off_topic("Who designed packet switching?", [packet])  # nothing quoted
    assert answering.mentions("Minimum Entropy Coupling", "the minimum entropy coupling of two laws")
    assert not answering.mentions("Minimum Entropy Coupling", "entropy")


def test_refusal_keeps_closest_evidence() -> None:
    evidence = [Evidence("passage", f"p{i}", f"text {i}", 1.0 - i / 10, f"P{i}") for i in range(5)]
    answer = answering.refusal("q", evidence, method="refusal", confidence=0.12345)
    assert answer.refused and answer.text == "" and answer.method == "refusal"
    assert answer.confidence == 0.1235 and [c.id for c in answer.citations] == ["p0", "p1", "p2"]


def test_answer_to_dict_is_json_and_validates_confidence() -> None:
    answer = answering.kg_answer("q", subgraph(("Inception",)), max_answers=3)
    data = json.loads(json.dumps(answer.to_dict()))
    assert {"text", "refused", "confidence", "citations", "conflicts"} <= set(data)
    assert data["citations"][0]["kind"] == "triple"
    with pytest.raises(ValueError, match="confidence"):
        Answer(question="q", text="x", refused=False, confidence=1.5)
