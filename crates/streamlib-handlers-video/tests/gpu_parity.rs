//! The GPU paths of `Blur` and `Compositor` against their CPU paths, on a real adapter
//! (lavapipe where there is no GPU): every channel of every pixel within ±1 (in practice
//! identical: the shaders run the CPU's integer arithmetic). Small frames and one odd size,
//! a few frames each: lavapipe is slow.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "tests; the max differences are worth seeing in the output"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use streamlib_buffers::PooledBuf;
use streamlib_clock::{ClockInfo, ClockSourceId, Pacing, Rational, TimedTick, Timescale};
use streamlib_gpu::{FrameUploader, GpuContext, read_frame};
use streamlib_handlers_video::{
    Blur, BlurConfig, Compositor, CompositorConfig, LayerConfig, MissingLayer, VideoError,
};
use streamlib_ports::{
    AlphaMode, DeliveryMode, FrameLayout, InputPort, InputRef, MemoryCaps, MemorySpace, OutputPort,
    OutputRef, PixelFormat, ProcessContext, StartContext, StreamHandler, VideoFrame,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn tick(n: u64) -> TimedTick {
    TimedTick {
        timestamp: n * 1_000,
        frame_number: n,
        clock_source_id: ClockSourceId::MANUAL,
        fps: Rational::fps(30),
    }
}

fn clock_info() -> ClockInfo {
    ClockInfo {
        name: "test".to_owned(),
        id: ClockSourceId::MANUAL,
        fps: Rational::fps(30),
        timescale: Timescale::Media,
        pacing: Pacing::Pipeline,
    }
}

fn step<H: StreamHandler>(handler: &mut H, n: u64) -> TestResult {
    handler
        .process(&mut ProcessContext::new("test", tick(n)))
        .map_err(|e| e.to_string().into())
}

/// Deterministic noise (an LCG), with runs of transparent and opaque alpha.
fn noise(w: u32, h: u32, seed: u32, format: PixelFormat, alpha: AlphaMode) -> VideoFrame {
    let layout = FrameLayout::new(w, h, format).unwrap();
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let mut data: Vec<u8> = (0..layout.buffer_len())
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        })
        .collect();
    for (i, px) in data.chunks_exact_mut(4).enumerate() {
        match i / 7 % 5 {
            0 => px[3] = 255,
            1 => px[3] = 0,
            _ => {}
        }
        if alpha == AlphaMode::Premultiplied {
            let a = px[3];
            px[..3]
                .iter_mut()
                .for_each(|c| *c = (u16::from(*c) * u16::from(a) / 255) as u8);
        }
    }
    VideoFrame::cpu(layout, PooledBuf::from_vec(data))
        .unwrap()
        .with_tick(&tick(u64::from(seed)))
        .with_alpha(alpha)
}

fn feed(input: &InputRef<VideoFrame>, space: MemorySpace) -> OutputPort<VideoFrame> {
    let caps = if space == MemorySpace::Gpu {
        MemoryCaps::GPU
    } else {
        MemoryCaps::CPU
    };
    let out = OutputPort::new("feed", caps);
    out.handle().erased().connect_to(&*input.erased()).unwrap();
    out.handle().erased().set_negotiated(space);
    input.erased().set_negotiated(space);
    out
}

fn drain(output: &OutputRef<VideoFrame>, space: MemorySpace) -> InputPort<VideoFrame> {
    let input = InputPort::new("drain", MemoryCaps::CPU_GPU)
        .with_delivery(DeliveryMode::Ordered { capacity: 16 });
    output
        .erased()
        .connect_to(&*input.handle().erased())
        .unwrap();
    output.erased().set_negotiated(space);
    input.handle().erased().set_negotiated(space);
    input
}

/// Tight pixels of a frame, reading GPU frames back.
fn pixels(ctx: &GpuContext, frame: &VideoFrame) -> Vec<u8> {
    if frame.memory() == MemorySpace::Gpu {
        return read_frame(ctx, frame).unwrap();
    }
    let row = frame.width() as usize * 4;
    frame
        .cpu_bytes()
        .unwrap()
        .chunks(frame.stride() as usize)
        .take(frame.height() as usize)
        .flat_map(|r| r[..row].to_vec())
        .collect()
}

/// Largest per-channel difference.
fn max_diff(a: &[u8], b: &[u8]) -> u8 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0)
}

fn upload(ctx: &GpuContext, uploader: &mut FrameUploader, frame: &VideoFrame) -> VideoFrame {
    uploader.upload(ctx, frame).unwrap().expect("a texture")
}

