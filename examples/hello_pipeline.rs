//! source → transform → sink, on a real-time 30 fps clock, with stats at the end.
//!
//! A test-card source writes 320×240 gray frames from a pool (no allocation per frame), an
//! `Invert` handler on a thread pool inverts them, and a sink checks each frame and counts
//! what arrived. The runtime stops after two seconds (or on Ctrl-C) and prints per-handler
//! statistics: ticks, drops, p50/p99 processing time.
//!
//! Run: `cargo run --example hello_pipeline`
#![allow(clippy::print_stdout, reason = "an example prints its results")]

use std::sync::Arc;
use std::time::Duration;

use streamlib::prelude::*;

/// A moving gray ramp.
struct Ramp {
    out: OutputPort<VideoFrame>,
    pool: FramePool,
}

impl StreamHandler for Ramp {
    fn ports(&self) -> Ports {
        Ports::new().output(&self.out)
    }

    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        let tick = *ctx.tick();
        let layout = self.pool.layout();
        let mut buf = self.pool.acquire()?;
        let shift = tick.frame_number as usize;
        for (y, row) in buf.chunks_exact_mut(layout.stride() as usize).enumerate() {
            for (x, px) in row.iter_mut().enumerate() {
                *px = ((x + y + shift) % 256) as u8;
            }
        }
        self.out.write(self.pool.frame(buf).with_tick(&tick));
        Ok(())
    }
}

/// Inverts gray frames.
struct Invert {
    input: InputPort<VideoFrame>,
    out: OutputPort<VideoFrame>,
    pool: FramePool,
}

impl StreamHandler for Invert {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input).output(&self.out)
    }

    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        let Some(frame) = self.input.recv() else {
            return Ok(());
        };
        let src = frame
            .cpu_bytes()
            .ok_or_else(|| HandlerError::msg("Invert needs frames in CPU memory"))?;
        let mut buf = self.pool.acquire()?;
        for (o, i) in buf.iter_mut().zip(src) {
            *o = 255 - i;
        }
        self.out.write(self.pool.frame(buf).with_tick(ctx.tick()));
        Ok(())
    }
}

/// Checks that frames arrive inverted and on their own tick.
struct Check {
    input: InputPort<VideoFrame>,
    frames: u64,
    late: u64,
}

impl StreamHandler for Check {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input)
    }

    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        if let Some(frame) = self.input.recv() {
            let n = frame.frame_number() as usize;
            let first = frame.cpu_bytes().map_or(0, |b| b[0]);
            if first != 255 - (n % 256) as u8 {
                return Err(HandlerError::msg(format!("frame {n} has wrong pixels")));
            }
            self.frames += 1;
            if frame.frame_number() != ctx.tick().frame_number {
                self.late += 1;
            }
        }
        Ok(())
    }

    fn on_stop(&mut self) -> Result<(), HandlerError> {
        tracing::info!(frames = self.frames, late = self.late, "check done");
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();

    let layout = FrameLayout::new(320, 240, PixelFormat::Gray8)?;
    let ramp = Ramp {
        out: OutputPort::new("video", MemoryCaps::CPU),
        pool: FramePool::new("ramp", layout, 6, 12)?,
    };
    let invert = Invert {
        input: InputPort::new("video", MemoryCaps::CPU),
        out: OutputPort::new("video", MemoryCaps::CPU),
        pool: FramePool::new("invert", layout, 6, 12)?,
    };
    let check = Check {
        input: InputPort::new("video", MemoryCaps::CPU),
        frames: 0,
        late: 0,
    };

    let mut runtime = StreamRuntime::new(SoftwareClock::new(Rational::fps(30)));
    let pool: Arc<dyn Dispatcher> = Arc::new(ThreadPoolDispatcher::new(2));
    runtime.add_stream(Stream::new("ramp", ramp))?;
    runtime.add_stream(
        Stream::new("invert", invert)
            .dispatcher(Arc::clone(&pool))
            .time_limit(Duration::from_millis(10)),
    )?;
    runtime.add_stream(Stream::new("check", check))?;
    runtime.connect_by_name("ramp.video", "invert.video")?;
    runtime.connect_by_name("invert.video", "check.video")?;

    let handle = runtime.handle();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        handle.stop();
    });
    let stats = runtime.run()?;
    println!("{stats}");
    let check = stats
        .stream("check")
        .ok_or_else(|| anyhow::anyhow!("no stats for check"))?;
    anyhow::ensure!(check.errors == 0, "the sink saw wrong pixels");
    Ok(())
}
