"""bench/run.py's pure parts: percentiles, ratio direction, and the JSON / Markdown / PNG report."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

from support import REPO


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_run", REPO / "bench" / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


bench = load_bench()


def test_percentile_interpolates_and_is_nan_for_nothing() -> None:
    assert bench.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert bench.percentile([0.0, 10.0], 95) == pytest.approx(9.5)
    assert math.isnan(bench.percentile([], 50))


def test_ratio_is_ours_relative_to_raw_with_higher_better() -> None:
    throughput = bench.Ratio("build", ours=90.0, raw=100.0, unit="chunks/s", higher_is_better=True, goal=0.9)
    assert throughput.ratio == pytest.approx(0.9) and throughput.meets_goal
    latency = bench.Ratio("search", ours=2.0, raw=1.0, unit="s", higher_is_better=False, goal=0.9)
    assert latency.ratio == pytest.approx(0.5) and latency.meets_goal is False
    assert bench.Ratio("x", 1.0, 1.0, "s", False).meets_goal is None


def test_sample_questions_are_spread_over_the_file() -> None:
    questions = bench.sample_questions(REPO / "data" / "sample" / "questions.jsonl", 5)
    assert len(questions) == 5 and len(set(questions)) == 5


def test_report_files(tmp_path: Path) -> None:
    ratio = bench.Ratio("build", 9.0, 10.0, "chunks/s", True, goal=0.9)
    report = {
        "command": "python bench/run.py --quick",
        "ratios": [{**ratio.__dict__, "ratio": ratio.ratio, "meets_goal": ratio.meets_goal}],
        "stages": {"kg": {"n": 3, "p50": 0.1, "p95": 0.2}, "total": {"n": 3, "p50": 0.3, "p95": 0.5}},
        "figures": {"peak RSS MB": 123.4, "answer methods": "{}"},
    }
    files = bench.write_report(report, tmp_path / "out")
    assert json.loads(Path(files["json"]).read_text()) == report
    markdown = Path(files["markdown"]).read_text()
    assert "| build | 9 | 10 | chunks/s | 0.900 | >= 0.90 (met) |" in markdown
    assert "| kg | 3 | 0.1000 | 0.2000 |" in markdown
    pytest.importorskip("matplotlib")
    assert Path(files["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
