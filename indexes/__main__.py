"""`python -m indexes build --out DIR [--passages PATH ...] [--triples PATH ...]`
`python -m indexes add --index DIR [--passages PATH ...] [--triples PATH ...]`
`python -m indexes delete --index DIR [--ids ID ... | --ids-file F] [--triples-file F ...]`"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from indexes.build import BuildConfig, build_index
from indexes.chunking import ChunkingConfig
from indexes.embedder import DEFAULT_EMBEDDER
from indexes.vector import INDEX_TYPES
from rag.errors import InputError, KgragError


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m indexes", description="Build kgrag indexes.")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build an index from passages and/or triples (atomic, resumable)")
    build.add_argument("--out", required=True, help="index folder (an existing index there is replaced atomically)")
    build.add_argument("--passages", nargs="+", default=[], action="extend", help="JSONL files or folders of .txt/.md")
    build.add_argument("--triples", nargs="+", default=[], action="extend", help="TSV, a|b|c or JSONL triple files")
    build.add_argument("--embedder", default=DEFAULT_EMBEDDER, help="packaged embedder name or a local model folder")
    build.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    build.add_argument(
        "--index-type", choices=list(INDEX_TYPES), default="auto",
        help="ivfpq: IVF + product quantisation (1M+ chunks); ivfpq-sq8: plus 8-bit re-scoring (better recall)",
    )
    build.add_argument("--nprobe", type=int, default=None, help="IVF lists searched per query (ivf: 16, ivfpq: 32)")
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
    build.add_argument(
        "--ray", metavar="auto|ADDRESS", default=None,
        help="chunk and embed with Ray Data (pip install 'kgrag[ray]'): auto = a running cluster, else a local one",
    )

    add = sub.add_parser("add", help="add passages and/or triples to an index (atomic; existing vectors are kept)")
    add.add_argument("--index", required=True, help="an index folder built with `build`")
    add.add_argument("--passages", nargs="+", default=[], action="extend", help="JSONL files or folders of .txt/.md")
    add.add_argument("--triples", nargs="+", default=[], action="extend", help="TSV, a|b|c or JSONL triple files")
    add.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    add.add_argument("--chunk-words", type=int, default=160)
    add.add_argument("--chunk-overlap", type=int, default=30)

    delete = sub.add_parser("delete", help="delete passages (by id) and/or triples from an index (atomic)")
    delete.add_argument("--index", required=True, help="an index folder built with `build`")
    delete.add_argument("--ids", nargs="+", default=[], action="extend", help="passage or document ids")
    delete.add_argument("--ids-file", help="a file with one passage id a line")
    delete.add_argument("--triples-file", nargs="+", default=[], action="extend", help="triples to delete (same formats)")
    delete.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    return parser


def _update(args: argparse.Namespace):
    from indexes.update import add_to_index, delete_from_index

    if args.command == "add":
        return add_to_index(
            args.index,
            passages=args.passages,
            triples=args.triples,
            chunking=ChunkingConfig(max_words=args.chunk_words, overlap_words=args.chunk_overlap),
            device=args.device,
        )
    ids = list(args.ids)
    if args.ids_file:
        try:
            ids += Path(args.ids_file).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise InputError(f"cannot read --ids-file {args.ids_file}: {exc.strerror}") from exc
    return delete_from_index(args.index, ids=ids, triples=args.triples_file, device=args.device)


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.command in ("add", "delete"):
        try:
            update = _update(args)
        except KgragError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(json.dumps({
            "index": str(update.path), "seconds": round(update.seconds, 2), "added_passages": update.added_passages,
            "removed_passages": update.removed_passages, "added_triples": update.added_triples,
            "removed_triples": update.removed_triples, **update.manifest["counts"],
        }))
        return 0
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
            nprobe=args.nprobe,
            ray=args.ray,
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
