//! Capability negotiation with the real GPU transfers (lavapipe where there is no GPU): a
//! CPU → GPU → GPU → GPU → CPU chain gets exactly two transfers, a `[cpu, gpu]` handler between
//! GPU handlers stays on the GPU, and the transfers count exactly the bytes that crossed.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::sync::{Arc, Mutex};

use streamlib::gpu::{GpuContext, register_transfers};
use streamlib::prelude::*;
use streamlib::video::{Blur, BlurConfig};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A GPU-only blur: `[gpu]` in and out, so a CPU neighbour needs a transfer.
fn gpu_blur(ctx: &GpuContext, sigma: f32) -> Result<Blur, streamlib::video::VideoError> {
    Blur::with_gpu_memory(
        BlurConfig {
            sigma,
            radius: None,
        },
        MemoryCaps::GPU,
        ctx,
    )
}

const W: u32 = 48;
const H: u32 = 32;
const FRAMES: u64 = 6;

/// A CPU source: a gradient that moves with the frame number.
struct Source {
    out: OutputPort<VideoFrame>,
    pool: FramePool,
}

impl StreamHandler for Source {
    fn ports(&self) -> Ports {
        Ports::new().output(&self.out)
    }
    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        let n = ctx.tick().frame_number;
        let mut buf = self.pool.acquire()?;
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (i as u64 + n * 3) as u8;
        }
        self.out.write(self.pool.frame(buf).with_tick(ctx.tick()));
        Ok(())
    }
}

/// A `[cpu, gpu]` pass-through that records the memory of what it saw.
struct Flexible {
    input: InputPort<VideoFrame>,
    out: OutputPort<VideoFrame>,
    seen: Arc<Mutex<Vec<MemorySpace>>>,
}

impl StreamHandler for Flexible {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input).output(&self.out)
    }
    fn process(&mut self, _: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        if let Some(frame) = self.input.recv() {
            self.seen.lock().unwrap().push(frame.memory());
            self.out.write(frame);
        }
        Ok(())
    }
}

/// A CPU sink that keeps every frame's number, memory and size.
struct Sink {
    input: InputPort<VideoFrame>,
    seen: Arc<Mutex<Vec<(u64, MemorySpace, usize)>>>,
}

impl StreamHandler for Sink {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input)
    }
    fn process(&mut self, _: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        while let Some(frame) = self.input.recv() {
            let len = frame.cpu_bytes().map_or(0, <[u8]>::len);
            self.seen
                .lock()
                .unwrap()
                .push((frame.frame_number(), frame.memory(), len));
        }
        Ok(())
    }
}

