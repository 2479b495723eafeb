#!/usr/bin/env bash
# Pixel format conversion, 1920x1080, one thread: streamlib's `Convert` kernels (AVX2 where the
# CPU has it) against FFmpeg's swscale (SWS_BILINEAR, BT.709 limited range, no slice threads),
# in CPU ms per frame (CLOCK_THREAD_CPUTIME_ID on both sides), and the ratio swscale / ours
# (above 1: ours is faster).
#
# Each round runs, one after the other: swscale writing into 1 and into 4 output pictures in
# turn (benches/peers/swscale_convert.c), streamlib's kernels alone the same two ways (the
# `kernel_cpu_per_frame` measurement in crates/streamlib-handlers-video/src/convert.rs), and the
# `Convert` handler (the convert bench with CONVERT_CPU_FRAMES: pooled output, 4 pictures in
# turn, hand-over to a connected input). The figures are medians over the rounds; rounds
# interleave the sides so that other work on the machine weighs on both alike.
#
# Needs cc and the libswscale/libavutil headers (Debian: libswscale-dev libavutil-dev).
# Environment: ROUNDS (5), FRAMES swscale frames per run (50), FLAGS swscale flags (bilinear).
set -euo pipefail
cd "$(dirname "$0")/../.."

ROUNDS=${ROUNDS:-5}
FRAMES=${FRAMES:-50}
FLAGS=${FLAGS:-bilinear}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cc -O2 -o "$work/swscale_convert" benches/peers/swscale_convert.c \
  $(pkg-config --cflags --libs libswscale libavutil)
kernels=(cargo test --release -q -p streamlib-handlers-video --lib kernel_cpu_per_frame -- --ignored --nocapture)
handler=(cargo bench -q -p streamlib-handlers-video --bench convert)
"${kernels[@]}" >/dev/null 2>&1 || { echo "the kernel measurement failed to build or run" >&2; exit 1; }
CONVERT_CPU_FRAMES=1 "${handler[@]}" >/dev/null 2>&1 || { echo "the convert bench failed" >&2; exit 1; }

log="$work/log"
for round in $(seq "$ROUNDS"); do
  echo "== round $round/$ROUNDS ($(uptime | sed 's/.*load/load/'))"
  "$work/swscale_convert" "$FRAMES" 5 "$FLAGS" 1 | sed 's/^/sws1 /' | tee -a "$log"
  "$work/swscale_convert" "$FRAMES" 5 "$FLAGS" 4 | sed 's/^/sws4 /' | tee -a "$log"
  "${kernels[@]}" 2>/dev/null | awk '$1 == "kernel" { print "ours1", $2, $3; print "ours4", $2, $4 }' | tee -a "$log"
  CONVERT_CPU_FRAMES=100 "${handler[@]}" 2>/dev/null | sed 's/^/handler /' | tee -a "$log"
done

median() { # median of column 3 for rows "<side> <name> <ms>"
  awk -v side="$1" -v name="$2" '$1 == side && $2 == name { print $3 }' "$log" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR) printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }

echo
echo "1920x1080, one thread, CPU ms per frame, medians of $ROUNDS rounds (swscale flags: $FLAGS)"
printf '  %-14s %8s %8s %7s   %8s %8s %8s %7s\n' conversion "kernel" swscale ratio \
  "kernel/4" handler "sws/4" ratio
for name in rgba8_to_uyvy rgba8_to_i420 uyvy_to_rgba8 i420_to_rgba8 nv12_to_rgba8; do
  k1=$(median ours1 "$name"); s1=$(median sws1 "$name")
  k4=$(median ours4 "$name"); h=$(median handler "$name"); s4=$(median sws4 "$name")
  printf '  %-14s %8s %8s %6sx   %8s %8s %8s %6sx\n' "$name" "$k1" "$s1" "$(ratio "$s1" "$k1")" \
    "$k4" "$h" "$s4" "$(ratio "$s4" "$h")"
done
echo "  (kernel: into 1 picture; kernel/4 and handler: 4 pictures in turn; ratio = swscale / ours)"
