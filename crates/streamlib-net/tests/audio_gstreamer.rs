//! Interop with GStreamer's AES67-style L24 elements (`rtpL24pay` / `rtpL24depay`) over
//! loopback, checked by the tone that comes out. Skipped, loudly, where `gst-launch-1.0` or
//! the elements are missing.
#![allow(clippy::unwrap_used, clippy::print_stderr, reason = "tests")]

mod common;

use std::time::Duration;

use common::*;
use streamlib_net::*;

#[test]
fn streamlib_sends_l24_gstreamer_receives() {
    let Some((dir, port)) = gst_scratch(
        &["rtpL24pay", "rtpL24depay", "audiotestsrc", "udpsrc"],
        "gst-audio-rx",
    ) else {
        return;
    };
    let out = dir.join("received.f32");
    let buffers = 100; // 1 s of 1 kHz
    let mut receiver = gst(&format!(
        "udpsrc port={port} address=127.0.0.1 caps=application/x-rtp,media=audio,clock-rate=48000,encoding-name=L24,channels=2,payload=97 ! rtpL24depay ! audioconvert ! audio/x-raw,format=F32LE ! filesink location={}",
        out.display()
    ));
    std::thread::sleep(Duration::from_millis(1500));

    let format = AudioFormat::new(AudioEncoding::L24, 2).unwrap();
    let send = NetworkAudioSend::new(NetworkAudioSendConfig::new(localhost(port), format)).unwrap();
    let stats = send.stats();
    let source = SineSource::new(1000.0, 2, buffers, 5_000_000_000);
    let mut rt = sending(
        at_100_hz(),
        (source.out.handle(), source),
        (send.input(), send),
    );
    rt.run().unwrap();
    let sent = stats.snapshot();
    let frames = buffers * CHUNK;
    assert_eq!(sent.samples, frames as u64, "{sent:?}");

    let bytes = frames * 2 * 4;
    // filesink writes in blocks: the file may stay short of the last block until EOS.
    let _ = wait_for(Duration::from_secs(2), || {
        std::fs::metadata(&out).is_ok_and(|m| m.len() as usize >= bytes)
    });
    receiver.interrupt();
    let data = std::fs::read(&out).unwrap();
    let samples: Vec<f32> = data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let (freq_l, rms_l) = analyse(&samples, 2, 0, 480);
    let (freq_r, rms_r) = analyse(&samples, 2, 1, 480);
    eprintln!(
        "GStreamer rtpL24depay got {} of {frames} frames: left {freq_l:.2} Hz rms {rms_l:.4}, right {freq_r:.2} Hz rms {rms_r:.4}; sender {sent:?}",
        samples.len() / 2
    );
    assert_eq!(
        data.len(),
        bytes,
        "GStreamer wrote {} of {bytes} bytes",
        data.len()
    );
    assert_eq!(
        samples.len(),
        frames * 2,
        "every sample (loopback loses nothing)"
    );
    assert!((freq_l - 1000.0).abs() < 0.5, "{freq_l}");
    assert!((freq_r - 1000.0).abs() < 0.5, "{freq_r}");
    // Amplitude 0.5 and 0.25: RMS 0.3536 and 0.1768.
    assert!((rms_l - 0.5 / 2f64.sqrt()).abs() < 1e-3, "{rms_l}");
    assert!((rms_r - 0.25 / 2f64.sqrt()).abs() < 1e-3, "{rms_r}");
    // And sample-exact to the 24-bit step (F32 out of S24 is exact).
    for (n, pair) in samples.chunks_exact(2).enumerate() {
        for (ch, s) in pair.iter().enumerate() {
            let want = tone(1000.0, n, ch);
            assert!(
                (s - want).abs() <= 1.0 / 8_388_608.0,
                "frame {n} ch {ch}: {s} vs {want}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn gstreamer_sends_l24_streamlib_receives() {
    if !gst_available(&["rtpL24pay", "rtpL24depay", "audiotestsrc", "udpsrc"]) {
        return;
    }
    let port = free_port("127.0.0.1");
    let buffers = 100; // 1 s of 440 Hz in 10 ms buffers
    let format = AudioFormat::new(AudioEncoding::L24, 2).unwrap();
    let (mut rt, rx_stats, (samples, _)) = receive_audio(port, format);

    // mtu large enough for 1 ms of stereo L24 (12 + 288 bytes); ptime pinned to 1 ms.
    let mut sender = gst(&format!(
        "audiotestsrc is-live=true num-buffers={buffers} samplesperbuffer=480 freq=440 volume=0.5 wave=sine ! audio/x-raw,rate=48000,channels=2 ! audioconvert ! audio/x-raw,format=S24BE,rate=48000,channels=2,layout=interleaved ! rtpL24pay pt=97 mtu=1400 min-ptime=1000000 max-ptime=1000000 ! udpsink host=127.0.0.1 port={port}"
    ));
    let done = wait_for(Duration::from_secs(10), || {
        sender.0.try_wait().is_ok_and(|s| s.is_some())
    });
    assert!(done, "GStreamer did not finish");
    let frames = buffers * CHUNK;
    let _ = wait_for(Duration::from_secs(2), || {
        samples.lock().unwrap().len() >= frames * 2
    });
    rt.stop().unwrap();
    let stats = rx_stats.snapshot();
    let got = samples.lock().unwrap().clone();
    let (freq, rms) = analyse(&got, 2, 0, 480);
    let (freq_r, _) = analyse(&got, 2, 1, 480);
    eprintln!(
        "streamlib received {} of {frames} frames from GStreamer: {freq:.2} Hz (right {freq_r:.2} Hz), rms {rms:.4}; {stats:?}",
        got.len() / 2
    );
    let c = stats.counters;
    assert_eq!(
        (c.lost, c.malformed, c.duplicates, c.late),
        (0, 0, 0, 0),
        "{c:?}"
    );
    assert_eq!(c.packets, (frames / 48) as u64, "1 ms packets");
    assert_eq!(got.len(), frames * 2);
    assert!((freq - 440.0).abs() < 0.5, "{freq}");
    assert!((freq_r - 440.0).abs() < 0.5, "{freq_r}");
    assert!((rms - 0.5 / 2f64.sqrt()).abs() < 5e-3, "{rms}");
}
