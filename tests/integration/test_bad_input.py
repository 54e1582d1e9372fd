"""Bad questions, damaged or foreign index folders, failed rebuilds, bad model paths: clear errors only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from indexes import layout
from indexes.build import BuildConfig, build_index
from rag.errors import IndexLoadError, InputError, ModelLoadError
from rag.pipeline import QAPipeline

from support import REPO, copy_index, subprocess_env



pytestmark = pytest.mark.integration


def live(index: Path) -> Path:
    return index / layout.current_version_name(index)


@pytest.mark.parametrize(
    ("question", "needle"),
    [("", "empty"), ("   \n\t ", "empty"), ("x" * 10_000_000, "too long: 10000000 characters"), (None, "must be a string")],
    ids=["empty", "whitespace", "10MB", "none"],
)
def test_bad_questions(default_pipeline, question, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        default_pipeline.ask(question)


def test_too_long_instruction(default_pipeline) -> None:
    with pytest.raises(InputError, match="instruction is too long"):
        default_pipeline.ask("who stars in Hot to Trot", instruction="y" * 100_000)


def test_missing_index_dir(tmp_path: Path) -> None:
    with pytest.raises(IndexLoadError, match="does not exist") as info:
        QAPipeline.load(tmp_path / "missing")
    assert "python -m indexes build" in str(info.value)


def test_folder_that_is_not_an_index(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("hello")
    with pytest.raises(IndexLoadError, match="not a kgrag index"):
        QAPipeline.load(tmp_path / "docs")


def test_corrupted_vectors_name_the_checksum(sample_index: Path, tmp_path: Path) -> None:
    index = copy_index(sample_index, tmp_path / "idx")
    vectors = live(index) / layout.VECTORS
    data = bytearray(vectors.read_bytes())
    for position in range(len(data) // 2, len(data) // 2 + 64):
        data[position] ^= 0xFF
    vectors.write_bytes(bytes(data))
    with pytest.raises(IndexLoadError, match=r"checksum mismatch for .*vectors\.faiss"):
        QAPipeline.load(index)


def test_truncated_vectors_without_verification(sample_index: Path, tmp_path: Path) -> None:
    index = copy_index(sample_index, tmp_path / "idx")
    vectors = live(index) / layout.VECTORS
    vectors.write_bytes(vectors.read_bytes()[:100])
    with pytest.raises(IndexLoadError, match="vectors.faiss"):
        QAPipeline.load(index, preset="kg-only", verify_checksums=False)


def test_future_format_version_says_rebuild(sample_index: Path, tmp_path: Path) -> None:
    index = copy_index(sample_index, tmp_path / "idx")
    manifest_path = live(index) / layout.MANIFEST
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["format_version"] = 999
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(IndexLoadError, match="rebuild") as info:
        QAPipeline.load(index)
    assert "999" in str(info.value)


def test_failed_rebuild_keeps_previous_index_answering(sample_index: Path, tmp_path: Path, default_pipeline) -> None:
    index = copy_index(sample_index, tmp_path / "idx")
    before = layout.current_version_name(index)
    bad = tmp_path / "bad.tsv"
    bad.write_text("A\tr\tB\nthis line has no separators\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.tsv:2"):
        build_index(index, BuildConfig(passages=(str(REPO / "data/sample/passages.jsonl"),), triples=(str(bad),), progress=False))
    assert layout.current_version_name(index) == before
    assert sorted(p.name for p in index.iterdir() if p.name.startswith("v-")) == [before]
    question = "what language is Kontroll in"
    answer = QAPipeline.load(index, preset="kg-only").ask(question)
    expected = default_pipeline.ask(question)
    assert not answer.refused and answer.text == expected.text
    assert [c.id for c in answer.citations] == [c.id for c in expected.citations]


def test_unknown_reader_path(sample_index: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError) as info:
        QAPipeline.load(sample_index, reader=str(tmp_path / "no-such-model.gguf"))
    assert "no-such-model.gguf" in str(info.value)


def test_manifest_dimension_that_the_vectors_do_not_have(sample_index: Path, tmp_path: Path) -> None:
    index = copy_index(sample_index, tmp_path / "idx")
    manifest_path = live(index) / layout.MANIFEST
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["embedder"]["dimension"] = 768
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(IndexLoadError) as info:
        QAPipeline.load(index, preset="kg-only")
    assert "384" in str(info.value) and "768" in str(info.value)


def test_embedder_dimension_mismatch(tmp_path: Path) -> None:
    # A KG-only index (no vectors) whose manifest claims another embedder width: the real embedder gives 384.
    index = tmp_path / "kg-index"
    build_index(index, BuildConfig(triples=(str(REPO / "data/sample/triples.tsv"),), kg_passages=False, progress=False))
    manifest_path = live(index) / layout.MANIFEST
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    assert manifest["counts"]["chunks"] == 0 and layout.VECTORS not in manifest["files"]
    manifest["embedder"]["dimension"] = 768
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(InputError, match=r"384-d vectors but the index holds 768-d"):
        QAPipeline.load(index, preset="kg-only")


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


def test_build_cli_malformed_jsonl_exits_2_with_file_line(tmp_path: Path) -> None:
    passages = tmp_path / "docs.jsonl"
    passages.write_text('{"id": "a", "text": "fine"}\n{"id": "b", "text": "oops"\n', encoding="utf-8")
    result = run_cli("-m", "indexes", "build", "--out", str(tmp_path / "idx"), "--passages", str(passages), "--quiet")
    assert result.returncode == 2, result.stderr
    assert f"{passages}:2" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "idx" / layout.CURRENT).exists()


def test_build_cli_without_inputs_exits_2(tmp_path: Path) -> None:
    result = run_cli("-m", "indexes", "build", "--out", str(tmp_path / "idx"))
    assert result.returncode == 2 and "--passages" in result.stderr and "Traceback" not in result.stderr


def test_ask_cli_missing_index_exits_2_with_one_line(tmp_path: Path) -> None:
    result = run_cli("-m", "rag", "ask", "--index", str(tmp_path / "missing"), "who directed Zardoz")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:") and "does not exist" in lines[0]
    assert result.stdout == ""
