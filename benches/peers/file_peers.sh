#!/usr/bin/env bash
# Offline transcode and decode throughput of streamlib's FileReader/FileWriter against the
# ffmpeg CLI, in one run on one machine. 1080p H.264 input made by ffmpeg itself.
#   streamlib: FileReader → Blur σ=2 → FileWriter (libx264 veryfast), free-running clock
#   ffmpeg:    ffmpeg -i in.mp4 -vf gblur=sigma=2 -c:v libx264 -preset veryfast out.mp4
#   decode:    FileReader → counting sink (I420 out)  vs  ffmpeg -i in.mp4 -f null -
# Each command runs R times (default 3), the four commands interleaved so that drift in the
# machine's speed hits all of them alike; the median wall time, its CPU time and fps are
# printed, with the ratios.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-300}
R=${R:-3}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
ffmpeg -v error -f lavfi -i "testsrc2=s=1920x1080:r=30" -frames:v "$N" -c:v libx264 -preset veryfast -pix_fmt yuv420p "$dir/in.mp4"
cargo build -q --release -p streamlib --features file --example demo_files
demo=./target/release/examples/demo_files
run() { # label, command...: appends "wall cpu" to $dir/label
  local label=$1; shift
  local TIMEFORMAT='%R %U %S' t
  t=$( { time "$@" >/dev/null 2>&1; } 2>&1 )
  read -r wall user sys <<<"$t"
  echo "$wall $(echo "$user + $sys" | bc)" >> "$dir/$label"
}
for _ in $(seq "$R"); do
  run streamlib "$demo" --input "$dir/in.mp4" --out "$dir/ours"
  run ffmpeg ffmpeg -y -v error -i "$dir/in.mp4" -vf gblur=sigma=2 -c:v libx264 -preset veryfast "$dir/peer.mp4"
  STREAMLIB_DECODE_ONLY=1 run streamlib-decode "$demo" --input "$dir/in.mp4" --out "$dir/ours"
  run ffmpeg-decode ffmpeg -v error -i "$dir/in.mp4" -f null -
done
median() { sort -n "$dir/$1" | awk -v r="$R" 'NR == int((r + 1) / 2)'; }
printf '%-16s %8s %8s %8s   (median of %s runs; all walls: ...)\n' what wall_s cpu_s fps "$R"
declare -A wall
for label in streamlib ffmpeg streamlib-decode ffmpeg-decode; do
  read -r w c <<<"$(median "$label")"
  wall[$label]=$w
  printf '%-16s %8s %8s %8s   %s\n' "$label" "$w" "$c" "$(echo "scale=1; $N / $w" | bc)" "$(cut -d' ' -f1 "$dir/$label" | tr '\n' ' ')"
done
echo "transcode: ffmpeg wall / streamlib wall = $(echo "scale=2; ${wall[ffmpeg]} / ${wall[streamlib]}" | bc)"
echo "decode: ffmpeg wall / streamlib wall = $(echo "scale=2; ${wall[ffmpeg-decode]} / ${wall[streamlib-decode]}" | bc) (streamlib also copies into pooled I420 frames)"
