#!/usr/bin/env bash
# CPU time per 1920x1080 RGBA test-pattern frame: FFmpeg's testsrc2, GStreamer's videotestsrc
# (SMPTE) and streamlib's TestPattern (SMPTE + moving box, from
# `cargo bench -p streamlib-handlers-video --bench test_pattern`). Needs ffmpeg and
# gstreamer1.0-tools. Peers: (user+sys CPU seconds) / frames, process start-up included.
# Ours: criterion's median time per frame on one thread (= CPU time per frame).
# BENCH_CMD overrides how our bench is run (it must print criterion's output).
set -euo pipefail
N=${N:-600}
cd "$(dirname "$0")/../.."

cpu() { # CPU seconds (user+sys) of a command
  local TIMEFORMAT='%U+%S' t
  t=$( { time "$@" >/dev/null 2>&1; } 2>&1 )
  echo "scale=6; $t" | bc
}

ms_per_frame() { echo "scale=4; $1 * 1000 / $N" | bc; }

ffmpeg_s=$(cpu ffmpeg -hide_banner -nostats \
  -filter_complex "testsrc2=s=1920x1080:r=30,format=rgba" -frames:v "$N" -f null -)
gst_s=$(cpu gst-launch-1.0 -q videotestsrc pattern=smpte num-buffers="$N" \
  ! video/x-raw,format=RGBA,width=1920,height=1080 ! fakesink)
ffmpeg_ms=$(ms_per_frame "$ffmpeg_s")
gst_ms=$(ms_per_frame "$gst_s")

bench=${BENCH_CMD:-"cargo bench -q -p streamlib-handlers-video --bench test_pattern -- test_pattern/smpte_1920x1080_box"}
out=$($bench 2>&1)
# "time:   [1.0 ms 1.1 ms 1.2 ms]": the middle value is the estimate.
line=$(echo "$out" | grep -A1 'test_pattern/smpte_1920x1080_box' | grep -m1 'time:')
value=$(echo "$line" | sed -E 's/.*\[[^ ]+ [^ ]+ ([^ ]+) ([^ ]+) .*/\1/')
unit=$(echo "$line" | sed -E 's/.*\[[^ ]+ [^ ]+ ([^ ]+) ([^ ]+) .*/\2/')
case "$unit" in
  ns) ours_ms=$(echo "scale=6; $value / 1000000" | bc) ;;
  µs|us) ours_ms=$(echo "scale=6; $value / 1000" | bc) ;;
  ms) ours_ms=$value ;;
  s) ours_ms=$(echo "scale=6; $value * 1000" | bc) ;;
  *) echo "could not read the bench result from: $line" >&2; exit 1 ;;
esac

printf '%-52s %8.3f ms CPU/frame\n' "ffmpeg testsrc2 1920x1080 rgba ($N frames)" "$ffmpeg_ms"
printf '%-52s %8.3f ms CPU/frame\n' "gstreamer videotestsrc smpte 1920x1080 RGBA" "$gst_ms"
printf '%-52s %8.3f ms CPU/frame\n' "streamlib TestPattern smpte 1920x1080 + moving box" "$ours_ms"
printf 'ffmpeg / streamlib:    %6.1fx\n' "$(echo "scale=4; $ffmpeg_ms / $ours_ms" | bc)"
printf 'gstreamer / streamlib: %6.1fx\n' "$(echo "scale=4; $gst_ms / $ours_ms" | bc)"
