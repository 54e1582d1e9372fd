"""On-disk layout of an index folder, and the atomic switch between versions.

    DIR/CURRENT          one line: the name of the live version folder
    DIR/v-<stamp>/       manifest.json, passages.jsonl, vectors.faiss, kg/...
    DIR/.staging/        resumable work of an unfinished build (embedding shards)

A build writes a complete new version folder, then replaces CURRENT with `os.replace` (atomic on POSIX), and
only then removes older versions. A crash at any point leaves CURRENT naming a complete version.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rag.errors import IndexLoadError, InputError

CURRENT = "CURRENT"
MANIFEST = "manifest.json"
PASSAGES = "passages.jsonl"
VECTORS = "vectors.faiss"
KG_DIR = "kg"
# Entity-name embeddings (float32, one row per entity id, L2-normalised), for embedding-based entity linking.
ENTITY_VECTORS = "kg/entity_vectors.npy"
STAGING = ".staging"
FORMAT_NAME = "kgrag-index"
FORMAT_VERSION = 1


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def prepare_output(out: Path) -> None:
    """Refuse to build into a folder that holds something other than a kgrag index (nothing is ever overwritten)."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    if out.is_dir() and not (out / CURRENT).exists():
        stray = [
            p.name for p in out.iterdir() if p.name != STAGING and not p.name.startswith("v-") and not _is_pointer_tmp(p.name)
        ]
        if stray:
            raise InputError(f"--out {out} is a non-empty folder that is not a kgrag index (holds {stray[:3]}); choose another path")
    out.mkdir(parents=True, exist_ok=True)


def _pointer_tmp_name(pid: int) -> str:
    return f".{CURRENT}.{pid}.tmp"


def _is_pointer_tmp(name: str) -> bool:
    """`.CURRENT.<pid>.tmp`: the pointer file a build writes just before the switch (left behind by a kill)."""
    prefix, suffix = f".{CURRENT}.", ".tmp"
    return name.startswith(prefix) and name.endswith(suffix) and name[len(prefix) : -len(suffix)].isdigit()


def new_version_dir(out: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    path = out / f"v-{stamp}-{os.getpid()}-{time.monotonic_ns() % 1_000_000:06d}"
    path.mkdir()
    return path


@contextmanager
def staged_version(out: Path) -> Iterator[Path]:
    """A new version folder to write into; removed again when the block fails before the folder went live."""
    version = new_version_dir(out)
    try:
        yield version
    except BaseException:
        # A failure after the pointer switch (fsync of the folder, removing old versions) must not delete the
        # version that is now live.
        if current_version_name(out) != version.name:
            shutil.rmtree(version, ignore_errors=True)
        raise


def publish_with_manifest(out: Path, version: Path, manifest: dict, files: list[str]) -> None:
    """Record the SHA-256 of `files` in the manifest, write it into `version`, and make `version` live."""
    manifest["files"] = {name: sha256_file(version / name) for name in files}
    (version / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    publish(out, version)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(out: Path, version: Path) -> None:
    """Make `version` the live index, atomically, then remove the versions it replaced."""
    for file in version.rglob("*"):
        if file.is_file():
            with file.open("rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(version)
    pointer_tmp = out / _pointer_tmp_name(os.getpid())
    pointer_tmp.write_text(version.name + "\n", encoding="utf-8")
    with pointer_tmp.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(pointer_tmp, out / CURRENT)
    _fsync_dir(out)
    remove_stale_versions(out)


def _writer_alive(version_name: str) -> bool:
    """Is the process that named this version folder (v-<stamp>-<pid>-<n>) still running?"""
    try:
        pid = int(version_name.split("-")[2])
    except (IndexError, ValueError):
        return False
    if pid == os.getpid():
        return False
    return _pid_alive(pid)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


def remove_stale_versions(out: Path) -> None:
    """Remove replaced versions and the leftovers of crashed builds, but never a folder that another build
    into the same index is still writing."""
    live = current_version_name(out)
    for child in out.iterdir():
        if _is_pointer_tmp(child.name) and child.is_file():
            pid = int(child.name.split(".")[2])
            if pid != os.getpid() and not _pid_alive(pid):  # never another live build's pointer
                child.unlink(missing_ok=True)
            continue
        if not (child.is_dir() and child.name.startswith("v-")) or child.name == live:
            continue
        if not (child / MANIFEST).is_file() and _writer_alive(child.name):
            continue
        shutil.rmtree(child, ignore_errors=True)


def current_version_name(out: Path) -> str | None:
    try:
        return (out / CURRENT).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def live_version(index_dir: Path) -> Path:
    """The folder of the live version; a clear error when there is none."""
    index_dir = Path(index_dir)
    if not index_dir.exists():
        raise IndexLoadError(f"index folder does not exist: {index_dir} (build one with: python -m indexes build --out {index_dir} ...)")
    name = current_version_name(index_dir)
    if name is None:
        raise IndexLoadError(f"{index_dir} is not a kgrag index (no {CURRENT} file); build one with python -m indexes build")
    version = index_dir / name
    if not (version / MANIFEST).is_file():
        raise IndexLoadError(f"index {index_dir} is incomplete: {version.name}/{MANIFEST} is missing")
    return version


def read_manifest(version: Path) -> dict:
    try:
        manifest = json.loads((version / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexLoadError(f"cannot read {version / MANIFEST}: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise IndexLoadError(f"{version / MANIFEST} is not a kgrag manifest")
    found = manifest.get("format_version")
    if found != FORMAT_VERSION:
        raise IndexLoadError(
            f"index format version {found} is not supported by this kgrag (expects {FORMAT_VERSION}); rebuild the index "
            "with python -m indexes build"
        )
    return manifest


def verify_checksums(version: Path, manifest: dict) -> None:
    for name, expected in manifest.get("files", {}).items():
        path = version / name
        if not path.is_file():
            raise IndexLoadError(f"index file missing: {path}")
        if sha256_file(path) != expected:
            raise IndexLoadError(f"checksum mismatch for {path}: the file is corrupt or was changed after the build")
