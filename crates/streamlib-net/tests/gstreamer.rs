//! Interop with GStreamer's RFC 4175 elements (`rtpvrawpay` / `rtpvrawdepay`) over loopback.
//! Skipped, loudly, where `gst-launch-1.0` or the elements are missing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "tests"
)]

mod common;

use std::time::Duration;

use common::*;
use streamlib_clock::{ManualClock, Rational, SoftwareClock};
use streamlib_net::*;

const W: u32 = 320;
const H: u32 = 240;

#[test]
fn streamlib_sends_gstreamer_receives() {
    let Some((dir, port)) = gst_scratch(&["rtpvrawpay", "rtpvrawdepay"], "gst-rx") else {
        return;
    };
    let out = dir.join("received.uyvy");
    let frames = 10u32;
    let caps = format!(
        "caps=application/x-rtp,media=(string)video,clock-rate=(int)90000,encoding-name=(string)RAW,sampling=(string)YCbCr-4:2:2,depth=(string)8,width=(string){W},height=(string){H},payload=(int)96"
    );
    let mut receiver = gst(&format!(
        "udpsrc port={port} address=127.0.0.1 buffer-size=8388608 {caps} ! rtpvrawdepay ! video/x-raw,format=UYVY ! filesink location={}",
        out.display()
    ));
    std::thread::sleep(Duration::from_millis(1500));

    let f = VideoFormat::new(Sampling::YCbCr422Depth8, W, H, Rational::fps(30)).unwrap();
    let mut config = NetworkSendConfig::new(localhost(port), f);
    config.rtp.max_udp_payload = udp_payload_for_mtu(1500, false);
    let send = NetworkSend::new(config).unwrap();
    let stats = send.stats();
    let source = PatternSource::new(f, frames);
    let mut rt = sending(
        SoftwareClock::new(Rational::fps(30)),
        (source.out.handle(), source),
        (send.input(), send),
    );
    rt.run().unwrap();
    assert_eq!(stats.snapshot().frames, u64::from(frames));

    let frame_len = (W * H * 2) as usize;
    assert!(
        wait_for(Duration::from_secs(5), || {
            std::fs::metadata(&out).is_ok_and(|m| m.len() as usize >= frame_len * frames as usize)
        }),
        "GStreamer wrote {:?} bytes",
        std::fs::metadata(&out).map(|m| m.len())
    );
    // EOS so the file is flushed and closed.
    receiver.interrupt();
    let data = std::fs::read(&out).unwrap();
    assert_eq!(data.len(), frame_len * frames as usize);
    for (n, frame) in data.chunks_exact(frame_len).enumerate() {
        assert!(
            frame == pattern(&f, n as u32),
            "frame {n} differs from what streamlib sent"
        );
    }
    eprintln!(
        "GStreamer rtpvrawdepay received {frames} frames {W}x{H} UYVY byte-identical ({:?})",
        stats.snapshot()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn gstreamer_sends_streamlib_receives() {
    let Some((dir, port)) = gst_scratch(&["rtpvrawpay", "rtpvrawdepay"], "gst-tx") else {
        return;
    };
    let reference = dir.join("sent.uyvy");
    let frames = 20usize;

    let f = VideoFormat::new(Sampling::YCbCr422Depth8, W, H, Rational::fps(30)).unwrap();
    let receive = NetworkReceive::new(NetworkReceiveConfig::new(localhost(port), f)).unwrap();
    let (clock, ticks) = ManualClock::new(Rational::fps(30));
    let (mut rt, rx_stats, copies) = receive_video(clock, receive);

    // Live at 30 fps, each frame different (snow), teed to a file for reference.
    let mut sender = gst(&format!(
        "videotestsrc is-live=true num-buffers={frames} pattern=snow ! video/x-raw,format=UYVY,width={W},height={H},framerate=30/1 ! tee name=t ! queue ! rtpvrawpay ! udpsink host=127.0.0.1 port={port} t. ! queue ! filesink location={}",
        reference.display()
    ));
    // Publish on a tick every 5 ms: faster than frames arrive, so none is superseded.
    let mut tick = 0u64;
    let done = wait_for(Duration::from_secs(15), || {
        ticks.tick();
        tick += 1;
        rt.wait_for_ticks(tick, Duration::from_secs(1));
        sender.0.try_wait().is_ok_and(|s| s.is_some())
    });
    assert!(done, "GStreamer did not finish");
    for _ in 0..20 {
        ticks.tick();
        tick += 1;
        rt.wait_for_ticks(tick, Duration::from_secs(1));
        std::thread::sleep(Duration::from_millis(5));
    }
    rt.stop().unwrap();
    let stats = rx_stats.snapshot();
    let got = copies.lock().unwrap().clone();
    let data = std::fs::read(&reference).unwrap();
    let frame_len = (W * H * 2) as usize;
    let sent: Vec<&[u8]> = data.chunks_exact(frame_len).collect();
    assert_eq!(sent.len(), frames);
    eprintln!(
        "streamlib received {} of {frames} GStreamer frames: {stats:?}",
        got.len()
    );
    assert_eq!(stats.counters.malformed, 0);
    assert_eq!(got.len(), frames, "every frame (loopback loses nothing)");
    for (n, frame) in got.iter().enumerate() {
        assert!(
            frame.as_slice() == sent[n],
            "frame {n} differs from what GStreamer sent"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
