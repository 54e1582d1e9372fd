"""Nothing a user may receive from elsewhere is loaded with pickle: a static scan of the project's code."""

from __future__ import annotations

import re

import pytest

from support import REPO

PACKAGES = ("rag", "kg", "indexes", "ui", "bench", "scripts")
UNSAFE = [
    (re.compile(r"^\s*(?:import|from)\s+(?:pickle|cPickle|dill|joblib|cloudpickle)\b", re.M), "imports a pickle library"),
    (re.compile(r"allow_pickle\s*=\s*True"), "np.load/np.save with allow_pickle=True"),
    (re.compile(r"torch\.load\((?![^)]*weights_only\s*=\s*True)[^)]*\)"), "torch.load without weights_only=True"),
    (re.compile(r"trust_remote_code\s*=\s*True"), "runs code shipped with a model"),
    (re.compile(r"allow_dangerous_deserialization\s*=\s*True"), "LangChain pickle deserialisation"),
]


def _sources() -> list:
    return sorted(p for package in PACKAGES for p in (REPO / package).rglob("*.py"))


def test_the_scan_sees_the_code() -> None:
    assert len(_sources()) > 20


@pytest.mark.parametrize("pattern, why", UNSAFE, ids=[why for _, why in UNSAFE])
def test_no_unsafe_loading_in_the_code(pattern: re.Pattern, why: str) -> None:
    offenders = [str(p.relative_to(REPO)) for p in _sources() if pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == [], f"{why}: {offenders}"


def test_the_patterns_catch_what_they_should() -> None:
    bad = ["import pickle", "x = torch.load(path)", "torch.load(p, map_location='cpu')", "np.load(f, allow_pickle=True)"]
    good = ["torch.load(p, weights_only=True)", "np.load(f, allow_pickle=False)", "# no pickle here"]
    assert all(any(p.search(text) for p, _ in UNSAFE) for text in bad)
    assert not any(p.search(text) for p, _ in UNSAFE for text in good)
