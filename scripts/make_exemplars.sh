#!/usr/bin/env bash
# Regenerates kg/resources/relation_paths.jsonl from the development sets (converted by prepare_data.py).
# Only every second question is used (--every 2): the other half stays unseen for evaluation.
set -euo pipefail
DATA=${1:?usage: scripts/make_exemplars.sh PREPARED_DATA_DIR}
OUT=kg/resources/relation_paths.jsonl
PY=${PY:-python}
$PY -m kg.exemplars --kb "$DATA/metaqa/kb.tsv" --questions "$DATA"/metaqa/{1,2,3}hop.jsonl --out $OUT --every 2
for kb in PQ-2H PQ-3H PQL-2H PQL-3H; do
  $PY -m kg.exemplars --kb "$DATA/pathquestion/$kb/kb.tsv" --questions "$DATA/pathquestion/$kb/questions.jsonl" \
    --out $OUT --every 2 --append
done
wc -l $OUT
