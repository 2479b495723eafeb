#!/usr/bin/env bash
# Four full-HD RGBA layers composited into one: FFmpeg's chained `overlay` and GStreamer's
# `compositor` against streamlib's `Compositor`, in CPU time per frame on this machine (user +
# sys of the whole process, every thread, from bash's `time`), plus our criterion figures
# against the memory-bandwidth reference. Needs ffmpeg, gstreamer1.0-tools,
# gstreamer1.0-plugins-base/-good/-bad and bc.
#
# Input generation is subtracted from the peers: each pipeline runs a second time with the
# compositing replaced by a passthrough of input 0 while the other three inputs are still
# generated and consumed (FFmpeg: `null` + three `nullsink`s; GStreamer: four branches into
# `fakesink`s), and the difference is divided by the frame count. Our bench composites
# pre-made frames, so there is nothing to subtract.
#
#   benches/peers/compositor_peers.sh          # N=600 frames
#   BENCH_CMD='cargo bench --manifest-path …' benches/peers/compositor_peers.sh
#   SKIP_OURS=1 benches/peers/compositor_peers.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-600}
BENCH_CMD=${BENCH_CMD:-cargo bench -p streamlib-handlers-video --bench compositor}

cpu() { # CPU seconds (user+sys) of a command
  local TIMEFORMAT='%U+%S' t
  t=$( { time "$@" >/dev/null 2>&1; } 2>&1 )
  echo "scale=6; $t" | bc
}
per_frame() { # ms per frame of (total - base) CPU seconds
  echo "scale=3; ($1 - $2) * 1000 / $N" | bc
}
ratio() { echo "scale=2; $1 / $2" | bc; }

echo "== $N frames, 1920x1080 RGBA, 4 layers; CPU ms per frame, input generation subtracted"

# FFmpeg: testsrc2 / testsrc2 alpha=128 / red@0.5 / blue@0.25, three chained RGB overlays.
SRC="testsrc2=s=1920x1080:r=30,format=rgba[s0];testsrc2=s=1920x1080:r=30:alpha=128,format=rgba[s1];color=c=red@0.5:s=1920x1080:r=30,format=rgba[s2];color=c=blue@0.25:s=1920x1080:r=30,format=rgba[s3]"
OVERLAY="[s0][s1]overlay=format=rgb[a];[a][s2]overlay=format=rgb[b];[b][s3]overlay=format=rgb,format=rgba[out]"
PASS="[s0]null[out];[s1]nullsink;[s2]nullsink;[s3]nullsink"
ff() { ffmpeg -hide_banner -nostats -v error "$@" -map '[out]' -frames:v "$N" -f null -; }
declare -A PEER
for threads in auto 1; do
  opts=()
  [[ $threads == 1 ]] && opts=(-filter_complex_threads 1)
  total=$(cpu ff "${opts[@]}" -filter_complex "$SRC;$OVERLAY")
  base=$(cpu ff "${opts[@]}" -filter_complex "$SRC;$PASS")
  PEER["ffmpeg overlay (filter threads $threads)"]=$(per_frame "$total" "$base")
  echo "ffmpeg overlay, filter threads $threads: total ${total}s, inputs only ${base}s"
done

# GStreamer: four frozen videotestsrc frames; pads 1..3 at alpha 0.5, 0.5, 0.25.
CAPS="video/x-raw,format=RGBA,width=1920,height=1080"
branch() { echo "videotestsrc num-buffers=1 ! $CAPS,framerate=30/1 ! imagefreeze num-buffers=$N ! $1"; }
gst() { # $1: extra compositor properties
  # shellcheck disable=SC2046,SC2086
  gst-launch-1.0 -q compositor name=c $1 sink_1::alpha=0.5 sink_2::alpha=0.5 sink_3::alpha=0.25 \
    ! $CAPS ! fakesink $(branch c.sink_0) $(branch c.sink_1) $(branch c.sink_2) $(branch c.sink_3)
}
gst_pass() {
  # shellcheck disable=SC2046
  gst-launch-1.0 -q $(branch fakesink) $(branch fakesink) $(branch fakesink) $(branch fakesink)
}
base=$(cpu gst_pass)
for props in "" "max-threads=1"; do
  total=$(cpu gst "$props")
  name="gstreamer compositor (${props:-max-threads=0, auto})"
  PEER[$name]=$(per_frame "$total" "$base")
  echo "$name: total ${total}s, inputs only ${base}s"
done

echo
for name in "${!PEER[@]}"; do printf '%-48s %8s ms CPU/frame\n' "$name" "${PEER[$name]}"; done | sort
[[ -n ${SKIP_OURS:-} ]] && exit 0

echo
echo "== streamlib: $BENCH_CMD"
out=$(COMPOSITOR_CPU_FRAMES=$N $BENCH_CMD 2>&1)
ours() { # CPU ms per frame for bands=$1
  sed -n "s/^streamlib compositor bands=$1: \([0-9.]*\) ms CPU.*/\1/p" <<<"$out"
}
# Criterion medians in ms, as "name value" lines.
times=$(awk '
  /compositor_1080p_4_layers\// { for (i = 1; i <= NF; i++) if ($i ~ /compositor_1080p_4_layers\//) { split($i, p, "/"); name = p[2] } }
  /time:/ { s = $0; sub(/.*\[/, "", s); split(s, t, " "); v = t[3]; u = t[4]
            if (u == "ns") v /= 1e6; else if (u == "µs" || u == "us") v /= 1e3; else if (u == "s") v *= 1e3
            printf "%s %.4f\n", name, v }' <<<"$out")
grep '^streamlib compositor' <<<"$out"
wall() { awk -v n="$1" '$1 == n { print $2 }' <<<"$times"; }
for name in compositor_bands_1 compositor_bands_2 reference_average_4_read_1_write memcpy_one_frame; do
  printf '%-36s %8s ms wall (criterion median)\n' "$name" "$(wall "$name")"
done

echo
echo "== ratios"
ref=$(wall reference_average_4_read_1_write)
for bands in 1 2; do
  echo "compositor bands=$bands / 4-read-1-write loop: $(ratio "$(wall compositor_bands_$bands)" "$ref")x its time (goal <= 2)"
done
for name in "${!PEER[@]}"; do
  for bands in 1 2; do
    echo "$name / streamlib bands=$bands: $(ratio "${PEER[$name]}" "$(ours $bands)")x the CPU per frame"
  done
done | sort