#[test]
fn cpu_gpu_gpu_gpu_cpu_inserts_exactly_two_transfers() -> TestResult {
    let Some(ctx) = GpuContext::for_tests()? else {
        return Ok(());
    };
    let mut runtime =
        StreamRuntime::new(FreeRunningClock::new(Rational::fps(30)).with_limit(FRAMES));
    let transfers = register_transfers(&mut runtime, &ctx);
    let layout = FrameLayout::new(W, H, PixelFormat::Rgba8)?;
    let source = Source {
        out: OutputPort::new("video", MemoryCaps::CPU),
        pool: FramePool::new("source", layout, 4, 8)?,
    };
    let first = gpu_blur(&ctx, 1.0)?;
    let flexible = Flexible {
        input: InputPort::new("video", MemoryCaps::CPU_GPU),
        out: OutputPort::new("video", MemoryCaps::CPU_GPU),
        seen: Arc::default(),
    };
    let second = gpu_blur(&ctx, 1.5)?;
    let sink = Sink {
        input: InputPort::new("video", MemoryCaps::CPU)
            .with_delivery(DeliveryMode::Ordered { capacity: 64 }),
        seen: Arc::default(),
    };
    let (flex_seen, sink_seen) = (flexible.seen.clone(), sink.seen.clone());
    let (flex_in, flex_out) = (flexible.input.handle(), flexible.out.handle());
    let wires = [
        (source.out.handle(), first.input()),
        (first.output(), flex_in.clone()),
        (flex_out.clone(), second.input()),
        (second.output(), sink.input.handle()),
    ];
    let gpu = ctx.dispatcher().as_dyn();
    runtime.add_stream(Stream::new("source", source))?;
    runtime.add_stream(Stream::new("first", first).dispatcher(gpu.clone()))?;
    runtime.add_stream(Stream::new("flexible", flexible).dispatcher(gpu.clone()))?;
    runtime.add_stream(Stream::new("second", second).dispatcher(gpu))?;
    runtime.add_stream(Stream::new("sink", sink))?;
    let connections = wires
        .iter()
        .map(|(o, i)| runtime.connect(o, i))
        .collect::<Result<Vec<_>, _>>()?;

    let inserted: Vec<&str> = connections
        .iter()
        .filter_map(|c| c.transfer.as_deref())
        .collect();
    assert_eq!(inserted.len(), 2, "{connections:?}");
    assert!(inserted[0].starts_with("CpuToGpu"), "{inserted:?}");
    assert!(inserted[1].starts_with("GpuToCpu"), "{inserted:?}");
    assert_eq!(connections[0].transfer.as_deref(), Some(inserted[0]));
    assert_eq!(
        connections[1].transfer, None,
        "no transfer between GPU handlers"
    );
    assert_eq!(
        connections[2].transfer, None,
        "no transfer between GPU handlers"
    );
    assert_eq!(connections[3].transfer.as_deref(), Some(inserted[1]));
    assert_eq!(flex_in.erased().negotiated(), Some(MemorySpace::Gpu));
    assert_eq!(flex_out.erased().negotiated(), Some(MemorySpace::Gpu));
    assert_eq!(transfers.uploads.handlers(), 1);
    assert_eq!(transfers.downloads.handlers(), 1);

    let stats = runtime.run()?;
    let frame_bytes = u64::from(W * H * 4);
    let sink_seen = sink_seen.lock().unwrap().clone();
    assert_eq!(
        sink_seen,
        (0..FRAMES)
            .map(|n| (n, MemorySpace::Cpu, frame_bytes as usize))
            .collect::<Vec<_>>(),
        "every frame arrived, in order, in host memory\n{stats}"
    );
    assert!(
        flex_seen
            .lock()
            .unwrap()
            .iter()
            .all(|&m| m == MemorySpace::Gpu),
        "the [cpu, gpu] handler only ever saw GPU frames"
    );
    // Each frame crossed the bus once each way, and nothing else crossed.
    assert_eq!(transfers.uploads.frames(), FRAMES);
    assert_eq!(transfers.uploads.bytes(), FRAMES * frame_bytes);
    assert_eq!(transfers.downloads.frames(), FRAMES);
    assert_eq!(transfers.downloads.bytes(), FRAMES * frame_bytes);
    assert_eq!(
        transfers.uploads.skipped() + transfers.downloads.skipped(),
        0
    );
    Ok(())
}

#[test]
fn gpu_to_gpu_needs_no_transfer() -> TestResult {
    let Some(ctx) = GpuContext::for_tests()? else {
        return Ok(());
    };
    let mut runtime = StreamRuntime::new(FreeRunningClock::new(Rational::fps(30)).with_limit(2));
    let transfers = register_transfers(&mut runtime, &ctx);
    let a = gpu_blur(&ctx, 1.0)?;
    let b = gpu_blur(&ctx, 1.0)?;
    let (o, i) = (a.output(), b.input());
    runtime.add_stream(Stream::new("a", a))?;
    runtime.add_stream(Stream::new("b", b))?;
    let c = runtime.connect(&o, &i)?;
    assert_eq!((c.memory, c.transfer), (MemorySpace::Gpu, None));
    assert_eq!(
        transfers.uploads.handlers() + transfers.downloads.handlers(),
        0
    );
    Ok(())
}
