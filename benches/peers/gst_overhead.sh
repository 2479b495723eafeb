#!/usr/bin/env bash
# GStreamer's per-element and per-queue-hop cost on this machine, the peer figures for
# `cargo bench -p streamlib-benches --bench runtime_overhead`. Needs gstreamer1.0-tools.
# Prints CPU µs per element per buffer (user+sys, from bash's `time`).
set -euo pipefail
N=${N:-1000000}
cpu() { # CPU seconds (user+sys) of a command
  local TIMEFORMAT='%U+%S' t
  t=$( { time "$@" >/dev/null 2>&1; } 2>&1 )
  echo "scale=6; $t" | bc
}
src="fakesrc num-buffers=$N sizetype=fixed sizemax=64"
ids=$(printf ' ! identity%.0s' $(seq 10))
qs=$(printf ' ! queue max-size-buffers=1%.0s' $(seq 10))
base=$(cpu gst-launch-1.0 -q $src ! fakesink sync=false)
chain=$(cpu gst-launch-1.0 -q $src $ids ! fakesink sync=false)
queues=$(cpu gst-launch-1.0 -q fakesrc num-buffers=$((N/10)) sizetype=fixed sizemax=64 $qs ! fakesink sync=false)
base_q=$(cpu gst-launch-1.0 -q fakesrc num-buffers=$((N/10)) sizetype=fixed sizemax=64 ! fakesink sync=false)
echo "gstreamer identity: $(echo "scale=3; ($chain-$base)*1000000/($N*10)" | bc) us CPU per element per buffer"
echo "gstreamer queue max-size-buffers=1: $(echo "scale=3; ($queues-$base_q)*1000000/($N/10*10)" | bc) us CPU per hop per buffer"
