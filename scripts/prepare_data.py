#!/usr/bin/env python3
"""Convert the shared development data into kgrag's input formats (see CONTRACT.md).

Usage:
    python scripts/prepare_data.py --shared ../shared/data --out DIR [--families metaqa nq ...]
    python scripts/prepare_data.py --shared ../shared/data --make-sample data/sample

Output formats (CONTRACT.md):
    passages:  JSONL {"id", "text", "title"?, "source"?, "metadata"?}
    triples:   TSV head<TAB>relation<TAB>tail
    questions: JSONL {"id", "question", "answers": [...], "instruction"?} (+ extra fields);
               an empty answers list means "should refuse".

Standard library only; deterministic (no unseeded randomness, sorted / source order everywhere).
"""
from __future__ import annotations

import argparse
import csv
import gzip
import json
import random
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

# --------------------------------------------------------------------------------------------- io helpers


def read_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as fh:
        return [line.rstrip("\n").rstrip("\r") for line in fh]


def read_json(path: Path):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(rows)


def write_tsv(path: Path, triples) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for h, r, t in triples:
            for field in (h, r, t):
                if not field or "\t" in field or "\n" in field:
                    raise ValueError(f"bad triple field in {(h, r, t)!r}")
            fh.write(f"{h}\t{r}\t{t}\n")
            n += 1
    return n


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text.rstrip("\n") + "\n")


