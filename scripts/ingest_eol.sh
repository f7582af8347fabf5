#!/usr/bin/env bash
# NASA-style batch ingestion of an EOL catalogue CSV through a running astroloc service.
#
#   scripts/ingest_eol.sh CATALOGUE.csv IMAGES_DIR [OUT_DIR]
#
# Environment: ASTROLOC_API_URL (default http://127.0.0.1:8000), ASTROLOC_API_KEY,
# INGEST_CONCURRENCY (default 4). Re-run the same command to resume after an interruption:
# photos already done are skipped, nothing is submitted twice. Rows that cannot be processed are
# listed in OUT_DIR/rejects.csv with their line number and reason; results in OUT_DIR/results.csv.
set -euo pipefail
catalogue=${1:?usage: ingest_eol.sh CATALOGUE.csv IMAGES_DIR [OUT_DIR]}
images=${2:?usage: ingest_eol.sh CATALOGUE.csv IMAGES_DIR [OUT_DIR]}
out=${3:-ingest-$(basename "$catalogue" .csv)}
here=$(cd "$(dirname "$0")/.." && pwd)
astroloc=${ASTROLOC:-$here/.venv/bin/astroloc}
"$astroloc" ingest "$catalogue" --images "$images" --out "$out" \
    --concurrency "${INGEST_CONCURRENCY:-4}"
