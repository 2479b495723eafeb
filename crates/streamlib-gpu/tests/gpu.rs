//! streamlib-gpu on a real adapter (lavapipe where there is no GPU): transfers round-trip
//! exactly, readback is pipelined by one tick and flushed at end of stream, the pools stop
//! creating textures after warm-up, and bad input (oversized frames, broken shaders, a lost
//! device) is an error, never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use streamlib_buffers::PooledBuf;
use streamlib_clock::{ClockSourceId, Rational, TimedTick};
use streamlib_dispatch::{Dispatcher, WorkUnit};
use streamlib_gpu::wgpu::PollType;
use streamlib_gpu::{
    BlurKernel, BlurWeights, CpuToGpu, GpuContext, GpuError, GpuFramePool, GpuToCpu,
    MAX_BLUR_RADIUS, TransferStats,
};
use streamlib_ports::{
    AlphaMode, FrameLayout, InputPort, MemoryCaps, OutputPort, PixelFormat, ProcessContext,
    StreamHandler, VideoFrame,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn tick(n: u64) -> TimedTick {
    TimedTick {
        timestamp: n * 1_000_000,
        frame_number: n,
        clock_source_id: ClockSourceId::MANUAL,
        fps: Rational::fps(30),
    }
}

/// A frame whose bytes depend on position and `seed`, rows padded by `pad` bytes.
fn pattern(w: u32, h: u32, pad: u32, seed: u64, format: PixelFormat) -> VideoFrame {
    let layout = FrameLayout::new(w, h, format)
        .unwrap()
        .with_stride(w * 4 + pad)
        .unwrap();
    let mut data = vec![0xEEu8; layout.buffer_len()];
    for y in 0..h as usize {
        for x in 0..(w * 4) as usize {
            data[y * layout.stride() as usize + x] =
                ((x * 7 + y * 13) as u64 + seed * 31) as u8 ^ 0x5A;
        }
    }
    VideoFrame::cpu(layout, PooledBuf::from_vec(data))
        .unwrap()
        .with_tick(&tick(seed))
        .with_alpha(AlphaMode::Premultiplied)
}

/// The tight pixels of a host frame.
fn tight(frame: &VideoFrame) -> Vec<u8> {
    let row = frame.width() as usize * 4;
    frame
        .cpu_bytes()
        .unwrap()
        .chunks(frame.stride() as usize)
        .take(frame.height() as usize)
        .flat_map(|r| r[..row].to_vec())
        .collect()
}

/// Runs one `process` call.
fn step<H: StreamHandler>(handler: &mut H, n: u64, ended: bool) -> TestResult {
    handler
        .process(&mut ProcessContext::new("test", tick(n)).with_inputs_ended(ended))
        .map_err(|e| e.to_string().into())
}

/// Wires `out` to a fresh input, as a runtime would.
fn sink(out: &streamlib_ports::OutputRef<VideoFrame>, caps: MemoryCaps) -> InputPort<VideoFrame> {
    let input = InputPort::new("sink", caps)
        .with_delivery(streamlib_ports::DeliveryMode::Ordered { capacity: 64 });
    out.erased().connect_to(&*input.handle().erased()).unwrap();
    input
}

fn source(
    input: &streamlib_ports::InputRef<VideoFrame>,
    caps: MemoryCaps,
) -> OutputPort<VideoFrame> {
    let out = OutputPort::new("source", caps);
    out.handle().erased().connect_to(&*input.erased()).unwrap();
    out
}

#[test]
fn upload_then_readback_round_trips_exactly_and_keeps_timing() -> TestResult {
    let Some(ctx) = GpuContext::for_tests()? else {
        return Ok(());
    };
    let stats = TransferStats::new();
    let mut up = CpuToGpu::with_stats(&ctx, stats.clone());
    let mut down = GpuToCpu::with_stats(&ctx, stats.clone());
    let feed = source(&up.input(), MemoryCaps::CPU);
    let link = sink(&up.output(), MemoryCaps::GPU);
    let link_out = source(&down.input(), MemoryCaps::GPU);
    let out = sink(&down.output(), MemoryCaps::CPU);
    // 97x61: odd sizes, rows padded on the host and (to 256 bytes) in the staging buffers.
    let frames: Vec<VideoFrame> = (0..4)
        .map(|n| pattern(97, 61, 12, n, PixelFormat::Bgra8))
        .collect();
    let mut got = Vec::new();
    for (n, frame) in frames.iter().enumerate() {
        feed.write(frame.clone());
        step(&mut up, n as u64, false)?;
        let gpu = link.recv().expect("an uploaded frame");
        assert_eq!(gpu.memory(), streamlib_ports::MemorySpace::Gpu);
        assert_eq!(gpu.frame_number(), n as u64);
        link_out.write(gpu);
        step(&mut down, n as u64, false)?;
        // One tick of latency: frame n - 1 leaves on tick n.
        let emitted: Vec<VideoFrame> = std::iter::from_fn(|| out.recv()).collect();
        assert_eq!(emitted.len(), usize::from(n > 0), "tick {n}");
        got.extend(emitted);
    }
    step(&mut down, 4, true)?;
    got.extend(std::iter::from_fn(|| out.recv()));
    assert_eq!(
        got.len(),
        frames.len(),
        "the flush emits the frame in flight"
    );
    for (sent, back) in frames.iter().zip(&got) {
        assert_eq!(back.frame_number(), sent.frame_number());
        assert_eq!(back.timestamp_ns(), sent.timestamp_ns());
        assert_eq!(back.alpha(), AlphaMode::Premultiplied);
        assert_eq!(back.format(), PixelFormat::Bgra8);
        assert_eq!(tight(back), tight(sent), "frame {}", sent.frame_number());
    }
    // Both directions counted: 4 frames each way.
    assert_eq!(stats.frames(), 8);
    assert_eq!(stats.bytes(), 8 * 97 * 61 * 4);
    assert_eq!(stats.handlers(), 2);
    Ok(())
}

#[test]
fn the_upload_pool_creates_nothing_after_warm_up() -> TestResult {
    let Some(ctx) = GpuContext::for_tests()? else {
        return Ok(());
    };
    let mut up = CpuToGpu::new(&ctx);
    let feed = source(&up.input(), MemoryCaps::CPU);
    let out = sink(&up.output(), MemoryCaps::GPU);
    let frame = pattern(32, 16, 0, 1, PixelFormat::Rgba8);
    let mut held = Vec::new();
    let mut run = |n: u64, up: &mut CpuToGpu| -> TestResult {
        feed.write(frame.clone());
        step(up, n, false)?;
        // A downstream that holds the last two frames, like a display and a ring slot.
        held.extend(std::iter::from_fn(|| out.recv()));
        if held.len() > 2 {
            held.remove(0);
        }
        Ok(())
    };
    for n in 0..5 {
        run(n, &mut up)?;
    }
    let made = up.pool().unwrap().textures_created();
    for n in 5..40 {
        run(n, &mut up)?;
    }
    assert_eq!(up.pool().unwrap().textures_created(), made);
    assert_eq!(up.pool().unwrap().grown(), 0);
    Ok(())
}

#[test]
fn pool_grows_to_its_max_then_refuses() -> TestResult {
    let Some(ctx) = GpuContext::for_tests()? else {
        return Ok(());
    };
    let pool = GpuFramePool::new(&ctx, "tiny", 8, 8, 1, 2)?;
    let layout = FrameLayout::new(8, 8, PixelFormat::Rgba8)?;
    let a = pool.acquire()?.into_frame(layout);
    let b = pool.acquire()?;
    assert_eq!((pool.textures_created(), pool.grown()), (2, 1));
    let err = pool.acquire().unwrap_err();
    assert!(matches!(err, GpuError::PoolExhausted { .. }), "{err}");
    assert!(err.to_string().contains("'tiny' is exhausted"), "{err}");
    let a2 = a.clone();
    drop(a);
    assert_eq!(pool.available(), 0, "a clone still holds the texture");
    drop((a2, b));
    assert_eq!(pool.available(), 2);
    assert!(pool.acquire().is_ok());
    assert_eq!(pool.textures_created(), 2);
    Ok(())
}

#[test]
fn a_frame_larger_than_the_device_allows_names_adapter_and_limit() -> TestResult {
    let Some(ctx) = GpuContext::for_tests()? else {
        return Ok(());
    };
    let max = ctx.limits().max_texture_dimension_2d;
    let mut up = CpuToGpu::new(&ctx);
    let feed = source(&up.input(), MemoryCaps::CPU);
    let _out = sink(&up.output(), MemoryCaps::GPU);
    let layout = FrameLayout::new(max + 1, 1, PixelFormat::Rgba8)?;
    feed.write(VideoFrame::cpu(
        layout,
        PooledBuf::from_vec(vec![0; layout.buffer_len()]),
    )?);
    let err = up
        .process(&mut ProcessContext::new("up", tick(0)))
        .unwrap_err()
        .to_string();
    assert!(err.contains(ctx.adapter_name()), "{err}");
    assert!(err.contains("max_texture_dimension_2d"), "{err}");
    assert!(err.contains(&max.to_string()), "{err}");
    // The pool refuses the same way.
    let err = GpuFramePool::new(&ctx, "big", 1, max + 1, 1, 1).unwrap_err();
    assert!(matches!(err, GpuError::TooLarge { .. }), "{err}");
    Ok(())
}

#[test]
fn a_shader_that_does_not_compile_is_an_error() -> TestResult {
    let Some(ctx) = GpuContext::for_tests()? else {
        return Ok(());
    };
    let err = ctx
        .compute_pipeline(
            "broken",
            "@compute @workgroup_size(1) fn main() { let x: u32 = 1.5 +; }",
            "main",
            None,
        )
        .unwrap_err();
    assert!(matches!(err, GpuError::Shader { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("shader 'broken'"), "{text}");
    assert!(text.contains(ctx.adapter_name()), "{text}");
    // A shader that parses but does not validate (an undeclared entry point).
    let err = ctx
        .compute_pipeline(
            "no-entry",
            "@compute @workgroup_size(1) fn main() {}",
            "missing",
            None,
        )
        .unwrap_err();
    assert!(matches!(err, GpuError::Shader { .. }), "{err}");
    // The device is still usable.
    assert!(!ctx.is_lost());
    GpuFramePool::new(&ctx, "after", 4, 4, 1, 1)?;
    Ok(())
}

#[test]
fn blur_weights_outside_the_kernel_tiles_are_errors() -> TestResult {
    let Some(ctx) = GpuContext::for_tests()? else {
        return Ok(());
    };
    let weights = |n: usize| BlurWeights {
        weights: vec![1; n],
        vertical_bias: 0,
        horizontal_bias: 128,
    };
    for n in [0, MAX_BLUR_RADIUS as usize + 2] {
        let err = BlurKernel::new(&ctx, weights(n)).unwrap_err();
        assert!(matches!(err, GpuError::Config { .. }), "{err}");
        assert!(err.to_string().contains(&format!("{n} weights")), "{err}");
    }
    let kernel = BlurKernel::new(&ctx, weights(MAX_BLUR_RADIUS as usize + 1))?;
    assert_eq!(kernel.weights().radius(), MAX_BLUR_RADIUS);
    Ok(())
}

#[test]
fn a_lost_device_is_reported_not_panicked() -> TestResult {
    // Its own context: the shared test one must stay alive.
    let ctx = match GpuContext::new() {
        Ok(ctx) => ctx,
        Err(GpuError::NoAdapter { .. }) if GpuContext::for_tests()?.is_none() => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let pool = GpuFramePool::new(&ctx, "doomed", 4, 4, 1, 2)?;
    ctx.device().destroy();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ctx.is_lost() && Instant::now() < deadline {
        let _ = ctx.device().poll(PollType::Poll);
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(ctx.is_lost(), "the device-lost callback fired");
    let err = pool.acquire().unwrap_err();
    assert!(matches!(err, GpuError::DeviceLost { .. }), "{err}");
    assert!(err.to_string().contains(ctx.adapter_name()), "{err}");
    let err = ctx.submit("after loss", std::iter::empty()).unwrap_err();
    assert!(matches!(err, GpuError::DeviceLost { .. }), "{err}");
    Ok(())
}

struct Count(AtomicUsize);

impl WorkUnit for Count {
    fn run(&self) {
        self.0.fetch_add(1, Ordering::Release);
    }
    fn name(&self) -> &str {
        "count"
    }
}

#[test]
fn the_gpu_dispatcher_runs_units_on_one_shared_thread() -> TestResult {
    let Some(ctx) = GpuContext::for_tests()? else {
        return Ok(());
    };
    let dispatcher = ctx.dispatcher();
    assert!(
        Arc::ptr_eq(&dispatcher, &ctx.dispatcher()),
        "one per context"
    );
    assert_eq!(dispatcher.kind(), "gpu");
    let unit = Arc::new(Count(AtomicUsize::new(0)));
    let activation = dispatcher.attach(unit.clone())?;
    activation.activate();
    let deadline = Instant::now() + Duration::from_secs(5);
    while unit.0.load(Ordering::Acquire) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    activation.detach();
    assert_eq!(unit.0.load(Ordering::Acquire), 1);
    Ok(())
}

#[test]
fn no_matching_adapter_says_what_was_tried() {
    let options = streamlib_gpu::GpuOptions {
        adapter_filter: Some("no-such-adapter-anywhere".to_owned()),
        low_power: false,
    };
    let err = GpuContext::with_options(&options).unwrap_err();
    assert!(matches!(err, GpuError::NoAdapter { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("'no-such-adapter-anywhere'"), "{text}");
    assert!(text.contains("backends tried"), "{text}");
    assert!(text.contains("STREAMLIB_GPU_ADAPTER"), "{text}");
}