#[test]
fn gpu_blur_equals_the_cpu_blur() -> TestResult {
    let Some(ctx) = GpuContext::for_tests()? else {
        return Ok(());
    };
    let cases = [
        (16, 8, 2.0, None, PixelFormat::Rgba8),
        (97, 61, 2.0, None, PixelFormat::Rgba8),
        (97, 61, 0.8, Some(3), PixelFormat::Bgra8),
        (33, 70, 6.0, None, PixelFormat::Rgba8),
        (5, 3, 1.5, Some(9), PixelFormat::Rgba8), // radius wider than the frame
    ];
    let mut uploader = FrameUploader::new("test-upload", 2, 4);
    for (w, h, sigma, radius, format) in cases {
        let config = BlurConfig { sigma, radius };
        let mut cpu = Blur::new(config)?;
        let mut gpu = Blur::with_gpu(config, &ctx)?;
        let cpu_in = feed(&cpu.input(), MemorySpace::Cpu);
        let cpu_out = drain(&cpu.output(), MemorySpace::Cpu);
        let gpu_in = feed(&gpu.input(), MemorySpace::Gpu);
        let gpu_out = drain(&gpu.output(), MemorySpace::Gpu);
        for n in 0..2 {
            let frame = noise(w, h, n + w, format, AlphaMode::Straight);
            cpu_in.write(frame.clone());
            step(&mut cpu, u64::from(n))?;
            gpu_in.write(upload(&ctx, &mut uploader, &frame));
            step(&mut gpu, u64::from(n))?;
            let (c, g) = (cpu_out.recv().unwrap(), gpu_out.recv().unwrap());
            assert_eq!(g.memory(), MemorySpace::Gpu);
            assert_eq!(
                (g.frame_number(), g.format()),
                (c.frame_number(), c.format())
            );
            let diff = max_diff(&pixels(&ctx, &c), &pixels(&ctx, &g));
            assert!(diff <= 1, "{w}x{h} sigma {sigma} {format}: max diff {diff}");
            eprintln!("blur {w}x{h} sigma {sigma} radius {radius:?} {format}: max diff {diff}");
        }
    }
    Ok(())
}

#[test]
fn gpu_blur_follows_the_negotiated_memory() -> TestResult {
    let Some(ctx) = GpuContext::for_tests()? else {
        return Ok(());
    };
    let config = BlurConfig::default();
    let frame = noise(24, 12, 3, PixelFormat::Rgba8, AlphaMode::Straight);
    let mut cpu = Blur::new(config)?;
    let cpu_in = feed(&cpu.input(), MemorySpace::Cpu);
    let cpu_out = drain(&cpu.output(), MemorySpace::Cpu);
    cpu_in.write(frame.clone());
    step(&mut cpu, 0)?;
    let expected = pixels(&ctx, &cpu_out.recv().unwrap());

    // CPU in, GPU out: uploaded and blurred on the GPU.
    let mut up = Blur::with_gpu(config, &ctx)?;
    assert_eq!(up.input().erased().caps(), MemoryCaps::CPU_GPU);
    let input = feed(&up.input(), MemorySpace::Cpu);
    let output = drain(&up.output(), MemorySpace::Gpu);
    input.write(frame.clone());
    step(&mut up, 0)?;
    let got = output.recv().unwrap();
    assert_eq!(got.memory(), MemorySpace::Gpu);
    assert!(max_diff(&expected, &pixels(&ctx, &got)) <= 1);

    // GPU in, CPU out: blurred on the GPU and read back.
    let mut down = Blur::with_gpu(config, &ctx)?;
    let input = feed(&down.input(), MemorySpace::Gpu);
    let output = drain(&down.output(), MemorySpace::Cpu);
    let mut uploader = FrameUploader::new("test-upload", 1, 2);
    input.write(upload(&ctx, &mut uploader, &frame));
    step(&mut down, 0)?;
    let got = output.recv().unwrap();
    assert_eq!(got.memory(), MemorySpace::Cpu);
    assert!(max_diff(&expected, &pixels(&ctx, &got)) <= 1);

    // CPU in, CPU out: the CPU path, untouched.
    let mut both = Blur::with_gpu(config, &ctx)?;
    let input = feed(&both.input(), MemorySpace::Cpu);
    let output = drain(&both.output(), MemorySpace::Cpu);
    input.write(frame);
    step(&mut both, 0)?;
    assert_eq!(pixels(&ctx, &output.recv().unwrap()), expected);
    assert!(both.gpu_pool().is_none(), "no GPU work for CPU frames");
    Ok(())
}

