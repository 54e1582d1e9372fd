"""Bad input the build CLI must handle without a traceback: duplicate triples, `--skip-bad-lines` reporting.

In-process (`indexes.__main__.main`) with the fake embedder, so it runs in the default suite in milliseconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import indexes.build as build_module
from indexes.__main__ import main as build_main
from indexes.store import load_index


@pytest.fixture(autouse=True)
def _fake_embedder(monkeypatch: pytest.MonkeyPatch, fake_embedder_cls) -> None:
    monkeypatch.setattr(build_module, "Embedder", fake_embedder_cls)


def test_duplicate_triples_are_deduplicated(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    kb = tmp_path / "kb.tsv"
    kb.write_text("Inception\tdirected_by\tChristopher Nolan\n" * 3 + "Inception|directed_by|Christopher Nolan\n"
                  '{"head": " Inception ", "relation": "directed_by", "tail": "Christopher Nolan"}\n'
                  "Inception\trelease_year\t2010\n", encoding="utf-8")
    assert build_main(["build", "--out", str(tmp_path / "idx"), "--triples", str(kb), "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["triples"] == 2 and summary["entities"] == 3
    assert len(load_index(tmp_path / "idx").graph) == 2


def test_skip_bad_lines_cli_reports_each_line_and_the_count(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    passages = tmp_path / "p.jsonl"
    passages.write_text('{"id": "a", "text": "fine"}\n{"id": "b", "text": "oops"\n[1, 2]\n{"id": "c", "text": "ok"}\n',
                        encoding="utf-8")
    kb = tmp_path / "kb.tsv"
    kb.write_text("a\tr\tb\nbroken\na\tr\tb\tc\td\n", encoding="utf-8")
    code = build_main(["build", "--out", str(tmp_path / "idx"), "--passages", str(passages), "--triples", str(kb),
                       "--skip-bad-lines", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"skipped: {kb}:2: expected 3 fields (head, relation, tail), found 1" in err
    assert f"skipped: {kb}:3: expected 3 fields (head, relation, tail), found 5" in err
    assert f"skipped: {passages}:2: invalid JSON" in err
    assert f"skipped: {passages}:3: expected a JSON object, got list" in err
    assert err.strip().splitlines()[-1] == "skipped 4 bad line(s)"
    assert json.loads(out)["documents"] == 2 and json.loads(out)["triples"] == 1


def test_bad_line_without_skip_exits_2_with_file_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    kb = tmp_path / "kb.tsv"
    kb.write_text("a\tr\tb\nbroken\n", encoding="utf-8")
    assert build_main(["build", "--out", str(tmp_path / "idx"), "--triples", str(kb), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {kb}:2: expected 3 fields (head, relation, tail), found 1\n"
    assert not (tmp_path / "idx" / "CURRENT").exists()
