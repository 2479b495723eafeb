#!/usr/bin/env bash
# `streamlib launch … ! null` against the FFmpeg command a user would compare it with, from the
# shell, whole commands timed end to end (generation included on both sides), same run, same
# machine. Each command runs R times (default 3), interleaved; medians are printed.
#   blur:        testpattern 1920x1080 ! blur sigma=2 ! null          (--clock free --frames N)
#                ffmpeg -f lavfi -i testsrc2=size=1920x1080 -frames:v N -vf format=rgba,gblur=sigma=2 -f null -
#   compositing: two 1920x1080 sources, the second at 50 % over the first, ! null
#                ffmpeg … testsrc2 + testsrc2, format=rgba, colorchannelmixer=aa=0.5, overlay -f null -
# Needs ffmpeg and bc.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-600}
R=${R:-3}
cargo build -q --release -p streamlib-cli
bin=./target/release/streamlib
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
run() { # label, command...: appends "wall cpu" to $dir/label
  local label=$1; shift
  local TIMEFORMAT='%R %U %S' t
  t=$( { time "$@" >/dev/null 2>&1; } 2>&1 )
  read -r wall user sys <<<"$t"
  echo "$wall $(echo "$user + $sys" | bc)" >> "$dir/$label"
}
ffnull() { ffmpeg -hide_banner -nostats -v error "$@" -f null -; }
for _ in $(seq "$R"); do
  run launch-blur "$bin" launch "testpattern size=1920x1080 ! blur sigma=2 ! null" --clock free --frames "$N"
  run ffmpeg-blur ffnull -f lavfi -i testsrc2=size=1920x1080 -frames:v "$N" -vf format=rgba,gblur=sigma=2
  run launch-composite "$bin" launch "compositor name=mix size=1920x1080 layers=2 layer1.opacity=0.5 ! null  testpattern size=1920x1080 ! mix.layer0  testpattern size=1920x1080 pattern=gradient ! mix.layer1" --clock free --frames "$N"
  run ffmpeg-composite ffnull -f lavfi -i testsrc2=size=1920x1080 -f lavfi -i testsrc2=size=1920x1080 -filter_complex "[0]format=rgba[a];[1]format=rgba,colorchannelmixer=aa=0.5[b];[a][b]overlay=format=rgb" -frames:v "$N"
done
median() { sort -n "$dir/$1" | awk -v r="$R" 'NR == int((r + 1) / 2)'; }
printf '%-18s %8s %8s %8s   (median of %s; all walls)\n' what wall_s cpu_s fps "$R"
declare -A wall
for label in launch-blur ffmpeg-blur launch-composite ffmpeg-composite; do
  read -r w c <<<"$(median "$label")"
  wall[$label]=$w
  printf '%-18s %8s %8s %8s   %s\n' "$label" "$w" "$c" "$(echo "scale=1; $N / $w" | bc)" "$(cut -d' ' -f1 "$dir/$label" | tr '\n' ' ')"
done
echo "blur: ffmpeg wall / launch wall = $(echo "scale=2; ${wall[ffmpeg-blur]} / ${wall[launch-blur]}" | bc)"
echo "compositing: ffmpeg wall / launch wall = $(echo "scale=2; ${wall[ffmpeg-composite]} / ${wall[launch-composite]}" | bc)"