#[test]
fn gpu_only_and_on_demand_blurs_declare_their_memory_and_open_the_gpu_only_for_gpu_work()
-> TestResult {
    let Some(ctx) = GpuContext::for_tests()? else {
        return Ok(());
    };
    let config = BlurConfig {
        sigma: 1.5,
        radius: None,
    };
    let only = Blur::with_gpu_memory(config, MemoryCaps::GPU, &ctx)?;
    assert_eq!(only.input().erased().caps(), MemoryCaps::GPU);
    assert_eq!(only.output().erased().caps(), MemoryCaps::GPU);

    let opened = Arc::new(AtomicUsize::new(0));
    let on_demand = |memory| {
        let (ctx, opened) = (ctx.clone(), Arc::clone(&opened));
        Blur::with_gpu_on_demand(config, memory, move || {
            opened.fetch_add(1, Ordering::Relaxed);
            Ok(ctx.clone())
        })
    };
    let frame = noise(31, 17, 9, PixelFormat::Rgba8, AlphaMode::Straight);
    let mut cpu = Blur::new(config)?;
    let cpu_in = feed(&cpu.input(), MemorySpace::Cpu);
    let cpu_out = drain(&cpu.output(), MemorySpace::Cpu);
    cpu_in.write(frame.clone());
    step(&mut cpu, 0)?;
    let expected = pixels(&ctx, &cpu_out.recv().unwrap());

    // Host frames through a `[cpu, gpu]` blur: the GPU is never opened.
    let mut lazy = on_demand(MemoryCaps::CPU_GPU)?;
    let input = feed(&lazy.input(), MemorySpace::Cpu);
    let output = drain(&lazy.output(), MemorySpace::Cpu);
    lazy.on_start(&StartContext::new("lazy", &clock_info()))
        .map_err(|e| e.to_string())?;
    input.write(frame.clone());
    step(&mut lazy, 0)?;
    assert_eq!(pixels(&ctx, &output.recv().unwrap()), expected);
    assert_eq!(
        opened.load(Ordering::Relaxed),
        0,
        "a CPU blur opened the GPU"
    );

    // GPU memory negotiated: opened once, at start, and the GPU kernel runs.
    let mut gpu = on_demand(MemoryCaps::GPU)?;
    let input = feed(&gpu.input(), MemorySpace::Cpu);
    let output = drain(&gpu.output(), MemorySpace::Gpu);
    gpu.on_start(&StartContext::new("gpu", &clock_info()))
        .map_err(|e| e.to_string())?;
    assert_eq!(opened.load(Ordering::Relaxed), 1, "opened at start");
    for n in 0..3 {
        input.write(frame.clone());
        step(&mut gpu, n)?;
        let got = output.recv().unwrap();
        assert_eq!(got.memory(), MemorySpace::Gpu);
        assert!(max_diff(&expected, &pixels(&ctx, &got)) <= 1);
    }
    assert_eq!(opened.load(Ordering::Relaxed), 1, "opened once");

    // An opener that fails is an error from the handler, not a panic.
    let mut broken = Blur::with_gpu_on_demand(config, MemoryCaps::GPU, || {
        Err(streamlib_gpu::GpuError::NoAdapter {
            backends: "test".to_owned(),
            filter: "none".to_owned(),
            seen: "none".to_owned(),
        })
    })?;
    let _input = feed(&broken.input(), MemorySpace::Gpu);
    let _output = drain(&broken.output(), MemorySpace::Gpu);
    assert!(
        broken
            .on_start(&StartContext::new("broken", &clock_info()))
            .is_err()
    );
    Ok(())
}

#[test]
fn gpu_blur_of_a_flat_frame_is_the_same_flat_frame() -> TestResult {
    let Some(ctx) = GpuContext::for_tests()? else {
        return Ok(());
    };
    let config = BlurConfig {
        sigma: 3.0,
        radius: None,
    };
    let mut blur = Blur::with_gpu(config, &ctx)?;
    let input = feed(&blur.input(), MemorySpace::Gpu);
    let output = drain(&blur.output(), MemorySpace::Gpu);
    let layout = FrameLayout::new(40, 23, PixelFormat::Rgba8)?;
    let data: Vec<u8> = [200u8, 17, 99, 255]
        .into_iter()
        .cycle()
        .take(layout.buffer_len())
        .collect();
    let flat = VideoFrame::cpu(layout, PooledBuf::from_vec(data.clone()))?;
    let mut uploader = FrameUploader::new("test-upload", 1, 2);
    input.write(upload(&ctx, &mut uploader, &flat));
    step(&mut blur, 0)?;
    assert_eq!(pixels(&ctx, &output.recv().unwrap()), data);
    Ok(())
}

