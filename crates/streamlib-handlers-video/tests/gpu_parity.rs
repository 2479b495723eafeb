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

use streamlib_buffers::PooledBuf;
use streamlib_clock::{ClockSourceId, Rational, TimedTick};
use streamlib_gpu::{FrameUploader, GpuContext, read_frame};
use streamlib_handlers_video::{
    Blur, BlurConfig, Compositor, CompositorConfig, LayerConfig, MissingLayer,
};
use streamlib_ports::{
    AlphaMode, DeliveryMode, FrameLayout, InputPort, InputRef, MemoryCaps, MemorySpace, OutputPort,
    OutputRef, PixelFormat, ProcessContext, StreamHandler, VideoFrame,
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
