"""The Streamlit app (ui/app.py) driven by Streamlit's AppTest.

UI-logic tests use a fake pipeline (QAPipeline.load patched); the integration tests load the real models.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("streamlit", reason="the UI needs the 'ui' extra: pip install .[ui]")

import streamlit as st
from streamlit.testing.v1 import AppTest

from rag.pipeline import QAPipeline
from rag.types import Answer, Citation, Conflict, Passage
from ui import helpers

APP = str(Path(__file__).resolve().parents[2] / "ui" / "app.py")
KG_QUESTION = "Sara Kestelman appears in which movies"
UNANSWERABLE = "Who conceptualized the piston?"


class FakePipeline:
    """Stands in for QAPipeline in UI-logic tests: records questions, returns a fixed Answer."""

    def __init__(self, answer: Answer, passages: list | None = None) -> None:
        self.answer = answer
        self.calls: list[tuple[str, str | None]] = []
        self.kg = None
        self.index = SimpleNamespace(passages=passages or [])

    def warm_up(self) -> None:
        pass

    def ask(self, question: str, instruction: str | None = None) -> Answer:
        self.calls.append((question, instruction))
        return self.answer

    def components(self) -> dict[str, str | None]:
        return {"reader": "fake-reader", "reader_adapter": None, "soft_prompt": None, "reranker": None, "gate": None,
                "stance": "/cache/stance", "confidence": "hand-set rule"}


def texts(elements) -> list[str]:
    return [str(e.value) for e in elements]


@pytest.fixture(autouse=True)
def _clean_cache():
    st.cache_resource.clear()
    yield
    st.cache_resource.clear()


def fake_index(tmp_path: Path, name: str = "fake") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "CURRENT").write_text("v-1\n")
    return folder


@pytest.fixture
def use_fake(monkeypatch, tmp_path):
    """Point the app at a fake index and make QAPipeline.load return the given fake (counting loads)."""

    def install(fake: FakePipeline) -> dict:
        index = fake_index(tmp_path)
        loads = {"count": 0}

        def load(cls, index_dir, preset="default", **options):
            loads["count"] += 1
            loads["options"] = options
            return fake

        monkeypatch.setattr(QAPipeline, "load", classmethod(load))
        monkeypatch.setenv(helpers.ENV_INDEX, str(index))
        monkeypatch.delenv(helpers.ENV_INDEXES_ROOT, raising=False)
        return loads

    return install


def start() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, texts(at.exception)
    return at


def ask(at: AppTest, question: str) -> AppTest:
    at.chat_input[0].set_value(question).run()
    assert not at.exception, texts(at.exception)
    return at


# ---- UI logic with a fake pipeline ---------------------------------------------------------------------

PASSAGE_ANSWER = Answer(
    question="q",
    text="Paris",
    refused=False,
    confidence=0.8,
    citations=(Citation("passage", "eiffel", "Eiffel Tower: short", 0.9),),
    method="reader",
    timings={"total": 1.5},
)


def test_instruction_field_is_present_and_passed_through(use_fake):
    fake = FakePipeline(PASSAGE_ANSWER)
    use_fake(fake)
    at = start()
    assert at.text_area(key="instruction").label.startswith("Instruction")
    at.text_area(key="instruction").input("Prefer the knowledge graph.")
    ask(at, "Where is the Eiffel Tower?")
    assert fake.calls == [("Where is the Eiffel Tower?", "Prefer the knowledge graph.")]
    assert "Instruction: Prefer the knowledge graph." in texts(at.caption)
    # An empty instruction is passed as None.
    at.text_area(key="instruction").input("   ")
    ask(at, "again")
    assert fake.calls[-1] == ("again", None)


def test_reader_server_from_the_environment_reaches_the_pipeline_and_the_sidebar(use_fake, monkeypatch):
    loads = use_fake(FakePipeline(PASSAGE_ANSWER))
    monkeypatch.setenv(helpers.ENV_READER_URL, "http://127.0.0.1:8000/v1")
    monkeypatch.setenv(helpers.ENV_READER_MODEL, "big")
    at = ask(start(), "Where is the Eiffel Tower?")
    assert loads["options"] == {"reader_server_url": "http://127.0.0.1:8000/v1", "reader_server_model": "big"}
    assert "Reader: big at http://127.0.0.1:8000/v1" in texts(at.sidebar.caption)
    # What the answers rest on, from the loaded pipeline.
    assert ("Reader: fake-reader; trained: yes/no stance model; confidence: hand-set rule"
            in texts(at.sidebar.caption))


def test_answer_confidence_and_citation_expanding_to_the_full_passage(use_fake):
    passage = Passage(
        id="eiffel", text="The Eiffel Tower is a wrought-iron lattice tower in Paris.", title="Eiffel Tower"
    )
    use_fake(FakePipeline(PASSAGE_ANSWER, passages=[passage]))
    at = ask(start(), "Where is the Eiffel Tower?")
    assert "**Paris**" in texts(at.markdown)
    assert any(c.startswith("Confidence 80% (high) · via reader over passages") for c in texts(at.caption))
    assert at.expander[0].label == "[1] Passage · eiffel · score 0.90"
    assert passage.text in texts(at.markdown)  # the full passage, not the citation's snippet
    assert at.status[0].label.startswith("Answered in")


def test_conflicts_are_shown_naming_both_sources(use_fake):
    answer = Answer(
        question="When was X born?",
        text="1950",
        refused=False,
        confidence=0.6,
        citations=(
            Citation("passage", "doc-a", "X was born in 1950.", 0.7),
            Citation("passage", "doc-b", "X was born in 1952.", 0.6),
        ),
        conflicts=(Conflict("born in 1950", "doc-a", "born in 1952", "doc-b", "the sources disagree"),),
        method="reader",
    )
    use_fake(FakePipeline(answer))
    at = ask(start(), "When was X born?")
    warnings = [w for w in texts(at.warning) if "Conflicting evidence" in w]
    assert len(warnings) == 1
    assert "doc-a" in warnings[0] and "doc-b" in warnings[0] and "1952" in warnings[0]


def test_refusal_state_with_closest_evidence(use_fake):
    answer = Answer(
        "q", "", True, 0.1, citations=(Citation("passage", "near", "Somewhat related text.", 0.3),), method="refusal"
    )
    use_fake(FakePipeline(answer))
    at = ask(start(), UNANSWERABLE)
    assert any("Not enough evidence" in w and "Closest evidence" in w for w in texts(at.warning))
    assert at.expander[0].label.startswith("[1] Passage · near")


def test_history_is_kept_and_isolated_between_sessions_and_the_pipeline_loads_once(use_fake):
    loads = use_fake(FakePipeline(PASSAGE_ANSWER))
    first = ask(ask(start(), "question one"), "question two")
    assert [m for m in texts(first.markdown) if m.startswith("question")] == ["question one", "question two"]
    second = start()  # another browser session
    assert not [m for m in texts(second.markdown) if m.startswith("question")]
    assert loads["count"] == 1  # cached per process, shared by both sessions


def test_no_index_shows_a_hint(monkeypatch, tmp_path):
    monkeypatch.delenv(helpers.ENV_INDEX, raising=False)
    monkeypatch.setenv(helpers.ENV_INDEXES_ROOT, str(tmp_path))
    at = start()
    assert any("No index selected" in i for i in texts(at.info))


def test_index_picker_lists_indexes_under_the_root(monkeypatch, tmp_path, use_fake):
    use_fake(FakePipeline(PASSAGE_ANSWER))
    fake_index(tmp_path, "other")
    at = start()
    picker = at.selectbox(key="index")
    assert [Path(o).name for o in picker.options] == ["fake", "other"]


def test_upload_with_a_bad_file_shows_the_error(monkeypatch, tmp_path):
    monkeypatch.delenv(helpers.ENV_INDEX, raising=False)
    monkeypatch.setenv(helpers.ENV_INDEXES_ROOT, str(tmp_path))
    at = start()
    at.radio(key="page").set_value("Build an index").run()
    at.text_input(key="build_name").input("../my index")
    at.file_uploader(key="upload_passages").set_value(("../bad.jsonl", b"this is not json\n", "application/json"))
    at.button(key="build").click().run()
    assert not at.exception, texts(at.exception)
    errors = texts(at.error)
    assert len(errors) == 1 and "bad.jsonl:1: invalid JSON" in errors[0]
    assert ".staging" not in errors[0]
    assert at.status[0].label == "Build failed"
    assert list(tmp_path.iterdir()) == []  # nothing written, nothing left behind


def test_upload_of_a_wrong_type_is_refused(monkeypatch, tmp_path):
    monkeypatch.delenv(helpers.ENV_INDEX, raising=False)
    monkeypatch.setenv(helpers.ENV_INDEXES_ROOT, str(tmp_path))
    at = start()
    at.radio(key="page").set_value("Build an index").run()
    at.button(key="build").click().run()
    assert any("index name" in e for e in texts(at.error))
    at.text_input(key="build_name").input("x")
    at.button(key="build").click().run()
    assert any("upload at least one" in e for e in texts(at.error))


# ---- the real pipeline ---------------------------------------------------------------------------------


@pytest.fixture
def real_app(monkeypatch, sample_index):
    monkeypatch.setenv(helpers.ENV_INDEX, str(sample_index))
    monkeypatch.delenv(helpers.ENV_INDEXES_ROOT, raising=False)
    at = AppTest.from_file(APP, default_timeout=600).run()
    assert not at.exception, texts(at.exception)
    return at


@pytest.mark.integration
def test_ask_kg_question_shows_answer_citations_graph_and_scores(real_app):
    at = ask(real_app, KG_QUESTION)
    assert "**Zardoz**" in texts(at.markdown)
    labels = [e.label for e in at.expander]
    assert any(label.startswith("[1] KG triple · Zardoz|starred_actors|Sara Kestelman") for label in labels)
    assert "Evidence graph and scores" in labels
    assert any("via knowledge graph" in c for c in texts(at.caption))
    assert any("answer path" in c for c in texts(at.caption))  # the graph was drawn
    assert any(c.startswith("Reader: qwen2.5-coder-0.5b-instruct; trained: ") and "confidence: calibrated model" in c
               for c in texts(at.sidebar.caption))


@pytest.mark.integration
def test_unanswerable_question_shows_the_refusal_state(real_app):
    at = ask(real_app, UNANSWERABLE)
    assert any("Not enough evidence" in w for w in texts(at.warning))
    assert not [m for m in texts(at.markdown) if m.startswith("**") and "Not enough" not in m]


@pytest.mark.integration
def test_upload_of_good_files_builds_an_index_that_appears_in_the_picker(monkeypatch, tmp_path):
    monkeypatch.delenv(helpers.ENV_INDEX, raising=False)
    monkeypatch.setenv(helpers.ENV_INDEXES_ROOT, str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=600).run()
    at.radio(key="page").set_value("Build an index").run()
    at.text_input(key="build_name").input("tiny")
    at.file_uploader(key="upload_passages").set_value(
        ("docs.jsonl", b'{"id": "p1", "text": "Paris is in France."}\n', "application/json")
    )
    at.file_uploader(key="upload_triples").set_value(
        ("kb.tsv", b"Paris\tcountry\tFrance\n", "text/tab-separated-values")
    )
    at.button(key="build").click().run()
    assert not at.exception and not at.error, texts(at.error)
    assert any("Index **tiny** is ready" in s for s in texts(at.success))
    assert helpers.is_index(tmp_path / "tiny") and not (tmp_path / "tiny" / ".staging").exists()
    assert [Path(o).name for o in at.selectbox(key="index").options] == ["tiny"]