#[test]
fn gpu_blur_pool_creates_nothing_after_warm_up() -> TestResult {
    let Some(ctx) = GpuContext::for_tests()? else {
        return Ok(());
    };
    let mut blur = Blur::with_gpu(BlurConfig::default(), &ctx)?;
    let input = feed(&blur.input(), MemorySpace::Gpu);
    let output = drain(&blur.output(), MemorySpace::Gpu);
    let mut uploader = FrameUploader::new("test-upload", 2, 4);
    let frame = upload(
        &ctx,
        &mut uploader,
        &noise(32, 16, 1, PixelFormat::Rgba8, AlphaMode::Straight),
    );
    let mut held = Vec::new();
    let mut run = |n: u64, blur: &mut Blur| -> TestResult {
        input.write(frame.clone());
        step(blur, n)?;
        // A downstream that holds the last two frames, like a display and a ring slot.
        held.extend(std::iter::from_fn(|| output.recv()));
        if held.len() > 2 {
            held.remove(0);
        }
        Ok(())
    };
    for n in 0..5 {
        run(n, &mut blur)?;
    }
    let made = blur.gpu_pool().unwrap().textures_created();
    for n in 5..40 {
        run(n, &mut blur)?;
    }
    let pool = blur.gpu_pool().unwrap();
    assert_eq!(pool.textures_created(), made);
    assert_eq!(pool.grown(), 0);
    assert_eq!(blur.frames_skipped(), 0);
    Ok(())
}

#[test]
fn gpu_blur_settings_are_checked_by_the_cpu_kernel() -> TestResult {
    let Some(ctx) = GpuContext::for_tests()? else {
        return Ok(());
    };
    for (sigma, radius) in [(0.0, None), (f32::NAN, None), (30.0, None), (2.0, Some(65))] {
        let err = Blur::with_gpu(BlurConfig { sigma, radius }, &ctx).unwrap_err();
        assert!(
            matches!(
                err,
                VideoError::InvalidSigma { .. } | VideoError::InvalidRadius { .. }
            ),
            "{err}"
        );
    }
    // set_config re-derives the weights, and the GPU kernel follows them.
    let mut blur = Blur::with_gpu(BlurConfig::default(), &ctx)?;
    let mut cpu = Blur::new(BlurConfig::default())?;
    let (gpu_in, gpu_out) = (
        feed(&blur.input(), MemorySpace::Gpu),
        drain(&blur.output(), MemorySpace::Gpu),
    );
    let (cpu_in, cpu_out) = (
        feed(&cpu.input(), MemorySpace::Cpu),
        drain(&cpu.output(), MemorySpace::Cpu),
    );
    let sharper = BlurConfig {
        sigma: 0.7,
        radius: Some(2),
    };
    blur.set_config(sharper)?;
    cpu.set_config(sharper)?;
    let frame = noise(29, 13, 5, PixelFormat::Bgra8, AlphaMode::Straight);
    let mut uploader = FrameUploader::new("test-upload", 1, 2);
    gpu_in.write(upload(&ctx, &mut uploader, &frame));
    cpu_in.write(frame);
    step(&mut blur, 0)?;
    step(&mut cpu, 0)?;
    let (g, c) = (gpu_out.recv().unwrap(), cpu_out.recv().unwrap());
    assert!(max_diff(&pixels(&ctx, &c), &pixels(&ctx, &g)) <= 1);
    Ok(())
}

/// Three layers: straight RGBA partly off the left edge, premultiplied BGRA on top, a
/// straight layer partly off the top at half opacity; z-order different from index order.
fn layered(config: CompositorConfig, compositor: &mut Compositor) {
    let layers = [
        LayerConfig {
            x: -5,
            y: 3,
            opacity: 0.8,
            z: 0,
            visible: true,
        },
        LayerConfig {
            x: 40,
            y: 20,
            opacity: 1.0,
            z: 2,
            visible: true,
        },
        LayerConfig {
            x: config.width as i32 - 30,
            y: -10,
            opacity: 0.5,
            z: 1,
            visible: true,
        },
    ];
    for (i, layer) in layers.into_iter().enumerate() {
        compositor.set_layer(i, layer).unwrap();
    }
}

fn layer_frames(seed: u32) -> [VideoFrame; 3] {
    [
        noise(60, 40, seed, PixelFormat::Rgba8, AlphaMode::Straight),
        noise(
            45,
            33,
            seed + 1,
            PixelFormat::Bgra8,
            AlphaMode::Premultiplied,
        ),
        noise(50, 30, seed + 2, PixelFormat::Rgba8, AlphaMode::Straight),
    ]
}

