#!/usr/bin/env bash
# Reproduces the shipped default model (models/default) from nothing, on a 2-core machine, in about 2 hours:
#   VQ tokenizer (~21 min), then the AR transformer and the DiT decoder side by side, one core each (~85 min),
#   then the decoder fine-tuned with the glyph image in two runs (~30 + ~35 min), then export with parity into a
#   package, then the OCR evaluation.
# Every stage checkpoints; rerun the script (or a single 'train ... --resume') to continue after an interruption.
#   scripts/train-default.sh [out-folder=models/default]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-models/default}"
runs=runs
mkdir -p "$runs"
./tessera train --help > /dev/null   # build once: the tools install (engine/Tessera.Tools) and the CLI it hands over from
export TESSERA_NO_BUILD=1

./tessera train vq --config models/configs/vq.json --out "$runs/vq" --resume
./tessera train ar --config models/configs/ar.json --out "$runs/ar" --resume > "$runs/ar.out" 2> "$runs/ar.log" &
ar=$!
./tessera train decoder --config models/configs/decoder.json --out "$runs/decoder" --resume > "$runs/decoder.out" 2> "$runs/decoder.log" &
decoder=$!
echo "training ar (pid $ar) and decoder (pid $decoder); progress in $runs/ar.log and $runs/decoder.log" >&2
wait "$ar"
wait "$decoder"

./tessera train decoder --config models/configs/decoder-glyph.json --out "$runs/decoder-glyph" --resume
./tessera train decoder --config models/configs/decoder-glyph-2.json --out "$runs/decoder-glyph-2" --resume
./tessera package --vq-run "$runs/vq" --ar-run "$runs/ar" --decoder-run "$runs/decoder-glyph-2" --out "$out" --cfg 1 --steps 6 --sampler dpm2m
./tessera eval text --n 200 --model "$out" --sheet "$out/eval-sheet.png" | tee "$out/eval.txt"
