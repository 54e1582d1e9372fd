"""A build that dies at any point leaves the previous index loadable and answering the same; the next build
cleans the leftovers.

The fast tests (default run) use the FakeEmbedder in-process and make `build_index` raise at each stage; the
`slow` test SIGKILLs a real `python -m indexes build` subprocess at seeded random moments.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import indexes.build as build_module
from indexes import layout
from indexes.build import BuildConfig, build_index
from indexes.store import load_index

from support import REPO, SAMPLE, subprocess_env


class Boom(RuntimeError):
    pass


@pytest.fixture
def fake_build(monkeypatch: pytest.MonkeyPatch, fake_embedder_cls):
    monkeypatch.setattr(build_module, "Embedder", fake_embedder_cls)

    def run(out: Path, passages: Path, triples: Path):
        return build_index(out, BuildConfig(passages=(str(passages),), triples=(str(triples),), kg_passages=True, progress=False))

    return run


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path, Path]:
    passages = tmp_path / "p.jsonl"
    passages.write_text('{"id": "a", "text": "Paris is the capital of France."}\n', encoding="utf-8")
    triples = tmp_path / "kb.tsv"
    triples.write_text("Inception\tdirected_by\tChristopher Nolan\n", encoding="utf-8")
    newer = tmp_path / "kb2.tsv"
    newer.write_text("Titanic\tdirected_by\tJames Cameron\nTitanic\trelease_year\t1997\n", encoding="utf-8")
    return passages, triples, newer


def snapshot(out: Path) -> dict:
    """What a reader of the index sees: the live version's files and the loaded content."""
    live = layout.current_version_name(out)
    files = {p.relative_to(out / live).as_posix(): p.read_bytes() for p in (out / live).rglob("*") if p.is_file()}
    loaded = load_index(out)
    return {"live": live, "files": files, "passages": [p.id for p in loaded.passages], "entities": loaded.graph.entities}


def leftovers(out: Path) -> list[str]:
    live = layout.current_version_name(out)
    return sorted(p.name for p in out.iterdir() if p.name not in (layout.CURRENT, live))


def _raise_after_embedding(monkeypatch):
    real = build_module.embed_resumable

    def embed_then_die(*args, **kwargs):
        real(*args, **kwargs)
        raise Boom("after embedding")

    monkeypatch.setattr(build_module, "embed_resumable", embed_then_die)


def _raise_inside_write_version(monkeypatch):
    real = build_module.write_index

    def write_then_die(index, path):
        real(index, path)  # vectors.faiss is on disk, the KG is not yet
        raise Boom("during _write_version")

    monkeypatch.setattr(build_module, "write_index", write_then_die)


def _raise_before_pointer_replace(monkeypatch):
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        if Path(dst).name == layout.CURRENT:
            raise Boom("before publish's os.replace")
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(layout.os, "replace", replace)


def _raise_after_pointer_replace(monkeypatch):
    # The switch happened: the NEW index must be live and complete, the old one may go.
    real = layout.remove_stale_versions

    def die(out):
        raise Boom("after the switch, before cleanup")

    monkeypatch.setattr(layout, "remove_stale_versions", die)
    return real


@pytest.mark.parametrize(
    "stage", [_raise_after_embedding, _raise_inside_write_version, _raise_before_pointer_replace], ids=lambda f: f.__name__[7:]
)
def test_a_build_that_fails_at_any_stage_keeps_the_old_index(tmp_path, fake_build, inputs, monkeypatch, stage) -> None:
    passages, triples, newer = inputs
    out = tmp_path / "idx"
    fake_build(out, passages, triples)
    before = snapshot(out)
    with monkeypatch.context() as patch:
        stage(patch)
        with pytest.raises(Boom):
            fake_build(out, passages, newer)
    assert snapshot(out) == before
    assert not [name for name in leftovers(out) if name.startswith("v-")]  # the failed version was removed
    # The next build completes and leaves only its own version: no staging, no pointer temp file.
    fake_build(out, passages, newer)
    assert load_index(out).graph.entities == ["Titanic", "James Cameron", "1997"]
    assert leftovers(out) == []


