"""One loaded pipeline shared by many threads (as Streamlit's cache_resource shares it) answers as it does alone."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

pytestmark = pytest.mark.integration


def test_threads_sharing_a_pipeline_get_the_sequential_answers(default_pipeline, sample_questions) -> None:
    kg_questions = [q["question"] for q in sample_questions if q["id"].startswith("metaqa")][:8]
    text_questions = [q["question"] for q in sample_questions if q["id"].startswith("nq")][:2]
    questions = (kg_questions + text_questions) * 2
    sequential = [default_pipeline.ask(q) for q in questions]
    with ThreadPoolExecutor(max_workers=6) as pool:
        concurrent = list(pool.map(default_pipeline.ask, questions))
    assert [(a.text, a.refused) for a in concurrent] == [(a.text, a.refused) for a in sequential]
    assert [[c.id for c in a.citations] for a in concurrent] == [[c.id for c in a.citations] for a in sequential]
