"""End to end with the real embedder, FAISS and reader: the default preset answers a yes/no question from the
passages it was shown (it used to refuse every one: "yes" occurs in no passage), and refuses a question about a
quoted title that its evidence never names, instead of answering with a name from an unrelated passage."""

from __future__ import annotations

import json

import pytest

from indexes.build import BuildConfig, build_index

pytestmark = pytest.mark.integration

PASSAGES = [
    {"id": "petco", "title": "Petco",
     "text": "Petco is an American pet retailer. Its stores sell pet food, toys, aquariums and grooming services "
             "for dogs, cats, fish and birds. Petco sells no electronics and no watches."},
    {"id": "packet", "title": "Packet switching",
     "text": "Donald Davies of the National Physical Laboratory designed packet switching in 1965, independently "
             "of Paul Baran, and coined the term packet."},
]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory):
    from rag.pipeline import QAPipeline

    folder = tmp_path_factory.mktemp("honesty")
    passages = folder / "passages.jsonl"
    passages.write_text("".join(json.dumps(p) + "\n" for p in PASSAGES), encoding="utf-8")
    index = build_index(folder / "index", BuildConfig(passages=(str(passages),), progress=False)).path
    return QAPipeline.load(index, device="cpu")


@pytest.mark.parametrize(("question", "source"), [("Does Petco sell pet food?", "petco"),
                                                ("Did Donald Davies design packet switching?", "packet")])
def test_a_yes_no_question_is_answered_and_cites_its_passage(pipeline, question: str, source: str) -> None:
    answer = pipeline.ask(question)
    assert not answer.refused, answer
    assert answer.text.lower().split()[0].strip(",.!") == "yes"
    assert answer.signals["supported"] == 1.0
    assert answer.citations[0].id == source


def test_a_quoted_title_the_evidence_never_names_is_refused(pipeline) -> None:
    # Without the rule the reader answers "Donald Davies of the National Physical Laboratory" (confidence 0.77).
    answer = pipeline.ask('Who wrote the paper "Packet Routing in Sparse Mesh Networks"?')
    assert answer.signals.get("supported", 0.0) == 0.0
    assert answer.refused, answer
    assert "Davies" not in answer.text
