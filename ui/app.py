"""kgrag chat UI: `streamlit run ui/app.py -- --index DIR [--indexes-root DIR] [--preset NAME]`.

Widgets only; the logic lives in `ui/helpers.py` and the pipeline. Options may also come from the environment
(`KGRAG_UI_INDEX`, `KGRAG_UI_INDEXES_ROOT`, `KGRAG_UI_PRESET`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __package__ in (None, "") and str(Path(__file__).resolve().parent.parent) not in sys.path:
    # `streamlit run ui/app.py` from a source checkout that is not pip-installed.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import streamlit as st

from rag import QAPipeline
from rag.errors import KgragError
from rag.types import Answer
from ui import helpers

PAGES = ("Chat", "Build an index")


@st.cache_resource(show_spinner=False, max_entries=2)
def load_pipeline(index: str, preset: str, reader: tuple[tuple[str, str], ...] = ()) -> QAPipeline:
    """One pipeline (index + models) per index and process, shared by every session; QAPipeline is thread-safe.
    `reader`: the reader-server options (UiOptions.pipeline_options), hashable for the cache."""
    qa = QAPipeline.load(index, preset=preset, **dict(reader))
    qa.warm_up()
    return qa


@st.cache_resource(show_spinner=False, max_entries=2)
def load_passages(index: str, preset: str, reader: tuple[tuple[str, str], ...] = ()) -> dict:
    return helpers.passages_by_id(load_pipeline(index, preset, reader).index.passages)


def render_answer(answer: Answer, subgraph, passages: dict, *, latest: bool) -> None:
    if answer.refused:
        closest = "Closest evidence:" if answer.citations else "No close evidence was found in this index."
        st.warning(f"**Not enough evidence** to answer this question. {closest}")
    else:
        st.markdown(f"**{answer.text}**")
    st.caption(helpers.answer_caption(answer))
    for conflict in answer.conflicts:
        st.warning(helpers.conflict_text(conflict), icon="⚠️")
    for number, citation in enumerate(answer.citations, start=1):
        with st.expander(helpers.citation_title(number, citation)):
            passage = passages.get(citation.id) if citation.kind == "passage" else None
            if passage is not None and getattr(passage, "title", ""):
                st.markdown(f"**{passage.title}**")
            st.write(passage.text if passage is not None else citation.text)
            if citation.kind == "triple":
                st.code(citation.id.replace("|", "  →  "), language=None)
    dot = helpers.subgraph_dot(answer, subgraph)
    if dot is None and not answer.citations:
        return
    with st.expander("Evidence graph and scores", expanded=latest):
        graph_col, chart_col = st.columns([3, 2])
        with graph_col:
            if dot is not None:
                st.caption("Knowledge graph used: question entities (blue), answers (green), answer path (orange)")
                st.graphviz_chart(dot, width="stretch")
            else:
                st.caption("No knowledge-graph evidence for this answer.")
        with chart_col:
            if answer.citations:
                st.caption("Evidence scores")
                st.bar_chart(helpers.evidence_scores(answer), x="evidence", y="score", horizontal=True, height=220)


def chat_page(options: helpers.UiOptions, index: str | None) -> None:
    st.title("Ask your documents and knowledge graph")
    if index is None:
        st.info(
            "No index selected. Start with `--index DIR` or `--indexes-root DIR`, or build one on the 'Build an index' page."
        )
        st.stop()
    try:
        with st.spinner("Loading the index and models (once per process)…"):
            reader = tuple(sorted(options.pipeline_options().items()))
            qa = load_pipeline(index, options.preset, reader)
            passages = load_passages(index, options.preset, reader)
    except KgragError as exc:
        st.error(f"Cannot open the index {index}: {exc}")
        st.stop()
    with st.sidebar:
        st.caption(helpers.components_caption(qa.components()))

    turns = st.session_state.setdefault("turns", {}).setdefault(index, [])
    for number, turn in enumerate(turns):
        with st.chat_message("user"):
            st.markdown(turn["question"])
            if turn["instruction"]:
                st.caption(f"Instruction: {turn['instruction']}")
        with st.chat_message("assistant"):
            render_answer(turn["answer"], turn["subgraph"], passages, latest=number == len(turns) - 1)

    question = st.chat_input("Ask a question about your documents or knowledge graph")
    if not question:
        return
    instruction = (st.session_state.get("instruction") or "").strip() or None
    with st.chat_message("user"):
        st.markdown(question)
        if instruction:
            st.caption(f"Instruction: {instruction}")
    with st.chat_message("assistant"):
        with st.status("Retrieving evidence and reading…", expanded=False) as status:
            try:
                answer = qa.ask(question, instruction=instruction)
                subgraph = helpers.explain(qa.kg, question)
            except KgragError as exc:
                status.update(label="Could not answer", state="error")
                st.error(str(exc))
                return
            status.update(label=f"Answered in {answer.timings.get('total', 0.0):.2f} s", state="complete")
        turns.append({"question": question, "instruction": instruction, "answer": answer, "subgraph": subgraph})
        render_answer(answer, subgraph, passages, latest=True)


def build_page(options: helpers.UiOptions) -> None:
    st.title("Build an index")
    root = options.root
    if root is None:
        st.info("Start the UI with `--indexes-root DIR` to build indexes here.")
        return
    if "built_message" in st.session_state:
        st.success(st.session_state.pop("built_message"))
    st.caption(f"New indexes are created under `{root}`. Files up to {helpers.MAX_UPLOAD_BYTES // 10**6} MB each.")
    name = st.text_input("Index name", key="build_name", placeholder="my-index")
    passage_files = st.file_uploader(
        "Passages: JSONL ({id, text, title?}) or .txt / .md documents",
        type=list(helpers.PASSAGE_TYPES),
        accept_multiple_files=True,
        key="upload_passages",
    )
    triple_files = st.file_uploader(
        "Triples: TSV (head⇥relation⇥tail), head|relation|tail .txt, or JSONL",
        type=list(helpers.TRIPLE_TYPES),
        accept_multiple_files=True,
        key="upload_triples",
    )
    replace = st.checkbox("Replace an existing index of that name", key="build_replace")
    if not st.button("Build index", type="primary", key="build"):
        return
    passages = [helpers.Upload(f.name, f.getvalue()) for f in passage_files or []]
    triples = [helpers.Upload(f.name, f.getvalue()) for f in triple_files or []]
    error = None
    with st.status("Building the index: checking uploads, reading, embedding…", expanded=True) as status:
        try:
            result = helpers.build_from_uploads(root, name, passages, triples, replace=replace)
        except KgragError as exc:
            error = str(exc)
            status.update(label="Build failed", state="error", expanded=False)
        else:
            counts = result.manifest["counts"]
            status.update(label=f"Built {result.path.name} in {result.seconds:.1f} s", state="complete")
    if error is not None:
        st.error(error)
        return
    # Rerun so the sidebar lists (and selects) the new index; the message survives the rerun.
    st.session_state["built_message"] = (
        f"Index **{result.path.name}** is ready: {counts['documents']} documents, {counts['triples']} triples, "
        f"{counts['chunks']} chunks. It is selected in the sidebar."
    )
    st.session_state["select_index"] = str(result.path)
    st.rerun()


def main() -> None:
    st.set_page_config(page_title="kgrag", page_icon="🔎", layout="wide")
    try:
        options = helpers.parse_options(sys.argv[1:], os.environ)
    except KgragError as exc:
        st.error(str(exc))
        st.stop()
    choices = helpers.index_choices(options)
    if st.session_state.get("select_index") in choices:  # set by a build on the previous run
        st.session_state["index"] = st.session_state.pop("select_index")
    with st.sidebar:
        st.header("kgrag")
        page = st.radio("Page", PAGES, key="page")
        index = st.selectbox(
            "Index",
            choices,
            key="index",
            format_func=lambda path: Path(path).name,
            help="The indexes under the indexes folder",
        )
        st.text_area(
            "Instruction (optional)",
            key="instruction",
            placeholder="e.g. Prefer the knowledge graph. / Assume that X is Y.",
            help="A knowledge preference or premise that takes precedence over the evidence.",
        )
        if st.button("Clear chat", key="clear"):
            st.session_state.get("turns", {}).pop(index, None)
        st.caption(f"Preset: {options.preset}")
        if options.reader_url:
            st.caption(f"Reader: {options.reader_model or 'the served model'} at {options.reader_url}")
    if page == PAGES[0]:
        chat_page(options, index)
    else:
        build_page(options)


main()
