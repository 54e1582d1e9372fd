"""Model resolution, hashing and assembly: small temp files only, no model is loaded."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from rag.errors import InputError, ModelLoadError
from rag.models import (
    PACKAGED_READERS,
    assemble_parts,
    file_sha256,
    package_file,
    resolve_cache_dir,
    resolve_device,
    resolve_dtype,
    resolve_model,
    verify_sha256,
)


def test_packaged_names_resolve_without_loading() -> None:
    assert "qwen2.5-coder-0.5b-instruct" in PACKAGED_READERS and "smollm2-135m-instruct" in PACKAGED_READERS
    source = resolve_model("smollm2-135m-instruct")
    assert source.kind == "gguf" and source.packaged is PACKAGED_READERS["smollm2-135m-instruct"]


@pytest.mark.parametrize("spec", ["no-such-model", "/nonexistent/dir/model.gguf", ""])
def test_unknown_name_or_missing_path(spec: str) -> None:
    with pytest.raises(ModelLoadError) as info:
        resolve_model(spec)
    message = str(info.value)
    assert repr(spec) in message
    for name in PACKAGED_READERS:
        assert name in message


def test_user_gguf_path_and_hf_folder(tmp_path: Path) -> None:
    gguf = tmp_path / "my-model.Q4.gguf"
    gguf.write_bytes(b"GGUF")
    source = resolve_model(str(gguf))
    assert source.kind == "gguf" and source.path == gguf.resolve() and source.packaged is None
    assert source.name == "my-model.Q4"

    folder = tmp_path / "hf-model"
    folder.mkdir()
    with pytest.raises(ModelLoadError, match="config.json"):
        resolve_model(str(folder))
    (folder / "config.json").write_text("{}")
    source = resolve_model(str(folder))
    assert source.kind == "hf" and source.path == folder.resolve()

    other = tmp_path / "weights.bin"
    other.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="gguf"):
        resolve_model(str(other))


def test_sha_mismatch_refuses(tmp_path: Path) -> None:
    data = tmp_path / "model.gguf"
    data.write_bytes(b"hello weights")
    good = hashlib.sha256(b"hello weights").hexdigest()
    verify_sha256(data, good)
    with pytest.raises(ModelLoadError, match="SHA-256"):
        verify_sha256(data, "0" * 64)


def test_hash_cache_is_keyed_by_size_and_mtime(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    data = tmp_path / "f.bin"
    data.write_bytes(b"abc")
    assert file_sha256(data, cache) == hashlib.sha256(b"abc").hexdigest()
    stored = json.loads((cache / "sha256-cache.json").read_text())
    assert list(stored.values()) == [hashlib.sha256(b"abc").hexdigest()]
    data.write_bytes(b"abcd")  # new size: the cached value must not be reused
    assert file_sha256(data, cache) == hashlib.sha256(b"abcd").hexdigest()


def test_assemble_parts_verifies_and_is_atomic(tmp_path: Path) -> None:
    parts = []
    for i, chunk in enumerate([b"part-one|", b"part-two|", b"three"]):
        path = tmp_path / f"part{i}.bin"
        path.write_bytes(chunk)
        parts.append(path)
    target = tmp_path / "out" / "joined.gguf"
    with pytest.raises(ModelLoadError, match="SHA-256"):
        assemble_parts(parts, target, "f" * 64)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # no temp file left behind
    expected = hashlib.sha256(b"part-one|part-two|three").hexdigest()
    assert assemble_parts(parts, target, expected, tmp_path / "c") == target
    assert target.read_bytes() == b"part-one|part-two|three"
    assert assemble_parts(parts, target, expected, tmp_path / "c") == target  # cached: no rewrite needed


def test_missing_package_gives_install_hint() -> None:
    with pytest.raises(ModelLoadError, match="pip install some-pkg"):
        package_file("kgrag_no_such_package_xyz", "a.gguf", "pip install some-pkg")


def test_cache_dir_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KGRAG_CACHE", str(tmp_path / "env"))
    assert resolve_cache_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_cache_dir() == tmp_path / "env"
    monkeypatch.delenv("KGRAG_CACHE")
    assert resolve_cache_dir() == Path.home() / ".cache" / "kgrag"


def test_device_and_dtype_validation() -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda")
    with pytest.raises(InputError, match="'tpu'"):
        resolve_device("tpu")
    with pytest.raises(InputError, match="'int4'"):
        resolve_dtype("int4", "cpu")
    import torch

    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("auto", "cuda") == torch.bfloat16
    assert resolve_dtype("float32", "cpu") == torch.float32
