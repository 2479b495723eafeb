//! `audiosink` and `audiosrc` against a real sound server: a private PulseAudio with a null
//! sink (streamlib-test-support's `pulse` fixture), reached through ALSA's `pulse` plugin,
//! the route cpal's ALSA host takes. The sink's sine is recorded from the null sink's
//! monitor with `parec`; a tone played with `pacat` is recorded with the source; both are
//! checked for frequency, level and duration. The drift loop is checked without a device,
//! against a simulated crystal 500 ppm off the pipeline's clock.
//!
//! Tests that need the server run their body in a child of this binary that has
//! `PULSE_SERVER` in its environment. Without `pulseaudio` they fail, unless
//! `STREAMLIB_SKIP_AUDIO_DEVICE=1`.
#![cfg(feature = "device")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "tests, which report what they measured"
)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{clock, connect, sink, tick};
use streamlib_clock::Rational;
use streamlib_handlers_audio::{
    AudioSink, AudioSinkConfig, AudioSrc, AudioSrcConfig, AudioTestSrc, AudioTestSrcConfig,
    DeviceError, Wave,
};
use streamlib_ports::{AudioBuffer, ProcessContext, StartContext, StreamHandler};
use streamlib_test_support::pulse::{self, MonitorRecording, Tone, measure_tone};

fn start(h: &mut dyn StreamHandler, fps: Rational) -> Result<(), String> {
    let c = clock(fps);
    h.on_start(&StartContext::new("h", &c))
        .map_err(|e| e.to_string())
}

fn run(h: &mut dyn StreamHandler, fps: Rational, n: u64) -> Result<(), String> {
    h.process(&mut ProcessContext::new("h", tick(fps, n)))
        .map_err(|e| e.to_string())
}

fn check(tone: &Tone, freq: f64, dbfs: f64, seconds: f64) {
    assert!(
        (tone.freq - freq).abs() < freq * 0.01,
        "frequency {tone:?}, want {freq}"
    );
    assert!(
        (tone.dbfs - dbfs).abs() < 0.5,
        "level {tone:?}, want {dbfs}"
    );
    assert!(
        (tone.seconds - seconds).abs() < seconds * 0.1,
        "duration {tone:?}, want {seconds}"
    );
}

const MINUS_6_DB: f64 = 0.501_187_233_627_272_3;

