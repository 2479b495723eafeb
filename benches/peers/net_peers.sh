#!/usr/bin/env bash
# Network speed comparison, streamlib vs GStreamer: raw video (ST 2110-20 / RFC 4175) over
# UDP loopback, D seconds each, one after the other in the same run. Not CI: a peer script,
# run by hand on a quiet machine.
#
#   BIN=/path/to/streamlib D=60 benches/peers/net_peers.sh
#
# Environment:
#   BIN   the streamlib CLI (default target/release/streamlib; build it with
#         `cargo build --release -p streamlib-cli`, or `--no-default-features --features net`
#         for a lighter build that has everything this script uses)
#   D     seconds of video per peer (default 20; the issue asks for 60)
#   SIZE  WIDTHxHEIGHT (default 1920x1080), 60 fps
#   SAMPLING  ycbcr422-10 (default: 4:2:2 10-bit, pgroup-packed; both test sources make
#         4:2:2 frames directly: streamlib's testpattern UYVY, GStreamer's videotestsrc UYVP)
#         or rgb8
#   GST_PATTERN  videotestsrc's pattern (default black: its SMPTE renderer takes 14.5 ms per
#         1080p UYVP frame here, slower than real time, so with it the run measures
#         videotestsrc rather than the network path; set smpte to see that)
#   NOGSO  when 1, also runs streamlib with gso=false gro=false (one datagram per message,
#         as before GSO), for the ratio
#   P, Q  UDP ports for streamlib and GStreamer (default 47100, 47102)
#   PACING  streamlib's ST 2110-21 sender type: narrow (default), wide (bursts of 16), burst
#   OUT   where logs and the JSON stats go (default a fresh temporary folder)
#
# What is measured, per side (sender, receiver) and peer:
#   - CPU seconds (user + system) from /usr/bin/time, the whole process;
#   - frames sent (the generator's count) and frames received (streamlib: frames the
#     NetworkReceive published, its runtime ticking at 120 Hz so none is superseded;
#     GStreamer: buffers reaching fakesink, counted from `-v` last-message lines);
#   - datagrams sent and received, and datagrams the kernel dropped for want of receive
#     buffer (RcvbufErrors + InErrors): deltas of /proc/net/snmp's Udp counters over each
#     peer's run. Loopback loses nothing else, so these are the packet losses. The counters
#     are system-wide: other UDP traffic on the machine during a run shows up in them;
#   - Gbit/s of video delivered (frames received × frame bytes × 8 / D).
#
# Notes:
#   - Each sender's CPU includes making its frames: streamlib's testpattern (a copy of a
#     pre-rendered frame and the moving box), GStreamer's videotestsrc.
#   - With GSO and GRO the kernel's Udp counters count a coalesced run as one datagram, so
#     the datagram columns are messages, not packets; dropped ones still mean loss.
#   - streamlib paces per ST 2110-21 (narrow); GStreamer's udpsink sends each frame as one
#     burst, so its receiver needs a socket buffer that holds a whole frame (6.2 MB at
#     1080p); both ask for 8 MiB, and the kernel caps that at net.core.rmem_max.
#   - The CLI's --json carries each network handler's own counters as "report" (packets
#     lost, frames skipped by the sender); the datagram columns come from the kernel.
set -euo pipefail

BIN=${BIN:-target/release/streamlib}
D=${D:-20}
SIZE=${SIZE:-1920x1080}
SAMPLING=${SAMPLING:-ycbcr422-10}
NOGSO=${NOGSO:-0}
GST_PATTERN=${GST_PATTERN:-black}
PACING=${PACING:-narrow}
P=${P:-47100}
Q=${Q:-47102}
OUT=${OUT:-$(mktemp -d -t net_peers.XXXXXX)}
W=${SIZE%x*}
H=${SIZE#*x}
case $SAMPLING in
rgb8)
    FRAME_BYTES=$((W * H * 3))
    SOURCE_FORMAT=rgba8
    GST_FORMAT=RGB
    GST_CAPS="sampling=(string)RGB,depth=(string)8"
    ;;
ycbcr422-10)
    FRAME_BYTES=$((W * H * 5 / 2))
    SOURCE_FORMAT=uyvy
    GST_FORMAT=UYVP
    GST_CAPS="sampling=(string)YCbCr-4:2:2,depth=(string)10"
    ;;
*) echo "net_peers: SAMPLING is rgb8 or ycbcr422-10" >&2; exit 1 ;;
esac

