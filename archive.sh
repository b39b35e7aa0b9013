#!/usr/bin/env bash
# Package a Hugging Face model directory as a TorchServe archive in model_store/.
#
#   ./archive.sh NAME HANDLER MODEL_DIR [MODEL_CONFIG]
#
#   NAME          the served name, e.g. my-bert-attention (POST /predictions/NAME)
#   HANDLER       attention | gradients
#   MODEL_DIR     config.json + weights (safetensors) + tokenizer files (a fast tokenizer)
#   MODEL_CONFIG  model-config.yaml (workers, batching, handler settings);
#                 default deploy/HANDLER.yaml
#
# The archive goes to $MODEL_STORE (default: model_store/ beside this script).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 3 ] && [ $# -le 4 ] || usage
name=$1 handler=$2 model_dir=$3 config=${4:-$here/deploy/$2.yaml}
[[ $name =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || { echo "NAME: letters, digits, '-', '_', '.' only" >&2; exit 2; }
[ -f "$here/handlers/${handler}_handler.py" ] || { echo "HANDLER: attention or gradients, got '$handler'" >&2; exit 2; }
[ -f "$model_dir/config.json" ] || { echo "MODEL_DIR: no config.json in '$model_dir'" >&2; exit 2; }
[ -f "$model_dir/tokenizer.json" ] || { echo "MODEL_DIR: no tokenizer.json (a fast tokenizer) in '$model_dir'" >&2; exit 2; }
[ -f "$config" ] || { echo "MODEL_CONFIG: no file '$config'" >&2; exit 2; }
archiver="$here/.venv/bin/torch-model-archiver"
[ -x "$archiver" ] || archiver=torch-model-archiver

# The archive holds the handler, the exformer package (core + TorchServe glue), and the
# model under model/; TorchServe puts the unpacked archive first on the worker's path.
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir "$stage/extra"
cp -r "$here/exformer" "$stage/extra/exformer"
ln -s "$(cd "$model_dir" && pwd)" "$stage/extra/model"
find "$stage/extra" -name __pycache__ -prune -exec rm -rf {} +

store=${MODEL_STORE:-$here/model_store}
mkdir -p "$store"
# zip-store: weights do not compress, and an uncompressed archive builds and unpacks fast.
"$archiver" --model-name "$name" --version 1.0 \
  --handler "$here/handlers/${handler}_handler.py" \
  --extra-files "$stage/extra" \
  --config-file "$config" \
  --archive-format zip-store --export-path "$store" --force
echo "built $store/$name.mar"