/// Waits until the device calls back steadily (the server may take a moment to start a new
/// stream; what arrives before is dropped, as the latency target allows no more).
fn wait_until_playing(sink: &AudioSink) {
    let begin = Instant::now();
    while sink.stats().snapshot().callbacks < 20 {
        assert!(
            begin.elapsed() < Duration::from_secs(10),
            "the device never started: {:?}",
            sink.stats().snapshot()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sink_plays_a_sine_that_the_monitor_records() {
    pulse::with_server("sink_plays_a_sine_that_the_monitor_records", |_| {
        let recording = MonitorRecording::start().unwrap();
        std::thread::sleep(Duration::from_millis(300));

        let fps = Rational::fps(100);
        // 16 kHz mono, at the device too (the server resamples for parec): the sink's sinc
        // resampler, unoptimised in a debug build on a loaded machine, keeps up with that in
        // real time, not always with 48 kHz stereo.
        let mut src = AudioTestSrc::new(AudioTestSrcConfig {
            wave: Wave::Sine,
            freq: 1000.0,
            volume: MINUS_6_DB,
            rate: 16_000,
            channels: 1,
            ..AudioTestSrcConfig::default()
        })
        .unwrap();
        let mut sink = AudioSink::new(AudioSinkConfig {
            device: Some("pulse".to_owned()),
            latency_ms: 200.0,
            rate: 16_000,
            ..AudioSinkConfig::default()
        })
        .unwrap();
        connect(&src.output(), &sink.input());
        start(&mut src, fps).unwrap();
        start(&mut sink, fps).unwrap();
        wait_until_playing(&sink);
        // Two seconds of ticks, paced by the wall clock (catching up after a late wake).
        let begin = Instant::now();
        for n in 0..200u64 {
            let due = begin + Duration::from_millis(10 * n);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            run(&mut src, fps, n).unwrap();
            run(&mut sink, fps, n).unwrap();
        }
        std::thread::sleep(Duration::from_millis(700));
        let stats = sink.stats().snapshot();
        sink.on_stop().unwrap();
        let recorded = recording.stop();
        println!("sink: {} (stats {stats:?})", sink.device().unwrap());
        assert!(stats.frames >= stats.rate * 19 / 10, "{stats:?}");
        assert_eq!(stats.overruns, 0, "{stats:?}");
        let tone = measure_tone(&recorded, pulse::RECORD_RATE);
        println!("recorded {tone:?}");
        check(&tone, 1000.0, -6.0, 2.0);
    });
}

#[test]
fn src_records_a_tone_that_pacat_plays() {
    pulse::with_server("src_records_a_tone_that_pacat_plays", |_| {
        let fps = Rational::fps(100);
        let mut src = AudioSrc::new(AudioSrcConfig {
            device: Some("pulse".to_owned()),
            rate: 48_000,
            channels: 1,
            ..AudioSrcConfig::default()
        })
        .unwrap();
        assert_eq!(src.format(), (48_000, 1));
        let out = sink(1024);
        connect(&src.output(), &out.handle());
        start(&mut src, fps).unwrap();

        // Two seconds of 440 Hz at -6 dBFS, s16.
        let tone: Vec<u8> = (0..96_000)
            .flat_map(|i| {
                let s = MINUS_6_DB * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 48e3).sin();
                ((s * 32767.0).round() as i16).to_le_bytes()
            })
            .collect();
        let play = move || {
            let mut pacat = Command::new("pacat")
                .args([
                    "--playback",
                    "-d",
                    pulse::SINK,
                    "--format=s16le",
                    "--rate=48000",
                    "--channels=1",
                    "--raw",
                ])
                .stdin(Stdio::piped())
                .spawn()
                .expect("pacat");
            let mut stdin = pacat.stdin.take().unwrap();
            stdin.write_all(&tone).unwrap();
            drop(stdin);
            let _ = pacat.wait();
        };

        let mut recorded = Vec::new();
        let mut stamps: Vec<(u64, usize)> = Vec::new();
        let mut first_seen_at = None;
        let mut player = None;
        let mut play = Some(play);
        let begin = Instant::now();
        let mut n = 0u64;
        let mut stop_at = None;
        while stop_at.is_none_or(|t| n < t) {
            let due = begin + Duration::from_millis(10 * n);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            run(&mut src, fps, n).unwrap();
            let got = common::drain(&out, &mut recorded);
            if first_seen_at.is_none() && !got.is_empty() {
                first_seen_at = Some(tick(fps, n).timestamp);
            }
            stamps.extend(got);
            // Once the server delivers steadily (starting a stream may take it a moment),
            // play the tone, and record 2.5 s more.
            if player.is_none() && src.stats().snapshot().callbacks >= 20 {
                player = play.take().map(std::thread::spawn);
                stop_at = Some(n + 250);
            }
            assert!(
                n < 1500,
                "the device never started: {:?}",
                src.stats().snapshot()
            );
            n += 1;
        }
        player.unwrap().join().unwrap();
        let stats = src.stats().snapshot();
        src.on_stop().unwrap();
        println!("src: {} (stats {stats:?})", src.device().unwrap());
        assert_eq!(stats.overruns, 0, "{stats:?}");
        assert_eq!(stats.resyncs, 0, "{stats:?}");
        // Stamps rise by each buffer's duration (to the nanosecond's rounding); the first
        // is a little before the pipeline time of the tick that first saw it.
        for w in stamps.windows(2) {
            let step = w[1].0 as i128 - w[0].0 as i128;
            let want = w[0].1 as i128 * 1_000_000_000 / 48_000;
            assert!((step - want).abs() <= 1, "{w:?}");
        }
        let seen = first_seen_at.unwrap();
        assert!(
            stamps[0].0 <= seen && stamps[0].0 + 500_000_000 > seen,
            "first stamp {:?}, first seen at {seen}",
            stamps[0]
        );
        let tone = measure_tone(&recorded, 48_000);
        println!("recorded {tone:?}");
        check(&tone, 440.0, -6.0, 2.0);
    });
}

#[test]
fn a_missing_device_is_an_error_that_lists_the_devices() {
    let err = AudioSink::new(AudioSinkConfig {
        device: Some("no-such-card-xyz".to_owned()),
        ..AudioSinkConfig::default()
    })
    .err()
    .expect("no such device")
    .to_string();
    assert!(
        err.contains("audiosink") && err.contains("`device`"),
        "{err}"
    );
    assert!(err.contains("no-such-card-xyz"), "{err}");
    // ALSA always lists its `null` plugin (and `pulse` where the plugin is installed).
    assert!(err.contains("null"), "{err}");
    let err = AudioSrc::new(AudioSrcConfig {
        device: Some("no-such-card-xyz".to_owned()),
        ..AudioSrcConfig::default()
    })
    .err()
    .expect("no such device")
    .to_string();
    assert!(
        err.contains("audiosrc") && err.contains("input devices"),
        "{err}"
    );
    let err = AudioSink::new(AudioSinkConfig {
        latency_ms: 0.0,
        ..AudioSinkConfig::default()
    })
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("latency-ms"), "{err}");
}

/// Calls `process` every 10 ms until it fails or `limit` passes; the error, if any.
fn until_it_fails(h: &mut dyn StreamHandler, limit: Duration) -> Option<String> {
    let fps = Rational::fps(100);
    let begin = Instant::now();
    let mut n = 0;
    while begin.elapsed() < limit {
        if let Err(e) = run(h, fps, n) {
            return Some(e);
        }
        n += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

#[test]
fn a_device_that_disappears_fails_the_handler_and_comes_back_on_restart() {
    pulse::with_server(
        "a_device_that_disappears_fails_the_handler_and_comes_back_on_restart",
        |server| {
            let fps = Rational::fps(100);
            let mut src = AudioTestSrc::new(AudioTestSrcConfig {
                rate: 16_000,
                ..AudioTestSrcConfig::default()
            })
            .unwrap();
            let mut sink = AudioSink::new(AudioSinkConfig {
                device: Some("pulse".to_owned()),
                rate: 16_000,
                ..AudioSinkConfig::default()
            })
            .unwrap();
            let mut capture = AudioSrc::new(AudioSrcConfig {
                device: Some("pulse".to_owned()),
                ..AudioSrcConfig::default()
            })
            .unwrap();
            connect(&src.output(), &sink.input());
            let captured = sink_port(&capture);
            start(&mut src, fps).unwrap();
            start(&mut sink, fps).unwrap();
            start(&mut capture, fps).unwrap();
            for n in 0..50 {
                run(&mut src, fps, n).unwrap();
                run(&mut sink, fps, n).unwrap();
                run(&mut capture, fps, n).unwrap();
                while captured.recv().is_some() {}
                std::thread::sleep(Duration::from_millis(10));
            }
            assert!(sink.stats().snapshot().callbacks > 0);

            server.kill_server();
            let killed = Instant::now();
            let err = until_it_fails(&mut sink, Duration::from_secs(10)).expect("sink failed");
            println!("sink after {:?}: {err}", killed.elapsed());
            assert!(err.contains("audiosink") && err.contains("pulse"), "{err}");
            let err = until_it_fails(&mut capture, Duration::from_secs(10)).expect("source failed");
            println!("source after {:?}: {err}", killed.elapsed());
            assert!(err.contains("audiosrc") && err.contains("pulse"), "{err}");
            // The rest (here the test source) runs on.
            run(&mut src, fps, 60).unwrap();
            // Stopping does not hang on the dead device.
            sink.on_stop().unwrap();
            capture.on_stop().unwrap();

            // While the server is down a restart fails, naming the device.
            let err = start(&mut sink, fps).unwrap_err();
            assert!(err.contains("audiosink") && err.contains("pulse"), "{err}");
            let _ = sink.on_stop();

            // The server comes back: the restart plays again.
            let _again = server.restart_server().unwrap();
            start(&mut sink, fps).unwrap();
            let before = sink.stats().snapshot();
            assert!(until_it_fails(&mut sink, Duration::from_secs(1)).is_none());
            let after = sink.stats().snapshot();
            assert!(after.callbacks > before.callbacks, "{before:?} {after:?}");
            assert_eq!(after.opens, 2, "{after:?}");
            sink.on_stop().unwrap();
        },
    );
}

fn sink_port(src: &AudioSrc) -> streamlib_ports::InputPort<AudioBuffer> {
    let port = sink(1024);
    connect(&src.output(), &port.handle());
    port
}

/// The drift loop against a simulated crystal: the pipeline's clock runs `offset` fast
/// (its 10 ms ticks come every `10 ms / (1 + offset)` of device time) and the "device" pulls
/// 10 ms every 10 ms of device time through [`AudioSink::pulled`]. Events are ordered by
/// device time; nothing sleeps. After `settle_s` it must neither under-run nor over-run;
/// returns the drift in ppm averaged from then on, the largest deviation of the drift from
/// that average, and the fill level's worst distance from the target then, in ms.
fn simulate(offset: f64, seconds: u64, rate: u32, settle_s: u64) -> (f64, f64, f64) {
    let fps = Rational::fps(100);
    let mut src = AudioTestSrc::new(AudioTestSrcConfig {
        rate,
        channels: 1,
        freq: f64::from(rate) / 20.0,
        ..AudioTestSrcConfig::default()
    })
    .unwrap();
    let config = AudioSinkConfig {
        latency_ms: 50.0,
        ..AudioSinkConfig::default()
    };
    let (mut sink, device) = AudioSink::pulled(config, rate, 1).unwrap();
    connect(&src.output(), &sink.input());
    start(&mut src, fps).unwrap();
    start(&mut sink, fps).unwrap();
    let mut period = vec![0.0f32; rate as usize / 100];
    let (mut tick_n, mut pull_n) = (0u64, 0u64);
    let mut worst_ms: f64 = 0.0;
    let settled = settle_s * 100;
    let mut underruns_settled = 0;
    let mut drifts = Vec::new();
    while pull_n < seconds * 100 {
        let tick_at = tick_n as f64 * 0.01 / (1.0 + offset);
        let pull_at = pull_n as f64 * 0.01;
        if tick_at <= pull_at {
            run(&mut src, fps, tick_n).unwrap();
            run(&mut sink, fps, tick_n).unwrap();
            tick_n += 1;
        } else {
            device.pull(&mut period);
            pull_n += 1;
            if pull_n == settled {
                underruns_settled = sink.stats().snapshot().underruns;
            }
            if pull_n > settled {
                let fill_ms = device.queued() as f64 / f64::from(rate) * 1000.0;
                worst_ms = worst_ms.max((fill_ms - 50.0).abs());
                drifts.push(sink.stats().snapshot().drift_ppm);
            }
        }
    }
    let stats = sink.stats().snapshot();
    let mean = drifts.iter().sum::<f64>() / drifts.len() as f64;
    let swing = drifts.iter().map(|d| (d - mean).abs()).fold(0.0, f64::max);
    println!(
        "offset {offset}: drift {mean:.1} ppm (swing {swing:.1}), fill off by {worst_ms:.2} ms \
         at most; {stats:?}"
    );
    assert_eq!(stats.overruns, 0, "{stats:?}");
    assert_eq!(stats.underruns, underruns_settled, "{stats:?}");
    (mean, swing, worst_ms)
}

#[test]
fn drift_loop_follows_a_pipeline_clock_500_ppm_fast() {
    let (ppm, swing, worst_ms) = simulate(500e-6, 300, 8_000, 200);
    // 500 ppm more input per device second: about 500 ppm less output per input.
    let want = (1.0 / (1.0 + 500e-6) - 1.0) * 1e6;
    assert!((ppm - want).abs() < 10.0, "drift {ppm} ppm, want {want}");
    assert!(swing < 300.0, "drift swings {swing} ppm");
    assert!(worst_ms < 25.0, "fill level off by {worst_ms} ms");
}

#[test]
fn drift_loop_follows_a_pipeline_clock_500_ppm_slow() {
    let (ppm, swing, worst_ms) = simulate(-500e-6, 300, 8_000, 200);
    let want = (1.0 / (1.0 - 500e-6) - 1.0) * 1e6;
    assert!((ppm - want).abs() < 10.0, "drift {ppm} ppm, want {want}");
    assert!(swing < 300.0, "drift swings {swing} ppm");
    assert!(worst_ms < 25.0, "fill level off by {worst_ms} ms");
}

#[test]
fn device_errors_name_the_handler_and_device() {
    let e = DeviceError::Lost {
        handler: "audiosink",
        device: "pulse (PulseAudio Sound Server)".to_owned(),
        reason: "no callback for 3.1 s".to_owned(),
    };
    assert!(e.to_string().contains("audiosink: device `pulse"));
}

#[test]
fn a_source_counts_over_runs_and_stamps_buffers_by_the_sample_count() {
    let fps = Rational::fps(100);
    let config = AudioSrcConfig {
        latency_ms: 100.0,
        buffer_frames: 480,
        ..AudioSrcConfig::default()
    };
    let (mut src, callback) = AudioSrc::pushed(config, 48_000, 1).unwrap();
    let out = sink(1024);
    connect(&src.output(), &out.handle());
    start(&mut src, fps).unwrap();
    // The pipeline stalls while the device delivers 200 ms: the ring holds 100 ms.
    for _ in 0..20 {
        callback.push(&[0.5; 480]);
    }
    let stats = src.stats().snapshot();
    assert!(stats.overruns >= 10, "{stats:?}");
    assert_eq!(stats.dropped_samples, 4800, "{stats:?}");
    run(&mut src, fps, 0).unwrap();
    let mut samples = Vec::new();
    let stamps = common::drain(&out, &mut samples);
    assert_eq!(stamps.len(), 10, "{stamps:?}");
    assert!(samples.iter().all(|&s| s == 0.5));
    for w in stamps.windows(2) {
        assert_eq!(w[1].0 - w[0].0, 10_000_000, "{stamps:?}");
    }
}

/// The hour: a crystal 100 ppm slow against the pipeline (0.36 s an hour), simulated
/// at 1 kHz so that it takes seconds. After five minutes of settling it neither under-runs
/// nor over-runs and the queue stays at its target.
#[test]
fn an_hour_of_100_ppm_drift_neither_under_runs_nor_grows_the_latency() {
    let (ppm, _, worst_ms) = simulate(100e-6, 3_600, 1_000, 300);
    let want = (1.0 / (1.0 + 100e-6) - 1.0) * 1e6;
    assert!((ppm - want).abs() < 5.0, "drift {ppm} ppm, want {want}");
    assert!(worst_ms < 25.0, "fill level off by {worst_ms} ms");
}
