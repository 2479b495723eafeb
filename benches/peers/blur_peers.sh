#!/usr/bin/env bash
# Gaussian blur, 1920x1080 RGBA, sigma 2: streamlib's `blur_frame` against OpenCV's
# `GaussianBlur(img, (0, 0), 2)` and FFmpeg's `gblur=sigma=2`, on this machine, in CPU ms per
# frame (user + sys), and the ratios peer / ours (above 1: ours uses less CPU).
#
# Needs ffmpeg and python3 with cv2 + numpy (Debian: ffmpeg python3-opencv). Environment:
#   CARGO_BENCH  the command that runs our criterion bench (default: the workspace's
#                `cargo bench -p streamlib-handlers-video --bench blur`)
#   FRAMES       FFmpeg frames (600), ITERATIONS  OpenCV iterations (300)
#   PYTHON       an interpreter with cv2 (default: /usr/bin/python3, then python3)
#
# Ours: criterion's median for `bands1` is one thread's wall time per frame, so its CPU time.
# FFmpeg: the whole process's CPU divided by the frames; testsrc2 renders once (the loop filter
# repeats its frame), but gblur works on planar formats, so the rgba -> gbrap -> rgba
# conversions FFmpeg inserts are counted, as a user of that filter pays them. The same
# pipeline without gblur is timed too, to show that share.
set -euo pipefail
cd "$(dirname "$0")/../.."

FRAMES=${FRAMES:-600}
ITERATIONS=${ITERATIONS:-300}
CARGO_BENCH=${CARGO_BENCH:-cargo bench -p streamlib-handlers-video --bench blur}
if [[ -z ${PYTHON:-} ]]; then
  PYTHON=python3
  [[ -x /usr/bin/python3 ]] && /usr/bin/python3 -c 'import cv2' 2>/dev/null && PYTHON=/usr/bin/python3
fi

cpu() { # CPU seconds (user + sys) of a command, its output discarded
  local TIMEFORMAT='%U+%S' t
  t=$( { time "$@" >/dev/null 2>&1; } 2>&1 )
  echo "$t" | bc -l
}
ms() { printf '%.2f' "$(echo "$1" | bc -l)"; }
ratio() { printf '%.1f' "$(echo "$1 / $2" | bc -l)"; }

# criterion prints "<id>  time:   [low unit median unit high unit]", the id on a line of its
# own when long; the median in ms.
median_ms() {
  awk -v id="$2" '
    function show(v, u) {
      if (u == "s") v *= 1000; else if (u == "µs" || u == "us") v /= 1000; else if (u == "ns") v /= 1e6
      print v; exit
    }
    $1 == id && $2 == "time:" { show($5, $6) }
    $1 == id { found = 1; next }
    found && $1 == "time:" { show($4, $5) }' "$1"
}

echo "== streamlib ($CARGO_BENCH)"
bench_log=$(mktemp)
trap 'rm -f "$bench_log"' EXIT
$CARGO_BENCH -- --noplot 2>&1 | tee "$bench_log" | grep -E '^blur_sigma2|time:' || true
ours=$(median_ms "$bench_log" blur_sigma2/1920x1080_rgba/bands1)
ours2=$(median_ms "$bench_log" blur_sigma2/1920x1080_rgba/bands2)
if [[ -z $ours ]]; then
  echo "could not find blur_sigma2/1920x1080_rgba/bands1 in the bench output" >&2
  exit 1
fi

echo "== FFmpeg gblur ($FRAMES frames)"
graph="testsrc2=s=1920x1080:r=30,format=rgba,loop=loop=-1:size=1"
ff() { ffmpeg -hide_banner -nostats "$@" -frames:v "$FRAMES" -f null -; }
ff_default=$(cpu ff -filter_complex "$graph,gblur=sigma=2,format=rgba")
ff_one=$(cpu ff -filter_threads 1 -filter_complex "$graph,gblur=sigma=2,format=rgba")
ff_base=$(cpu ff -filter_threads 1 -filter_complex "$graph,format=rgba")
ff_default_ms=$(ms "$ff_default * 1000 / $FRAMES")
ff_one_ms=$(ms "$ff_one * 1000 / $FRAMES")
ff_base_ms=$(ms "$ff_base * 1000 / $FRAMES")

echo "== OpenCV GaussianBlur ($ITERATIONS iterations, $PYTHON)"
cv_out=$("$PYTHON" benches/peers/blur_peers.py "$ITERATIONS" 2)
echo "$cv_out"
cv() { echo "$cv_out" | awk -v line="$1" 'NR == line { print $4 }'; }
cv_threads=$(echo "$cv_out" | awk 'NR == 3 { sub("threads=", "", $2); print $2 }')

echo
echo "1920x1080 RGBA, sigma 2: CPU ms per frame (ratio = peer / ours bands1)"
printf '  %-44s %8.2f\n' "streamlib blur_frame, bands 1" "$ours"
[[ -n $ours2 ]] && printf '  %-44s %8.2f   (wall; 2 threads)\n' "streamlib blur_frame, bands 2" "$ours2"
row() { printf '  %-44s %8.2f   x%s\n' "$1" "$2" "$(ratio "$2" "$ours")"; }
row "OpenCV GaussianBlur, 1 thread, new output" "$(cv 1)"
row "OpenCV GaussianBlur, 1 thread, dst= reused" "$(cv 2)"
row "OpenCV GaussianBlur, $cv_threads threads, new output" "$(cv 3)"
row "OpenCV GaussianBlur, $cv_threads threads, dst= reused" "$(cv 4)"
row "FFmpeg gblur, default threads" "$ff_default_ms"
row "FFmpeg gblur, -filter_threads 1" "$ff_one_ms"
printf '  %-44s %8.2f\n' "  (FFmpeg same pipeline without gblur)" "$ff_base_ms"
