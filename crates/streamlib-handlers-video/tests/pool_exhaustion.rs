//! Realtime producers under a sink that holds frames: TestPattern → Compositor → a sink that
//! keeps every frame it gets (as an encoder's queue does when the encoder is slow). When the
//! sink does not declare what it holds, the compositor's pool runs dry: it skips those frames
//! and counts them, never fails, and every tick still runs. When the sink declares it
//! (`InputPort::holding`), the pool is sized from the graph at start and nothing is skipped.
//! Either way the counts add up: produced + skipped = ticks, received = produced.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::sync::Arc;
use std::time::Duration;

use streamlib_clock::{ManualClock, Rational};
use streamlib_dispatch::ThreadPoolDispatcher;
use streamlib_handlers_video::{
    Compositor, CompositorConfig, MissingLayer, Pattern, TestPattern, TestPatternConfig,
};
use streamlib_ports::{
    DeliveryMode, HandlerError, InputPort, MemoryCaps, Ports, ProcessContext, StreamHandler,
    VideoFrame,
};
use streamlib_runtime::{RuntimeStats, Stream, StreamRuntime, StreamState};

const TICKS: u64 = 40;
/// Frames the sink keeps: far more than the compositor's pool holds unless it is told.
const HELD: usize = 30;

/// Keeps up to `HELD` frames it received, like a slow encoder's queue, in ordered delivery so
/// that nothing is dropped on its input.
struct HoldingSink {
    input: InputPort<VideoFrame>,
    held: Vec<VideoFrame>,
}

impl HoldingSink {
    fn new(declared: bool) -> Self {
        let input = InputPort::new("video", MemoryCaps::CPU)
            .with_delivery(DeliveryMode::Ordered { capacity: 4 });
        Self {
            input: if declared { input.holding(HELD) } else { input },
            held: Vec::with_capacity(HELD),
        }
    }
}

impl StreamHandler for HoldingSink {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input)
    }
    fn process(&mut self, _ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        while let Some(frame) = self.input.recv() {
            if self.held.len() < HELD {
                self.held.push(frame);
            }
        }
        Ok(())
    }
}

fn run(declared: bool) -> RuntimeStats {
    let (width, height) = (64, 36);
    let (clock, ticks) = ManualClock::new(Rational::fps(30));
    let mut rt = StreamRuntime::new(clock);
    rt.set_default_dispatcher(Arc::new(ThreadPoolDispatcher::new(2)));
    let pattern = TestPattern::new(TestPatternConfig {
        width,
        height,
        pattern: Pattern::SmpteBars,
        ..TestPatternConfig::default()
    })
    .unwrap();
    let compositor = Compositor::new(CompositorConfig {
        width,
        height,
        layers: 1,
        background: [0, 0, 0, 255],
        missing: MissingLayer::ReuseLast,
    })
    .unwrap();
    let sink = HoldingSink::new(declared);
    let (p_out, c_in, c_out, s_in) = (
        pattern.output(),
        compositor.layer_input(0).unwrap(),
        compositor.output(),
        sink.input.handle(),
    );
    rt.add_stream(Stream::new("pattern", pattern)).unwrap();
    rt.add_stream(Stream::new("compositor", compositor))
        .unwrap();
    rt.add_stream(Stream::new("sink", sink)).unwrap();
    rt.connect(&p_out, &c_in).unwrap();
    rt.connect(&c_out, &s_in).unwrap();
    rt.start().unwrap();
    // One tick at a time, each crossing the graph before the next: the counts are exact.
    for n in 1..=TICKS {
        ticks.tick();
        assert!(rt.wait_for_ticks(n, Duration::from_secs(10)), "tick {n}");
    }
    // Then the clock ends: sources end, and the rest drain and end in turn.
    ticks.end();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !rt.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(rt.is_finished(), "the pipeline did not drain");
    rt.stop().unwrap()
}

#[test]
fn an_empty_pool_skips_and_counts_and_never_fails() {
    let stats = run(false);
    let compositor = stats.stream("compositor").unwrap();
    let sink = stats.stream("sink").unwrap();
    assert_eq!(compositor.errors, 0, "{stats}");
    assert_ne!(compositor.state, StreamState::Failed, "{stats}");
    assert_eq!(stats.failed().count(), 0, "{stats}");
    // Every tick ran (then the drain call); each produced a frame or skipped it for want of
    // a buffer.
    assert_eq!(compositor.ticks, TICKS + 1, "{stats}");
    assert!(
        compositor.skipped_pool_empty > 0,
        "the pool never ran dry: {stats}"
    );
    assert_eq!(
        compositor.items_out + compositor.skipped_pool_empty,
        TICKS,
        "{stats}"
    );
    // What was produced arrived, and nothing else was lost on the way.
    assert_eq!(sink.items_in, compositor.items_out, "{stats}");
    assert_eq!(sink.total_drops(), 0, "{stats}");
    // The pool's size is reported with its counts, and the summary says it ran dry.
    assert_eq!(
        compositor.items_out as usize, compositor.pool_capacity as usize,
        "every buffer the pool had went to the sink: {stats}"
    );
    assert!(stats.to_string().contains("ran dry"), "{stats}");
}

#[test]
fn a_declared_holder_sizes_the_pool_from_the_graph() {
    let stats = run(true);
    let compositor = stats.stream("compositor").unwrap();
    let sink = stats.stream("sink").unwrap();
    assert_eq!(compositor.errors, 0, "{stats}");
    assert_eq!(compositor.skipped_pool_empty, 0, "{stats}");
    // One frame per tick: the drain call after the inputs ended adds no repeat.
    assert_eq!(compositor.items_out, TICKS, "{stats}");
    assert_eq!(stats.stream("pattern").unwrap().items_out, TICKS, "{stats}");
    assert_eq!(sink.items_in, TICKS, "{stats}");
    // Ordered queue of 4 + the 30 the sink declared + 1 being written + the margin.
    assert_eq!(
        compositor.pool_capacity,
        (4 + HELD + 1 + streamlib_ports::POOL_MARGIN) as u64,
        "{stats}"
    );
}