def uniq(items) -> list:
    seen, out = set(), []
    for x in items:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def norm(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip().lower()


# --------------------------------------------------------------------------------------------- provenance
# Copied from the READMEs under shared/data/ (source repo @ commit : path, licence).

PROVENANCE = {
    "metaqa": (
        "MetaQA vanilla questions 1/2/3-hop and 1-hop NTM paraphrases: vaijsc/keallm @ "
        "cf68f911e2484809bf5b0da413ba3d9768a747b7 : `data/MetaQA/{1,2,3}-hop/dev.txt`, `qa_dev_qtype.txt`, "
        "`1-hop/ntm/qa_dev.txt` (copies of MetaQA, yuyuz/MetaQA). Movie KB (ID-encoded): vaijsc/keallm @ cf68f91 : "
        "`data/MetaQA/{entity2text.txt,relation2text.txt,train.tsv,dev.tsv,test.tsv,test_old.tsv}`.",
        "CC BY 3.0 (MetaQA, see yuyuz/MetaQA @ b1e6973 LICENSE.txt; KB derived from MetaQA kb.txt / WikiMovies); "
        "keallm code BSD-3.",
        "kb.tsv is the union of keallm's four ID-triple files (a lossy ~96% copy of MetaQA's kb.txt), decoded with "
        "entity2text by line number (line 22447's id column is corrupt). Questions are MetaQA dev questions whose "
        "gold answers are all reachable in this KB.",
    ),
    "pathquestion": (
        "PathQuestion PQ-2H/PQ-3H (+ 2H-kb, 3H-kb) and PathQuestion-Large PQL-2H/PQL-3H (+ PQL2-KB, PQL3-KB): "
        "zmtkeke/IRN @ 32f70d311978bfc1b911c60dff3e9d291b9a2447 : `PathQuestion/`.",
        "None stated in the repository (paper: Zhou et al., COLING 2018) - evaluation use only, do not embed.",
        "",
    ),
    "hotpotqa": (
        "HotpotQA (distractor-style, train questions) + pooled corpus: OSU-NLP-Group/HippoRAG @ "
        "3d95d255a8db0c1699b853cfb4fbe5056708162d : `data/hotpotqa_train.json`, `data/hotpotqa_train_corpus.json`.",
        "HippoRAG MIT; HotpotQA CC BY-SA 4.0.",
        "",
    ),
    "musique": (
        "MuSiQue-Ans (train questions) + pooled corpus: OSU-NLP-Group/HippoRAG @ "
        "3d95d255a8db0c1699b853cfb4fbe5056708162d : `data/musique_train.json`, `data/musique_train_corpus.json`.",
        "HippoRAG MIT; MuSiQue CC BY 4.0.",
        "",
    ),
    "nq": (
        "Natural Questions (NQ-open) with its gold Wikipedia passage: nelson-liu/lost-in-the-middle @ "
        "29b8a6d042ce29abccee3db1a73171a107d7e6af : `qa_data/nq-open-oracle.jsonl.gz`.",
        "repo MIT; NQ CC BY-SA 3.0; Wikipedia text CC BY-SA.",
        "",
    ),
    "squad2": (
        "SQuAD 2.0 (half of the official dev set, with paragraphs): chrischute/squad @ "
        "85623adeb9e6639f145081fea9cae2d8f3a26379 : `data/dev-v2.0.json` (CS224n 2019 split of the official dev set).",
        "SQuAD 2.0 CC BY-SA 4.0; repo MIT.",
        "",
    ),
    "selfaware": (
        "SelfAware (answerable + unanswerable): yinzhangyue/SelfAware @ f0bad1ff77bd42fc4eb2360281ed646c7bb7bd0c : "
        "`data/SelfAware.json`.",
        "data CC BY-SA 4.0 (code Apache-2.0).",
        "",
    ),
    "puqa": (
        "PUQA (questions about 2023 papers): GAIR-NLP/alignment-for-honesty @ "
        "5357ef8700e12b506e1e18685eded3fb082940fe : `data/evaluation_data/puqa.jsonl`.",
        "None stated in the repository - evaluation use only, do not embed.",
        "",
    ),
    "poisonedrag": (
        "PoisonedRAG targeted attacks (NQ, HotpotQA, MS MARCO; 5 adversarial passages per question): "
        "sleeepeer/PoisonedRAG @ 168d18975bc6b2ecd3678266b7e75216538c76aa : "
        "`results/adv_targeted_results/{nq,hotpotqa,msmarco}.json`. Clean gold passages for the NQ questions: "
        "nelson-liu/lost-in-the-middle @ 29b8a6d : `qa_data/nq-open-oracle.jsonl.gz` (matching lines only).",
        "MIT (queries from BEIR: NQ CC BY-SA 3.0, HotpotQA CC BY-SA 4.0, MS MARCO non-commercial research terms - "
        "evaluation use only for msmarco); lost-in-the-middle MIT, NQ CC BY-SA 3.0.",
        "",
    ),
    "rgb_counterfactual": (
        "RGB counterfactual robustness (English): chen700564/RGB @ 65ec39e40e7dc9abb50e9bf1b4f32be3f6f16615 : "
        "`data/en_fact.json`.",
        "CC BY-NC-SA 4.0 (non-commercial) - evaluation use only, do not embed.",
        "",
    ),
    "conflictqa": (
        "ConflictQA (StrategyQA part): OSU-NLP-Group/LLM-Knowledge-Conflict @ "
        "595e02b6fedfdb03316b763e5036da93ffb12fbf : `conflictQA/conflictQA-strategyQA-<model>.json`.",
        "Apache-2.0 (StrategyQA MIT).",
        "",
    ),
    "freshqa": (
        "FreshQA: freshllms/freshqa @ 87afba9c22dce503da26d60fb6aff66e957999b2 (Apache-2.0; data published as Google "
        "Sheets); CSV copy from lijiaqijane/RAG_CLearning @ 219103a016008b8ad3b73781a01f20131a6e16ff : "
        "`data/freshqa.csv` (committed 2023-12-20).",
        "Apache-2.0.",
        "",
    ),
    "realtimeqa": (
        "RobustRAG RealtimeQA (clean retrieved snippets + 5 poisoned passages): inspire-group/RobustRAG @ "
        "9bc35b2fa5fa7d1088383b2789ec19a512d316b1 : `data/realtimeqa.json`.",
        "None stated in the repository; snippets are Google-search excerpts of news pages - evaluation use only, "
        "do not embed.",
        "",
    ),
}


def write_readme(folder: Path, family: str, files: dict[str, str], notes: str = "") -> None:
    source, licence, extra = PROVENANCE[family]
    lines = [
        f"# {family} (converted by scripts/prepare_data.py)",
        "",
        "Development split from the shared evaluation data (selected records, converted to kgrag's input formats; "
        "text not edited).",
        "",
        f"- **Source:** {source}",
        f"- **Licence:** {licence}",
    ]
    if extra:
        lines.append(f"- **Note:** {extra}")
    if notes:
        lines.append(f"- **Conversion:** {notes}")
    lines += ["", "## Files", ""]
    lines += [f"- `{name}`: {desc}" for name, desc in files.items()]
    write_text(folder / "README.md", "\n".join(lines))


# --------------------------------------------------------------------------------------------- MetaQA

BRACKET = re.compile(r"\[([^\]]+)\]")

# qtype suffix/prefix -> (relation, direction). "fwd": question topic is the KB head (movie), answers are tails.
QTYPE_REL = {
    "director": "directed_by",
    "writer": "written_by",
    "actor": "starred_actors",
    "year": "release_year",
    "language": "in_language",
    "tags": "has_tags",
    "tag": "has_tags",
    "genre": "has_genre",
    "imdbvotes": "has_imdb_votes",
    "imdbrating": "has_imdb_rating",
}


def metaqa_1hop_relation(qtype: str) -> tuple[str, str] | None:
    a, _, b = qtype.partition("_to_")
    if a == "movie":
        return QTYPE_REL.get(b), "fwd"
    if b == "movie":
        return QTYPE_REL.get(a), "bwd"
    return None


def load_metaqa_kb(root: Path) -> list[tuple[str, str, str]]:
    kbdir = root / "kgqa" / "metaqa" / "kb_keallm"
    # Index entities by LINE NUMBER (line 22447 has a corrupt id column, see the kgqa README).
    ents = [line.split("\t", 1)[1] for line in read_lines(kbdir / "entity2text.txt") if line]
    rels = [line.split("\t", 1)[1].replace(" ", "_") for line in read_lines(kbdir / "relation2text.txt") if line]
    kb = set()
    for name in ("train", "dev", "test", "test_old"):
        for line in read_lines(kbdir / f"{name}.tsv"):
            if not line.strip():
                continue
            h, r, t = line.split()
            kb.add((ents[int(h)].strip(), rels[int(r)], ents[int(t)].strip()))
    return sorted(kb)


def parse_metaqa_questions(path: Path, qtypes: list[str], prefix: str) -> list[dict]:
    rows = []
    for i, line in enumerate(read_lines(path)):
        if not line.strip():
            continue
        q, ans = line.split("\t")
        m = BRACKET.search(q)
        topic = m.group(1).strip() if m else None
        question = re.sub(r"\s+", " ", q.replace("[", "").replace("]", "")).strip()
        rows.append({
            "id": f"{prefix}-{i + 1:04d}",
            "question": question,
            "answers": uniq(a for a in ans.split("|") if a),
            "topic_entity": topic,
            "qtype": qtypes[i] if i < len(qtypes) else None,
            "raw_question": q,
        })
    return rows


def convert_metaqa(root: Path, out: Path) -> dict:
    base = root / "kgqa" / "metaqa"
    o = out / "metaqa"
    counts = {"triples": write_tsv(o / "kb.tsv", load_metaqa_kb(root))}
    for hop in (1, 2, 3):
        qtypes = read_lines(base / f"{hop}-hop" / "qa_dev_qtype.txt")
        rows = parse_metaqa_questions(base / f"{hop}-hop" / "dev.txt", qtypes, f"metaqa-{hop}hop")
        counts[f"{hop}hop"] = write_jsonl(o / f"{hop}hop.jsonl", rows)
    qtypes = read_lines(base / "1-hop" / "qa_dev_qtype.txt")
    rows = parse_metaqa_questions(base / "1-hop" / "ntm" / "qa_dev.txt", qtypes, "metaqa-1hop-ntm")
    counts["1hop_ntm"] = write_jsonl(o / "1hop_ntm.jsonl", rows)
    write_readme(o, "metaqa", {
        "kb.tsv": f"{counts['triples']} unique triples, head<TAB>relation<TAB>tail, sorted (relations: directed_by, "
                  "written_by, starred_actors, release_year, in_language, has_tags, has_genre, has_imdb_votes, "
                  "has_imdb_rating).",
        "1hop.jsonl / 2hop.jsonl / 3hop.jsonl": "questions; `[brackets]` removed from `question`, bracketed name in "
                                               "`topic_entity`, MetaQA `qtype`, original line in `raw_question`; "
                                               "id `metaqa-<N>hop-<line>` (1-based line of dev.txt).",
        "1hop_ntm.jsonl": "machine-paraphrased (NTM) 1-hop questions, line-aligned with 1hop.jsonl "
                          "(id `metaqa-1hop-ntm-<line>`).",
    })
    return counts


# --------------------------------------------------------------------------------------------- PathQuestion

PQ_SETS = {"PQ-2H": "2H-kb.txt", "PQ-3H": "3H-kb.txt", "PQL-2H": "PQL2-KB.txt", "PQL-3H": "PQL3-KB.txt"}


def load_pq_kb(path: Path) -> list[tuple[str, str, str]]:
    kb, bad = set(), 0
    for line in read_lines(path):
        fields = [f.strip() for f in line.split("\t") if f.strip()]
        if not fields:
            continue
        if len(fields) != 3:
            bad += 1
            continue
        kb.add(tuple(fields))
    if bad:
        print(f"  warning: {path.name}: {bad} malformed KB lines skipped", file=sys.stderr)
    return sorted(kb)


def parse_pq_line(line: str) -> tuple[str, list[str], str, list[list[str]]]:
    q, ansfield, path = [f.strip() for f in line.split("\t")]
    path = re.sub(r"#<end>#.*$", "", path)
    elems = path.split("#")
    answer = elems[-1]
    if ansfield.startswith(answer + "(") and ansfield.endswith(")"):
        inner = ansfield[len(answer) + 1:-1]
    else:  # fall back: the last parenthesised group
        m = re.match(r"^(.*)\((.*)\)$", ansfield)
        inner = m.group(2) if m else ansfield
    answers = uniq(a for a in inner.split("/") if a) or [answer]
    triples = [[elems[i], elems[i + 1], elems[i + 2]] for i in range(0, len(elems) - 2, 2)]
    return q, answers, path, triples


def convert_pathquestion(root: Path, out: Path) -> dict:
    base = root / "kgqa" / "pathquestion"
    counts = {}
    for name, kbfile in PQ_SETS.items():
        o = out / "pathquestion" / name
        kb = load_pq_kb(base / kbfile)
        kbset = set(kb)
        rows, missing = [], 0
        for i, line in enumerate(read_lines(base / f"{name}.txt")):
            if not line.strip():
                continue
            q, answers, path, triples = parse_pq_line(line)
            missing += sum(tuple(t) not in kbset for t in triples)
            rows.append({
                "id": f"pathquestion-{name}-{i + 1:04d}",
                "question": q,
                "answers": answers,
                "topic_entity": path.split("#")[0],
                "gold_path": path,
                "gold_path_triples": triples,
            })
        if missing:
            print(f"  warning: {name}: {missing} gold-path triples not in {kbfile}", file=sys.stderr)
        counts[f"{name}.triples"] = write_tsv(o / "kb.tsv", kb)
        counts[f"{name}.questions"] = write_jsonl(o / "questions.jsonl", rows)
    write_readme(out / "pathquestion", "pathquestion", {
        "<SET>/kb.tsv": "the set's own KB (PQ-2H: 2H-kb, PQ-3H: 3H-kb, PQL-2H: PQL2-KB, PQL-3H: PQL3-KB), "
                        "deduplicated, sorted; entity names keep their underscores.",
        "<SET>/questions.jsonl": "`answers` = the answer set split on `/`; `gold_path` = the source path "
                                 "(`subj#rel1#ent1#...#answer`, PQ's `#<end>#answer` tail dropped); "
                                 "`gold_path_triples` = the path as [head, relation, tail] lists; `topic_entity`.",
    })
    return counts


# --------------------------------------------------------------------------------------------- text QA


def hotpot_text(sentences: list[str]) -> str:
    return "".join(sentences).strip()


def convert_hotpotqa(root: Path, out: Path) -> dict:
    base = root / "multihop_text_qa" / "hipporag"
    corpus = read_json(base / "hotpotqa_train_corpus.json")
    passages = [{"id": title, "title": title, "text": hotpot_text(sents), "source": "hotpotqa"}
                for title, sents in corpus.items()]
    rows = []
    for r in read_json(base / "hotpotqa_train.json"):
        gold = uniq(t for t, _ in r["supporting_facts"])
        rows.append({
            "id": f"hotpotqa-{r['_id']}",
            "question": r["question"],
            "answers": [r["answer"]],
            "type": r["type"],
            "level": r["level"],
            "gold_passage_ids": gold,
            "context_passage_ids": [t for t, _ in r["context"]],
        })
    o = out / "hotpotqa"
    counts = {"passages": write_jsonl(o / "passages.jsonl", passages),
              "questions": write_jsonl(o / "questions.jsonl", rows)}
    write_readme(o, "hotpotqa", {
        "passages.jsonl": "one passage per corpus title (id = title = Wikipedia title; text = the sentences joined).",
        "questions.jsonl": "`answers` = [answer] (comparison questions may be yes/no); `gold_passage_ids` = "
                           "supporting-fact titles; `context_passage_ids` = the 10 distractor-setting paragraphs.",
    })
    return counts


def convert_musique(root: Path, out: Path) -> dict:
    base = root / "multihop_text_qa" / "hipporag"
    corpus = read_json(base / "musique_train_corpus.json")
    passages, key2id, seen_titles = [], {}, defaultdict(int)
    for rec in corpus:
        key = (rec["title"], rec["text"])
        if key in key2id:
            continue
        seen_titles[rec["title"]] += 1
        k = seen_titles[rec["title"]]
        pid = rec["title"] if k == 1 else f"{rec['title']} ({k})"
        key2id[key] = pid
        passages.append({"id": pid, "title": rec["title"], "text": rec["text"], "source": "musique"})
    rows, unmatched = [], 0
    for r in read_json(base / "musique_train.json"):
        gold, ctx = [], []
        for p in r["paragraphs"]:
            pid = key2id.get((p["title"], p["paragraph_text"]))
            if pid is None:
                unmatched += 1
                continue
            ctx.append(pid)
            if p["is_supporting"]:
                gold.append(pid)
        rows.append({
            "id": f"musique-{r['id']}",
            "question": r["question"],
            "answers": uniq([r["answer"]] + list(r.get("answer_aliases") or [])),
            "gold_passage_ids": gold,
            "context_passage_ids": ctx,
            "question_decomposition": r["question_decomposition"],
        })
    if unmatched:
        print(f"  warning: musique: {unmatched} question paragraphs not found in the corpus", file=sys.stderr)
    o = out / "musique"
    counts = {"passages": write_jsonl(o / "passages.jsonl", passages),
              "questions": write_jsonl(o / "questions.jsonl", rows)}
    write_readme(o, "musique", {
        "passages.jsonl": "one passage per distinct (title, text) of the corpus; id = title, or `title (k)` for the "
                          "k-th distinct paragraph with the same title.",
        "questions.jsonl": "`answers` = [answer] + answer_aliases; `gold_passage_ids` (is_supporting), "
                           "`context_passage_ids` (the 20 paragraphs), `question_decomposition` kept.",
    })
    return counts


def convert_nq(root: Path, out: Path) -> dict:
    rows_in = read_jsonl(root / "multihop_text_qa" / "lost_in_the_middle" / "nq-open-oracle.jsonl.gz")
    passages, key2id, rows = [], {}, []
    for i, r in enumerate(rows_in):
        gold = []
        for c in r["ctxs"]:
            key = (c["title"], c["text"])
            if key not in key2id:
                key2id[key] = f"nq-{i + 1:04d}"  # line of first appearance (matches the sample's ids)
                passages.append({"id": key2id[key], "title": c["title"], "text": c["text"], "source": "nq-open",
                                 "metadata": {"hasanswer": c.get("hasanswer"), "isgold": c.get("isgold")}})
            gold.append(key2id[key])
        rows.append({"id": f"nq-q{i + 1:04d}", "question": r["question"], "answers": uniq(r["answers"]),
                     "gold_passage_ids": gold})
    o = out / "nq"
    counts = {"passages": write_jsonl(o / "passages.jsonl", passages),
              "questions": write_jsonl(o / "questions.jsonl", rows)}
    write_readme(o, "nq", {
        "passages.jsonl": "pool of all `ctxs` (the NQ-annotated gold passage of each question), deduplicated on "
                          "(title, text); id `nq-<line>` = 1-based line of the first question that has it "
                          "(gaps where a passage repeats).",
        "questions.jsonl": "id `nq-q<line>`; `answers` = NQ-open gold strings; `gold_passage_ids`.",
    })
    return counts


# --------------------------------------------------------------------------------------------- honesty


def convert_squad2(root: Path, out: Path) -> dict:
    data = read_json(root / "honesty" / "squad2" / "dev-v2.0.json")
    passages, rows = [], []
    for art in data["data"]:
        title = art["title"]
        for pi, para in enumerate(art["paragraphs"]):
            pid = f"squad2-{title}-{pi:02d}"
            passages.append({"id": pid, "title": title.replace("_", " "), "text": para["context"],
                             "source": "squad2"})
            for qa in para["qas"]:
                impossible = bool(qa.get("is_impossible"))
                rows.append({
                    "id": f"squad2-{qa['id']}",
                    "question": qa["question"],
                    "answers": [] if impossible else uniq(a["text"] for a in qa["answers"]),
                    "is_impossible": impossible,
                    "gold_passage_ids": [pid],
                })
    o = out / "squad2"
    counts = {"passages": write_jsonl(o / "passages.jsonl", passages),
              "questions": write_jsonl(o / "questions.jsonl", rows),
              "unanswerable": sum(not r["answers"] for r in rows)}
    write_readme(o, "squad2", {
        "passages.jsonl": "one passage per SQuAD paragraph, id `squad2-<article>-<paragraph index>`.",
        "questions.jsonl": "`answers` = distinct gold spans; unanswerable (`is_impossible`) questions have "
                           "`answers: []` (their plausible paragraph is in the index but does not answer them); "
                           "`gold_passage_ids` = the question's paragraph.",
    })
    return counts


def convert_selfaware(root: Path, out: Path) -> dict:
    data = read_json(root / "honesty" / "selfaware" / "SelfAware.json")
    rows = []
    for e in data["example"]:
        answerable = bool(e["answerable"])
        rows.append({
            "id": f"selfaware-{e['question_id']}",
            "question": e["question"],
            "answers": uniq(e["answer"] or []) if answerable else [],
            "answerable": answerable,
            "origin": e.get("source"),
        })
    o = out / "selfaware"
    counts = {"questions": write_jsonl(o / "questions.jsonl", rows),
              "unanswerable": sum(not r["answerable"] for r in rows)}
    write_readme(o, "selfaware", {
        "questions.jsonl": "`answers` = SelfAware's answer list for answerable questions, `[]` for unanswerable "
                           "ones. No passages: answerable questions need model memory (or another corpus); with an "
                           "index that lacks their evidence, treat `answerable` as the closed-book label.",
    })
    return counts


def convert_puqa(root: Path, out: Path) -> dict:
    rows = []
    for i, r in enumerate(read_jsonl(root / "honesty" / "alignment_for_honesty" / "puqa.jsonl")):
        rows.append({"id": f"puqa-{i + 1:04d}", "question": r["question"], "answers": [],
                     "paper_title": r.get("title"), "year": r.get("year"), "authors": r.get("authors"),
                     "label": r.get("label")})
    o = out / "puqa"
    counts = {"questions": write_jsonl(o / "questions.jsonl", rows)}
    write_readme(o, "puqa", {
        "questions.jsonl": "all `answers: []` (should refuse: nothing in any index covers these 2023 papers); the "
                           "true authors are kept in `authors` for reference only.",
    })
    return counts


# --------------------------------------------------------------------------------------------- poisoning


def convert_poisonedrag(root: Path, out: Path, prefix_question: bool = False) -> dict:
    base = root / "poisoning" / "poisonedrag"
    clean_by_q = defaultdict(list)
    for r in read_jsonl(base / "clean_passages" / "nq-open-oracle.jsonl.gz"):
        clean_by_q[r["question"]].extend(r["ctxs"])
    counts, all_q, all_p, all_clean = {}, [], [], []
    for subset in ("nq", "hotpotqa", "msmarco"):
        data = read_json(base / f"{subset}.json")
        qrows, prows, crows = [], [], []
        for key, rec in data.items():
            qid = f"poisonedrag-{subset}-{key}"
            clean_ids = []
            for k, c in enumerate(clean_by_q.get(rec["question"], []) if subset == "nq" else []):
                pid = f"pr-{subset}-{key}-clean{k}"
                clean_ids.append(pid)
                p = {"id": pid, "title": c["title"], "text": c["text"], "source": f"poisonedrag-{subset}-clean",
                     "metadata": {"poisoned": False, "question_id": qid}}
                prows.append(p)
                crows.append(p)
            adv_ids = []
            for k, t in enumerate(rec["adv_texts"]):
                pid = f"pr-{subset}-{key}-adv{k}"
                adv_ids.append(pid)
                text = f"{rec['question']}.{t}" if prefix_question else t
                prows.append({"id": pid, "text": text, "source": f"poisonedrag-{subset}-adv",
                              "metadata": {"poisoned": True, "question_id": qid, "target": rec["incorrect answer"]}})
            qrows.append({"id": qid, "question": rec["question"], "answers": [rec["correct answer"]],
                          "target": rec["incorrect answer"], "subset": subset,
                          "clean_passage_ids": clean_ids, "poisoned_passage_ids": adv_ids})
        o = out / "poisonedrag" / subset
        write_jsonl(o / "questions.jsonl", qrows)
        write_jsonl(o / "passages.jsonl", prows)
        if crows:
            write_jsonl(o / "passages_clean.jsonl", crows)
        counts[f"{subset}.questions"] = len(qrows)
        counts[f"{subset}.passages"] = len(prows)
        all_q += qrows
        all_p += prows
        all_clean += crows
    o = out / "poisonedrag"
    write_jsonl(o / "questions.jsonl", all_q)
    write_jsonl(o / "passages.jsonl", all_p)
    write_jsonl(o / "passages_clean.jsonl", all_clean)
    counts["questions"], counts["passages"], counts["clean"] = len(all_q), len(all_p), len(all_clean)
    write_readme(o, "poisonedrag", {
        "questions.jsonl": "all 3 subsets; `answers` = [correct answer], `target` = the attacker's answer, "
                           "`clean_passage_ids`, `poisoned_passage_ids`.",
        "passages.jsonl": "clean passages (NQ only: the NQ-open gold passage, for 55 of the 60 NQ questions; "
                          "`metadata.poisoned=false`) + the 5 adversarial passages per question "
                          "(`metadata.poisoned=true`, `metadata.target`).",
        "passages_clean.jsonl": "the clean passages only (attack-free baseline).",
        "nq/, hotpotqa/, msmarco/": "the same files per subset. HotpotQA / MS MARCO have no clean passage "
                                    "(BEIR corpora not distributed) - mix in a background corpus if wanted. "
                                    "MS MARCO queries: non-commercial research terms.",
    }, notes=("adversarial texts are verbatim; the PoisonedRAG paper's black-box attack injects "
              "the question followed by the text "
              "(P = S + I with S = Q) "
              "- rerun with --poison-prefix-question to get that form." if not prefix_question else
              "adversarial texts written as `question + '.' + adv_text` (PoisonedRAG black-box form)."))
    return counts


def convert_realtimeqa(root: Path, out: Path) -> dict:
    data = read_json(root / "poisoning" / "robustrag" / "realtimeqa.json")
    qrows, prows, crows = [], [], []
    for i, rec in enumerate(data):
        qid = f"realtimeqa-{i + 1:04d}"
        clean_ids, adv_ids = [], []
        for k, c in enumerate(rec.get("context") or []):
            pid = f"{qid}-ctx{k:02d}"
            clean_ids.append(pid)
            p = {"id": pid, "title": c.get("title") or "", "text": c.get("text") or "", "source": "realtimeqa",
                 "metadata": {"poisoned": False, "question_id": qid, "link": c.get("link")}}
            if p["text"].strip():
                prows.append(p)
                crows.append(p)
        for k, t in enumerate(rec.get("incorrect_context") or []):
            pid = f"{qid}-adv{k}"
            adv_ids.append(pid)
            prows.append({"id": pid, "text": t if isinstance(t, str) else json.dumps(t, ensure_ascii=False),
                          "source": "realtimeqa-adv",
                          "metadata": {"poisoned": True, "question_id": qid, "target": rec.get("incorrect answer")}})
        ans = rec.get("correct answer")
        ans = ans if isinstance(ans, list) else [ans]
        qrows.append({"id": qid, "question": rec["question"], "answers": uniq(str(a) for a in ans if a),
                      "expanded_answers": rec.get("expanded answer"), "target": rec.get("incorrect answer"),
                      "clean_passage_ids": clean_ids, "poisoned_passage_ids": adv_ids})
    o = out / "realtimeqa"
    counts = {"questions": write_jsonl(o / "questions.jsonl", qrows),
              "passages": write_jsonl(o / "passages.jsonl", prows),
              "clean": write_jsonl(o / "passages_clean.jsonl", crows)}
    write_readme(o, "realtimeqa", {
        "questions.jsonl": "`answers` = correct answer(s), `expanded_answers` (GPT-4 aliases), `target` = attack "
                           "target.",
        "passages.jsonl": "clean `context` snippets (`metadata.poisoned=false`) + `incorrect_context` "
                          "(`metadata.poisoned=true`).",
        "passages_clean.jsonl": "clean snippets only.",
    })
    return counts


# --------------------------------------------------------------------------------------------- conflicts


def flatten_answers(a) -> list[str]:
    if isinstance(a, str):
        return [a]
    out = []
    for x in a or []:
        out += flatten_answers(x)
    return uniq(out)


def convert_rgb(root: Path, out: Path) -> dict:
    qrows, prows, crows = [], [], []
    for r in read_jsonl(root / "knowledge_conflicts" / "rgb" / "en_fact.json"):
        qid = f"rgb-{r['id']}"
        wrong_ids, neg_ids = [], []
        for k, t in enumerate(r.get("positive_wrong") or []):
            pid = f"{qid}-wrong{k}"
            wrong_ids.append(pid)
            prows.append({"id": pid, "text": t, "source": "rgb-positive_wrong",
                          "metadata": {"counterfactual": True, "poisoned": True, "question_id": qid,
                                       "target": r["fakeanswer"]}})
        for k, t in enumerate(r.get("negative") or []):
            pid = f"{qid}-neg{k}"
            neg_ids.append(pid)
            p = {"id": pid, "text": t, "source": "rgb-negative",
                 "metadata": {"counterfactual": False, "poisoned": False, "question_id": qid}}
            prows.append(p)
            crows.append(p)
        for k, t in enumerate(r.get("positive") or []):
            crows.append({"id": f"{qid}-pos{k}", "text": t, "source": "rgb-positive",
                          "metadata": {"counterfactual": False, "poisoned": False, "question_id": qid}})
        qrows.append({"id": qid, "question": r["query"], "answers": flatten_answers(r["answer"]),
                      "target": r["fakeanswer"], "counterfactual_passage_ids": wrong_ids,
                      "negative_passage_ids": neg_ids})
    o = out / "rgb_counterfactual"
    counts = {"questions": write_jsonl(o / "questions.jsonl", qrows),
              "passages": write_jsonl(o / "passages.jsonl", prows),
              "clean": write_jsonl(o / "passages_clean.jsonl", crows)}
    write_readme(o, "rgb_counterfactual", {
        "questions.jsonl": "`answers` = true answer(s) (nested alias lists flattened), `target` = `fakeanswer` "
                           "(the counterfactual the passages assert).",
        "passages.jsonl": "standard setting: `positive_wrong` (`metadata.counterfactual=true`) + `negative`.",
        "passages_clean.jsonl": "`positive` (true-answer versions) + `negative` (clean baseline).",
    })
    return counts


CONFLICTQA_MODELS = ("chatgpt", "gpt4", "llama2-70b", "llama2-7b", "palm2", "qwen7b", "vicuna33b", "vicuna7b")


def convert_conflictqa(root: Path, out: Path) -> dict:
    base = root / "knowledge_conflicts" / "conflictqa"
    qindex, qrows, prows, text2id, used_ids = {}, [], [], {}, set()

    def add_passage(text: str, qid: str, kind: str, model: str, claim: str | None) -> str:
        if text in text2id:
            return text2id[text]
        pid, k = f"{qid}-{kind}-{model}", 1
        while pid in used_ids:  # a question can occur twice in one model's file
            k += 1
            pid = f"{qid}-{kind}-{model}-{k}"
        used_ids.add(pid)
        text2id[text] = pid
        prows.append({"id": pid, "text": text, "source": f"conflictqa-{model}",
                      "metadata": {"question_id": qid, "kind": kind, "model": model, "claim": claim}})
        return pid

    for model in CONFLICTQA_MODELS:
        for r in read_jsonl(base / f"conflictQA-strategyQA-{model}.json"):
            q = r["question"]
            if q not in qindex:
                qid = f"conflictqa-{len(qindex) + 1:04d}"
                gt = (r.get("ground_truth") or [""])[0]
                qindex[q] = len(qrows)
                qrows.append({"id": qid, "question": q,
                              "answers": ["yes"] if gt == "True" else ["no"] if gt == "False" else [],
                              "ground_truth": gt, "popularity": r.get("popularity"), "per_model": {},
                              "passage_ids": []})
            row = qrows[qindex[q]]
            qid = row["id"]
            ids = {
                "parametric_memory": add_passage(r["parametric_memory"], qid, "parametric", model,
                                                 r["memory_answer"]),
                "counter_memory": add_passage(r["counter_memory"], qid, "counter", model, r["counter_answer"]),
            }
            if r.get("parametric_memory_aligned_evidence"):
                ids["parametric_aligned_evidence"] = add_passage(r["parametric_memory_aligned_evidence"], qid,
                                                                 "parametric_evidence", model, r["memory_answer"])
            if r.get("counter_memory_aligned_evidence"):
                ids["counter_aligned_evidence"] = add_passage(r["counter_memory_aligned_evidence"], qid,
                                                              "counter_evidence", model, r["counter_answer"])
            row["per_model"][model] = {"memory_answer": r["memory_answer"], "counter_answer": r["counter_answer"],
                                       **{f"{k}_id": v for k, v in ids.items()}}
            row["passage_ids"] = uniq(row["passage_ids"] + list(ids.values()))
    o = out / "conflictqa"
    counts = {"questions": write_jsonl(o / "questions.jsonl", qrows),
              "passages": write_jsonl(o / "passages.jsonl", prows)}
    write_readme(o, "conflictqa", {
        "questions.jsonl": "one row per distinct StrategyQA question over the 8 model files; `answers` = "
                           "[`yes`|`no`] from `ground_truth` (True/False, kept); `per_model` = each model's "
                           "`memory_answer` / `counter_answer` (the false-or-opposite claim) and passage ids.",
        "passages.jsonl": "distinct texts of `parametric_memory`, `counter_memory` and the two `*_aligned_evidence` "
                          "fields; `metadata.kind` (parametric / counter / parametric_evidence / counter_evidence), "
                          "`metadata.model`, `metadata.claim` (the answer the text supports). Index a question's "
                          "`counter` passages alone to test context adherence, or both sides to test conflict "
                          "detection.",
    })
    return counts


def convert_freshqa(root: Path, out: Path) -> dict:
    with open(root / "knowledge_conflicts" / "freshqa" / "freshqa.csv", encoding="utf-8", newline="") as fh:
        rows_in = list(csv.DictReader(fh))
    rows = []
    for r in rows_in:
        rows.append({"id": f"freshqa-{r['id']}", "question": r["question"],
                     "answers": uniq(r[f"answer_{k}"].strip() for k in range(10) if r.get(f"answer_{k}", "").strip()),
                     "false_premise": r["false_premise"].strip().upper() == "TRUE", "fact_type": r["fact_type"],
                     "num_hops": r["num_hops"], "effective_year": r["effective_year"], "split": r["split"],
                     "sources": [s for s in r["source"].split("\n") if s.strip()]})
    o = out / "freshqa"
    counts = {"questions": write_jsonl(o / "questions.jsonl", rows),
              "false_premise": sum(r["false_premise"] for r in rows)}
    write_readme(o, "freshqa", {
        "questions.jsonl": "`answers` = the non-empty `answer_0..9` (for false-premise questions they debunk the "
                           "premise, so they are answerable, not refusals); `false_premise`, `fact_type`, "
                           "`num_hops`, `effective_year`, `sources` (URLs). No passages; answers of fast-changing "
                           "questions date from before 2023-12-20.",
    })
    return counts


CONVERTERS = {
    "metaqa": convert_metaqa,
    "pathquestion": convert_pathquestion,
    "nq": convert_nq,
    "hotpotqa": convert_hotpotqa,
    "squad2": convert_squad2,
    "poisonedrag": convert_poisonedrag,
    "musique": convert_musique,
    "selfaware": convert_selfaware,
    "puqa": convert_puqa,
    "rgb_counterfactual": convert_rgb,
    "conflictqa": convert_conflictqa,
    "freshqa": convert_freshqa,
    "realtimeqa": convert_realtimeqa,
}


# --------------------------------------------------------------------------------------------- sample

# Quotas of MetaQA 1-hop dev questions per qtype for the embedded sample (25 in all).
SAMPLE_METAQA_QUOTA = {
    "movie_to_director": 3, "movie_to_writer": 3, "movie_to_actor": 3, "movie_to_year": 3,
    "movie_to_language": 2, "movie_to_genre": 2, "movie_to_tags": 2, "movie_to_imdbrating": 1,
    "actor_to_movie": 2, "director_to_movie": 2, "writer_to_movie": 1, "tag_to_movie": 1,
}
SAMPLE_N_NQ, SAMPLE_N_NQ_DISTRACT, SAMPLE_N_HOTPOT, SAMPLE_N_UNANSWERABLE = 9, 25, 6, 10
SAMPLE_SEED = "kgrag-sample-20251126"


def _neighbors(kb, topic: str, rel: str, direction: str) -> set[str]:
    if direction == "fwd":
        return {t for h, r, t in kb if h == topic and r == rel}
    return {h for h, r, t in kb if t == topic and r == rel}


def make_sample(root: Path, out: Path) -> dict:
    rng = random.Random(SAMPLE_SEED)
    kb = load_metaqa_kb(root)
    by_head, by_tail, movies = defaultdict(list), defaultdict(list), set()
    for tr in kb:
        by_head[tr[0]].append(tr)
        by_tail[tr[2]].append(tr)
        movies.add(tr[0])  # every MetaQA relation has a movie as head
    base = root / "kgqa" / "metaqa" / "1-hop"
    q1 = parse_metaqa_questions(base / "dev.txt", read_lines(base / "qa_dev_qtype.txt"), "metaqa-1hop")

    def degree(e: str) -> int:
        return len(by_head.get(e, ())) + len(by_tail.get(e, ()))

    # Candidates: the KB's relation-neighbour set equals MetaQA's gold set exactly (so the slice answers the
    # question with nothing missing and nothing extra), small answer sets, small topic degree.
    cands = defaultdict(list)
    for q in q1:
        spec = metaqa_1hop_relation(q["qtype"] or "")
        topic = q["topic_entity"]
        if not spec or not spec[0] or degree(topic) == 0:
            continue
        rel, direction = spec
        nb = {t for (_, r, t) in by_head[topic] if r == rel} if direction == "fwd" else \
             {h for (h, r, _) in by_tail[topic] if r == rel}
        if nb != set(q["answers"]) or len(q["answers"]) > 6 or degree(topic) > 80:
            continue
        if direction == "fwd" and topic not in movies:
            continue
        cands[q["qtype"]].append(q)
    chosen = []
    for qtype, n in SAMPLE_METAQA_QUOTA.items():
        pool = sorted(cands[qtype], key=lambda q: q["id"])
        rng.shuffle(pool)
        chosen += pool[:n]
    chosen.sort(key=lambda q: q["id"])

    topics = {q["topic_entity"] for q in chosen}
    slice_movies = {e for q in chosen for e in [q["topic_entity"], *q["answers"]] if e in movies}
    triples = set()
    for e in topics | slice_movies:
        triples.update(by_head.get(e, ()))
        triples.update(by_tail.get(e, ()))
    triples = sorted(triples)
    # Verify: every chosen question's complete gold set is adjacent to its topic entity in the slice.
    adj = defaultdict(set)
    for h, r, t in triples:
        adj[h].add(t)
        adj[t].add(h)
    for q in chosen:
        missing = set(q["answers"]) - adj[q["topic_entity"]]
        assert not missing, f"sample slice misses answers {missing} of {q['id']}"

    # ---- text passages: NQ-open gold passages + HotpotQA paragraphs (CC BY-SA)
    nq_rows = read_jsonl(root / "multihop_text_qa" / "lost_in_the_middle" / "nq-open-oracle.jsonl.gz")
    nq_ok = []
    for i, r in enumerate(nq_rows):
        c = r["ctxs"][0]
        if (c.get("hasanswer") and 150 <= len(c["text"]) <= 700
                and any(norm(a) in norm(c["text"]) for a in r["answers"])):
            nq_ok.append(i)
    rng.shuffle(nq_ok)
    nq_q_idx, nq_d_idx = sorted(nq_ok[:SAMPLE_N_NQ]), sorted(nq_ok[SAMPLE_N_NQ:SAMPLE_N_NQ + SAMPLE_N_NQ_DISTRACT])
    passages, text_qs, seen_pid = [], [], set()

    def add_p(p):
        if p["id"] not in seen_pid:
            seen_pid.add(p["id"])
            passages.append(p)

    for i in sorted(nq_q_idx + nq_d_idx):
        c = nq_rows[i]["ctxs"][0]
        add_p({"id": f"nq-{i + 1:04d}", "title": c["title"], "text": c["text"], "source": "nq-open"})
    for i in nq_q_idx:
        r = nq_rows[i]
        text_qs.append({"id": f"nq-q{i + 1:04d}", "question": r["question"], "answers": uniq(r["answers"]),
                        "gold_passage_ids": [f"nq-{i + 1:04d}"]})

    hp = read_json(root / "multihop_text_qa" / "hipporag" / "hotpotqa_train.json")
    hp_ok = []
    for r in hp:
        if r["type"] != "bridge" or r["answer"].lower() in ("yes", "no"):
            continue
        ctx = dict((t, hotpot_text(s)) for t, s in r["context"])
        gold = uniq(t for t, _ in r["supporting_facts"])
        if any(norm(r["answer"]) in norm(ctx.get(t, "")) for t in gold):
            hp_ok.append(r)
    hp_ok.sort(key=lambda r: r["_id"])
    rng.shuffle(hp_ok)
    for r in sorted(hp_ok[:SAMPLE_N_HOTPOT], key=lambda r: r["_id"]):
        for t, s in r["context"]:
            add_p({"id": t, "title": t, "text": hotpot_text(s), "source": "hotpotqa"})
        text_qs.append({"id": f"hotpotqa-{r['_id']}", "question": r["question"], "answers": [r["answer"]],
                        "gold_passage_ids": uniq(t for t, _ in r["supporting_facts"])})
    # Verify: each text question's gold answer occurs in a sample passage.
    for q in text_qs:
        assert any(norm(a) in norm(p["text"]) for a in q["answers"] for p in passages), q["id"]

    # ---- unanswerable: SQuAD 2.0 impossible questions whose article is absent from the sample
    alltext = norm(" ".join(p["title"] + " " + p["text"] for p in passages))
    entities_lc = {norm(e) for tr in triples for e in (tr[0], tr[2])}
    squad = read_json(root / "honesty" / "squad2" / "dev-v2.0.json")
    by_article = []
    for art in squad["data"]:
        name = norm(art["title"].replace("_", " "))
        if name in alltext or name in entities_lc:
            continue
        qs = [qa for para in art["paragraphs"] for qa in para["qas"] if qa.get("is_impossible")]
        if qs:
            by_article.append((art["title"], qs))
    unans = []
    k = 0
    while len(unans) < SAMPLE_N_UNANSWERABLE and by_article:
        title, qs = by_article[k % len(by_article)]
        pick = rng.choice(qs)
        qs.remove(pick)
        if not qs:
            by_article.pop(k % len(by_article))
        else:
            k += 1
        unans.append({"id": f"squad2-{pick['id']}", "question": pick["question"], "answers": [],
                      "source_article": title})
    unans.sort(key=lambda q: q["id"])

    metaqa_qs = [{"id": q["id"], "question": q["question"], "answers": q["answers"],
                  "topic_entity": q["topic_entity"], "qtype": q["qtype"]} for q in chosen]
    questions = metaqa_qs + text_qs + unans
    ids = [q["id"] for q in questions]
    assert len(ids) == len(set(ids))
    pids = [p["id"] for p in passages]
    assert len(pids) == len(set(pids))

    out.mkdir(parents=True, exist_ok=True)
    write_tsv(out / "triples.tsv", triples)
    write_jsonl(out / "passages.jsonl", passages)
    write_jsonl(out / "questions.jsonl", questions)
    write_text(out / "ATTRIBUTION.md", SAMPLE_ATTRIBUTION.format(
        n_triples=len(triples), n_pass=len(passages), n_nq=sum(p["source"] == "nq-open" for p in passages),
        n_hp=sum(p["source"] == "hotpotqa" for p in passages), n_q=len(questions), n_meta=len(metaqa_qs),
        n_nqq=sum(q["id"].startswith("nq-") for q in text_qs),
        n_hpq=sum(q["id"].startswith("hotpotqa-") for q in text_qs), n_un=len(unans)))
    return {"triples": len(triples), "passages": len(passages), "questions": len(questions),
            "metaqa": len(metaqa_qs), "text": len(text_qs), "unanswerable": len(unans)}


SAMPLE_ATTRIBUTION = """# Sample data: attribution

The files in this folder are **selected records** of public data sets, converted to kgrag's input formats
(CONTRACT.md). Records were selected, not edited: triple, passage, question and answer texts are verbatim, except
that MetaQA questions have their `[brackets]` removed (the bracketed name is kept as `topic_entity`).
Regenerate with:

    python scripts/prepare_data.py --shared ../shared/data --make-sample data/sample

| file | content | source (repo @ commit : path) | licence |
|---|---|---|---|
| `triples.tsv` | {n_triples} MetaQA movie-KB triples: every triple touching the topic entities of the sampled 1-hop questions, and all triples of the movies among their topics/answers | vaijsc/keallm @ cf68f911e2484809bf5b0da413ba3d9768a747b7 : `data/MetaQA/{{entity2text.txt,relation2text.txt,train.tsv,dev.tsv,test.tsv,test_old.tsv}}` (ID-encoded copy of MetaQA `kb.txt`, yuyuz/MetaQA, derived from WikiMovies) | CC BY 3.0 (MetaQA; yuyuz/MetaQA @ b1e6973 LICENSE.txt) |
| `questions.jsonl` (`metaqa-1hop-*`, {n_meta}) | MetaQA 1-hop dev questions (vanilla), with `qtype` | vaijsc/keallm @ cf68f911e2484809bf5b0da413ba3d9768a747b7 : `data/MetaQA/1-hop/dev.txt`, `1-hop/qa_dev_qtype.txt` | CC BY 3.0 (MetaQA) |
| `passages.jsonl` (`nq-*`, {n_nq}) and `questions.jsonl` (`nq-q*`, {n_nqq}) | NQ-open questions and their NQ-annotated gold Wikipedia passages (the answered ones + distractors from other questions) | nelson-liu/lost-in-the-middle @ 29b8a6d042ce29abccee3db1a73171a107d7e6af : `qa_data/nq-open-oracle.jsonl.gz` | Natural Questions CC BY-SA 3.0; Wikipedia text CC BY-SA; repo MIT |
| `passages.jsonl` (source `hotpotqa`, id = Wikipedia title, {n_hp}) and `questions.jsonl` (`hotpotqa-*`, {n_hpq}) | HotpotQA bridge questions with their 10 paragraphs (2 gold + 8 distractors), sentences joined | OSU-NLP-Group/HippoRAG @ 3d95d255a8db0c1699b853cfb4fbe5056708162d : `data/hotpotqa_train.json` | HotpotQA CC BY-SA 4.0 (Wikipedia text CC BY-SA); HippoRAG MIT |
| `questions.jsonl` (`squad2-*`, {n_un}) | SQuAD 2.0 unanswerable questions (`is_impossible`) whose article is not in this sample; `answers: []` (the correct output is a refusal) | chrischute/squad @ 85623adeb9e6639f145081fea9cae2d8f3a26379 : `data/dev-v2.0.json` (CS224n split of the official SQuAD 2.0 dev set) | SQuAD 2.0 CC BY-SA 4.0; repo MIT |

Totals: {n_pass} passages, {n_triples} triples, {n_q} questions.

Share-alike: the passages and SQuAD/NQ/HotpotQA question texts are CC BY-SA; redistributions of these files must keep
this attribution and the same licence. The MetaQA triples and questions are CC BY 3.0 (attribution).
Not used here (non-commercial or no licence): RGB, PathQuestion, RealtimeQA, PUQA, MS MARCO.
"""


# --------------------------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", required=True, type=Path, help="path to shared/data")
    ap.add_argument("--out", type=Path, help="output folder for the converted families")
    ap.add_argument("--families", nargs="+", choices=sorted(CONVERTERS), help="subset of families (default: all)")
    ap.add_argument("--make-sample", type=Path, metavar="DIR", help="write the embedded sample to DIR")
    ap.add_argument("--poison-prefix-question", action="store_true",
                    help="write PoisonedRAG adversarial passages as `question.adv_text` (black-box attack form)")
    args = ap.parse_args(argv)
    if not args.out and not args.make_sample:
        ap.error("give --out and/or --make-sample")
    root = args.shared
    if not (root / "kgqa").is_dir():
        ap.error(f"{root} does not look like shared/data (no kgqa/)")
    summary = []
    if args.out:
        for fam in args.families or list(CONVERTERS):
            t0 = time.time()
            if fam == "poisonedrag":
                counts = convert_poisonedrag(root, args.out, args.poison_prefix_question)
            else:
                counts = CONVERTERS[fam](root, args.out)
            summary.append((fam, counts, time.time() - t0))
    if args.make_sample:
        t0 = time.time()
        summary.append(("sample", make_sample(root, args.make_sample), time.time() - t0))
    print(f"{'family':<20} {'seconds':>7}  counts")
    print("-" * 100)
    for fam, counts, dt in summary:
        print(f"{fam:<20} {dt:7.2f}  " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
