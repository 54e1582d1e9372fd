"""Pipeline presets and option validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.config import PRESETS, PipelineConfig, make_config
from rag.errors import InputError


def test_presets_exist_and_differ() -> None:
    assert {"default", "vanilla", "kg-only"} <= set(PRESETS)
    default, vanilla, kg_only = make_config("default"), make_config("vanilla"), make_config("kg-only")
    assert default.use_kg and default.use_reader and default.refusal
    # Vanilla: dense passages straight into the reader; no KG, no gate, no refusal logic.
    assert not vanilla.use_kg and vanilla.use_reader and not vanilla.refusal
    assert vanilla.min_passage_score == 0.0 and vanilla.relative_passage_score == 0.0
    assert vanilla.reader == default.reader and vanilla.top_k == default.top_k
    assert kg_only.use_kg and not kg_only.use_reader
    assert {c.preset for c in (default, vanilla, kg_only)} == {"default", "vanilla", "kg-only"}


def test_options_override_preset() -> None:
    config = make_config("vanilla", top_k=3, refusal=True)
    assert config.top_k == 3 and config.refusal and not config.use_kg


def test_reader_shortcuts() -> None:
    config = make_config(reader="smollm2-135m-instruct", device="cpu", reader_max_new_tokens=8)
    assert config.reader.model == "smollm2-135m-instruct"
    assert config.reader.device == "cpu" and config.reader.max_new_tokens == 8


def test_a_dotted_option_sets_one_field_of_a_nested_config() -> None:
    config = make_config(**{"chains.partner_share": 0.5, "defense.pool_size": 12, "reader.max_new_tokens": 8})
    assert config.chains.partner_share == 0.5 and config.defense.pool_size == 12 and config.reader.max_new_tokens == 8
    assert config.chains.seeds == make_config().chains.seeds  # the other fields keep their defaults


@pytest.mark.parametrize("options, needle", [
    ({"chains.nope": 1}, "unknown chains option.*nope.*partner_share"),
    ({"top_k.x": 1}, "unknown pipeline option section 'top_k'.*chains"),
    ({"reader_nope": 1}, "unknown reader option.*nope"),
    ({"chains.partner_share": 2.0}, "chains.partner_share must be in"),
])
def test_a_wrong_dotted_option_is_named(options: dict, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        make_config(**options)


def test_unknown_preset() -> None:
    with pytest.raises(InputError, match="preset must be one of .*'fancy'"):
        make_config("fancy")


def test_unknown_option_is_named() -> None:
    with pytest.raises(InputError) as info:
        make_config(top_kk=3)
    assert "top_kk" in str(info.value) and "top_k" in str(info.value)


@pytest.mark.parametrize("value", [0, -3])
def test_top_k_must_be_positive_and_names_the_value(value: int) -> None:
    with pytest.raises(InputError, match=rf"top_k must be greater than 0, got {value}"):
        make_config(top_k=value)


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"refusal_threshold": 1.5}, "refusal_threshold"),
        ({"kg_answer_threshold": -0.1}, "kg_answer_threshold"),
        ({"max_answers": 0}, "max_answers"),
        ({"use_kg": False, "use_reader": False}, "needs the KG or the reader"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_invalid_values(options: dict, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        make_config(**options)


def test_config_is_frozen() -> None:
    with pytest.raises(AttributeError):
        PipelineConfig().top_k = 3  # type: ignore[misc]


def _adapter_folder(root: Path) -> Path:
    folder = root / "models" / "reader-lora"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text('{"peft_type": "LORA"}', encoding="utf-8")
    (folder / "adapter_model.safetensors").write_bytes(b"")
    return folder


def test_a_reader_adapter_in_the_index_is_used_unless_switched_off(tmp_path: Path) -> None:
    from rag.pipeline import aligned_reader_config

    assert aligned_reader_config(tmp_path, make_config("default")).adapter is None  # none trained yet
    folder = _adapter_folder(tmp_path)
    assert aligned_reader_config(tmp_path, make_config("default")).adapter == str(folder)
    assert aligned_reader_config(tmp_path, make_config("default", use_reader_adapter=False)).adapter is None
    assert aligned_reader_config(tmp_path, make_config("vanilla")).adapter is None  # plain RAG: the base reader
    chosen = aligned_reader_config(tmp_path, make_config("default", reader_adapter="/elsewhere/lora"))
    assert chosen.adapter == "/elsewhere/lora"  # the user's own choice wins


def test_a_required_reader_adapter_that_is_missing_names_the_training_command(tmp_path: Path) -> None:
    from rag.errors import ModelLoadError
    from rag.pipeline import aligned_reader_config

    with pytest.raises(ModelLoadError, match="rag.train_reader train"):
        aligned_reader_config(tmp_path, make_config("default", use_reader_adapter=True))
    (tmp_path / "models" / "reader-lora").mkdir(parents=True)  # a folder without weights is not an adapter
    with pytest.raises(ModelLoadError, match="no adapter"):
        aligned_reader_config(tmp_path, make_config("default", use_reader_adapter=True))
