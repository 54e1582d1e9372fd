"""The UI's logic, kept out of `ui/app.py` so it can be unit-tested without Streamlit.

- options: `--index` / `--indexes-root` / `--preset` (argv after `--`, or `KGRAG_UI_*` environment variables)
- listing the indexes under a folder
- uploads: file-name sanitising, size and type checks, staging inside the target index folder, building
- rendering data: the KG picture as Graphviz DOT, evidence scores for a chart, readable labels
"""

from __future__ import annotations

import argparse
import re
import secrets
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from indexes import layout
from indexes.build import BuildConfig, BuildResult, build_index
from kg.types import Subgraph, Triple
from rag.config import PRESETS
from rag.errors import InputError
from rag.types import Answer, Citation, Conflict

ENV_INDEX = "KGRAG_UI_INDEX"
ENV_INDEXES_ROOT = "KGRAG_UI_INDEXES_ROOT"
ENV_PRESET = "KGRAG_UI_PRESET"
ENV_READER_URL = "KGRAG_UI_READER_URL"
ENV_READER_MODEL = "KGRAG_UI_READER_MODEL"

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_UPLOAD_FILES = 20
PASSAGE_TYPES = ("jsonl", "txt", "md")
TRIPLE_TYPES = ("tsv", "txt", "jsonl")
_SAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_NAME_CHARS = 100


# ---- options -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UiOptions:
    index: str | None = None
    indexes_root: str | None = None
    preset: str = "default"
    reader_url: str | None = None  # an OpenAI-compatible chat server to read with (rag.server_reader)
    reader_model: str | None = None

    def pipeline_options(self) -> dict[str, str]:
        """QAPipeline.load keyword options for the reader server, if one is named."""
        options = {"reader_server_url": self.reader_url} if self.reader_url else {}
        return {**options, "reader_server_model": self.reader_model} if self.reader_model else options

    @property
    def root(self) -> Path | None:
        """Where indexes are listed and built: `--indexes-root`, else the folder holding `--index`."""
        if self.indexes_root:
            return Path(self.indexes_root)
        if self.index:
            return Path(self.index).resolve().parent
        return None


def parse_options(argv: Sequence[str], environ: Mapping[str, str]) -> UiOptions:
    """Options from `streamlit run ui/app.py -- --index DIR [--indexes-root DIR] [--preset NAME] [--reader-url URL]
    [--reader-model NAME]`, then env vars."""
    parser = argparse.ArgumentParser(prog="streamlit run ui/app.py --", add_help=False)
    parser.add_argument("--index")
    parser.add_argument("--indexes-root")
    parser.add_argument("--preset", choices=PRESETS)
    parser.add_argument("--reader-url")
    parser.add_argument("--reader-model")
    args, _unknown = parser.parse_known_args(list(argv))
    preset = args.preset or environ.get(ENV_PRESET) or "default"
    if preset not in PRESETS:
        raise InputError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    return UiOptions(
        index=args.index or environ.get(ENV_INDEX) or None,
        indexes_root=args.indexes_root or environ.get(ENV_INDEXES_ROOT) or None,
        preset=preset,
        reader_url=args.reader_url or environ.get(ENV_READER_URL) or None,
        reader_model=args.reader_model or environ.get(ENV_READER_MODEL) or None,
    )


def is_index(path: Path) -> bool:
    return (Path(path) / layout.CURRENT).is_file()


def list_indexes(root: Path | None) -> list[Path]:
    """The kgrag indexes directly under `root` (and `root` itself if it is one), sorted by name."""
    if root is None or not Path(root).is_dir():
        return []
    root = Path(root)
    found = [root] if is_index(root) else []
    try:
        children = sorted(root.iterdir(), key=lambda p: p.name)
    except OSError:
        return found
    found.extend(child for child in children if child.is_dir() and not child.name.startswith(".") and is_index(child))
    return found


def index_choices(options: UiOptions) -> list[str]:
    """The index picker's entries: `--index` first, then the indexes under the root, without duplicates."""
    choices: list[str] = []
    seen: set[Path] = set()
    candidates = ([Path(options.index)] if options.index else []) + list_indexes(options.root)
    for path in candidates:
        resolved = path.resolve()
        if resolved not in seen:
            seen.add(resolved)
            choices.append(str(path))
    return choices


