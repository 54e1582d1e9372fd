"""Amar's soft-prompt form with the real packaged reader and embedder: gated evidence embeddings projected into
the reader's input space, trained with the reader frozen, saved as safetensors, loaded into the pipeline."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rag.errors import ModelLoadError
from rag.prefs import ALIGNED, NEUTRAL, Candidate, PreferenceRecord
from rag.soft_prompt import SoftPrompt, SoftPromptReader, SoftPromptTrainConfig, evidence_weight, train_soft_prompt
from rag.types import Evidence

pytestmark = pytest.mark.integration

QUESTION = "Sara Kestelman appears in which movies"
EVIDENCE = [
    Evidence("triple", "Zardoz|starred_actors|Sara Kestelman", "Zardoz starred actors Sara Kestelman", 0.93),
    Evidence("triple", "Zardoz|release_year|1974", "Zardoz release year 1974", 0.41),
]


def record() -> PreferenceRecord:
    candidates = (
        Candidate("Zardoz|starred_actors|Sara Kestelman", "Zardoz starred actors Sara Kestelman", 0.9, 0, 0.0, 0.0,
                  True, ALIGNED, aspect="triple", title="Zardoz"),
        Candidate("Zardoz|release_year|1974", "Zardoz release year 1974", 0.4, 1, 0.0, 0.0, False, NEUTRAL,
                  aspect="triple", title="Zardoz"),
    )
    return PreferenceRecord("q1", QUESTION, ("Zardoz",), "test", 0.0, candidates, labeler="gold")


def test_evidence_weight_reads_the_gate() -> None:
    assert evidence_weight(Evidence("passage", "p", "t", 0.7, scores={"gate": 0.25})) == 0.25
    assert evidence_weight(Evidence("triple", "t", "t", 0.8)) == 0.8
    assert evidence_weight(Evidence("passage", "p", "t", 0.3)) == 1.0


def test_untrained_projector_leaves_the_answer(default_pipeline) -> None:
    reader, embedder = default_pipeline.reader, default_pipeline.embedder
    soft = SoftPrompt.new(reader, embedder)
    embeds = soft.prompt_embeds(QUESTION, EVIDENCE)
    model, _ = reader._loaded()
    assert embeds.shape[0] == 1 and embeds.shape[2] == model.get_input_embeddings().weight.shape[1]
    plain = reader.read(QUESTION, EVIDENCE)
    soft_reader = SoftPromptReader(reader, embedder, "unused")
    soft_reader._soft = soft
    assert "Zardoz" in plain.text
    assert "Zardoz" in soft_reader.read(QUESTION, EVIDENCE).text


def test_training_lowers_the_loss_and_the_file_loads(default_pipeline, tmp_path: Path) -> None:
    reader, embedder = default_pipeline.reader, default_pipeline.embedder
    out = tmp_path / "soft.safetensors"
    summary = train_soft_prompt([record()], reader, embedder, out, SoftPromptTrainConfig(epochs=4, lr=1e-2),
                                progress=False)
    assert out.is_file() and summary["steps"] == 4
    assert summary["loss_last"] < summary["loss_first"]
    # The reader's own weights were not trained.
    model, _ = reader._loaded()
    assert not any(p.requires_grad for p in model.parameters())
    loaded = SoftPromptReader(reader, embedder, out)
    # Trained towards this very answer: the loaded projector must still (or better) give it.
    assert "Zardoz" in loaded.read(QUESTION, EVIDENCE).text
    assert loaded.config is reader.config  # everything else is the base reader's


def test_bad_projector_files_are_named(default_pipeline, tmp_path: Path, sample_index: Path) -> None:
    reader, embedder = default_pipeline.reader, default_pipeline.embedder
    with pytest.raises(ModelLoadError, match="no soft-prompt projector"):
        SoftPrompt.load(tmp_path / "missing.safetensors", reader, embedder)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError, match="not a readable safetensors"):
        SoftPrompt.load(corrupt, reader, embedder)
    from rag.pipeline import QAPipeline

    with pytest.raises(ModelLoadError, match="soft_prompt_path"):
        QAPipeline.load(sample_index, device="cpu", soft_prompt_path=str(tmp_path / "none.safetensors"))


def test_lora_adapter_trained_with_the_projector_reaches_the_pipeline(default_pipeline, tmp_path: Path,
                                                                     sample_index: Path) -> None:
    pytest.importorskip("peft", reason="LoRA needs peft (the train or dev extra)")
    from rag.pipeline import QAPipeline
    from rag.reader import ReaderConfig, TransformersReader
    from rag.soft_prompt import adapter_folder

    # A reader of its own: LoRA layers go into the model it trains.
    reader = TransformersReader(ReaderConfig(device="cpu"))
    out = tmp_path / "soft.safetensors"
    summary = train_soft_prompt([record()], reader, default_pipeline.embedder, out,
                                SoftPromptTrainConfig(epochs=2, lr=1e-3, lora_r=2), progress=False)
    assert summary["steps"] == 2
    folder = adapter_folder(out)
    assert folder == tmp_path / "soft.adapter" and (folder / "adapter_model.safetensors").is_file()
    pipeline = QAPipeline.load(sample_index, device="cpu", soft_prompt_path=str(out))
    assert pipeline.reader.base.config.adapter == str(folder)
    # Two small steps from LoRA's zero init towards the gold answer leave the reader answering it.
    assert "Zardoz" in pipeline.reader.read(QUESTION, EVIDENCE).text

    # The same adapter trained into an index's models/reader-lora is used without being named (a copy of the
    # shared sample index, so other tests keep the base reader), and can be switched off.
    index = tmp_path / "index"
    shutil.copytree(sample_index, index, symlinks=True)
    shutil.copytree(folder, index / "models" / "reader-lora")
    found = QAPipeline.load(index, device="cpu")
    assert found.reader.config.adapter == str(index / "models" / "reader-lora")
    assert "Zardoz" in found.reader.read(QUESTION, EVIDENCE).text
    assert QAPipeline.load(index, device="cpu", use_reader_adapter=False).reader.config.adapter is None
