"""Input readers: passages (JSONL, folders) and triples (TSV, a|b|c, JSONL), with file:line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from indexes.readers import ReadReport, read_passages, read_triples
from kg.types import Triple
from rag.errors import InputError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ---- passages ------------------------------------------------------------------------------------------


def test_passages_jsonl_fields_and_blank_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path / "p.jsonl",
        json.dumps({"id": "a", "text": "Alpha text.", "title": "Alpha", "source": "wiki", "metadata": {"k": 1}})
        + "\n\n"
        + json.dumps({"id": "b", "text": "Beta text."})
        + "\n",
    )
    passages = list(read_passages(path))
    assert [p.id for p in passages] == ["a", "b"]
    assert passages[0].title == "Alpha" and passages[0].source == "wiki" and passages[0].metadata == {"k": 1}
    assert passages[1].title == "" and passages[1].text == "Beta text."


def test_passages_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes("\ufeff".encode() + json.dumps({"id": "é", "text": "Amélie"}).encode() + b"\n")
    [passage] = read_passages(path)
    assert passage.id == "é" and passage.text == "Amélie"


def test_malformed_jsonl_line_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "p.jsonl", '{"id": "a", "text": "ok"}\n{"id": "b", "text": \n{"id": "c", "text": "ok"}\n')
    with pytest.raises(InputError) as info:
        list(read_passages(path))
    assert f"{path}:2" in str(info.value)
    assert "invalid JSON" in str(info.value)


@pytest.mark.parametrize(
    ("record", "needle"),
    [
        ({"text": "no id"}, '"id"'),
        ({"id": "", "text": "empty id"}, '"id"'),
        ({"id": 3, "text": "numeric id"}, '"id"'),
        ({"id": "x"}, '"text"'),
        ({"id": "x", "text": "   "}, '"text"'),
        ({"id": "x", "text": "t", "title": 5}, '"title"'),
        ({"id": "x", "text": "t", "metadata": [1]}, '"metadata"'),
        (["not", "an", "object"], "JSON object"),
    ],
)
def test_invalid_passage_records(tmp_path: Path, record: object, needle: str) -> None:
    path = write(tmp_path / "p.jsonl", '{"id": "ok", "text": "fine"}\n' + json.dumps(record) + "\n")
    with pytest.raises(InputError) as info:
        list(read_passages(path))
    assert f"{path}:2:" in str(info.value) and needle in str(info.value)


def test_duplicate_passage_id_is_an_error_naming_the_id(tmp_path: Path) -> None:
    path = write(tmp_path / "p.jsonl", '{"id": "a", "text": "one"}\n{"id": "a", "text": "two"}\n')
    with pytest.raises(InputError, match=r"p\.jsonl:2: duplicate passage id 'a'"):
        list(read_passages(path))


def test_skip_bad_lines_counts_and_keeps_good_ones(tmp_path: Path) -> None:
    path = write(
        tmp_path / "p.jsonl",
        '{"id": "a", "text": "one"}\nnot json\n{"id": "a", "text": "dup"}\n{"id": "b"}\n{"id": "c", "text": "three"}\n',
    )
    report = ReadReport()
    passages = list(read_passages(path, report=report))
    assert [p.id for p in passages] == ["a", "c"]
    assert len(report.skipped) == 3
    assert [m.split(": ")[0] for m in report.skipped] == [f"{path}:2", f"{path}:3", f"{path}:4"]


def test_passage_folder_ids_are_relative_paths(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    write(folder / "a.txt", "Alpha document.\nSecond line.")
    write(folder / "sub" / "b.md", "# Beta\nMarkdown body.")
    write(folder / "ignored.csv", "x,y")
    passages = {p.id: p for p in read_passages(folder)}
    assert set(passages) == {"a.txt", "sub/b.md"}
    assert passages["a.txt"].text == "Alpha document.\nSecond line."
    assert passages["sub/b.md"].title == "b"


def test_passage_folder_without_text_files(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    write(tmp_path / "empty" / "x.csv", "a")
    with pytest.raises(InputError, match="no .txt or .md files"):
        list(read_passages(tmp_path / "empty"))


def test_passage_folder_skips_bad_files_only_when_asked(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    write(folder / "good.txt", "Good text.")
    (folder / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    write(folder / "blank.md", "   \n")
    # Files are read in sorted order: the first bad one (blank.md) stops the read.
    with pytest.raises(InputError, match=r"blank\.md: empty file"):
        list(read_passages(folder))
    (folder / "blank.md").unlink()
    with pytest.raises(InputError, match=r"latin1\.txt:1: not valid UTF-8"):
        list(read_passages(folder))
    write(folder / "blank.md", "   \n")
    report = ReadReport()
    assert [p.id for p in read_passages(folder, report=report)] == ["good.txt"]
    assert len(report.skipped) == 2


def test_missing_passages_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        list(read_passages(tmp_path / "nope.jsonl"))


def test_non_utf8_file_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"id": "a", "text": "ok"}\n{"id": "b", "text": "caf\xe9"}\n')
    with pytest.raises(InputError) as info:
        list(read_passages(path))
    assert f"{path}:2" in str(info.value) and "UTF-8" in str(info.value)


@pytest.mark.parametrize("reader", [read_passages, read_triples])
def test_binary_file_is_rejected(tmp_path: Path, reader) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(InputError, match="binary"):
        list(reader(path))


# ---- triples -------------------------------------------------------------------------------------------


EXPECTED = [Triple("Inception", "directed_by", "Christopher Nolan"), Triple("Inception", "release_year", "2010")]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("kb.tsv", "Inception\tdirected_by\tChristopher Nolan\nInception\trelease_year\t2010\n"),
        ("kb.txt", "Inception|directed_by|Christopher Nolan\nInception|release_year|2010\n"),
        (
            "kb.jsonl",
            (
                '{"head": "Inception", "relation": "directed_by", "tail": "Christopher Nolan"}\n'
                '{"head": "Inception", "relation": "release_year", "tail": "2010"}\n'
            ),
        ),
        # JSON lines are recognised by content too, whatever the suffix.
        (
            "kb.dat",
            (
                '{"head": "Inception", "relation": "directed_by", "tail": "Christopher Nolan"}\n'
                "Inception|release_year|2010\n"
            ),
        ),
    ],
)
def test_triple_formats_are_auto_detected(tmp_path: Path, name: str, text: str) -> None:
    assert list(read_triples(write(tmp_path / name, text))) == EXPECTED


def test_tsv_fields_may_contain_pipes_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "kb.tsv"
    path.write_bytes(b"Fish | Chips\thas_tags\tfood\r\n")
    assert list(read_triples(path)) == [Triple("Fish | Chips", "has_tags", "food")]


def test_stray_empty_tab_fields_are_tolerated(tmp_path: Path) -> None:
    path = write(tmp_path / "kb.tsv", "Inception\t\tdirected_by\tChristopher Nolan\t\n")
    assert list(read_triples(path)) == [Triple("Inception", "directed_by", "Christopher Nolan")]


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("Inception\tdirected_by", "found 2"),
        ("Inception|directed_by", "found 2"),
        ("a|b|c|d", "found 4"),
        ("a\tb\tc\td", "found 4"),
        ("Inception||Christopher Nolan", "empty"),
        (" \tdirected_by\tChristopher Nolan", "empty"),
        ('{"head": "a", "relation": "b"}', "must all be strings"),
        ('{"head": "a", "relation": "b", "tail": "  "}', "empty"),
        ('{"head": "a", "relation": "b", "tail": ', "invalid JSON"),
    ],
)
def test_malformed_triple_lines_name_file_and_line(tmp_path: Path, line: str, needle: str) -> None:
    path = write(tmp_path / "kb.txt", "Inception|directed_by|Christopher Nolan\n" + line + "\n")
    with pytest.raises(InputError) as info:
        list(read_triples(path))
    assert f"{path}:2:" in str(info.value) and needle in str(info.value)


def test_triples_skip_bad_lines_report(tmp_path: Path) -> None:
    path = write(tmp_path / "kb.txt", "a|r|b\nbroken\nc|r\nd|r|e\n|r|x\n")
    report = ReadReport()
    assert list(read_triples(path, report=report)) == [Triple("a", "r", "b"), Triple("d", "r", "e")]
    assert len(report.skipped) == 3
    assert all(m.startswith(f"{path}:") for m in report.skipped)


def test_triples_path_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        list(read_triples(tmp_path / "missing.tsv"))
    with pytest.raises(InputError, match="folder"):
        list(read_triples(tmp_path))


def test_non_utf8_triples(tmp_path: Path) -> None:
    path = tmp_path / "kb.tsv"
    path.write_bytes(b"a\tr\tb\nAm\xe9lie\tr\tc\n")
    with pytest.raises(InputError, match=r"kb\.tsv:2: not valid UTF-8"):
        list(read_triples(path))
