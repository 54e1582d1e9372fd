"""Unit tests of ui/helpers.py: options, index listing, upload safety, DOT and chart data."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexes.build import BuildConfig, BuildResult, build_index
from kg.types import LinkedEntity, ScoredTriple, Subgraph, Triple
from rag.errors import InputError
from rag.types import Answer, Citation, Conflict
from ui import helpers


def make_index(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "CURRENT").write_text("v-1\n")
    return folder


# ---- options and listing -------------------------------------------------------------------------------


def test_parse_options_argv_then_env():
    env = {helpers.ENV_INDEX: "/env/idx", helpers.ENV_INDEXES_ROOT: "/env", helpers.ENV_PRESET: "kg-only"}
    assert helpers.parse_options(["--index", "/a/idx"], env) == helpers.UiOptions("/a/idx", "/env", "kg-only")
    assert helpers.parse_options([], {}) == helpers.UiOptions(None, None, "default")
    # Unknown arguments (e.g. pytest's own, under AppTest) are ignored.
    assert helpers.parse_options(["-q", "tests/ui"], env).index == "/env/idx"


def test_parse_options_rejects_unknown_preset():
    with pytest.raises(InputError, match="preset must be one of"):
        helpers.parse_options([], {helpers.ENV_PRESET: "nope"})


def test_root_defaults_to_the_folder_of_the_index(tmp_path):
    assert helpers.UiOptions(index=str(tmp_path / "idx")).root == tmp_path
    assert helpers.UiOptions(index=str(tmp_path / "idx"), indexes_root="/r").root == Path("/r")
    assert helpers.UiOptions().root is None


def test_list_indexes_only_lists_index_folders(tmp_path):
    make_index(tmp_path / "b")
    make_index(tmp_path / "a")
    (tmp_path / "not-an-index").mkdir()
    make_index(tmp_path / ".hidden")
    (tmp_path / "file.txt").write_text("x")
    assert [p.name for p in helpers.list_indexes(tmp_path)] == ["a", "b"]
    assert helpers.list_indexes(tmp_path / "missing") == []
    assert helpers.list_indexes(None) == []


def test_index_choices_put_the_given_index_first_without_duplicates(tmp_path):
    make_index(tmp_path / "a")
    make_index(tmp_path / "b")
    options = helpers.UiOptions(index=str(tmp_path / "b"))
    assert [Path(c).name for c in helpers.index_choices(options)] == ["b", "a"]


# ---- uploads -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("docs.jsonl", "docs.jsonl"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\win.ini", "win.ini"),
        ("/abs/path/kb.tsv", "kb.tsv"),
        (".bashrc", "bashrc"),
        ("my file (1).txt", "my_file_1_.txt"),
        ("héllo wörld.md", "h_llo_w_rld.md"),
    ],
)
def test_sanitize_filename(name, expected):
    assert helpers.sanitize_filename(name) == expected


@pytest.mark.parametrize("name", ["", "..", "../", "///", "...."])
def test_sanitize_filename_rejects_empty_names(name):
    with pytest.raises(InputError, match="no usable characters"):
        helpers.sanitize_filename(name)


def test_sanitize_filename_caps_length_and_keeps_suffix():
    name = helpers.sanitize_filename("a" * 500 + ".jsonl")
    assert len(name) <= 100 and name.endswith(".jsonl")


def test_sanitize_index_name():
    assert helpers.sanitize_index_name("  My Index/../x ") == "My-Index-x"
    assert helpers.sanitize_index_name("v1.2_final") == "v1-2_final"
    for bad in ("../..", "..", "/", ""):
        with pytest.raises(InputError, match="no usable characters"):
            helpers.sanitize_index_name(bad)


def test_safe_child_refuses_escapes(tmp_path):
    assert helpers.safe_child(tmp_path, "a.txt") == (tmp_path / "a.txt").resolve()
    for bad in ("../a.txt", "sub/a.txt", "/etc/passwd", ".."):
        with pytest.raises(InputError, match="outside"):
            helpers.safe_child(tmp_path, bad)


def test_validate_upload_checks_type_size_emptiness_and_binary():
    assert helpers.validate_upload(helpers.Upload("../x.tsv", b"a\tb\tc\n"), helpers.TRIPLE_TYPES) == "x.tsv"
    with pytest.raises(InputError, match="expected a"):
        helpers.validate_upload(helpers.Upload("x.exe", b"MZ"), helpers.TRIPLE_TYPES)
    with pytest.raises(InputError, match="is empty"):
        helpers.validate_upload(helpers.Upload("x.tsv", b""), helpers.TRIPLE_TYPES)
    with pytest.raises(InputError, match="limited to"):
        helpers.validate_upload(helpers.Upload("x.tsv", b"x" * 11), helpers.TRIPLE_TYPES, max_bytes=10)
    with pytest.raises(InputError, match="binary"):
        helpers.validate_upload(helpers.Upload("x.tsv", b"a\0b"), helpers.TRIPLE_TYPES)


def _files_under(folder: Path) -> set[Path]:
    return {p.resolve() for p in folder.rglob("*")}


def test_stage_uploads_writes_only_inside_the_target(tmp_path):
    target = tmp_path / "root" / "idx"
    target.mkdir(parents=True)
    staged = helpers.stage_uploads(
        target,
        [
            helpers.Upload("../../evil.jsonl", b'{"id": "1", "text": "x"}\n'),
            helpers.Upload("evil.jsonl", b'{"id": "2", "text": "y"}\n'),
            helpers.Upload("notes.md", b"# notes\n"),
        ],
        [helpers.Upload("/etc/kb.tsv", b"a\tb\tc\n")],
    )
    written = {p for p in _files_under(tmp_path) if p.is_file()}
    assert written and all(target.resolve() in p.parents for p in written)
    # Two JSONL files (the same sanitised name, made unique) and one folder of text documents.
    assert sorted(Path(p).name for p in staged.passages) == ["documents", "evil-1.jsonl", "evil.jsonl"]
    assert sorted(p.name for p in written if p.suffix == ".jsonl") == ["evil-1.jsonl", "evil.jsonl"]
    assert [Path(p).name for p in staged.triples] == ["kb.tsv"]


def test_stage_uploads_needs_a_file(tmp_path):
    with pytest.raises(InputError, match="at least one"):
        helpers.stage_uploads(tmp_path, [], [])


def test_build_from_uploads_builds_inside_root_and_removes_uploads(tmp_path):
    seen = {}

    def fake_build(out: Path, config: BuildConfig) -> BuildResult:
        seen["out"] = out
        seen["config"] = config
        for path in config.passages + config.triples:
            assert Path(path).exists() and out in Path(path).parents
        make_index_files = out / "CURRENT"
        make_index_files.write_text("v-1\n")
        return BuildResult(out, {"counts": {}}, (), 0.1)

    result = helpers.build_from_uploads(
        tmp_path, "../My Index", [helpers.Upload("p.jsonl", b'{"id":"1","text":"t"}\n')], [], build=fake_build
    )
    assert result.path == (tmp_path / "My-Index").resolve() == seen["out"]
    assert not (result.path / ".staging").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["My-Index"]


def test_build_from_uploads_refuses_existing_index_and_foreign_folders(tmp_path):
    make_index(tmp_path / "idx")
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"x")
    upload = [helpers.Upload("kb.tsv", b"a\tb\tc\n")]
    with pytest.raises(InputError, match="already exists"):
        helpers.build_from_uploads(tmp_path, "idx", [], upload)
    with pytest.raises(InputError, match="not a kgrag index"):
        helpers.build_from_uploads(tmp_path, "photos", [], upload)
    assert sorted(p.name for p in (tmp_path / "photos").iterdir()) == ["cat.jpg"]


def test_build_from_uploads_bad_file_gives_the_readers_message_without_staging_paths(tmp_path):
    # The real builder reads (and rejects) the file before loading any model.
    with pytest.raises(InputError) as info:
        helpers.build_from_uploads(
            tmp_path, "idx", [helpers.Upload("bad.jsonl", b"this is not json\n")], [], build=build_index
        )
    message = str(info.value)
    assert "bad.jsonl:1: invalid JSON" in message
    assert ".staging" not in message and str(tmp_path) not in message
    assert list(tmp_path.iterdir()) == []  # nothing left behind


# ---- rendering data ------------------------------------------------------------------------------------

KG_ANSWER = Answer(
    question="Sara Kestelman appears in which movies",
    text="Zardoz",
    refused=False,
    confidence=0.79,
    citations=(
        Citation("triple", "Zardoz|starred_actors|Sara Kestelman", "Zardoz starred actors Sara Kestelman", 0.79),
    ),
    method="kg",
    timings={"total": 0.07},
)
SUBGRAPH = Subgraph(
    entities=(LinkedEntity("Sara Kestelman", "Sara Kestelman", 1.0, "exact"),),
    triples=(ScoredTriple(Triple("Zardoz", "directed_by", 'John "JB" Boorman'), 0.2),),
    candidates=("Zardoz",),
    candidate_triples=(Triple("Zardoz", "starred_actors", "Sara Kestelman"),),
)


def test_triple_from_id():
    assert helpers.triple_from_id("a|r|b") == Triple("a", "r", "b")
    assert helpers.triple_from_id("a|b") is None
    assert helpers.triple_from_id("a| |b") is None


def test_subgraph_dot_highlights_entities_answers_and_path():
    dot = helpers.subgraph_dot(KG_ANSWER, SUBGRAPH)
    assert dot.startswith("digraph kg {") and dot.endswith("}")
    assert '"Sara Kestelman" [shape=box' in dot  # question entity
    assert '"Zardoz" [fillcolor="#d9f2d9"' in dot  # answer
    assert '"Zardoz" -> "Sara Kestelman" [label="starred actors", color="#e07000"' in dot  # answer path
    assert '"Zardoz" -> "John \\"JB\\" Boorman" [label="directed by"];' in dot  # other triple, quotes escaped
    assert dot.count("->") == 2  # the cited triple is not drawn twice


def test_subgraph_dot_without_kg_evidence_is_none():
    answer = Answer("q", "", True, 0.0, citations=(Citation("passage", "p1", "text", 0.3),))
    assert helpers.subgraph_dot(answer, None) is None
    assert helpers.subgraph_dot(answer, Subgraph()) is None


def test_subgraph_dot_caps_edges():
    many = Subgraph(triples=tuple(ScoredTriple(Triple(f"h{i}", "r", f"t{i}"), 0.1) for i in range(100)))
    assert helpers.subgraph_dot(Answer("q", "", True, 0.0), many, max_edges=10).count("->") == 10


def test_evidence_scores_and_labels():
    answer = Answer(
        "q", "x", False, 0.5, citations=(Citation("passage", "p", "t", 0.5), Citation("passage", "p", "t", 0.25))
    )
    rows = helpers.evidence_scores(answer)
    assert rows["score"] == [0.5, 0.25]
    assert len(set(rows["evidence"])) == 2
    assert helpers.confidence_label(0.9) == "90% (high)"
    assert helpers.confidence_label(0.1) == "10% (low)"
    assert helpers.answer_caption(KG_ANSWER) == "Confidence 79% (high) · via knowledge graph · 0.07 s"


def test_conflict_text_names_both_sources():
    text = helpers.conflict_text(Conflict("born 1950", "doc-a", "born 1952", "doc-b", "dates differ"))
    assert "doc-a" in text and "doc-b" in text and "born 1950" in text and "dates differ" in text


def test_components_caption_names_the_trained_pieces_not_their_paths():
    components = {"reader": "qwen2.5-coder-0.5b-instruct", "reader_adapter": None, "soft_prompt": None,
                  "reranker": None, "gate": "/idx/models/gate.safetensors", "stance": "/home/u/.cache/kgrag/stance",
                  "confidence": "calibrated model calibration.json"}
    caption = helpers.components_caption(components)
    assert caption == ("Reader: qwen2.5-coder-0.5b-instruct; trained: relevance gate, yes/no stance model; "
                       "confidence: calibrated model calibration.json")
    kg_only = helpers.components_caption({**dict.fromkeys(components), "reader": None})
    assert kg_only == "Reader: none (KG answers only); trained: none"
