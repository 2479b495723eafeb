//! `audiosink` and `audiosrc` from pipeline text and in a runtime, against a private
//! PulseAudio with a null sink (streamlib-test-support's `pulse` fixture): the tone
//! `audiotestsrc freq=1000 ! audiosink` plays is recorded from the monitor with `parec`, and
//! a device that disappears makes the sink fail and restart by its policy while the rest of
//! the pipeline runs on. The bodies run in a child of this binary with `PULSE_SERVER` set;
//! without `pulseaudio` they fail, unless `STREAMLIB_SKIP_AUDIO_DEVICE=1`.
#![cfg(feature = "audio-device")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "tests, which report what they measured"
)]

use std::time::{Duration, Instant};

use streamlib_clock::{Rational, SoftwareClock};
use streamlib_handlers_audio::{
    AudioSink, AudioSinkConfig, AudioTestSrc, AudioTestSrcConfig, Loudness,
};
use streamlib_launch::{Registry, build, parse};
use streamlib_runtime::{Backoff, RestartPolicy, Stream, StreamRuntime, StreamState};
use streamlib_test_support::pulse::{self, MonitorRecording, Tone, measure_tone};

/// Waits up to `limit` for `done`.
fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let begin = Instant::now();
    while begin.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn audiotestsrc_to_audiosink_from_text_is_heard_on_the_monitor() {
    pulse::with_server(
        "audiotestsrc_to_audiosink_from_text_is_heard_on_the_monitor",
        |_| {
            let recording = MonitorRecording::start().unwrap();
            // 8 kHz mono at the device too (the server resamples for parec): the sink's sinc
            // resampler, unoptimised in a debug build on a loaded machine, keeps up with that
            // in real time, not always with 48 kHz stereo.
            let text = "audiotestsrc freq=1000 volume=0.501187 rate=8000 channels=1 \
                        ! audiosink device=pulse latency-ms=200 rate=8000";
            let desc = parse(text).unwrap();
            let clock = SoftwareClock::new(Rational::fps(100));
            let mut built = build(&Registry::builtin(), &desc, StreamRuntime::new(clock)).unwrap();
            built.runtime.start().unwrap();
            std::thread::sleep(Duration::from_secs(5));
            let report = built.controls.report("audiosink0").expect("a sink report");
            let stats = built.runtime.stop().unwrap();
            let recorded = recording.stop();
            println!("report {report}");
            let sink = stats.stream("audiosink0").unwrap();
            assert_eq!(sink.errors, 0, "{sink:?}");
            assert!(
                report["device"].as_str().unwrap().contains("pulse"),
                "{report}"
            );
            assert!(report["frames"].as_u64().unwrap() > 2 * 8_000, "{report}");
            assert_eq!(report["overruns"], 0, "{report}");
            for key in ["underruns", "fill_frames", "target_frames", "drift_ppm"] {
                assert!(report.get(key).is_some(), "{key} missing: {report}");
            }
            // The recording: 1 kHz at -6 dBFS (s16 mono), for most of the 5 s (the null
            // sink takes up to two seconds to start a new stream; what comes before is dropped
            // down to the latency target).
            let Tone {
                freq,
                dbfs,
                seconds,
            } = measure_tone(&recorded, pulse::RECORD_RATE);
            assert!(seconds > 2.5, "only {seconds} s of tone");
            println!("recorded {seconds:.2} s, {freq:.1} Hz, {dbfs:.2} dBFS");
            assert!((dbfs + 6.0).abs() < 0.5, "{dbfs} dBFS");
            assert!((freq - 1000.0).abs() < 10.0, "{freq} Hz");
        },
    );
}

#[test]
fn a_lost_device_restarts_by_policy_while_the_rest_runs() {
    pulse::with_server(
        "a_lost_device_restarts_by_policy_while_the_rest_runs",
        |server| {
            let mut runtime = StreamRuntime::new(SoftwareClock::new(Rational::fps(100)));
            let low = AudioTestSrcConfig {
                rate: 8_000,
                channels: 1,
                ..AudioTestSrcConfig::default()
            };
            let tone = AudioTestSrc::new(low).unwrap();
            let sink = AudioSink::new(AudioSinkConfig {
                device: Some("pulse".to_owned()),
                rate: 8_000,
                latency_ms: 200.0,
                ..AudioSinkConfig::default()
            })
            .unwrap();
            let device = sink.stats();
            let other = AudioTestSrc::new(low).unwrap();
            let meter = Loudness::new();
            let (a, b) = (tone.output(), sink.input());
            let (c, d) = (other.output(), meter.input());
            let policy = RestartPolicy::OnFailure(Backoff {
                initial: Duration::from_millis(100),
                factor: 1.5,
                max: Duration::from_millis(500),
                max_restarts: Some(1000),
                ..Backoff::default()
            });
            runtime.add_stream(Stream::new("tone", tone)).unwrap();
            runtime
                .add_stream(Stream::new("sink", sink).restart_policy(policy))
                .unwrap();
            runtime.add_stream(Stream::new("other", other)).unwrap();
            runtime.add_stream(Stream::new("meter", meter)).unwrap();
            runtime.connect(&a, &b).unwrap();
            runtime.connect(&c, &d).unwrap();
            runtime.start().unwrap();
            let stream = |id: &str| runtime.stats().unwrap().stream(id).unwrap().clone();
            assert!(wait_for(Duration::from_secs(20), || device
                .snapshot()
                .callbacks
                > 20));

            server.kill_server();
            assert!(
                wait_for(Duration::from_secs(20), || stream("sink").errors > 0),
                "{:?}",
                stream("sink")
            );
            let failed = stream("sink");
            println!("after the kill: {failed:?}");
            let error = failed.last_error.clone().unwrap_or_default();
            assert!(
                error.contains("audiosink") && error.contains("pulse"),
                "{error}"
            );
            // The other branch runs on.
            let meter_ticks = stream("meter").ticks;
            assert!(wait_for(Duration::from_secs(10), || stream("meter").ticks
                > meter_ticks + 50));
            assert_eq!(stream("meter").errors, 0);

            // The device comes back: a restart opens it and it plays again.
            let opens = device.snapshot().opens;
            let _again = server.restart_server().unwrap();
            assert!(
                wait_for(Duration::from_secs(20), || device.snapshot().opens > opens
                    && stream("sink").state == StreamState::Running),
                "{:?} {:?}",
                stream("sink"),
                device.snapshot()
            );
            let callbacks = device.snapshot().callbacks;
            assert!(wait_for(Duration::from_secs(10), || device
                .snapshot()
                .callbacks
                > callbacks + 20));
            let stats = runtime.stop().unwrap();
            let sink = stats.stream("sink").unwrap();
            println!("at the end: {sink:?}, device {:?}", device.snapshot());
            assert!(sink.restarts >= 1, "{sink:?}");
        },
    );
}

#[test]
fn a_missing_device_fails_the_build_listing_the_devices() {
    let desc = parse("audiotestsrc ! audiosink device=no-such-card-xyz").unwrap();
    let clock = SoftwareClock::new(Rational::fps(100));
    let err = build(&Registry::builtin(), &desc, StreamRuntime::new(clock))
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("no-such-card-xyz") && err.contains("null"),
        "{err}"
    );
}
