//! The device handlers' process paths allocate nothing at steady state: a sink fed by a
//! test source and drained in the device's place ([`AudioSink::pulled`], the very function
//! the cpal callback runs), resampling 48 -> 44.1 kHz under the drift loop, and a source
//! filled in the capture callback's place ([`AudioSrc::pushed`]), counted by a global
//! allocator over a thousand ticks after warm-up.
#![cfg(feature = "device")]
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use common::{connect, run, sink, start, tick};
use streamlib_clock::Rational;
use streamlib_handlers_audio::{
    AudioSink, AudioSinkConfig, AudioSrc, AudioSrcConfig, AudioTestSrc, AudioTestSrcConfig,
};
use streamlib_test_support::{CountingAllocator, allocations};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn sink_and_source_allocate_nothing_per_buffer() {
    // 29.97 fps: buffers of two sizes into the sink.
    let fps = Rational::FPS_29_97;
    let mut src = AudioTestSrc::new(AudioTestSrcConfig::default()).unwrap();
    let (mut sink_h, device) = AudioSink::pulled(AudioSinkConfig::default(), 44_100, 2).unwrap();
    connect(&src.output(), &sink_h.input());
    start(&mut src, fps);
    start(&mut sink_h, fps);

    let (mut capture, callback) = AudioSrc::pushed(AudioSrcConfig::default(), 48_000, 2).unwrap();
    let out = sink(64);
    connect(&capture.output(), &out.handle());
    start(&mut capture, fps);

    // A device period of 441 frames (10 ms at 44.1 kHz); a capture period of 480 (48 kHz).
    let mut period = vec![0.0f32; 882];
    let captured = vec![0.25f32; 960];
    let mut pulled = 0u64;
    let mut frames_out = 0;
    let mut step = |n: u64| {
        let t = tick(fps, n);
        run(&mut src, t);
        run(&mut sink_h, t);
        // Pull what the device would in one tick's time.
        let due = (n + 1) * 1001 * 44_100 / 30_000 / 441;
        while pulled < due {
            device.pull(&mut period);
            callback.push(&captured);
            pulled += 1;
        }
        run(&mut capture, t);
        while let Some(b) = out.recv() {
            frames_out += b.frames();
        }
    };
    for n in 0..120 {
        step(n);
    }
    let before = allocations();
    for n in 120..1120 {
        step(n);
    }
    let allocated = allocations() - before;
    let stats = sink_h.stats().snapshot();
    assert!(stats.frames > 1_000_000, "{stats:?}");
    assert_eq!(stats.overruns, 0, "{stats:?}");
    assert!(frames_out > 1_000_000, "{frames_out} frames captured");
    assert_eq!(allocated, 0, "{allocated} allocations in 1000 ticks");
}
