//! Steady state allocates nothing: a test source into `spectrum` and into `audioscope` (each
//! style), a frame per tick read and dropped, counted by a global allocator after warm-up.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use common::{connect, run, start, tick};
use streamlib_clock::Rational;
use streamlib_handlers_audio::{
    AudioScope, AudioScopeConfig, AudioTestSrc, AudioTestSrcConfig, ScopeStyle, Spectrum,
    SpectrumConfig, Wave,
};
use streamlib_ports::{InputPort, MemoryCaps, StreamHandler, VideoFrame};
use streamlib_test_support::{CountingAllocator, allocations};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn steady_state_allocates_nothing_per_frame() {
    // 29.97 fps: buffers of two sizes.
    let fps = Rational::FPS_29_97;
    let mut src = AudioTestSrc::new(AudioTestSrcConfig {
        wave: Wave::PinkNoise,
        ..AudioTestSrcConfig::default()
    })
    .unwrap();
    start(&mut src, fps);
    let mut scopes: Vec<Box<dyn StreamHandler>> = Vec::new();
    let mut sinks = Vec::new();
    let mut wire = |input, output: streamlib_ports::OutputRef<VideoFrame>| {
        connect(&src.output(), &input);
        let sink = InputPort::<VideoFrame>::new("video", MemoryCaps::CPU);
        output
            .erased()
            .connect_to(&*sink.handle().erased())
            .unwrap();
        sinks.push(sink);
    };
    let spectrum = Spectrum::new(SpectrumConfig::default()).unwrap();
    wire(spectrum.input(), spectrum.output());
    scopes.push(Box::new(spectrum));
    for style in [ScopeStyle::Lines, ScopeStyle::Dots, ScopeStyle::Meter] {
        let scope = AudioScope::new(AudioScopeConfig {
            style,
            background: [0, 0, 0, 128],
            ..AudioScopeConfig::default()
        })
        .unwrap();
        wire(scope.input(), scope.output());
        scopes.push(Box::new(scope));
    }
    for scope in &mut scopes {
        start(scope.as_mut(), fps);
    }
    let mut step = |n: u64| {
        run(&mut src, tick(fps, n));
        let mut frames = 0;
        for scope in &mut scopes {
            run(scope.as_mut(), tick(fps, n));
        }
        for sink in &sinks {
            frames += usize::from(sink.latest().is_some());
        }
        frames
    };
    for n in 0..60 {
        step(n);
    }
    let before = allocations();
    let mut frames = 0;
    for n in 60..360 {
        frames += step(n);
    }
    let allocated = allocations() - before;
    assert_eq!(frames, 4 * 300, "a frame per tick from each");
    assert_eq!(allocated, 0, "{allocated} allocations in 300 ticks");
}
