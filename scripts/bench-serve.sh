#!/usr/bin/env bash
# Load benchmark of `llmql serve` (README "Serve"), for the tiny fixture model (+ its stage-2 adapter)
# and SmolLM2-135M-Instruct (Q4_1 GGUF, scripts/setup.sh): encodes a corpus, builds a flat index, starts
# the server on a free port, runs `llmql bench serve` (CLIENTS concurrent clients for SECONDS, one query
# per request), then stops the server with SIGTERM. One JSON line per model on stdout.
# Options: CLIENTS=8 SECONDS=60 ENDPOINT=embeddings|search MODELS="tiny smollm2"
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/llmql-target}"
CLIENTS="${CLIENTS:-8}"; SECONDS_="${SECONDS:-60}"; ENDPOINT="${ENDPOINT:-embeddings}"; MODELS="${MODELS:-tiny smollm2}"
cargo build --release -p llmql-cli >&2
L="$CARGO_TARGET_DIR/release/llmql"
W="$(mktemp -d)"
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$W"' EXIT

bench() { # name model adapter corpus queries passage_max_len
  local name=$1 model=$2 adapter=$3 corpus=$4 queries=$5 maxlen=$6
  local ad=(); [ -n "$adapter" ] && ad=(--adapter "$adapter")
  mkdir -p "$W/$name"
  RUST_LOG=warn "$L" encode --model "$model" "${ad[@]}" --input "$corpus" --kind passage --max-len "$maxlen" --output "$W/$name/enc" >&2
  RUST_LOG=warn "$L" index --corpus "$W/$name/enc" --output "$W/$name/idx" >&2
  RUST_LOG=warn "$L" serve --index "$W/$name/idx" --passages "$corpus" --port 0 >"$W/$name/serve.out" 2>"$W/$name/serve.err" &
  PID=$!
  for _ in $(seq 600); do grep -q "listening on" "$W/$name/serve.out" 2>/dev/null && break; sleep 0.1; done
  local url; url="$(sed -n 's/^llmql serve: listening on //p' "$W/$name/serve.out")"
  [ -n "$url" ] || { cat "$W/$name/serve.err" >&2; exit 1; }
  "$L" bench serve --url "$url" --clients "$CLIENTS" --seconds "$SECONDS_" --endpoint "$ENDPOINT" --queries "$queries"
  kill -TERM "$PID"; wait "$PID"; PID=""
}

for m in $MODELS; do
  case $m in
    tiny) bench tiny tests/fixtures/tiny-llama tests/fixtures/stage2/adapter tests/fixtures/collection/corpus.jsonl \
            tests/fixtures/collection/queries.jsonl 64 ;;
    smollm2) bench smollm2 "${LLMQL_HOME:-$HOME/.cache/llmql}/models/SmolLM2-135M-Instruct.Q4_1.gguf" "" \
            tests/fixtures/collection/corpus.jsonl native-cli/assets/quickstart/queries.jsonl 192 ;;
    *) echo "unknown model $m" >&2; exit 2 ;;
  esac
done
