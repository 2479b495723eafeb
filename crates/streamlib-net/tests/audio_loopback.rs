//! NetworkAudioSend → UDP loopback → NetworkAudioReceive inside runtimes: samples arrive
//! exact to the L24 step, in real time, across an RTP timestamp wrap; threads stop cleanly.
#![allow(clippy::unwrap_used, clippy::print_stderr, reason = "tests")]

mod common;

use std::time::{Duration, Instant};

use common::*;
use streamlib_clock::{Rational, SoftwareClock};
use streamlib_net::*;
use streamlib_runtime::{Stream, StreamRuntime};

#[test]
fn l24_stereo_arrives_exact_and_in_real_time() {
    let buffers = 100; // 1 s
    let port = free_port("127.0.0.1");
    let format = AudioFormat::new(AudioEncoding::L24, 2).unwrap();

    let (mut rx, rx_stats, (samples, timestamps)) = receive_audio(port, format);

    let send = NetworkAudioSend::new(NetworkAudioSendConfig::new(localhost(port), format)).unwrap();
    let tx_stats = send.stats();
    // Half a second before the 32-bit RTP timestamp wraps.
    let start_tick = (1u64 << 32) - 24_000;
    let start_ns = (start_tick * 1_000_000_000).div_ceil(48_000);
    let source = SineSource::new(1000.0, 2, buffers, start_ns);
    let mut tx = sending(
        at_100_hz(),
        (source.out.handle(), source),
        (send.input(), send),
    );
    let began = Instant::now();
    tx.run().unwrap();
    let took = began.elapsed();
    let sent = tx_stats.snapshot();
    let frames = buffers * CHUNK;
    assert!(wait_for(Duration::from_secs(10), || {
        samples.lock().unwrap().len() >= frames * 2
    }));
    rx.stop().unwrap();
    let stats = rx_stats.snapshot();
    eprintln!(
        "sent {sent:?} in {took:?}\nreceived {stats:?}\nsend lateness p50 {:.1} us p99 {:.1} us",
        sent.lateness_p50_ns as f64 / 1e3,
        sent.lateness_p99_ns as f64 / 1e3
    );
    assert_eq!(sent.packets, (frames / 48) as u64);
    assert_eq!((sent.send_errors, sent.buffers_dropped), (0, 0));
    // Paced in real time: 1 s of audio takes about 1 s.
    assert!(took > Duration::from_millis(900), "{took:?}");
    let c = stats.counters;
    assert_eq!((c.lost, c.malformed, c.duplicates), (0, 0, 0), "{c:?}");
    assert_eq!(c.samples, frames as u64);
    assert_eq!(stats.packets_dropped, 0);

    let got = samples.lock().unwrap().clone();
    assert_eq!(got.len(), frames * 2);
    let step = 1.0 / 8_388_608.0;
    for (n, pair) in got.chunks_exact(2).enumerate() {
        for (ch, s) in pair.iter().enumerate() {
            let want = tone(1000.0, n, ch);
            assert!((s - want).abs() <= step, "frame {n} ch {ch}: {s} vs {want}");
        }
    }
    // One buffer per packet, 1 ms apart, continuous across the RTP wrap.
    let ts = timestamps.lock().unwrap().clone();
    assert_eq!(ts.len(), frames / 48);
    assert_eq!(ts[0], start_tick * 1_000_000_000 / 48_000);
    for w in ts.windows(2) {
        assert_eq!(w[1] - w[0], 1_000_000);
    }
    let (freq, rms) = analyse(&got, 2, 0, 0);
    eprintln!("loopback tone: {freq:.2} Hz, rms {rms:.4}");
}

#[test]
fn payload_type_mismatch_is_counted_malformed() {
    let port = free_port("127.0.0.1");
    let format = AudioFormat::new(AudioEncoding::L16, 1).unwrap();
    let receive =
        NetworkAudioReceive::new(NetworkAudioReceiveConfig::new(localhost(port), format)).unwrap();
    let stats = receive.stats();
    let mut rx = StreamRuntime::new(SoftwareClock::new(Rational::fps(100)));
    rx.add_stream(Stream::new("receive", receive)).unwrap();
    rx.start().unwrap();
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut p = AudioPacketizer::new(
        format,
        AudioPacketizerConfig {
            payload_type: 100,
            ..Default::default()
        },
    )
    .unwrap();
    p.push(&[0.5; 480], 0, &mut |d: &[u8]| {
        tx.send_to(d, ("127.0.0.1", port)).unwrap();
    });
    tx.send_to(&[1, 2, 3], ("127.0.0.1", port)).unwrap();
    assert!(wait_for(Duration::from_secs(10), || {
        stats.snapshot().counters.malformed == 11
    }));
    rx.stop().unwrap();
    assert_eq!(stats.snapshot().counters.packets, 0);
}