def test_a_build_that_fails_after_the_switch_serves_the_new_index(tmp_path, fake_build, inputs, monkeypatch) -> None:
    passages, triples, newer = inputs
    out = tmp_path / "idx"
    fake_build(out, passages, triples)
    with monkeypatch.context() as patch:
        _raise_after_pointer_replace(patch)
        with pytest.raises(Boom):
            fake_build(out, passages, newer)
    assert load_index(out).graph.entities == ["Titanic", "James Cameron", "1997"]
    fake_build(out, passages, triples)
    assert leftovers(out) == []


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_leftovers_of_a_killed_build_are_cleaned_by_the_next_build(tmp_path, fake_build, inputs) -> None:
    # What SIGKILL leaves (no except/finally runs): a half-written version, embedding shards, a pointer temp file.
    passages, triples, newer = inputs
    out = tmp_path / "idx"
    fake_build(out, passages, triples)
    before = snapshot(out)
    pid = _dead_pid()
    half = out / f"v-20990101T000000-{pid}-000001"
    (half / "kg").mkdir(parents=True)
    (half / layout.PASSAGES).write_text('{"id": "x", "te', encoding="utf-8")
    (out / layout.STAGING / "abc").mkdir(parents=True)
    (out / layout.STAGING / "abc" / ".shard-000000.tmp.npy").write_bytes(b"\x93NUMPY")
    (out / f".{layout.CURRENT}.{pid}.tmp").write_text(half.name + "\n", encoding="utf-8")
    assert snapshot(out) == before
    fake_build(out, passages, newer)
    assert leftovers(out) == []


def test_a_first_build_killed_before_the_switch_can_be_rerun(tmp_path, fake_build, inputs) -> None:
    # Killed between writing the pointer temp file and os.replace: there is no CURRENT yet, only leftovers.
    passages, triples, _ = inputs
    out = tmp_path / "idx"
    out.mkdir()
    pid = _dead_pid()
    half = out / f"v-20990101T000000-{pid}-000001"
    half.mkdir()
    (out / f".{layout.CURRENT}.{pid}.tmp").write_text(half.name + "\n", encoding="utf-8")
    fake_build(out, passages, triples)
    assert load_index(out).graph.entities == ["Inception", "Christopher Nolan"]
    assert leftovers(out) == []


# ---- the real thing: SIGKILL a real build subprocess ----------------------------------------------------

QUESTION = "Sara Kestelman appears in which movies"


def _cli_build(out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "indexes", "build", "--out", str(out), "--passages", str(SAMPLE / "passages.jsonl"),
         "--triples", str(SAMPLE / "triples.tsv"), "--kg-passages", "--quiet"],
        cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _kg_answer(out: Path) -> str:
    from rag.pipeline import QAPipeline

    return QAPipeline.load(out, preset="kg-only", device="cpu").ask(QUESTION).text


@pytest.mark.slow
def test_sigkill_during_real_builds_keeps_the_previous_index(tmp_path: Path) -> None:
    out = tmp_path / "idx"
    started = time.perf_counter()
    first = _cli_build(out)
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    build_seconds = time.perf_counter() - started
    reference = _kg_answer(out)
    manifest = json.loads((out / layout.current_version_name(out) / layout.MANIFEST).read_text(encoding="utf-8"))
    assert reference

    rng = random.Random(8)
    for _ in range(4):
        victim = _cli_build(out)
        time.sleep(rng.uniform(0.5, build_seconds * 1.1))
        if victim.poll() is None:
            victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=60)
        loaded = load_index(out)  # verifies every checksum
        assert loaded.manifest["counts"] == manifest["counts"]
        assert _kg_answer(out) == reference

    final = _cli_build(out)
    _, err = final.communicate(timeout=600)
    assert final.returncode == 0, err
    assert _kg_answer(out) == reference
    assert leftovers(out) == []
