"""`build --ray auto` (Ray Data map_batches for chunking + embedding) gives the single-process index: same
passages in the same order, vectors equal up to float noise, same KG. Starts (and stops) a local Ray instance."""

from __future__ import annotations

import numpy as np
import pytest

from indexes.build import BuildConfig, build_index
from indexes.store import load_index

from support import SAMPLE

pytestmark = pytest.mark.integration


@pytest.mark.slow  # starting Ray + its workers takes minutes on 2 shared cores
def test_ray_build_equals_the_single_process_build(sample_build, tmp_path) -> None:
    pytest.importorskip("ray", reason="needs the ray extra: pip install 'kgrag[ray]'")
    config = BuildConfig(
        passages=(str(SAMPLE / "passages.jsonl"),), triples=(str(SAMPLE / "triples.tsv"),), kg_passages=True,
        progress=False, device="cpu", ray="auto",
    )
    result = build_index(tmp_path / "ray-index", config)
    ours, reference = load_index(result.path), load_index(sample_build.path)
    assert [p.to_dict() for p in ours.passages] == [p.to_dict() for p in reference.passages]
    assert result.manifest["counts"] == sample_build.manifest["counts"]
    assert result.manifest["embedder"] == sample_build.manifest["embedder"]
    count = len(reference.passages)
    np.testing.assert_allclose(
        ours.vectors._cpu_index.reconstruct_n(0, count), reference.vectors._cpu_index.reconstruct_n(0, count), atol=1e-4
    )
    assert ours.graph.entities == reference.graph.entities
    np.testing.assert_array_equal(ours.graph.triples, reference.graph.triples)


def test_ray_missing_is_one_clear_error(monkeypatch, tmp_path) -> None:
    import sys

    from rag.errors import InputError

    monkeypatch.setitem(sys.modules, "ray", None)
    config = BuildConfig(passages=(str(SAMPLE / "passages.jsonl"),), progress=False, ray="auto")
    with pytest.raises(InputError, match=r"pip install 'kgrag\[ray\]'"):
        build_index(tmp_path / "idx", config)
