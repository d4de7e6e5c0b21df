#!/usr/bin/env bash
# The CUDA path end to end on a machine with an NVIDIA GPU, from a source checkout, with every figure in one file:
#   scripts/gpu-check.sh [output-file]      default: gpu-check-<host>-<UTC time>.txt in the current folder
#   TESSERA_GPU_DEVICE=cuda:1 scripts/gpu-check.sh    another GPU
# Steps: install the GPU native if missing (tessera plugin install cuda), devices, plugin verify, generate (and the
# same prompt on cpu:0), bench decode (tiny widths, and GLM-Image widths with 2 layers), bench generate, all on the GPU.
# It stops at the devices step, exit 1, with the plugin's reason when the device is not available (no GPU, no driver,
# a missing CUDA library: the reason names which), so on a machine without a GPU it fails clearly and early.
# Needs: the NVIDIA driver, CUDA 13 (libcudart.so.13, libcublas.so.13, libcublasLt.so.13, libcurand.so.10) and
# cuDNN 9 (libcudnn.so.9), as Microsoft.ML.OnnxRuntime.Gpu.Linux 1.31.0 is built for them (see docs/devices.md).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
device="${TESSERA_GPU_DEVICE:-cuda:0}"
out="${1:-$PWD/gpu-check-$(hostname)-$(date -u +%Y%m%dT%H%M%SZ).txt}"
mkdir -p "$(dirname "$out")" && out="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
work="$(dirname "$out")/$(basename "$out" .txt)-files"
mkdir -p "$work"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
tessera="$root/tessera"
cli_dir="$root/engine/Tessera.Cli/bin/Release/net10.0"
failed=()

say() { echo "$*" | tee -a "$out"; }
# step <name> <command...>: runs it (10 min at most), appends its output to the report, records a failure.
step() {
  local name="$1"; shift
  say ""
  say "== $name: $*"
  local start=$SECONDS
  timeout 600 "$@" >"$work/$name.out" 2>"$work/$name.err"
  local code=$?
  cat "$work/$name.out" >>"$out"
  sed 's/^/  stderr: /' "$work/$name.err" | tail -n 40 >>"$out"
  say "-- $name: exit $code in $((SECONDS - start)) s"
  [ "$code" -eq 0 ] || failed+=("$name (exit $code)")
  return "$code"
}

: >"$out"
say "# tessera gpu-check, $(date -u +%Y-%m-%dT%H:%M:%SZ), device $device"
say "commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
say "host: $(hostname), $(uname -srm), $(nproc) cores"
if command -v nvidia-smi >/dev/null; then
  say "nvidia-smi: $(nvidia-smi --query-gpu=index,name,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1 | tr '\n' ';')"
else
  say "nvidia-smi: not found (no NVIDIA driver on PATH)"
fi

# Build both installs once (the tools install runs bench decode), then run without rebuilding.
say ""
say "== build"
if ! dotnet build "$root/engine/Tessera.Cli/Tessera.Cli.csproj" -c Release -nologo -v q >"$work/build.out" 2>&1 \
   || ! dotnet build "$root/engine/Tessera.Tools/Tessera.Tools.csproj" -c Release -nologo -v q >>"$work/build.out" 2>&1; then
  tail -n 30 "$work/build.out" >>"$out"
  say "gpu-check: FAILED: the build failed (see $work/build.out)"
  exit 1
fi
export TESSERA_NO_BUILD=1

# No driver or no GPU: say so before fetching a 245 MB package for nothing.
step devices-before "$tessera" devices
before="$(grep -E "^  $device " "$work/devices-before.out" || true)"
if grep -qE "no NVIDIA driver|no CUDA device|the NVIDIA driver (did not start|could not count)" <<<"$before"; then
  say "gpu-check: FAILED: $device is not available here, so nothing ran on a GPU. The plugin says:"
  say "${before#*unavailable  }"
  exit 1
fi
step install "$tessera" plugin install cuda
step devices "$tessera" devices
line="$(grep -E "^  $device " "$work/devices.out" || true)"
if [ -z "$line" ]; then
  say "gpu-check: FAILED: tessera lists no device $device (is the cuda plugin loaded? see the devices step above)"
  exit 1
fi
if ! grep -qE "^  $device +available" <<<"$line"; then
  say "gpu-check: FAILED: $device is not available here, so nothing ran on a GPU. The plugin says:"
  say "${line#*unavailable  }"
  exit 1
fi
"$tessera" devices --json >"$work/devices.json" 2>/dev/null

prompt='the word "MOON" in red on a yellow background'
step verify "$tessera" plugin verify "$cli_dir/plugins/cuda" --device "$device"
step generate "$tessera" generate "$prompt" -o "$work/moon-$device.png" --seed 1 --device "$device"
step generate-cpu "$tessera" generate "$prompt" -o "$work/moon-cpu.png" --seed 1 --device cpu:0
step bench-decode-tiny "$tessera" bench decode --device "$device" --json
step bench-decode-glm "$tessera" bench decode --device "$device" --widths glm-image --layers 2 --json
step bench-generate "$tessera" bench generate --device "$device" --json

say ""
if [ "${#failed[@]}" -gt 0 ]; then
  say "gpu-check: FAILED steps: ${failed[*]} (outputs in $work)"
  exit 1
fi
say "gpu-check: all steps passed on $device; report $out, images and raw outputs in $work"
