#!/usr/bin/env bash
# Packs Tessera's NuGet packages into a local folder (a feed that `dotnet add package` and `dotnet tool install` read).
#   scripts/pack.sh <dir>              every package: the libraries, the `tessera` tool and the `tessera-tools` tool
#   scripts/pack.sh <dir> --no-tools   without Tessera.Tools (its package holds libtorch: ~190 MB, about a minute)
# Then, for example:
#   dotnet tool install --global Tessera.Cli --add-source <dir>      # `tessera`: the inference install (~110 MB)
#   dotnet tool install --global Tessera.Tools --add-source <dir>    # `tessera-tools`: train, export, import, package
#   dotnet add package Tessera.Pipeline --source <dir>               # the C# API: services.AddTessera(...)
#   dotnet add package Tessera.Plugins.Cpu --source <dir>            # + the CPU plugin in the app's output
#   dotnet add package Tessera.Models.Default --source <dir>         # + the shipped model in the app's output
# The tool packages are RID-specific (linux-x64, this platform's native libraries only).
set -euo pipefail
usage() { echo "usage: scripts/pack.sh <output-dir> [--no-tools]" >&2; exit 2; }
[ $# -ge 1 ] || usage
out="$1"; shift
tools=1
for a in "$@"; do
  case "$a" in
    --no-tools) tools=0 ;;
    *) usage ;;
  esac
done
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
case "$out/" in "$root"/*) echo "pack.sh: write the packages outside the source tree (got $out)" >&2; exit 2 ;; esac
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

projects=(
  engine/Tessera.Abstractions/Tessera.Abstractions.csproj   # the plugin contract
  engine/Tessera.Engine/Tessera.Engine.csproj               # plugin host, devices, placement
  exporters/Tessera.Onnx/Tessera.Onnx.csproj                # ONNX model and graph builder
  models/Tessera.Data/Tessera.Data.csproj                   # model inputs (tokenizer, glyphs)
  engine/Tessera.Pipeline/Tessera.Pipeline.csproj           # AddTessera → ITextToImage, IImageGenerator
  plugins/cpu/Tessera.Plugins.Cpu.csproj                    # payload: plugins/cpu/ in the application's output
  models/Tessera.Models.Default/Tessera.Models.Default.csproj  # payload: models/default/ (the shipped model)
  exporters/Tessera.Export/Tessera.Export.csproj            # TorchSharp → ONNX
  engine/Tessera.Cli/Tessera.Cli.csproj                     # dotnet tool `tessera` (inference install)
)
[ "$tools" = 1 ] && projects+=(engine/Tessera.Tools/Tessera.Tools.csproj)   # dotnet tool `tessera-tools`

for p in "${projects[@]}"; do
  name="$(basename "$p" .csproj)"
  echo "pack.sh: $name" >&2
  dotnet pack "$root/$p" -c Release -nologo -v q -o "$out" >&2 \
    || { echo "pack.sh: packing $name failed (see above)" >&2; exit 1; }
done
echo "pack.sh: $(ls "$out"/*.nupkg | wc -l) packages in $out" >&2
ls -1 "$out"/*.nupkg