# ---- uploads -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    """One uploaded file: the name the browser sent and its bytes."""

    name: str
    data: bytes


def sanitize_filename(name: str) -> str:
    """A safe base name: no folders, no leading dots, only letters, digits, `.`, `_`, `-`."""
    base = re.split(r"[\\/]", str(name))[-1]
    base = _SAFE_CHARS.sub("_", base).lstrip("._-")
    if len(base) > _MAX_NAME_CHARS:
        stem, dot, suffix = base.rpartition(".")
        base = (
            (stem[: _MAX_NAME_CHARS - len(suffix) - 1] + dot + suffix)
            if dot and len(suffix) <= 10
            else base[:_MAX_NAME_CHARS]
        )
    if not base or base in {".", ".."}:
        raise InputError(f"file name {name!r} has no usable characters")
    return base


def sanitize_index_name(name: str) -> str:
    """An index folder name: letters, digits, `_` and `-` (no dots, so never `..`)."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "-", str(name).strip()).strip("-_")[:_MAX_NAME_CHARS]
    if not cleaned:
        raise InputError(f"index name {name!r} has no usable characters (use letters, digits, '_' or '-')")
    return cleaned


def safe_child(folder: Path, name: str) -> Path:
    """`folder / name`, refusing any name that would resolve outside `folder`."""
    folder = Path(folder).resolve()
    path = (folder / name).resolve()
    if path.parent != folder:
        raise InputError(f"{name!r} would be written outside {folder}")
    return path


def validate_upload(upload: Upload, allowed: Sequence[str], *, max_bytes: int = MAX_UPLOAD_BYTES) -> str:
    """Checks one upload and returns its sanitised name."""
    name = sanitize_filename(upload.name)
    suffix = name.rpartition(".")[2].lower() if "." in name else ""
    if suffix not in allowed:
        raise InputError(f"{upload.name}: expected a {', '.join('.' + t for t in allowed)} file")
    if not upload.data:
        raise InputError(f"{upload.name} is empty")
    if len(upload.data) > max_bytes:
        raise InputError(
            f"{upload.name} is {len(upload.data) / 1e6:.1f} MB; uploads are limited to {max_bytes / 1e6:.0f} MB"
        )
    if b"\0" in upload.data[:8192]:
        raise InputError(f"{upload.name} looks like a binary file, not text")
    return name


def _unique(folder: Path, name: str) -> Path:
    path = safe_child(folder, name)
    stem, dot, suffix = name.rpartition(".")
    number = 1
    while path.exists():
        path = safe_child(folder, f"{stem}-{number}{dot}{suffix}" if dot else f"{name}-{number}")
        number += 1
    return path


@dataclass(frozen=True)
class StagedInputs:
    folder: Path
    passages: tuple[str, ...]
    triples: tuple[str, ...]


def stage_uploads(
    target: Path, passages: Sequence[Upload], triples: Sequence[Upload], *, max_bytes: int = MAX_UPLOAD_BYTES
) -> StagedInputs:
    """Validates the uploads, then writes them under `target/.staging/uploads-*/` (inside the index folder)."""
    if not passages and not triples:
        raise InputError("upload at least one passages file or triples file")
    if len(passages) + len(triples) > MAX_UPLOAD_FILES:
        raise InputError(f"at most {MAX_UPLOAD_FILES} files per build, got {len(passages) + len(triples)}")
    checked_passages = [(validate_upload(u, PASSAGE_TYPES, max_bytes=max_bytes), u) for u in passages]
    checked_triples = [(validate_upload(u, TRIPLE_TYPES, max_bytes=max_bytes), u) for u in triples]

    staging = safe_child(target, layout.STAGING)
    folder = safe_child(staging, f"uploads-{secrets.token_hex(6)}")
    passage_paths: list[str] = []
    text_folder = None
    (folder / "passages").mkdir(parents=True)
    (folder / "triples").mkdir()
    for name, upload in checked_passages:
        if name.lower().endswith(".jsonl"):
            path = _unique(folder / "passages", name)
            passage_paths.append(str(path))
        else:  # .txt / .md documents: the builder reads them as one folder
            text_folder = text_folder or folder / "documents"
            text_folder.mkdir(exist_ok=True)
            path = _unique(text_folder, name)
        path.write_bytes(upload.data)
    if text_folder is not None:
        passage_paths.append(str(text_folder))
    triple_paths = []
    for name, upload in checked_triples:
        path = _unique(folder / "triples", name)
        path.write_bytes(upload.data)
        triple_paths.append(str(path))
    return StagedInputs(folder, tuple(passage_paths), tuple(triple_paths))


def build_from_uploads(
    root: Path,
    name: str,
    passages: Sequence[Upload],
    triples: Sequence[Upload],
    *,
    replace: bool = False,
    max_bytes: int = MAX_UPLOAD_BYTES,
    build: Callable[[Path, BuildConfig], BuildResult] = build_index,
) -> BuildResult:
    """Builds the index `root/name` from uploads. Every file written lies inside `root/name`; the uploads are
    removed afterwards. Errors are `InputError`s whose messages name the uploaded file, not the staging path."""
    if not Path(root).is_dir():
        raise InputError(f"indexes folder does not exist: {root}")
    target = safe_child(Path(root), sanitize_index_name(name))
    if is_index(target) and not replace:
        raise InputError(f"an index named {target.name!r} already exists; tick 'replace' to rebuild it")
    foreign = target.exists() and not is_index(target)
    if foreign and (not target.is_dir() or any(p.name != layout.STAGING for p in target.iterdir())):
        raise InputError(f"{target.name!r} exists and is not a kgrag index; choose another name")
    created = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    staged = None
    try:
        staged = stage_uploads(target, passages, triples, max_bytes=max_bytes)
        config = BuildConfig(passages=staged.passages, triples=staged.triples, progress=False)
        try:
            return build(target, config)
        except InputError as exc:
            raise InputError(_strip_paths(str(exc), staged.folder)) from exc
    finally:
        if staged is not None:
            shutil.rmtree(staged.folder, ignore_errors=True)
        staging = target / layout.STAGING
        if staging.is_dir() and not any(staging.iterdir()):
            staging.rmdir()
        if created and not is_index(target) and not any(target.iterdir()):
            target.rmdir()


def _strip_paths(message: str, folder: Path) -> str:
    for sub in ("documents", "passages", "triples"):
        message = message.replace(f"{folder / sub}/", "").replace(str(folder / sub), sub)
    return message.replace(f"{folder}/", "")


# ---- rendering data ------------------------------------------------------------------------------------


def triple_from_id(triple_id: str) -> Triple | None:
    """A citation id `head|relation|tail` back into a Triple (None when it is not one)."""
    parts = triple_id.split("|")
    if len(parts) != 3:
        return None
    try:
        return Triple(*parts)
    except ValueError:
        return None


def cited_triples(answer: Answer) -> list[Triple]:
    found = (triple_from_id(c.id) for c in answer.citations if c.kind == "triple")
    return [t for t in found if t is not None]


def _dot_quote(text: str) -> str:
    text = text if len(text) <= 60 else text[:57] + "..."
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def subgraph_dot(answer: Answer, subgraph: Subgraph | None = None, *, max_edges: int = 40) -> str | None:
    """Graphviz DOT of the KG evidence: cited triples (the answer path) in bold orange, question entities as blue
    boxes, answers / candidates in green, other retrieved triples in grey. None when there is no KG evidence."""
    cited = cited_triples(answer)
    path_edges = {(t.head, t.relation, t.tail) for t in cited}
    edges: list[Triple] = list(cited)
    if subgraph is not None:
        edges += list(subgraph.candidate_triples) + [st.triple for st in subgraph.triples]
    unique: list[Triple] = []
    seen: set[tuple[str, str, str]] = set()
    for t in edges:
        key = (t.head, t.relation, t.tail)
        if key not in seen:
            seen.add(key)
            unique.append(t)
    unique = unique[:max_edges]
    if not unique:
        return None

    entities = {e.name for e in subgraph.entities} if subgraph is not None else set()
    answers = set(subgraph.candidates) if subgraph is not None and not answer.refused else set()
    if not answer.refused:
        answers |= {part.strip() for part in answer.text.split(",")}

    lines = [
        "digraph kg {",
        "  rankdir=LR;",
        '  node [shape=ellipse, style=filled, fillcolor="#f2f2f2", color="#999999", fontname="Helvetica", fontsize=11];',
        '  edge [color="#bbbbbb", fontcolor="#777777", fontname="Helvetica", fontsize=9];',
    ]
    nodes = dict.fromkeys(n for t in unique for n in (t.head, t.tail))
    for node in nodes:
        if node in entities:
            style = 'shape=box, fillcolor="#dbe9ff", color="#2f6fd6", penwidth=2'
        elif node in answers:
            style = 'fillcolor="#d9f2d9", color="#2e8b2e", penwidth=2'
        else:
            style = ""
        lines.append(f"  {_dot_quote(node)}" + (f" [{style}];" if style else ";"))
    for t in unique:
        label = _dot_quote(t.relation.replace("_", " "))
        style = (
            ', color="#e07000", fontcolor="#b35900", penwidth=2.5' if (t.head, t.relation, t.tail) in path_edges else ""
        )
        lines.append(f"  {_dot_quote(t.head)} -> {_dot_quote(t.tail)} [label={label}{style}];")
    lines.append("}")
    return "\n".join(lines)


def short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def evidence_scores(answer: Answer) -> dict[str, list]:
    """Rows for `st.bar_chart(..., x="evidence", y="score")`: one per citation, labels unique."""
    labels = [f"[{n}] {short(c.id, 28)}" for n, c in enumerate(answer.citations, start=1)]
    return {"evidence": labels, "score": [round(float(c.score), 4) for c in answer.citations]}


def confidence_label(confidence: float) -> str:
    level = "high" if confidence >= 0.75 else "medium" if confidence >= 0.45 else "low"
    return f"{confidence:.0%} ({level})"


METHOD_NAMES = {"kg": "knowledge graph", "reader": "reader over passages", "refusal": "confidence below threshold"}


def answer_caption(answer: Answer) -> str:
    parts = [f"Confidence {confidence_label(answer.confidence)}"]
    if answer.method:
        parts.append(f"via {METHOD_NAMES.get(answer.method, answer.method)}")
    if "total" in answer.timings:
        parts.append(f"{answer.timings['total']:.2f} s")
    return " · ".join(parts)


_COMPONENT_NAMES = {"reader_adapter": "reader adapter", "soft_prompt": "soft prompts", "reranker": "reranker",
                    "gate": "relevance gate", "stance": "yes/no stance model"}


def components_caption(components: Mapping[str, str | None]) -> str:
    """One line on what answers rest on (QAPipeline.components): the reader, the trained pieces loaded (by name, not
    path: the sidebar is narrow) and how confidence is computed."""
    trained = [label for key, label in _COMPONENT_NAMES.items() if components.get(key)]
    parts = [f"Reader: {components.get('reader') or 'none (KG answers only)'}",
             f"trained: {', '.join(trained) if trained else 'none'}"]
    if components.get("confidence"):
        parts.append(f"confidence: {components['confidence']}")
    return "; ".join(parts)


def conflict_text(conflict: Conflict) -> str:
    text = f"Conflicting evidence: **{conflict.source_a}** says “{conflict.claim_a}”, but **{conflict.source_b}** says “{conflict.claim_b}”."
    return text + (f" {conflict.note}" if conflict.note else "")


def citation_title(number: int, citation: Citation) -> str:
    kind = "KG triple" if citation.kind == "triple" else "Passage"
    return f"[{number}] {kind} · {short(citation.id, 70)} · score {citation.score:.2f}"


def passages_by_id(passages: Sequence) -> dict[str, object]:
    """The index's passages by id, so a passage citation can expand to the full passage."""
    return {p.id: p for p in passages}


def explain(kg_retriever: object | None, question: str) -> Subgraph | None:
    """The KG subgraph behind an answer, for the picture (None without a KG)."""
    if kg_retriever is None:
        return None
    return kg_retriever.retrieve(question)
