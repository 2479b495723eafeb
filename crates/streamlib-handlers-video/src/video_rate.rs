//! `VideoRate`: one frame per clock tick from an input of another rate, by repeating or
//! dropping frames (GStreamer's `videorate`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use streamlib_ports::{
    Caps, Follow, HandlerError, InputPort, InputRef, MemoryCaps, OutputPort, OutputRef, Ports,
    ProcessContext, StreamHandler, VideoFrame,
};

/// Counters of a [`VideoRate`], readable from any thread.
#[derive(Debug, Clone, Default)]
pub struct VideoRateStats {
    duplicated: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
}

impl VideoRateStats {
    /// Ticks on which no new frame had arrived and the last one was sent again.
    pub fn duplicated(&self) -> u64 {
        self.duplicated.load(Ordering::Relaxed)
    }

    /// Input frames replaced by a newer one before a tick took them (the input's latest
    /// ring dropped them).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Sends exactly one frame per clock tick: the newest frame that arrived since the last tick,
/// or else the last one again (a clone, which shares the pixels), restamped with the tick's
/// time and number. Frames that arrive faster than the clock are dropped by the input's
/// latest ring and counted.
///
/// - Caps: input any video; output the input's format and size at an open rate, which the
///   runtime fixes to its clock's ([`Follow::FORMAT_SIZE`]). The runtime inserts it where a
///   link's rates differ (`Conversion::Rate`).
/// - Nothing is sent before the first frame arrives; frames keep their pixels and alpha mode.
#[derive(Debug)]
pub struct VideoRate {
    input: InputPort<VideoFrame>,
    output: OutputPort<VideoFrame>,
    last: Option<VideoFrame>,
    stats: VideoRateStats,
}

impl VideoRate {
    /// A rate adapter with a `video` input and output.
    pub fn new() -> Self {
        let input = InputPort::new("video", MemoryCaps::CPU).with_format(Caps::video());
        let output = OutputPort::new("video", MemoryCaps::CPU).with_format(Caps::video());
        output.follows(&input, Follow::FORMAT_SIZE);
        // Every frame it sends is one it received: readers downstream hold upstream's.
        input.forwards_to(&output);
        Self {
            input,
            output,
            last: None,
            stats: VideoRateStats::default(),
        }
    }

    /// The `video` input.
    pub fn input(&self) -> InputRef<VideoFrame> {
        self.input.handle()
    }

    /// The `video` output.
    pub fn output(&self) -> OutputRef<VideoFrame> {
        self.output.handle()
    }

    /// A handle to its counters.
    pub fn stats(&self) -> VideoRateStats {
        self.stats.clone()
    }
}

impl Default for VideoRate {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamHandler for VideoRate {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input).output(&self.output)
    }

    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        match self.input.recv() {
            Some(frame) => self.last = Some(frame),
            None if self.last.is_some() => {
                self.stats.duplicated.fetch_add(1, Ordering::Relaxed);
            }
            None => {}
        }
        self.stats
            .dropped
            .store(self.input.dropped(), Ordering::Relaxed);
        if let Some(frame) = &self.last {
            self.output.write(frame.clone().with_tick(ctx.tick()));
        }
        Ok(())
    }

    fn on_stop(&mut self) -> Result<(), HandlerError> {
        // Give the upstream pool its buffer back.
        self.last = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use streamlib_buffers::BufferPool;
    use streamlib_clock::{ClockSourceId, Rational, TimedTick};
    use streamlib_ports::{FrameLayout, PixelFormat};

    fn tick(n: u64) -> TimedTick {
        TimedTick {
            timestamp: Rational::fps(30).frame_time_ns(n),
            frame_number: n,
            clock_source_id: ClockSourceId::MANUAL,
            fps: Rational::fps(30),
        }
    }

    #[test]
    fn repeats_restamped_and_counts_repeats_and_drops() {
        let mut rate = VideoRate::new();
        let upstream = OutputPort::<VideoFrame>::new("video", MemoryCaps::CPU);
        upstream
            .handle()
            .erased()
            .connect_to(&*rate.input().erased())
            .unwrap();
        let sink = InputPort::<VideoFrame>::new("video", MemoryCaps::CPU);
        rate.output()
            .erased()
            .connect_to(&*sink.handle().erased())
            .unwrap();
        let layout = FrameLayout::new(2, 2, PixelFormat::Gray8).unwrap();
        let pool = BufferPool::<u8>::new("test", layout.buffer_len(), 4, 4).unwrap();
        let frame = |n: u8| {
            let mut buf = pool.acquire().unwrap();
            buf.fill(n);
            VideoFrame::cpu(layout, buf.freeze()).unwrap().with_timing(
                1000 + u64::from(n),
                u64::from(n),
                ClockSourceId::MANUAL,
            )
        };
        let mut step = |n: u64| {
            let t = tick(n);
            let mut ctx = ProcessContext::new("videorate", t);
            rate.process(&mut ctx).unwrap();
        };
        // Nothing before the first frame.
        step(0);
        assert!(sink.recv().is_none());
        upstream.write(frame(7));
        step(1);
        let a = sink.recv().unwrap();
        assert_eq!((a.frame_number(), a.timestamp_ns()), (1, tick(1).timestamp));
        // No new frame: the same pixels again, stamped with tick 2.
        step(2);
        let b = sink.recv().unwrap();
        assert_eq!(b.frame_number(), 2);
        assert_eq!(
            b.cpu_bytes().unwrap().as_ptr(),
            a.cpu_bytes().unwrap().as_ptr()
        );
        // Two frames between ticks: the older is dropped.
        upstream.write(frame(8));
        upstream.write(frame(9));
        step(3);
        let c = sink.recv().unwrap();
        assert_eq!((c.frame_number(), c.cpu_bytes().unwrap()[0]), (3, 9));
        let stats = rate.stats();
        assert_eq!((stats.duplicated(), stats.dropped()), (1, 1));
    }
}
