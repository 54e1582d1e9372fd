"""`python -m indexes add / delete` on a copy of the real sample index, asked through the real pipeline; and a
SIGKILL during a real `add` leaves the previous version loadable (slow)."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from indexes import layout
from indexes.store import load_index

from support import REPO, copy_index, subprocess_env

pytestmark = pytest.mark.integration

NEW_PASSAGE = {
    "id": "new-quokka",
    "title": "Quokka island",
    "text": "The quokka colony on Rottnest Island was counted at 12,400 animals by the 2031 census of marsupials.",
}
PASSAGE_QUESTION = "How many quokkas live on Rottnest Island according to the 2031 census?"
KG_QUESTION = "Sara Kestelman appears in which movies"


def indexes_cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "indexes", *args], cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
        timeout=timeout, check=False,
    )


def top_passage(index: Path, question: str) -> list[str]:
    from rag.pipeline import QAPipeline

    pipeline = QAPipeline.load(index, preset="vanilla", device="cpu")
    return [hit.passage.id for hit in pipeline.dense.retrieve(question, top_k=3)]


def kg_answer(index: Path) -> str:
    from rag.pipeline import QAPipeline

    return QAPipeline.load(index, preset="kg-only", device="cpu").ask(KG_QUESTION).text


def test_add_then_delete_passages_and_triples(sample_index: Path, tmp_path: Path) -> None:
    index = copy_index(sample_index, tmp_path / "idx")
    before = load_index(index)
    assert top_passage(index, PASSAGE_QUESTION)[0] != NEW_PASSAGE["id"]
    assert "Moonlit Harbour" not in kg_answer(index)

    passages = tmp_path / "new.jsonl"
    passages.write_text(json.dumps(NEW_PASSAGE) + "\n", encoding="utf-8")
    triples = tmp_path / "new.tsv"
    triples.write_text("Moonlit Harbour\tstarred_actors\tSara Kestelman\n", encoding="utf-8")
    result = indexes_cli("add", "--index", str(index), "--passages", str(passages), "--triples", str(triples))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["added_passages"] == 2  # the passage, and the verbalised KG passage of "Moonlit Harbour"
    assert summary["added_triples"] == 1 and summary["triples"] == len(before.graph) + 1
    assert top_passage(index, PASSAGE_QUESTION)[0] == NEW_PASSAGE["id"]
    answer = kg_answer(index)
    assert "Moonlit Harbour" in answer and "Zardoz" in answer

    ids_file = tmp_path / "ids.txt"
    ids_file.write_text(NEW_PASSAGE["id"] + "\n", encoding="utf-8")
    result = indexes_cli("delete", "--index", str(index), "--ids-file", str(ids_file), "--triples-file", str(triples))
    assert result.returncode == 0, result.stderr
    assert NEW_PASSAGE["id"] not in top_passage(index, PASSAGE_QUESTION)
    assert "Moonlit Harbour" not in kg_answer(index)
    after = load_index(index)
    assert [p.id for p in after.passages] == [p.id for p in before.passages if p.id != "kg:Moonlit Harbour"]
    assert len(after.graph) == len(before.graph)


def test_bad_update_input_exits_2_with_one_error_line(sample_index: Path, tmp_path: Path) -> None:
    index = copy_index(sample_index, tmp_path / "idx")
    result = indexes_cli("delete", "--index", str(index), "--ids", "no-such-passage")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: passage ids not in the index: ['no-such-passage']"]


@pytest.mark.slow
def test_sigkill_during_real_adds_keeps_the_previous_version(sample_index: Path, tmp_path: Path) -> None:
    index = copy_index(sample_index, tmp_path / "idx")
    passages = tmp_path / "new.jsonl"
    passages.write_text(json.dumps(NEW_PASSAGE) + "\n", encoding="utf-8")
    live = layout.current_version_name(index)
    counts = load_index(index).manifest["counts"]
    args = [sys.executable, "-m", "indexes", "add", "--index", str(index), "--passages", str(passages)]
    started = time.perf_counter()
    probe = subprocess.run(args[:4] + ["--help"], cwd=REPO, env=subprocess_env(), capture_output=True, check=True)
    assert probe.returncode == 0
    startup = time.perf_counter() - started
    rng = random.Random(7)
    for _ in range(4):
        victim = subprocess.Popen(args, cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(startup, startup + 8.0))
        if victim.poll() is None:
            victim.send_signal(signal.SIGKILL)
            victim.communicate(timeout=60)
            assert layout.current_version_name(index) == live
            assert load_index(index).manifest["counts"] == counts  # every checksum verified
        else:  # it finished before the kill: the new version is complete; go on from it
            assert victim.returncode == 0
            return
    final = subprocess.run(args, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, check=False)
    assert final.returncode == 0, final.stderr
    assert sorted(p.name for p in index.iterdir() if p.name != layout.CURRENT) == [layout.current_version_name(index)]
