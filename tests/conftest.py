"""Shared fixtures: a tiny fake embedder for unit tests, and ONE real sample index (plus one loaded pipeline
per preset) per session for the integration tests, so the default run stays within minutes on 2 CPU cores.
"""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import numpy as np
import pytest

from support import SAMPLE, read_jsonl



# ---- helpers -------------------------------------------------------------------------------------------


class FakeEmbedder:
    """Deterministic bag-of-words vectors (hashed tokens, L2-normalised); the Embedder interface, no model."""

    dimension = 16

    def __init__(self, name_or_path: str = "fake", *, device: str = "cpu", batch_size: int = 64) -> None:
        self.name = name_or_path
        self.device = device
        self.batch_size = batch_size
        self.calls = 0

    def warm_up(self) -> None:
        pass

    def encode(self, texts: list[str], *, batch_size: int | None = None) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in text.lower().split():
                bucket = int(hashlib.md5(token.encode()).hexdigest(), 16) % self.dimension
                out[row, bucket] += 1.0
            out[row, 0] += 1e-3  # never an all-zero vector
        return out / np.linalg.norm(out, axis=1, keepdims=True)


# ---- unit-test guard: no network -----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_network_in_unit_tests(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("integration") is not None:
        return

    def refuse(*args, **kwargs):
        raise RuntimeError("a unit test tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture
def fake_embedder_cls() -> type[FakeEmbedder]:
    return FakeEmbedder


# ---- the real sample index, built once ------------------------------------------------------------------


@pytest.fixture(scope="session")
def sample_build(tmp_path_factory: pytest.TempPathFactory):
    """`BuildResult` of the sample index built with the real embedder. Treat it as read-only: copy it to modify."""
    from indexes.build import BuildConfig, build_index

    out = tmp_path_factory.mktemp("sample") / "index"
    config = BuildConfig(
        passages=(str(SAMPLE / "passages.jsonl"),),
        triples=(str(SAMPLE / "triples.tsv"),),
        kg_passages=True,
        progress=False,
    )
    return build_index(out, config)


@pytest.fixture(scope="session")
def sample_index(sample_build) -> Path:
    return Path(sample_build.path)


@pytest.fixture(scope="session")
def sample_questions() -> list[dict]:
    return read_jsonl(SAMPLE / "questions.jsonl")


@pytest.fixture(scope="session")
def default_pipeline(sample_index: Path):
    from rag.pipeline import QAPipeline

    pipeline = QAPipeline.load(sample_index, device="cpu")
    pipeline.warm_up()
    return pipeline


@pytest.fixture(scope="session")
def vanilla_pipeline(sample_index: Path):
    from rag.pipeline import QAPipeline

    pipeline = QAPipeline.load(sample_index, preset="vanilla", device="cpu")
    pipeline.warm_up()
    return pipeline


@pytest.fixture(scope="session")
def kg_only_pipeline(sample_index: Path):
    from rag.pipeline import QAPipeline

    return QAPipeline.load(sample_index, preset="kg-only", device="cpu")
