#!/usr/bin/env bash
# Offline transcode and decode throughput of streamlib's FileReader/FileWriter against the
# ffmpeg CLI, in one run on one machine. 1080p H.264 input made by ffmpeg itself.
#   streamlib: FileReader → Blur σ=2 → FileWriter (libx264 veryfast), free-running clock
#   ffmpeg:    ffmpeg -i in.mp4 -vf gblur=sigma=2 -c:v libx264 -preset veryfast out.mp4
#   decode:    FileReader → counting sink (RGBA out)  vs  ffmpeg -i in.mp4 -f null -
# Prints wall seconds, CPU seconds and fps for each, and the ratio.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-300}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
ffmpeg -v error -f lavfi -i "testsrc2=s=1920x1080:r=30" -frames:v "$N" -c:v libx264 -preset veryfast -pix_fmt yuv420p "$dir/in.mp4"
cargo build -q --release -p streamlib --features file --example demo_files
measure() { # label, command...: prints "label wall cpu fps"
  local label=$1; shift
  local TIMEFORMAT='%R %U %S' t
  t=$( { time "$@" >/dev/null 2>&1; } 2>&1 )
  read -r wall user sys <<<"$t"
  echo "$label $wall $(echo "$user + $sys" | bc) $(echo "scale=1; $N / $wall" | bc)"
}
ours=$(measure streamlib ./target/release/examples/demo_files --input "$dir/in.mp4" --out "$dir/ours")
peer=$(measure ffmpeg ffmpeg -y -v error -i "$dir/in.mp4" -vf gblur=sigma=2 -c:v libx264 -preset veryfast "$dir/peer.mp4")
dec_peer=$(measure ffmpeg-decode ffmpeg -v error -i "$dir/in.mp4" -f null -)
dec_ours=$(STREAMLIB_DECODE_ONLY=1 measure streamlib-decode ./target/release/examples/demo_files --input "$dir/in.mp4" --out "$dir/ours")
printf '%-16s %8s %8s %8s\n' what wall_s cpu_s fps
for line in "$ours" "$peer" "$dec_ours" "$dec_peer"; do printf '%-16s %8s %8s %8s\n' $line; done
ow=$(echo "$ours" | cut -d' ' -f2); pw=$(echo "$peer" | cut -d' ' -f2)
echo "transcode: ffmpeg wall / streamlib wall = $(echo "scale=2; $pw / $ow" | bc)"
dw=$(echo "$dec_ours" | cut -d' ' -f2); pdw=$(echo "$dec_peer" | cut -d' ' -f2)
echo "decode: ffmpeg wall / streamlib wall = $(echo "scale=2; $pdw / $dw" | bc) (streamlib also converts to RGBA)"
