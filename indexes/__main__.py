"""`python -m indexes build --out DIR [--passages PATH ...] [--triples PATH ...]`"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from indexes.build import BuildConfig, build_index
from indexes.chunking import ChunkingConfig
from indexes.embedder import DEFAULT_EMBEDDER
from rag.errors import KgragError


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m indexes", description="Build kgrag indexes.")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build an index from passages and/or triples (atomic, resumable)")
    build.add_argument("--out", required=True, help="index folder (an existing index there is replaced atomically)")
    build.add_argument("--passages", nargs="+", default=[], action="extend", help="JSONL files or folders of .txt/.md")
    build.add_argument("--triples", nargs="+", default=[], action="extend", help="TSV, a|b|c or JSONL triple files")
    build.add_argument("--embedder", default=DEFAULT_EMBEDDER, help="packaged embedder name or a local model folder")
    build.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    build.add_argument("--index-type", choices=["auto", "flat", "ivf", "hnsw"], default="auto")
    build.add_argument("--chunk-words", type=int, default=160)
    build.add_argument("--chunk-overlap", type=int, default=30)
    build.add_argument(
        "--kg-passages", action="store_true", help="also verbalise each KG entity's facts into a passage for dense search"
    )
    build.add_argument(
        "--max-entity-vectors",
        type=int,
        default=100_000,
        help="embed entity names for embedding-based linking when the KG has at most this many entities (0: never)",
    )
    build.add_argument("--skip-bad-lines", action="store_true", help="skip malformed lines and report how many")
    build.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = BuildConfig(
            passages=tuple(args.passages),
            triples=tuple(args.triples),
            embedder=args.embedder,
            device=args.device,
            index_type=args.index_type,
            chunking=ChunkingConfig(max_words=args.chunk_words, overlap_words=args.chunk_overlap),
            kg_passages=args.kg_passages,
            skip_bad_lines=args.skip_bad_lines,
            max_entity_vectors=args.max_entity_vectors,
            progress=not args.quiet,
        )
        result = build_index(args.out, config)
    except KgragError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for message in result.skipped[:20]:
        print(f"skipped: {message}", file=sys.stderr)
    if result.skipped:
        print(f"skipped {len(result.skipped)} bad line(s)", file=sys.stderr)
    summary = {"index": str(result.path), "seconds": round(result.seconds, 2), **result.manifest["counts"]}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