die() {
    echo "net_peers: $*" >&2
    exit 1
}
[[ -x $BIN ]] || die "no streamlib CLI at $BIN (cargo build --release -p streamlib-cli; or set BIN=)"
command -v gst-launch-1.0 >/dev/null || die "gst-launch-1.0 is missing (apt-get install gstreamer1.0-tools gstreamer1.0-plugins-good)"
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing (apt-get install time)"
command -v jq >/dev/null || die "jq is missing (apt-get install jq)"
mkdir -p "$OUT"

# InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors
udp_counters() { awk '/^Udp: [0-9]/ { print $2, $3, $4, $5, $6; exit }' /proc/net/snmp; }
# user + system seconds from a `/usr/bin/time -f "%U %S %e"` file (its last line).
cpu_of() { tail -n 1 "$1" | awk '{ printf "%.2f", $1 + $2 }'; }
# elapsed seconds from the same file.
wall_of() { tail -n 1 "$1" | awk '{ print $3 }'; }
# "in_datagrams out_datagrams dropped" between two udp_counters lines.
udp_delta() {
    read -r i0 n0 e0 o0 r0 <<<"$1"
    read -r i1 n1 e1 o1 r1 <<<"$2"
    echo "$((i1 - i0)) $((o1 - o0)) $((n1 - n0 + e1 - e0 + r1 - r0))"
}

echo "net_peers: ${W}x${H}@60 $SAMPLING, ${D} s per peer, streamlib pacing $PACING, logs in $OUT"

# --- streamlib -------------------------------------------------------------------------
# run_streamlib LABEL TX_PROPS RX_PROPS: sets <LABEL>_{in,out,drop,sent,recv,tx_cpu,rx_cpu}.
run_streamlib() {
    local label=$1 tx_props=$2 rx_props=$3 before after
    before=$(udp_counters)
    /usr/bin/time -f "%U %S %e" -o "$OUT/${label}_rx.time" \
        "$BIN" launch --fps 120 --frames $(((D + 3) * 120)) --json \
        "networkreceive bind=127.0.0.1:$P size=${W}x${H} sampling=$SAMPLING fps=60 $rx_props ! null" \
        >"$OUT/${label}_rx.json" 2>"$OUT/${label}_rx.err" &
    local rx_pid=$!
    sleep 1
    /usr/bin/time -f "%U %S %e" -o "$OUT/${label}_tx.time" \
        "$BIN" launch --fps 60 --frames $((D * 60)) --json \
        "testpattern size=${W}x${H} format=$SOURCE_FORMAT ! networksend sampling=$SAMPLING size=${W}x${H} fps=60 destination=127.0.0.1:$P pacing=$PACING $tx_props" \
        >"$OUT/${label}_tx.json" 2>"$OUT/${label}_tx.err"
    wait "$rx_pid" || die "streamlib receiver failed: $(tail -n 3 "$OUT/${label}_rx.err")"
    after=$(udp_counters)
    local in out drop
    read -r in out drop <<<"$(udp_delta "$before" "$after")"
    printf -v "${label}_in" %s "$in"
    printf -v "${label}_out" %s "$out"
    printf -v "${label}_drop" %s "$drop"
    printf -v "${label}_sent" %s "$(jq '[.streams[] | select(.handler == "TestPattern") | .items_out] | add // 0' "$OUT/${label}_tx.json")"
    printf -v "${label}_recv" %s "$(jq '[.streams[] | select(.handler == "NetworkReceive") | .items_out] | add // 0' "$OUT/${label}_rx.json")"
    printf -v "${label}_lost" %s "$(jq '[.streams[] | select(.handler == "NetworkReceive") | .report.lost_packets // 0] | add // 0' "$OUT/${label}_rx.json")"
    printf -v "${label}_skipped" %s "$(jq '[.streams[] | select(.handler == "NetworkSend") | .report.frames_skipped // 0] | add // 0' "$OUT/${label}_tx.json")"
    printf -v "${label}_tx_cpu" %s "$(cpu_of "$OUT/${label}_tx.time")"
    printf -v "${label}_rx_cpu" %s "$(cpu_of "$OUT/${label}_rx.time")"
}

run_streamlib sl "" ""
if [[ $NOGSO == 1 ]]; then
    sleep 1
    run_streamlib nogso "gso=false" "gro=false"
fi

sleep 1

# --- GStreamer -------------------------------------------------------------------------
caps="application/x-rtp,media=(string)video,clock-rate=(int)90000,encoding-name=(string)RAW,$GST_CAPS,width=(string)$W,height=(string)$H,payload=(int)96"
before=$(udp_counters)
/usr/bin/time -f "%U %S %e" -o "$OUT/gstreamer_rx.time" \
    timeout -s INT $((3 * D + 30)) gst-launch-1.0 -e -v \
    udpsrc port="$Q" address=127.0.0.1 buffer-size=8388608 caps="$caps" \
    ! rtpvrawdepay ! fakesink silent=false \
    >"$OUT/gstreamer_rx.log" 2>&1 &
