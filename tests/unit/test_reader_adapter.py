"""ReaderConfig.adapter: a missing or invalid LoRA adapter folder is one clear error, before any model load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.config import make_config
from rag.errors import InputError, ModelLoadError
from rag.models import ADAPTER_CONFIG, ADAPTER_WEIGHTS, check_adapter_folder
from rag.reader import ReaderConfig, TransformersReader


def test_adapter_must_be_a_path_or_none() -> None:
    with pytest.raises(InputError):
        ReaderConfig(adapter="  ")
    assert ReaderConfig().adapter is None


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no such folder"):
        check_adapter_folder(tmp_path / "nope")


def test_pickled_weights_are_not_accepted(tmp_path: Path) -> None:
    (tmp_path / ADAPTER_CONFIG).write_text(json.dumps({"peft_type": "LORA"}), encoding="utf-8")
    (tmp_path / "adapter_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(ModelLoadError, match=ADAPTER_WEIGHTS):
        check_adapter_folder(tmp_path)


def test_config_must_be_a_peft_config(tmp_path: Path) -> None:
    (tmp_path / ADAPTER_WEIGHTS).write_bytes(b"")
    (tmp_path / ADAPTER_CONFIG).write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        check_adapter_folder(tmp_path)
    (tmp_path / ADAPTER_CONFIG).write_text(json.dumps({"r": 8}), encoding="utf-8")
    with pytest.raises(ModelLoadError, match="peft_type"):
        check_adapter_folder(tmp_path)
    (tmp_path / ADAPTER_CONFIG).write_text(json.dumps({"peft_type": "LORA"}), encoding="utf-8")
    assert check_adapter_folder(tmp_path) == tmp_path


def test_reader_fails_fast_on_a_bad_adapter(tmp_path: Path) -> None:
    reader = TransformersReader(ReaderConfig(adapter=str(tmp_path / "missing")))
    with pytest.raises(ModelLoadError):
        reader.validate()
    with pytest.raises(ModelLoadError):
        reader.warm_up()  # checked before the model is loaded: this test takes milliseconds
    assert reader._model is None


def test_pipeline_option_reaches_the_reader() -> None:
    config = make_config("default", reader_adapter="/tmp/some-adapter")
    assert config.reader.adapter == "/tmp/some-adapter"
