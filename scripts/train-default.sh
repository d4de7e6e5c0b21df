#!/usr/bin/env bash
# Reproduces the shipped default model (models/default) from nothing, on a 2-core machine, in about 2 hours:
#   VQ tokenizer (~21 min), then the AR transformer and the DiT decoder side by side, one core each (~85 min),
#   then the decoder fine-tuned with the glyph image in two runs (~30 + ~35 min), then export with parity into a
#   package, then the OCR evaluation.
# Every stage checkpoints; rerun the script (or a single 'train ... --resume') to continue after an interruption.
#   scripts/train-default.sh [--stop-after N] [--eval-n N] [out-folder=models/default]
#     --stop-after N   stop every training stage after step N (a smoke run of the whole recipe: minutes, not hours;
#                      the package it makes draws noise, but every step of the recipe runs)
#     --eval-n N       prompts for the closing OCR evaluation (default 200)
set -euo pipefail
cd "$(dirname "$0")/.."
stop=()
eval_n=200
while [ $# -gt 0 ]; do
  case "$1" in
    --stop-after) [ $# -ge 2 ] || { echo "train-default.sh: --stop-after needs a step number" >&2; exit 2; }; stop=(--stop-after "$2"); shift 2 ;;
    --eval-n) [ $# -ge 2 ] || { echo "train-default.sh: --eval-n needs a count" >&2; exit 2; }; eval_n="$2"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "train-default.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
out="${1:-models/default}"
runs=runs
mkdir -p "$runs"
./tessera train --help > /dev/null   # build once: the tools install (engine/Tessera.Tools) and the CLI it hands over from
export TESSERA_NO_BUILD=1

./tessera train vq --config models/configs/vq.json --out "$runs/vq" --resume "${stop[@]}"
./tessera train ar --config models/configs/ar.json --out "$runs/ar" --resume "${stop[@]}" > "$runs/ar.out" 2> "$runs/ar.log" &
ar=$!
./tessera train decoder --config models/configs/decoder.json --out "$runs/decoder" --resume "${stop[@]}" > "$runs/decoder.out" 2> "$runs/decoder.log" &
decoder=$!
trap 'kill "$ar" "$decoder" 2>/dev/null || true' EXIT   # an interrupted or failed script leaves no trainer behind
echo "training ar (pid $ar) and decoder (pid $decoder); progress in $runs/ar.log and $runs/decoder.log" >&2
wait "$ar" || { echo "train-default.sh: ar training failed; see $runs/ar.log (rerun the script to resume)" >&2; exit 1; }
wait "$decoder" || { echo "train-default.sh: decoder training failed; see $runs/decoder.log (rerun the script to resume)" >&2; exit 1; }
trap - EXIT

./tessera train decoder --config models/configs/decoder-glyph.json --out "$runs/decoder-glyph" --resume "${stop[@]}"
./tessera train decoder --config models/configs/decoder-glyph-2.json --out "$runs/decoder-glyph-2" --resume "${stop[@]}"
./tessera package --vq-run "$runs/vq" --ar-run "$runs/ar" --decoder-run "$runs/decoder-glyph-2" --out "$out" --cfg 1 --steps 6 --sampler dpm2m
./tessera eval text --n "$eval_n" --model "$out" --sheet "$out/eval-sheet.png" | tee "$out/eval.txt"