rx_pid=$!
sleep 1
/usr/bin/time -f "%U %S %e" -o "$OUT/gstreamer_tx.time" \
    gst-launch-1.0 -q videotestsrc is-live=true pattern="$GST_PATTERN" num-buffers=$((D * 60)) \
    ! "video/x-raw,format=$GST_FORMAT,width=$W,height=$H,framerate=60/1" \
    ! rtpvrawpay mtu=1472 ! udpsink host=127.0.0.1 port="$Q" buffer-size=8388608 \
    >"$OUT/gstreamer_tx.log" 2>&1
# The receiver stops 2 s after the sender, however long the sender took (videotestsrc may
# run slower than real time): timeout, the child of /usr/bin/time, forwards SIGINT.
sleep 2
pkill -INT -P "$rx_pid" timeout || true
wait "$rx_pid" || true # SIGINT ends it, by design
after=$(udp_counters)
read -r gst_in gst_out gst_drop <<<"$(udp_delta "$before" "$after")"
gst_sent=$((D * 60))
gst_recv=$(grep -c "last-message = chain" "$OUT/gstreamer_rx.log" || true)
# rtpvrawdepay flags a frame DISCONT after missing packets (the first frame always is).
gst_discont=$(grep "last-message = chain" "$OUT/gstreamer_rx.log" | grep -c discont || true)
gst_tx_cpu=$(cpu_of "$OUT/gstreamer_tx.time")
gst_rx_cpu=$(cpu_of "$OUT/gstreamer_rx.time")

# --- Report ----------------------------------------------------------------------------
gbit() { awk -v f="$1" -v b="$FRAME_BYTES" -v d="$D" 'BEGIN { printf "%.2f", f * b * 8 / d / 1e9 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

echo
printf "%-10s %12s %12s %10s %10s %10s %10s %9s %9s %9s %8s\n" \
    peer frames_sent frames_recv dgrams_tx dgrams_rx dropped discont tx_cpu_s rx_cpu_s tx_wall_s Gbit/s
printf "%-10s %12s %12s %10s %10s %10s %10s %9s %9s %9s %8s\n" \
    streamlib "$sl_sent" "$sl_recv" "$sl_out" "$sl_in" "$sl_drop" "-" "$sl_tx_cpu" "$sl_rx_cpu" "$(wall_of "$OUT/sl_tx.time")" "$(gbit "$sl_recv")"
if [[ $NOGSO == 1 ]]; then
    printf "%-10s %12s %12s %10s %10s %10s %10s %9s %9s %9s %8s\n" \
        sl-no-gso "$nogso_sent" "$nogso_recv" "$nogso_out" "$nogso_in" "$nogso_drop" "-" "$nogso_tx_cpu" "$nogso_rx_cpu" "$(wall_of "$OUT/nogso_tx.time")" "$(gbit "$nogso_recv")"
fi
printf "%-10s %12s %12s %10s %10s %10s %10s %9s %9s %9s %8s\n" \
    gstreamer "$gst_sent" "$gst_recv" "$gst_out" "$gst_in" "$gst_drop" "$((gst_discont > 0 ? gst_discont - 1 : 0))" "$gst_tx_cpu" "$gst_rx_cpu" "$(wall_of "$OUT/gstreamer_tx.time")" "$(gbit "$gst_recv")"
echo
echo "CPU streamlib / GStreamer: sender $(ratio "$sl_tx_cpu" "$gst_tx_cpu"), receiver $(ratio "$sl_rx_cpu" "$gst_rx_cpu")"
echo "datagrams dropped by the kernel: streamlib $sl_drop, GStreamer $gst_drop; frames lost: streamlib $((sl_sent - sl_recv)), GStreamer $((gst_sent - gst_recv))"
echo "streamlib's own counters: packets lost $sl_lost (receiver), frames skipped before sending $sl_skipped (sender)"
if [[ $NOGSO == 1 ]]; then
    echo "CPU with GSO/GRO / without: sender $(ratio "$sl_tx_cpu" "$nogso_tx_cpu"), receiver $(ratio "$sl_rx_cpu" "$nogso_rx_cpu")"
fi
echo "(${W}x${H} $SAMPLING at 60 fps is $(awk -v b="$FRAME_BYTES" 'BEGIN { printf "%.2f", b * 60 * 8 / 1e9 }') Gbit/s of video; logs and JSON in $OUT)"
