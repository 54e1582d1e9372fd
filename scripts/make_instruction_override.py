"""Instruction-override set: MetaQA 1-hop questions whose instruction states a counterfactual premise.

"Assume the director of Choke is Kirby Dick." + "who's the director of Choke" -> the expected answer is the
instructed value, not the KG's. The instructed value is another held-out question's answer of the same type,
so it is a real entity of the right kind. Held-out lines only (even lines; exemplars came from odd ones).

    python scripts/make_instruction_override.py --metaqa /tmp/data/metaqa/1hop.jsonl --out /tmp/override.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# qtype -> how the instruction names the relation
RELATIONS = {
    "movie_to_director": "the director of {e}",
    "movie_to_writer": "the writer of {e}",
    "movie_to_year": "the release year of {e}",
    "movie_to_language": "the language of {e}",
}


def make_set(lines: list[dict], limit: int) -> list[dict]:
    by_type: dict[str, list[dict]] = {}
    for record in lines:
        if record.get("qtype") in RELATIONS and len(record["answers"]) == 1:
            by_type.setdefault(record["qtype"], []).append(record)
    rows: list[dict] = []
    rank: dict[str, int] = {}
    for qtype, records in sorted(by_type.items()):
        for number, record in enumerate(records):
            # The next record's answer of the same type (wrapping), skipped when it happens to be true too.
            for other in records[number + 1 :] + records[:number]:
                value = other["answers"][0]
                if value not in record["answers"]:
                    break
            else:
                continue
            rank[f"override-{record['id']}"] = number
            relation = RELATIONS[qtype].format(e=record["topic_entity"])
            rows.append({
                "id": f"override-{record['id']}",
                "question": record["question"],
                "instruction": f"Assume {relation} is {value}.",
                "answers": [value],
                "original_answers": record["answers"],
                "qtype": qtype,
            })
    # Interleave the types so a --limit prefix covers all of them.
    rows.sort(key=lambda r: (rank[r["id"]], r["qtype"]))
    return rows[:limit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metaqa", required=True, help="MetaQA 1hop.jsonl (prepared)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--limit", type=int, default=40)
    args = parser.parse_args()
    lines = [json.loads(line) for line in Path(args.metaqa).read_text(encoding="utf-8").splitlines() if line.strip()]
    held_out = lines[1::2]  # even lines (1-based)
    rows = make_set(held_out, args.limit)
    Path(args.out).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(json.dumps({"out": args.out, "questions": len(rows)}))


if __name__ == "__main__":
    main()
