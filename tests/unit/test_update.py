"""Incremental add / delete with the FakeEmbedder: what changes, what is kept (no re-embedding), atomicity."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import indexes.build as build_module
import indexes.update as update_module
from indexes import layout
from indexes.build import BuildConfig, build_index
from indexes.store import load_index
from indexes.update import add_to_index, delete_from_index
from rag.errors import InputError


class Boom(RuntimeError):
    pass


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, fake_embedder_cls):
    texts: list[str] = []

    class Recording(fake_embedder_cls):
        def encode(self, batch, *, batch_size=None):
            texts.extend(batch)
            return super().encode(batch, batch_size=batch_size)

    monkeypatch.setattr(build_module, "Embedder", Recording)
    monkeypatch.setattr(update_module, "Embedder", Recording)
    return texts


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def index(tmp_path: Path, fake) -> Path:
    passages = write_jsonl(tmp_path / "p.jsonl", [
        {"id": "paris", "text": "Paris is the capital of France."},
        {"id": "long", "text": " ".join(f"word{i}" for i in range(300))},  # three chunks
    ])
    triples = tmp_path / "kb.tsv"
    triples.write_text("Inception\tdirected_by\tChristopher Nolan\nTitanic\tdirected_by\tJames Cameron\n", encoding="utf-8")
    out = tmp_path / "idx"
    build_index(out, BuildConfig(passages=(str(passages),), triples=(str(triples),), kg_passages=True, progress=False))
    fake.clear()
    return out


def search_ids(out: Path, text: str, fake_embedder_cls, k: int = 1) -> list[str]:
    loaded = load_index(out)
    _, rows = loaded.vectors.search(fake_embedder_cls().encode([text]), k)
    return [loaded.passages[r].id for r in rows[0] if r >= 0]


def test_add_embeds_only_the_new_passages_and_finds_them(index: Path, tmp_path: Path, fake, fake_embedder_cls) -> None:
    before = load_index(index)
    new = write_jsonl(tmp_path / "new.jsonl", [{"id": "berlin", "text": "Berlin is the capital of Germany."}])
    result = add_to_index(index, passages=[new])
    assert fake == ["Berlin is the capital of Germany."]  # nothing already indexed was embedded again
    after = load_index(index)  # checksums verified
    assert [p.id for p in after.passages] == [p.id for p in before.passages] + ["berlin"]
    np.testing.assert_array_equal(after.vectors._cpu_index.reconstruct_n(0, len(before.passages)),
                                  before.vectors._cpu_index.reconstruct_n(0, len(before.passages)))
    assert search_ids(index, "Berlin is the capital of Germany.", fake_embedder_cls) == ["berlin"]
    assert result.added_passages == 1 and after.manifest["counts"]["chunks"] == len(before.passages) + 1
    assert after.manifest["updates"][-1]["operation"] == "add"
    assert len([p for p in index.iterdir() if p.name.startswith("v-")]) == 1  # the old version was removed


def test_add_triples_reverbalises_only_the_touched_entities(index: Path, tmp_path: Path, fake) -> None:
    triples = tmp_path / "more.tsv"
    triples.write_text("Inception\trelease_year\t2010\nInception\tdirected_by\tChristopher Nolan\n", encoding="utf-8")
    result = add_to_index(index, triples=[triples])
    assert result.added_triples == 1  # the duplicate is not added twice
    loaded = load_index(index)
    assert len(loaded.graph) == 3
    # The touched entity's passage, and the name of the one new entity (for embedding entity linking).
    assert fake == ["Inception. directed by: Christopher Nolan. release year: 2010.", "2010"]
    kg = {p.id: p.text for p in loaded.passages if p.source == "kg"}
    assert kg["kg:Inception"].endswith("release year: 2010.") and "kg:Titanic" in kg


def test_delete_by_document_id_removes_all_its_chunks(index: Path, fake_embedder_cls, fake) -> None:
    before = load_index(index)
    chunks = sum(p.parent_id == "long" for p in before.passages)
    assert chunks == 3  # 300 words in windows of 160 overlapping by 30
    result = delete_from_index(index, ids=["long"])
    after = load_index(index)
    assert result.removed_passages == chunks and fake == []
    assert [p.id for p in after.passages] == [p.id for p in before.passages if p.parent_id != "long"]
    assert len(after.vectors) == len(after.passages)
    assert search_ids(index, "Paris is the capital of France.", fake_embedder_cls) == ["paris"]
    delete_from_index(index, ids=["paris"])
    assert "paris" not in search_ids(index, "Paris is the capital of France.", fake_embedder_cls, k=10)


def test_delete_triples_updates_the_graph_and_the_kg_passages(index: Path, tmp_path: Path, fake) -> None:
    doomed = tmp_path / "doomed.tsv"
    doomed.write_text("Titanic\tdirected_by\tJames Cameron\n", encoding="utf-8")
    result = delete_from_index(index, triples=[doomed])
    loaded = load_index(index)
    assert result.removed_triples == 1 and len(loaded.graph) == 1
    assert "kg:Titanic" not in {p.id for p in loaded.passages}
    assert fake == []  # Titanic has no facts left: nothing to re-embed


def test_bad_update_requests_are_one_clear_error(index: Path, tmp_path: Path) -> None:
    before = layout.current_version_name(index)
    clash = write_jsonl(tmp_path / "clash.jsonl", [{"id": "paris", "text": "again"}])
    with pytest.raises(InputError, match="already in the index"):
        add_to_index(index, passages=[clash])
    with pytest.raises(InputError, match="not in the index"):
        delete_from_index(index, ids=["nope"])
    absent = tmp_path / "absent.tsv"
    absent.write_text("A\tb\tC\n", encoding="utf-8")
    with pytest.raises(InputError, match="triples not in the index"):
        delete_from_index(index, triples=[absent])
    with pytest.raises(InputError, match="needs at least one"):
        add_to_index(index)
    assert layout.current_version_name(index) == before


@pytest.mark.parametrize("where", ["write_index", "publish"])
def test_an_update_that_dies_keeps_the_previous_version(index: Path, tmp_path: Path, monkeypatch, where: str) -> None:
    before = load_index(index)
    live = layout.current_version_name(index)
    new = write_jsonl(tmp_path / "new.jsonl", [{"id": "berlin", "text": "Berlin is the capital of Germany."}])
    with monkeypatch.context() as patch:
        if where == "write_index":
            def die(*args, **kwargs):
                raise Boom(where)

            patch.setattr(update_module, "write_index", die)
        else:
            real = os.replace

            def replace(src, dst, *args, **kwargs):
                if Path(dst).name == layout.CURRENT:
                    raise Boom(where)
                return real(src, dst, *args, **kwargs)

            patch.setattr(layout.os, "replace", replace)
        with pytest.raises(Boom):
            add_to_index(index, passages=[new])
    assert layout.current_version_name(index) == live
    assert [p.id for p in load_index(index).passages] == [p.id for p in before.passages]
    add_to_index(index, passages=[new])  # and the next update goes through and cleans up
    assert sorted(p.name for p in index.iterdir() if p.name != layout.CURRENT) == [layout.current_version_name(index)]


def test_ivf_indexes_are_updated_without_retraining(tmp_path: Path, fake, fake_embedder_cls) -> None:
    rows = [{"id": f"p{i}", "text": f"passage number {i} about topic {i % 7} and thing {i % 11}"} for i in range(400)]
    out = tmp_path / "ivf"
    build_index(out, BuildConfig(passages=(str(write_jsonl(tmp_path / "p.jsonl", rows)),), index_type="ivf", progress=False))
    delete_from_index(out, ids=["p3"])
    add_to_index(out, passages=[write_jsonl(tmp_path / "n.jsonl", [{"id": "zebra", "text": "zebra zebra stripes savanna"}])])
    loaded = load_index(out)
    assert type(loaded.vectors._cpu_index).__name__ == "IndexIVFFlat"
    assert len(loaded.vectors) == 400 and "p3" not in {p.id for p in loaded.passages}
    loaded.vectors._cpu_index.nprobe = loaded.vectors._cpu_index.nlist
    assert search_ids(out, "zebra zebra stripes savanna", fake_embedder_cls) == ["zebra"]


@pytest.mark.parametrize("kind", ["ivfpq", "ivfpq-sq8"])
def test_pq_indexes_build_load_and_update(tmp_path: Path, fake, fake_embedder_cls, kind: str) -> None:
    rows = [{"id": f"p{i}", "text": f"passage {i} topic{i % 13} thing{i % 17} item{i % 29}"} for i in range(1200)]
    out = tmp_path / kind
    result = build_index(out, BuildConfig(passages=(str(write_jsonl(tmp_path / "p.jsonl", rows)),), index_type=kind,
                                          nprobe=64, progress=False))
    assert result.manifest["vector_index"]["type"] == kind
    loaded = load_index(out)
    assert len(loaded.vectors) == 1200
    delete_from_index(out, ids=["p5"])
    add_to_index(out, passages=[write_jsonl(tmp_path / "n.jsonl", [{"id": "zebra", "text": "zebra zebra stripes savanna"}])])
    loaded = load_index(out, nprobe=10_000)
    assert len(loaded.vectors) == 1200 and "p5" not in {p.id for p in loaded.passages}
    assert "zebra" in search_ids(out, "zebra zebra stripes savanna", fake_embedder_cls, k=5)


def test_entity_name_vectors_follow_the_graph_and_only_new_names_are_embedded(index: Path, tmp_path: Path, fake) -> None:
    before = load_index(index)
    assert before.entity_vectors is not None and len(before.entity_vectors) == len(before.graph.entities)
    old = {name: before.entity_vectors[row].copy() for row, name in enumerate(before.graph.entities)}
    kb = tmp_path / "more.tsv"
    kb.write_text("Avatar\tdirected_by\tJames Cameron\n", encoding="utf-8")
    fake.clear()
    add_to_index(index, triples=[str(kb)])
    after = load_index(index)  # checksums of the new vectors file verified
    assert len(after.entity_vectors) == len(after.graph.entities) == len(before.graph.entities) + 1
    for row, name in enumerate(after.graph.entities):
        if name in old:
            np.testing.assert_array_equal(after.entity_vectors[row], old[name])
    assert "Avatar" in fake  # the one new name was embedded ...
    assert "Inception" not in fake and "James Cameron" not in fake  # ... the known ones were not
    assert after.manifest["counts"]["entity_vectors"] == len(after.graph.entities)