#[test]
fn gpu_compositing_equals_the_cpu_compositor() -> TestResult {
    let Some(ctx) = GpuContext::for_tests()? else {
        return Ok(());
    };
    for background in [[10, 20, 30, 128], [0, 0, 0, 255], [0, 0, 0, 0]] {
        let config = CompositorConfig {
            width: 97,
            height: 61,
            layers: 3,
            background,
            missing: MissingLayer::ReuseLast,
        };
        let mut cpu = Compositor::new(config)?;
        let mut gpu = Compositor::with_gpu(config, &ctx)?;
        layered(config, &mut cpu);
        layered(config, &mut gpu);
        let cpu_feeds: Vec<_> = (0..3)
            .map(|i| feed(&cpu.layer_input(i).unwrap(), MemorySpace::Cpu))
            .collect();
        // Layers 0 and 1 arrive on the GPU, layer 2 on the CPU (uploaded by the compositor).
        let spaces = [MemorySpace::Gpu, MemorySpace::Gpu, MemorySpace::Cpu];
        let gpu_feeds: Vec<_> = (0..3)
            .map(|i| feed(&gpu.layer_input(i).unwrap(), spaces[i]))
            .collect();
        let cpu_out = drain(&cpu.output(), MemorySpace::Cpu);
        let gpu_out = drain(&gpu.output(), MemorySpace::Gpu);
        let mut uploaders: Vec<FrameUploader> =
            (0..3).map(|_| FrameUploader::new("layer", 2, 4)).collect();
        for n in 0..2 {
            for (i, frame) in layer_frames(n * 10 + 1).into_iter().enumerate() {
                cpu_feeds[i].write(frame.clone());
                let frame = if spaces[i] == MemorySpace::Gpu {
                    upload(&ctx, &mut uploaders[i], &frame)
                } else {
                    frame
                };
                gpu_feeds[i].write(frame);
            }
            step(&mut cpu, u64::from(n))?;
            step(&mut gpu, u64::from(n))?;
            let (c, g) = (cpu_out.recv().unwrap(), gpu_out.recv().unwrap());
            assert_eq!(g.memory(), MemorySpace::Gpu);
            assert_eq!(g.alpha(), AlphaMode::Straight);
            let diff = max_diff(&pixels(&ctx, &c), &pixels(&ctx, &g));
            eprintln!("composite 97x61 over {background:?}: max diff {diff}");
            assert!(diff <= 1, "background {background:?}: max diff {diff}");
        }
        // A CPU consumer gets the GPU result read back.
        let _ = gpu_out;
    }
    Ok(())
}

#[test]
fn gpu_compositor_reads_back_for_a_cpu_output() -> TestResult {
    let Some(ctx) = GpuContext::for_tests()? else {
        return Ok(());
    };
    let config = CompositorConfig {
        width: 64,
        height: 48,
        layers: 3,
        background: [5, 6, 7, 200],
        missing: MissingLayer::ReuseLast,
    };
    let mut cpu = Compositor::new(config)?;
    let mut gpu = Compositor::with_gpu(config, &ctx)?;
    layered(config, &mut cpu);
    layered(config, &mut gpu);
    let mut uploader = FrameUploader::new("layer", 2, 4);
    let frames = layer_frames(7);
    let cpu_feeds: Vec<_> = (0..3)
        .map(|i| feed(&cpu.layer_input(i).unwrap(), MemorySpace::Cpu))
        .collect();
    // Only layer 1 is on the GPU; the output is CPU: still the GPU path, read back.
    let gpu_feeds: Vec<_> = (0..3)
        .map(|i| {
            let space = if i == 1 {
                MemorySpace::Gpu
            } else {
                MemorySpace::Cpu
            };
            feed(&gpu.layer_input(i).unwrap(), space)
        })
        .collect();
    let cpu_out = drain(&cpu.output(), MemorySpace::Cpu);
    let gpu_out = drain(&gpu.output(), MemorySpace::Cpu);
    for (i, frame) in frames.iter().enumerate() {
        cpu_feeds[i].write(frame.clone());
        gpu_feeds[i].write(if i == 1 {
            upload(&ctx, &mut uploader, frame)
        } else {
            frame.clone()
        });
    }
    step(&mut cpu, 0)?;
    step(&mut gpu, 0)?;
    let (c, g) = (cpu_out.recv().unwrap(), gpu_out.recv().unwrap());
    assert_eq!(g.memory(), MemorySpace::Cpu);
    assert!(gpu.gpu_pool().is_some(), "it composited on the GPU");
    assert!(max_diff(&pixels(&ctx, &c), &pixels(&ctx, &g)) <= 1);
    Ok(())
}
