"""Reading user input files: passages (JSONL or a folder of .txt/.md) and triples (TSV, `a|b|c`, JSONL).

Every malformed record is reported with its file and line number; `skip_bad_lines` counts and skips them instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kg.types import Triple
from rag.errors import InputError
from rag.types import Passage

TEXT_SUFFIXES = (".txt", ".md")


@dataclass
class ReadReport:
    """What a reader skipped (only filled when skipping bad lines is allowed)."""

    skipped: list[str] = field(default_factory=list)


def decode_lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    if b"\x00" in raw[:8192]:
        raise InputError(f"{path} looks like a binary file, not text")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not valid UTF-8 (byte {exc.start})") from exc
    for number, line in enumerate(text.splitlines(), start=1):
        yield number, line


def parse_json_line(line: str) -> tuple[object, str]:
    """(value, "") or (None, the reason the line is not usable JSON). Never raises: besides JSONDecodeError,
    json.loads raises RecursionError on deep nesting and ValueError on numbers over Python's digit limit, and
    lone surrogates ("\\ud800") decode fine but cannot be written back as UTF-8."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON ({exc.msg})"
    except RecursionError:
        return None, "invalid JSON (nested too deeply)"
    except ValueError as exc:
        return None, f"invalid JSON ({exc})"
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return None, "invalid JSON (a \\u escape is a lone surrogate, not a character)"
    except (ValueError, RecursionError) as exc:
        return None, f"invalid JSON ({exc})"
    return value, ""


def _fail_or_skip(message: str, report: ReadReport | None) -> None:
    if report is None:
        raise InputError(message)
    report.skipped.append(message)


def read_passages(path: str | Path, *, report: ReadReport | None = None) -> Iterator[Passage]:
    """Yield passages from a JSONL file or a folder of text files."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"passages path does not exist: {path}")
    if path.is_dir():
        yield from _read_passage_folder(path, report)
        return
    seen: set[str] = set()
    for number, line in decode_lines(path):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        record, problem = parse_json_line(line)
        if problem:
            _fail_or_skip(f"{where}: {problem}", report)
            continue
        if not isinstance(record, dict):
            _fail_or_skip(f"{where}: expected a JSON object, got {type(record).__name__}", report)
            continue
        problem = _passage_problem(record)
        if problem:
            _fail_or_skip(f"{where}: {problem}", report)
            continue
        if record["id"] in seen:
            _fail_or_skip(f"{where}: duplicate passage id {record['id']!r}", report)
            continue
        seen.add(record["id"])
        yield Passage.from_dict(record)


def _passage_problem(record: dict) -> str:
    if not isinstance(record.get("id"), str) or not record["id"].strip():
        return 'missing or empty "id" (a string is required)'
    if not isinstance(record.get("text"), str) or not record["text"].strip():
        return f'passage {record["id"]!r} has a missing or empty "text"'
    for key in ("title", "source"):
        if key in record and record[key] is not None and not isinstance(record[key], str):
            return f'"{key}" must be a string'
    if "metadata" in record and record["metadata"] is not None and not isinstance(record["metadata"], dict):
        return '"metadata" must be an object'
    return ""


def _read_passage_folder(folder: Path, report: ReadReport | None) -> Iterator[Passage]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
    if not files:
        raise InputError(f"no .txt or .md files under {folder}")
    for file in files:
        try:
            text = "\n".join(line for _, line in decode_lines(file))
        except InputError as exc:
            _fail_or_skip(str(exc), report)
            continue
        if not text.strip():
            _fail_or_skip(f"{file}: empty file", report)
            continue
        rel = file.relative_to(folder).as_posix()
        yield Passage(id=rel, text=text, title=file.stem, source=rel)


def _split_triple_line(line: str) -> list[str]:
    if "\t" in line:
        return [part.strip() for part in line.split("\t")]
    return [part.strip() for part in line.split("|")]


def read_triples(path: str | Path, *, report: ReadReport | None = None) -> Iterator[Triple]:
    """Yield triples from TSV, pipe-separated or JSONL; the format is detected per file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"triples path does not exist: {path}")
    if path.is_dir():
        raise InputError(f"triples path is a folder, expected a file: {path}")
    is_jsonl = path.suffix.lower() in (".jsonl", ".json")
    for number, line in decode_lines(path):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        if is_jsonl or line.lstrip().startswith("{"):
            record, problem = parse_json_line(line)
            if problem:
                _fail_or_skip(f"{where}: {problem}", report)
                continue
            if not isinstance(record, dict):
                _fail_or_skip(f"{where}: expected a JSON object with head/relation/tail", report)
                continue
            fields = [record.get("head"), record.get("relation"), record.get("tail")]
            if not all(isinstance(f, str) for f in fields):
                _fail_or_skip(f'{where}: "head", "relation" and "tail" must all be strings', report)
                continue
            fields = [f.strip() for f in fields]
        else:
            fields = _split_triple_line(line.rstrip("\r\n"))
            # PathQuestion-style files carry stray empty fields around tabs.
            if len(fields) > 3:
                fields = [f for f in fields if f]
            if len(fields) != 3:
                _fail_or_skip(f"{where}: expected 3 fields (head, relation, tail), found {len(fields)}", report)
                continue
        if not all(fields):
            _fail_or_skip(f"{where}: empty head, relation or tail", report)
            continue
        yield Triple(*fields)
