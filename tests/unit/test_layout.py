"""Index folder layout: atomic publish via CURRENT, refusing foreign folders, manifest checks.

Builds use a fake embedder (hashed bag of words) so no model loads; FAISS and the store are real.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import indexes.build as build_module
from indexes import layout
from indexes.build import BuildConfig, build_index
from indexes.store import load_index
from rag.errors import IndexLoadError, InputError


@pytest.fixture
def fake_build(monkeypatch: pytest.MonkeyPatch, fake_embedder_cls):
    monkeypatch.setattr(build_module, "Embedder", fake_embedder_cls)

    def run(out: Path, passages: list[str] = (), triples: list[str] = (), **options):
        return build_index(out, BuildConfig(passages=tuple(passages), triples=tuple(triples), progress=False, **options))

    return run


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    passages = tmp_path / "p.jsonl"
    passages.write_text(
        '{"id": "a", "text": "Paris is the capital of France."}\n{"id": "b", "text": "Berlin is in Germany."}\n',
        encoding="utf-8",
    )
    triples = tmp_path / "kb.tsv"
    triples.write_text("Inception\tdirected_by\tChristopher Nolan\nInception\trelease_year\t2010\n", encoding="utf-8")
    more = tmp_path / "more.tsv"
    more.write_text("Titanic\tdirected_by\tJames Cameron\n", encoding="utf-8")
    bad = tmp_path / "bad.tsv"
    bad.write_text("Titanic\tdirected_by\tJames Cameron\nbroken line\n", encoding="utf-8")
    return {"passages": passages, "triples": triples, "more": more, "bad": bad}


def versions(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.is_dir() and p.name.startswith("v-"))


def test_build_writes_a_version_and_points_current_at_it(tmp_path: Path, fake_build, inputs) -> None:
    out = tmp_path / "idx"
    result = fake_build(out, [inputs["passages"]], [inputs["triples"]], kg_passages=True)
    live = layout.current_version_name(out)
    assert versions(out) == [live]
    assert not (out / layout.STAGING).exists()
    manifest = json.loads((out / live / layout.MANIFEST).read_text(encoding="utf-8"))
    assert manifest == result.manifest
    assert manifest["format_version"] == layout.FORMAT_VERSION and manifest["embedder"]["dimension"] == 16
    assert manifest["counts"]["documents"] == 2 and manifest["counts"]["triples"] == 2
    # One verbalised KG passage (Inception) next to the two documents.
    assert manifest["counts"]["kg_passages"] == 1 and manifest["counts"]["chunks"] == 3
    for name, digest in manifest["files"].items():
        assert layout.sha256_file(out / live / name) == digest
    loaded = load_index(out)
    assert len(loaded.passages) == 3 and len(loaded.vectors) == 3 and len(loaded.graph) == 2


def test_rebuild_switches_current_and_removes_the_old_version(tmp_path: Path, fake_build, inputs) -> None:
    out = tmp_path / "idx"
    fake_build(out, triples=[inputs["triples"]])
    first = layout.current_version_name(out)
    fake_build(out, triples=[inputs["more"]], kg_passages=False)
    second = layout.current_version_name(out)
    assert second != first and versions(out) == [second]
    assert load_index(out).graph.entities == ["Titanic", "James Cameron"]


def test_failed_rebuild_leaves_the_live_index_untouched(tmp_path: Path, fake_build, inputs) -> None:
    out = tmp_path / "idx"
    fake_build(out, [inputs["passages"]], [inputs["triples"]])
    live = layout.current_version_name(out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(InputError, match=r"bad\.tsv:2"):
        fake_build(out, [inputs["passages"]], [inputs["bad"]])
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before and layout.current_version_name(out) == live
    assert load_index(out).graph.entities == ["Inception", "Christopher Nolan", "2010"]


def test_publish_is_a_pointer_switch(tmp_path: Path) -> None:
    out = tmp_path / "idx"
    out.mkdir()
    old = layout.new_version_dir(out)
    (old / "x").write_text("old")
    layout.publish(out, old)
    assert layout.current_version_name(out) == old.name
    newer = layout.new_version_dir(out)
    layout.publish(out, newer)
    assert (out / layout.CURRENT).read_text(encoding="utf-8").strip() == newer.name
    assert not old.exists() and versions(out) == [newer.name]
    assert not list(out.glob(".CURRENT*"))  # no temporary pointer left behind


def test_prepare_output_refuses_a_non_index_folder(tmp_path: Path) -> None:
    folder = tmp_path / "my-documents"
    folder.mkdir()
    (folder / "thesis.docx").write_text("precious")
    with pytest.raises(InputError, match="not a kgrag index") as info:
        layout.prepare_output(folder)
    assert "thesis.docx" in str(info.value)
    assert (folder / "thesis.docx").read_text() == "precious"
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        layout.prepare_output(file)


def test_prepare_output_accepts_new_empty_and_interrupted_folders(tmp_path: Path) -> None:
    layout.prepare_output(tmp_path / "new" / "nested")
    assert (tmp_path / "new" / "nested").is_dir()
    interrupted = tmp_path / "interrupted"
    (interrupted / layout.STAGING).mkdir(parents=True)
    (interrupted / "v-20240101T000000-1-000001").mkdir()
    layout.prepare_output(interrupted)  # a crashed first build may be resumed


def test_build_into_a_foreign_folder_fails_before_writing(tmp_path: Path, fake_build, inputs) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a kgrag index"):
        fake_build(folder, triples=[inputs["triples"]])
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def _built(tmp_path: Path, fake_build, inputs) -> tuple[Path, Path]:
    out = tmp_path / "idx"
    fake_build(out, [inputs["passages"]], [inputs["triples"]])
    return out, out / layout.current_version_name(out)


def test_format_version_mismatch_says_rebuild(tmp_path: Path, fake_build, inputs) -> None:
    out, version = _built(tmp_path, fake_build, inputs)
    manifest = json.loads((version / layout.MANIFEST).read_text(encoding="utf-8"))
    manifest["format_version"] = 999
    (version / layout.MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(IndexLoadError) as info:
        load_index(out)
    message = str(info.value)
    assert "999" in message and "rebuild" in message and str(layout.FORMAT_VERSION) in message


def test_checksum_mismatch_names_the_file(tmp_path: Path, fake_build, inputs) -> None:
    out, version = _built(tmp_path, fake_build, inputs)
    path = version / layout.PASSAGES
    path.write_text(path.read_text(encoding="utf-8").replace("Paris", "Lyon!"), encoding="utf-8")
    with pytest.raises(IndexLoadError, match=r"checksum mismatch for .*passages\.jsonl"):
        load_index(out)
    # Verification can be skipped explicitly, and then the changed text is what loads.
    assert any("Lyon!" in p.text for p in load_index(out, verify=False).passages)


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (lambda out, v: (out / layout.CURRENT).unlink(), "not a kgrag index"),
        (lambda out, v: (v / layout.MANIFEST).unlink(), "incomplete"),
        (lambda out, v: (v / layout.MANIFEST).write_text("{not json"), "cannot read"),
        (lambda out, v: (v / layout.MANIFEST).write_text('{"format": "other"}'), "not a kgrag manifest"),
        (lambda out, v: (v / "kg" / "triples.npy").unlink(), "index file missing"),
    ],
    ids=["no-current", "no-manifest", "bad-json", "foreign-manifest", "missing-file"],
)
def test_damaged_index_errors(tmp_path: Path, fake_build, inputs, damage, needle: str) -> None:
    out, version = _built(tmp_path, fake_build, inputs)
    damage(out, version)
    with pytest.raises(IndexLoadError, match=needle):
        load_index(out)


def test_missing_index_folder(tmp_path: Path) -> None:
    with pytest.raises(IndexLoadError, match="does not exist"):
        load_index(tmp_path / "nowhere")


def test_publish_keeps_a_version_another_live_build_is_still_writing(tmp_path: Path, fake_build, inputs) -> None:
    out = tmp_path / "idx"
    fake_build(out, [inputs["passages"]])
    # A second build (the parent process, alive) is half-way through writing its version: no manifest yet.
    in_progress = out / f"v-20990101T000000-{os.getppid()}-000001"
    in_progress.mkdir()
    crashed = out / "v-20990101T000000-999999999-000002"  # no such pid: a crashed build's leftovers
    crashed.mkdir()
    fake_build(out, [inputs["passages"]])
    assert in_progress.is_dir()
    assert not crashed.exists()
