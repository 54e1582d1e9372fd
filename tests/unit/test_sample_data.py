"""The committed sample (data/sample/) parses per CONTRACT.md and is internally consistent.

Regenerate the sample with:
    python scripts/prepare_data.py --shared ../shared/data --make-sample data/sample
"""
from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip().casefold()


def _jsonl(name: str) -> list[dict]:
    rows = []
    with open(SAMPLE / name, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            assert line.strip(), f"{name}:{n}: blank line"
            obj = json.loads(line)
            assert isinstance(obj, dict), f"{name}:{n}: not a JSON object"
            rows.append(obj)
    return rows


@pytest.fixture(scope="module")
def passages() -> list[dict]:
    return _jsonl("passages.jsonl")


@pytest.fixture(scope="module")
def questions() -> list[dict]:
    return _jsonl("questions.jsonl")


@pytest.fixture(scope="module")
def triples() -> list[tuple[str, str, str]]:
    out = []
    with open(SAMPLE / "triples.tsv", encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            fields = line.rstrip("\n").split("\t")
            assert len(fields) == 3, f"triples.tsv:{n}: {len(fields)} fields"
            assert all(f.strip() and f == f.strip() for f in fields), f"triples.tsv:{n}: empty/padded field"
            out.append(tuple(fields))
    return out


def test_files_present():
    for name in ("triples.tsv", "passages.jsonl", "questions.jsonl", "ATTRIBUTION.md"):
        assert (SAMPLE / name).is_file(), name


def test_passages_contract(passages):
    assert 60 <= len(passages) <= 120
    for p in passages:
        assert isinstance(p.get("id"), str) and p["id"], p
        assert isinstance(p.get("text"), str) and p["text"].strip(), p["id"]
        for key in ("title", "source"):
            assert key not in p or isinstance(p[key], str), (p["id"], key)
        assert "metadata" not in p or isinstance(p["metadata"], dict), p["id"]
    ids = [p["id"] for p in passages]
    assert len(ids) == len(set(ids)), "duplicate passage ids"


def test_passages_licences(passages):
    # Only permissively licensed sources may be embedded (no RGB, PathQuestion, RealtimeQA, PUQA, MS MARCO).
    assert {p.get("source") for p in passages} <= {"nq-open", "hotpotqa", "musique"}


def test_triples_contract(triples):
    assert 300 <= len(triples) <= 1500
    assert len(triples) == len(set(triples)), "duplicate triples"


def test_questions_contract(questions):
    assert len(questions) >= 40
    for q in questions:
        assert isinstance(q.get("id"), str) and q["id"], q
        assert isinstance(q.get("question"), str) and q["question"].strip(), q["id"]
        assert isinstance(q.get("answers"), list), q["id"]
        assert all(isinstance(a, str) and a.strip() for a in q["answers"]), q["id"]
        assert "instruction" not in q or isinstance(q["instruction"], str), q["id"]
    ids = [q["id"] for q in questions]
    assert len(ids) == len(set(ids)), "duplicate question ids"
    families = defaultdict(int)
    for q in questions:
        families[q["id"].split("-")[0]] += 1
    assert families["metaqa"] >= 20
    assert families["nq"] + families["hotpotqa"] >= 10
    assert sum(1 for q in questions if not q["answers"]) >= 5


def test_metaqa_answers_adjacent_to_topic(questions, triples):
    adj = defaultdict(set)
    for h, _, t in triples:
        adj[h].add(t)
        adj[t].add(h)
    metaqa = [q for q in questions if q["id"].startswith("metaqa-")]
    assert metaqa
    qtypes = {q.get("qtype") for q in metaqa}
    assert len(qtypes) >= 8, qtypes
    for q in metaqa:
        topic = q.get("topic_entity")
        assert isinstance(topic, str) and topic in adj, q["id"]
        assert "[" not in q["question"] and "]" not in q["question"], q["id"]
        assert topic in q["question"], q["id"]
        if q["answers"]:
            missing = set(q["answers"]) - adj[topic]
            assert not missing, f"{q['id']}: gold answers not adjacent to {topic!r}: {missing}"


def test_text_answers_in_passages(questions, passages):
    texts = [_norm(p["text"]) for p in passages]
    ids = {p["id"] for p in passages}
    text_qs = [q for q in questions if q["id"].startswith(("nq-", "hotpotqa-", "musique-"))]
    assert text_qs
    for q in text_qs:
        assert q["answers"], q["id"]
        assert any(_norm(a) in t for a in q["answers"] for t in texts), f"{q['id']}: no passage has an answer"
        for pid in q.get("gold_passage_ids", []):
            assert pid in ids, f"{q['id']}: gold passage {pid!r} missing"


def test_attribution_mentions_licences():
    text = (SAMPLE / "ATTRIBUTION.md").read_text(encoding="utf-8")
    for needle in ("CC BY 3.0", "CC BY-SA", "MetaQA", "lost-in-the-middle", "HippoRAG", "squad"):
        assert needle in text, needle
