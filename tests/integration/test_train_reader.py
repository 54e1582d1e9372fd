"""LoRA + DPO on the real packaged reader: 2 optimizer steps on 4 pairs, then the reader loads the adapter.

Slow (about 10 minutes on the shared 2-core dev machine): run with `pytest -m slow tests/integration/test_train_reader.py`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("peft")
pytest.importorskip("trl")

from rag.preferences import PrefsSpec, build_pairs, write_prefs  # noqa: E402
from rag.reader import ReaderConfig, TransformersReader  # noqa: E402
from rag.train_reader import TrainConfig, train  # noqa: E402

DATA = Path("/work/data_prepared")

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.mark.skipif(not (DATA / "squad2").is_dir(), reason="prepared data not available")
def test_train_two_steps_and_read_with_the_adapter(tmp_path: Path) -> None:
    pairs = build_pairs(PrefsSpec(data=str(DATA), squad2_each=2, poisoning=2, instruction=0, counterfactual=0))
    write_prefs(pairs, tmp_path / "prefs")
    out = train(TrainConfig(prefs=str(tmp_path / "prefs"), out=str(tmp_path / "lora"), max_steps=2, grad_accum=2,
                            limit_pairs=4, save_steps=1))
    assert (out / "adapter_model.safetensors").is_file() and (out / "adapter_config.json").is_file()
    assert (out / "checkpoints" / "checkpoint-2").is_dir()
    reader = TransformersReader(ReaderConfig(device="cpu", adapter=str(out), max_new_tokens=8))
    answer = reader.read("What is the capital of France?", [])
    assert isinstance(answer.text, str)
