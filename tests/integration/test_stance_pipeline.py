"""Yes/no stance in the pipeline with the real reader, embedder and index: opposite passages are reported as a
conflict, and an answer that every sided passage contradicts follows them. The stance scores come from a table
here (the trained model's quality is measured by bench/stance_probe.py, see docs/RESULTS.md); the CLI trains a
real one from a small ConflictQA-shaped folder."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from support import REPO

pytestmark = pytest.mark.integration

QUESTION = "Is the Zorblat river navigable by cargo ships?"
YES = "The Zorblat river is navigable: cargo ships sail its whole length every summer."
NO = "The Zorblat river is not navigable; rapids and shallow bars stop every cargo ship at its mouth."


class TableStance:
    """Stance scores looked up by passage text (a test double of rag.stance.StanceModel)."""

    def __init__(self, table: dict[str, dict[str, float]]) -> None:
        self.table = table

    def warm_up(self) -> None:
        pass

    def stances(self, question: str, texts: Sequence[str]) -> list[dict[str, float]]:
        neither = {"yes": 0.05, "no": 0.05, "neither": 0.9}
        return [self.table.get(text, neither) for text in texts]


@pytest.fixture(scope="module")
def river_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from indexes.build import BuildConfig, build_index

    folder = Path(tmp_path_factory.mktemp("river"))
    rows = [{"id": "yes", "text": YES}, {"id": "no", "text": NO},
            {"id": "other", "text": "The Zorblat valley is known for its orchards and its autumn fair."}]
    (folder / "passages.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    build_index(folder / "index", BuildConfig(passages=(str(folder / "passages.jsonl"),), progress=False))
    return folder / "index"


def _pipeline(index: Path, default_pipeline, table: dict[str, dict[str, float]]):
    from indexes.store import load_index
    from rag.pipeline import QAPipeline

    return QAPipeline(load_index(index), default_pipeline.config, embedder=default_pipeline.embedder,
                      reader=default_pipeline.reader, stance_model=TableStance(table))


def test_opposite_passages_are_reported_as_a_conflict(river_index: Path, default_pipeline) -> None:
    from rag.pipeline import QAPipeline

    pipeline = _pipeline(river_index, default_pipeline,
                         {YES: {"yes": 0.9, "no": 0.05, "neither": 0.05}, NO: {"yes": 0.05, "no": 0.9, "neither": 0.05}})
    answer = pipeline.ask(QUESTION)
    assert not answer.refused and answer.text.split()[0].strip(".,").lower() in ("yes", "no")
    assert "stance" in answer.timings
    assert len(answer.conflicts) == 1
    conflict = answer.conflicts[0]
    assert {conflict.claim_a, conflict.claim_b} == {"Yes", "No"}
    assert {conflict.source_a, conflict.source_b} == {"yes", "no"}
    # One passage on each side: the reader's reading is kept, and the answer cites the side it took; nothing but
    # the reader's pick stands behind it, so its confidence is at most stance_tie_confidence.
    assert conflict.claim_a.lower() == answer.text.split()[0].strip(".,").lower()
    assert [c.id for c in answer.citations] == [conflict.source_a]
    assert answer.confidence <= default_pipeline.config.stance_tie_confidence == 0.5
    # Below the refusal threshold, the tie is refused, and the conflict is still reported.
    strict = QAPipeline(pipeline.index, replace(default_pipeline.config, stance_tie_confidence=0.0),
                        embedder=default_pipeline.embedder, reader=default_pipeline.reader,
                        stance_model=pipeline.stance)
    refused = strict.ask(QUESTION)
    assert refused.refused and refused.method == "refusal" and len(refused.conflicts) == 1


def test_an_answer_every_sided_passage_contradicts_follows_them(river_index: Path, default_pipeline) -> None:
    both_no = {YES: {"yes": 0.05, "no": 0.9, "neither": 0.05}, NO: {"yes": 0.05, "no": 0.9, "neither": 0.05}}
    answer = _pipeline(river_index, default_pipeline, both_no).ask(QUESTION)
    assert answer.text == "No" or answer.text.lower().startswith("no")
    assert answer.conflicts == ()
    assert {c.id for c in answer.citations} == {"yes", "no"}
    both_yes = {text: {"yes": 0.9, "no": 0.05, "neither": 0.05} for text in (YES, NO)}
    answer = _pipeline(river_index, default_pipeline, both_yes).ask(QUESTION)
    assert answer.text.lower().startswith("yes") and answer.conflicts == ()
    # Whichever the reader said, one of the two reads was followed from the passages, not from the reader.
    assert "stance" in {_pipeline(river_index, default_pipeline, t).ask(QUESTION).method for t in (both_no, both_yes)}


def test_the_default_pipeline_reports_opposite_passages_with_the_trained_model(river_index: Path,
                                                                               default_pipeline) -> None:
    """With the stance model `make install` trains from data/stance into $KGRAG_CACHE/stance (which the default
    config loads; no weights are kept in git), the real model, reader and index report the two opposite passages as
    a conflict."""
    from indexes.store import load_index
    from rag.pipeline import QAPipeline

    if default_pipeline.stance is None:
        pytest.skip("no trained stance model in $KGRAG_CACHE/stance (make stance)")
    pipeline = QAPipeline(load_index(river_index), default_pipeline.config, embedder=default_pipeline.embedder,
                          reader=default_pipeline.reader, stance_model=default_pipeline.stance)
    answer = pipeline.ask(QUESTION)
    assert not answer.refused and "stance" in answer.timings
    assert [{c.source_a, c.source_b} for c in answer.conflicts] == [{"yes", "no"}]


def test_no_stance_model_no_stance_step(river_index: Path, default_pipeline) -> None:
    from indexes.store import load_index
    from rag.pipeline import QAPipeline

    pipeline = QAPipeline(load_index(river_index), default_pipeline.config, embedder=default_pipeline.embedder,
                          reader=default_pipeline.reader)
    answer = pipeline.ask(QUESTION)
    assert "stance" not in answer.timings and answer.method != "stance"


def test_train_stance_cli_trains_a_loadable_model(tmp_path: Path) -> None:
    data = tmp_path / "conflictqa"
    data.mkdir()
    questions, passages = [], []
    for k, (subject, verb) in enumerate([("the Zorblat river", "flows north"), ("Mount Kell", "has snow in July"),
                                         ("the town of Urn", "holds a fair"), ("the Pell bridge", "carries trains")]):
        ids = {kind: f"q{k}-{kind}" for kind in ("parametric", "counter")}
        memory, counter = f"{subject} {verb}.", f"{subject} does not {verb}."
        questions.append({"id": f"q{k}", "question": f"Does {subject} {verb.split()[0]}?", "answers": ["yes"],
                          "per_model": {"m": {"memory_answer": memory, "counter_answer": counter,
                                              "parametric_memory_id": ids["parametric"],
                                              "counter_memory_id": ids["counter"]}}})
        passages += [{"id": ids["parametric"], "text": f"Records show that {memory}"},
                     {"id": ids["counter"], "text": f"Records show that {counter}"}]
    (data / "questions.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions), encoding="utf-8")
    (data / "passages.jsonl").write_text("".join(json.dumps(p) + "\n" for p in passages), encoding="utf-8")
    out = tmp_path / "stance"
    result = subprocess.run([sys.executable, "-m", "rag.align", "train-stance", "--data", str(data), "--out", str(out),
                             "--skip", "0", "--epochs", "1", "--max-length", "48", "--validation", "0.5"],
                            capture_output=True, text=True, cwd=REPO, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["train_examples"]["yes"] == summary["train_examples"]["no"] == 2
    assert summary["train_examples"]["neither"] == 4 and summary["validation_examples"] == 8
    from rag.stance import StanceModel

    probs = StanceModel(out).stances(questions[0]["question"], [passages[0]["text"]])
    assert set(probs[0]) == {"yes", "no", "neither"} and abs(sum(probs[0].values()) - 1.0) < 1e-3
    missing = subprocess.run([sys.executable, "-m", "rag.align", "train-stance", "--data", str(tmp_path / "none"),
                              "--out", str(tmp_path / "x")], capture_output=True, text=True, cwd=REPO, timeout=300, check=False)
    assert missing.returncode == 2 and "error:" in missing.stderr and "questions.jsonl" in missing.stderr


def test_the_trained_stance_model_is_found_and_reads_sides(tmp_path: Path) -> None:
    """The stance model `make install` trains into $KGRAG_CACHE/stance (low-rank deltas merged into the packaged
    MiniLM), on a question it was not trained on: one passage each way and one on the topic that takes no side."""
    from rag import stance
    from rag.config import make_config
    from rag.models import resolve_cache_dir
    from rag.pipeline import load_stance

    cached = resolve_cache_dir() / "stance"
    if not (cached / stance.META).is_file():
        pytest.skip("no trained stance model in $KGRAG_CACHE/stance (make stance)")
    model = load_stance(tmp_path, make_config())
    assert model is not None and model.folder == cached
    unrelated = "The Zorblat valley is known for its orchards and its autumn fair."
    stances = model.stances(QUESTION, [YES, NO, unrelated])
    assert [max(s, key=s.__getitem__) for s in stances] == ["yes", "no", "neither"]
    # One trained for this index comes first.
    own = tmp_path / "models" / "stance"
    own.mkdir(parents=True)
    for name in (stance.WEIGHTS, stance.META):
        (own / name).write_bytes((cached / name).read_bytes())
    assert load_stance(tmp_path, make_config()).folder == own
    assert load_stance(tmp_path, make_config(use_stance=False)) is None
    assert load_stance(tmp_path, make_config("vanilla")) is None
