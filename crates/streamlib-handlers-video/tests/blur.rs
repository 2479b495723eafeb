//! The Gaussian blur: within ±1 of an exact `f64` blur, exact where it should be, clear errors,
//! same-tick delivery through a runtime, and no allocation per frame.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::any::Any;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use streamlib_buffers::PooledBuf;
use streamlib_clock::{ClockSourceId, ManualClock, Rational, TimedTick};
use streamlib_handlers_video::{
    Blur, BlurConfig, BlurScratch, GaussianKernel, VideoError, blur_frame,
};
use streamlib_ports::{
    AlphaMode, FrameLayout, FramePool, GpuFrame, GpuResource, HandlerError, InputPort, MemoryCaps,
    OutputPort, PixelFormat, Ports, ProcessContext, StreamHandler, VideoFrame,
};
use streamlib_runtime::{Stream, StreamRuntime, StreamState};

// ---------------------------------------------------------------------------------------------
// Allocation counting: only threads that opt in are counted.

mod common;

#[global_allocator]
static GLOBAL: common::Counting = common::Counting;

/// The allocation tests share the counter, so they take turns.
static COUNTING_TESTS: Mutex<()> = Mutex::new(());

// ---------------------------------------------------------------------------------------------
// Helpers.

/// The exact blur: same normalised weights, clamped edges, `f64` throughout, one rounding.
fn reference(
    src: &[u8],
    width: usize,
    height: usize,
    stride: usize,
    channels: usize,
    kernel: &GaussianKernel,
) -> Vec<u8> {
    let weights = kernel.weights();
    let r = kernel.radius() as i64;
    let row_bytes = width * channels;
    let clamp = |v: i64, n: usize| v.clamp(0, n as i64 - 1) as usize;
    let mut vertical = vec![0.0_f64; height * row_bytes];
    for y in 0..height {
        for x in 0..row_bytes {
            vertical[y * row_bytes + x] = weights
                .iter()
                .enumerate()
                .map(|(k, w)| {
                    w * f64::from(src[clamp(y as i64 + k as i64 - r, height) * stride + x])
                })
                .sum();
        }
    }
    let mut out = vec![0; height * row_bytes];
    for y in 0..height {
        for px in 0..width {
            for c in 0..channels {
                let v: f64 = weights
                    .iter()
                    .enumerate()
                    .map(|(k, w)| {
                        let sx = clamp(px as i64 + k as i64 - r, width);
                        w * vertical[y * row_bytes + sx * channels + c]
                    })
                    .sum();
                out[y * row_bytes + px * channels + c] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

/// Blurs a tight image with `blur_frame`.
fn blur_tight(src: &[u8], width: u32, height: u32, channels: usize, sigma: f32) -> Vec<u8> {
    let kernel = GaussianKernel::new(sigma, None).unwrap();
    let mut dst = vec![0; src.len()];
    let stride = width as usize * channels;
    let mut scratch = BlurScratch::new();
    blur_frame(
        src,
        &mut dst,
        width,
        height,
        stride,
        channels,
        &kernel,
        &mut scratch,
        1,
    );
    dst
}

fn tick(n: u64) -> TimedTick {
    TimedTick {
        timestamp: n * 1_000_000,
        frame_number: n,
        clock_source_id: ClockSourceId::MANUAL,
        fps: Rational::fps(30),
    }
}

fn cpu_frame(layout: FrameLayout, bytes: Vec<u8>) -> VideoFrame {
    VideoFrame::cpu(layout, PooledBuf::from_vec(bytes)).unwrap()
}

/// A blur wired by hand to a source output and a sink input, as a runtime would.
struct Rig {
    blur: Blur,
    source: OutputPort<VideoFrame>,
    sink: InputPort<VideoFrame>,
    ticks: u64,
}

impl Rig {
    fn new(config: BlurConfig) -> Self {
        let blur = Blur::new(config).unwrap();
        let source = OutputPort::new("video", MemoryCaps::CPU);
        let sink = InputPort::new("video", MemoryCaps::CPU);
        source
            .handle()
            .erased()
            .connect_to(&*blur.input().erased())
            .unwrap();
        blur.output()
            .erased()
            .connect_to(&*sink.handle().erased())
            .unwrap();
        Self {
            blur,
            source,
            sink,
            ticks: 0,
        }
    }

    /// Feeds `frame` and runs one `process` with `bands` threads allowed.
    fn push(
        &mut self,
        frame: VideoFrame,
        bands: usize,
    ) -> Result<Option<VideoFrame>, HandlerError> {
        self.source.write(frame);
        self.ticks += 1;
        let mut ctx = ProcessContext::new("blur", tick(self.ticks)).with_concurrency_limit(bands);
        self.blur.process(&mut ctx)?;
        Ok(self.sink.recv())
    }
}

/// A fixed pseudo-random byte stream.
fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Accuracy.

fn case() -> impl Strategy<Value = (u32, u32, usize, usize, f32, Option<u32>, usize, Vec<u8>)> {
    (
        1_u32..64,
        1_u32..64,
        prop_oneof![Just(1_usize), Just(4_usize)],
        0_usize..9,
        0.3_f32..8.0,
        prop_oneof![4 => Just(None), 1 => (1_u32..=64).prop_map(Some)],
        1_usize..=3,
    )
        .prop_flat_map(|(w, h, c, pad, sigma, radius, bands)| {
            let stride = w as usize * c + pad;
            let len = (h as usize - 1) * stride + w as usize * c;
            (
                Just(w),
                Just(h),
                Just(c),
                Just(stride),
                Just(sigma),
                Just(radius),
                Just(bands),
                proptest::collection::vec(any::<u8>(), len),
            )
        })
}

proptest! {
    // 256 cases unless PROPTEST_CASES says otherwise.

    /// Any image, stride, sigma, radius and band count: within ±1 of the exact blur, and the
    /// row padding of the destination is left alone.
    #[test]
    fn within_one_of_the_exact_blur(
        (width, height, channels, stride, sigma, radius, bands, src) in case()
    ) {
        let kernel = GaussianKernel::new(sigma, radius).unwrap();
        let mut dst = vec![0xA5; src.len()];
        let mut scratch = BlurScratch::new();
        blur_frame(&src, &mut dst, width, height, stride, channels, &kernel, &mut scratch, bands);
        let exact = reference(&src, width as usize, height as usize, stride, channels, &kernel);
        let row_bytes = width as usize * channels;
        for y in 0..height as usize {
            let got = &dst[y * stride..y * stride + row_bytes];
            let want = &exact[y * row_bytes..(y + 1) * row_bytes];
            for (x, (&g, &e)) in got.iter().zip(want).enumerate() {
                prop_assert!(
                    g.abs_diff(e) <= 1,
                    "row {y} byte {x}: got {g}, exact {e} (sigma {sigma}, radius {})",
                    kernel.radius()
                );
            }
            let pad_end = ((y + 1) * stride).min(dst.len());
            prop_assert!(dst[y * stride + row_bytes..pad_end].iter().all(|&b| b == 0xA5));
        }
    }
}

#[test]
fn the_largest_radius_stays_within_one() {
    let (width, height, channels) = (150, 140, 4);
    let src = noise(width * height * channels, 7);
    let kernel = GaussianKernel::new(21.0, Some(64)).unwrap();
    let mut dst = vec![0; src.len()];
    let stride = width * channels;
    blur_frame(
        &src,
        &mut dst,
        width as u32,
        height as u32,
        stride,
        channels,
        &kernel,
        &mut BlurScratch::new(),
        2,
    );
    let exact = reference(&src, width, height, stride, channels, &kernel);
    let worst = dst
        .iter()
        .zip(&exact)
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap();
    assert!(worst <= 1, "worst difference {worst}");
}

#[test]
fn bands_do_not_change_the_result() {
    let (width, height, channels) = (97, 61, 4);
    let src = noise(width * height * channels, 3);
    let kernel = GaussianKernel::new(2.0, None).unwrap();
    let stride = width * channels;
    let mut scratch = BlurScratch::new();
    let outputs: Vec<Vec<u8>> = [1, 2, 3, 7, 61, 200]
        .into_iter()
        .map(|bands| {
            let mut dst = vec![0; src.len()];
            blur_frame(
                &src,
                &mut dst,
                width as u32,
                height as u32,
                stride,
                channels,
                &kernel,
                &mut scratch,
                bands,
            );
            dst
        })
        .collect();
    assert!(outputs.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn a_constant_image_stays_constant() {
    for value in [0_u8, 1, 77, 128, 254, 255] {
        for (channels, sigma) in [(1, 0.3_f32), (4, 2.0), (4, 8.0), (1, 21.0)] {
            let src = vec![value; 37 * 23 * channels];
            let out = blur_tight(&src, 37, 23, channels, sigma);
            assert!(
                out.iter().all(|&v| v == value),
                "value {value}, sigma {sigma}"
            );
        }
    }
}

#[test]
fn a_vanishing_sigma_is_the_identity() {
    // σ = 0.01: the centre weight rounds to 1 (capped in fixed point), the side weights to 0.
    for channels in [1, 4] {
        let src = noise(41 * 17 * channels, 5);
        assert_eq!(blur_tight(&src, 41, 17, channels, 0.01), src);
    }
}

#[test]
fn a_bright_pixel_spreads_symmetrically() {
    let n = 21;
    let mut src = vec![0_u8; n * n];
    src[10 * n + 10] = 255;
    let out = blur_tight(&src, n as u32, n as u32, 1, 2.0);
    let at = |x: usize, y: usize| out[y * n + x];
    for y in 0..n {
        for x in 0..n {
            let v = at(x, y);
            assert_eq!(v, at(n - 1 - x, y), "mirror x at ({x}, {y})");
            assert_eq!(v, at(x, n - 1 - y), "mirror y at ({x}, {y})");
            assert_eq!(v, at(y, x), "transpose at ({x}, {y})");
        }
    }
    // 255 * w0² with σ = 2: the peak, falling off with distance, nothing beyond the radius.
    let kernel = GaussianKernel::new(2.0, None).unwrap();
    let w0 = kernel.weights()[6];
    assert_eq!(f64::from(at(10, 10)), (255.0 * w0 * w0).round());
    assert!(at(10, 10) > at(11, 10) && at(11, 10) > at(12, 10));
    assert_eq!(at(3, 10), 0, "7 pixels away is outside the radius");
}

#[test]
fn edges_are_clamped() {
    // Left half 0, right half 255: replicated borders keep the far columns exact, rows agree,
    // and the step blurs symmetrically.
    let (width, height) = (40, 9);
    let src: Vec<u8> = (0..width * height)
        .map(|i| if i % width < width / 2 { 0 } else { 255 })
        .collect();
    let out = blur_tight(&src, width as u32, height as u32, 1, 2.0);
    for y in 0..height {
        let row = &out[y * width..(y + 1) * width];
        assert_eq!(row, &out[..width], "row {y} differs from row 0");
        assert_eq!((row[0], row[width - 1]), (0, 255));
        for x in 0..width / 2 {
            let sum = u16::from(row[x]) + u16::from(row[width - 1 - x]);
            assert!(
                sum.abs_diff(255) <= 1,
                "x {x}: {} + {}",
                row[x],
                row[width - 1 - x]
            );
        }
    }
    // A narrow image (8 wide, radius 6): every output leans on the clamped border.
    let src: Vec<u8> = (0..8 * 3)
        .map(|i| if i % 8 < 4 { 0 } else { 255 })
        .collect();
    let out = blur_tight(&src, 8, 3, 1, 2.0);
    let exact = reference(&src, 8, 3, 8, 1, &GaussianKernel::new(2.0, None).unwrap());
    assert!(
        out.iter().zip(&exact).all(|(a, b)| a.abs_diff(*b) <= 1),
        "{out:?} vs {exact:?}"
    );
    assert!(out[0] > 0 && out[0] < 64 && out[7] > 191);
}

// ---------------------------------------------------------------------------------------------
// Configuration errors.

#[test]
fn invalid_sigmas_are_refused() {
    for sigma in [
        0.0_f32,
        -0.0,
        -1.0,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ] {
        let err = GaussianKernel::new(sigma, None).unwrap_err();
        assert!(
            matches!(err, VideoError::InvalidSigma { .. }),
            "{sigma}: {err:?}"
        );
        assert!(err.to_string().starts_with("blur:"), "{err}");
        let err = Blur::new(BlurConfig {
            sigma,
            radius: None,
        })
        .unwrap_err();
        assert!(
            matches!(err, VideoError::InvalidSigma { .. }),
            "{sigma}: {err:?}"
        );
    }
}

#[test]
fn invalid_radii_are_refused() {
    for (sigma, radius) in [
        (2.0, Some(0)),
        (2.0, Some(65)),
        (2.0, Some(u32::MAX)),
        (30.0, None),
    ] {
        let err = Blur::new(BlurConfig { sigma, radius }).unwrap_err();
        assert!(
            matches!(err, VideoError::InvalidRadius { max: 64, .. }),
            "{sigma} {radius:?}: {err:?}"
        );
        assert!(err.to_string().contains("blur: radius"), "{err}");
    }
    let kernel = GaussianKernel::new(2.0, None).unwrap();
    assert_eq!(
        (kernel.radius(), kernel.weights().len(), kernel.sigma()),
        (6, 13, 2.0)
    );
    assert_eq!(GaussianKernel::new(1.0, Some(64)).unwrap().radius(), 64);
    assert_eq!(
        BlurConfig::default(),
        BlurConfig {
            sigma: 2.0,
            radius: None
        }
    );
}

// ---------------------------------------------------------------------------------------------
// The handler, driven by hand.

#[test]
fn the_handler_blurs_and_keeps_timing_alpha_and_size() {
    let mut rig = Rig::new(BlurConfig::default());
    for (format, channels) in [
        (PixelFormat::Rgba8, 4),
        (PixelFormat::Bgra8, 4),
        (PixelFormat::Gray8, 1),
    ] {
        let (width, height) = (45_u32, 30_u32);
        // A padded input: the output is tight.
        let layout = FrameLayout::new(width, height, format)
            .unwrap()
            .with_stride(width * channels as u32 + 12)
            .unwrap();
        let src = noise(layout.buffer_len(), 11);
        let frame = cpu_frame(layout, src.clone())
            .with_timing(123_456, 42, ClockSourceId(9))
            .with_alpha(AlphaMode::Premultiplied);
        let out = rig.push(frame, 2).unwrap().expect("a blurred frame");
        assert_eq!(
            out.layout(),
            FrameLayout::new(width, height, format).unwrap()
        );
        assert_eq!(
            (
                out.timestamp_ns(),
                out.frame_number(),
                out.clock_source_id(),
                out.alpha()
            ),
            (123_456, 42, ClockSourceId(9), AlphaMode::Premultiplied)
        );
        let kernel = GaussianKernel::new(2.0, None).unwrap();
        let mut want = vec![0; out.cpu_bytes().unwrap().len()];
        let row_bytes = width as usize * channels;
        // blur_frame on the same padded input, compared row by row.
        let mut padded = vec![0; src.len()];
        blur_frame(
            &src,
            &mut padded,
            width,
            height,
            layout.stride() as usize,
            channels,
            &kernel,
            &mut BlurScratch::new(),
            1,
        );
        for y in 0..height as usize {
            let s = y * layout.stride() as usize;
            want[y * row_bytes..(y + 1) * row_bytes].copy_from_slice(&padded[s..s + row_bytes]);
        }
        assert_eq!(out.cpu_bytes().unwrap(), &want[..], "{format}");
    }
}

#[test]
fn i420_planes_are_blurred_at_their_own_resolution() {
    let mut rig = Rig::new(BlurConfig::default());
    // Odd sizes and a padded luma stride: chroma planes are ceil(w/2) × ceil(h/2) with stride
    // ceil(stride/2), and each must come out as a Gray8 blur of that plane alone.
    let (width, height, stride) = (37_u32, 23_u32, 48_u32);
    let layout = FrameLayout::new(width, height, PixelFormat::I420)
        .unwrap()
        .with_stride(stride)
        .unwrap();
    let src = noise(layout.buffer_len(), 5);
    let out = rig
        .push(cpu_frame(layout, src.clone()), 2)
        .unwrap()
        .expect("a blurred frame");
    assert_eq!(
        out.layout(),
        FrameLayout::new(width, height, PixelFormat::I420).unwrap()
    );
    let plane = |bytes: &[u8], offset: usize, s: usize, w: u32, h: u32| -> Vec<u8> {
        (0..h as usize)
            .flat_map(|y| bytes[offset + y * s..offset + y * s + w as usize].to_vec())
            .collect()
    };
    let (cw, ch, cs) = (
        width.div_ceil(2),
        height.div_ceil(2),
        stride.div_ceil(2) as usize,
    );
    let luma = stride as usize * height as usize;
    let src_planes = [
        plane(&src, 0, stride as usize, width, height),
        plane(&src, luma, cs, cw, ch),
        plane(&src, luma + cs * ch as usize, cs, cw, ch),
    ];
    let bytes = out.cpu_bytes().unwrap();
    let (tw, tcs) = (width as usize, width.div_ceil(2) as usize);
    let tight_luma = tw * height as usize;
    let out_planes = [
        plane(bytes, 0, tw, width, height),
        plane(bytes, tight_luma, tcs, cw, ch),
        plane(bytes, tight_luma + tcs * ch as usize, tcs, cw, ch),
    ];
    for (i, (s, o)) in src_planes.iter().zip(&out_planes).enumerate() {
        let (w, h) = if i == 0 { (width, height) } else { (cw, ch) };
        assert_eq!(o, &blur_tight(s, w, h, 1, 2.0), "plane {i}");
    }
}

#[test]
fn the_pool_follows_the_input_size() {
    let mut rig = Rig::new(BlurConfig {
        sigma: 1.0,
        radius: None,
    });
    for (width, height) in [(16_u32, 8_u32), (16, 8), (33, 5), (33, 5), (16, 8)] {
        let layout = FrameLayout::new(width, height, PixelFormat::Rgba8).unwrap();
        let src = noise(layout.buffer_len(), width);
        let out = rig
            .push(cpu_frame(layout, src.clone()), 1)
            .unwrap()
            .unwrap();
        assert_eq!(out.layout(), layout);
        assert_eq!(
            out.cpu_bytes().unwrap(),
            &blur_tight(&src, width, height, 4, 1.0)[..]
        );
    }
    assert_eq!(rig.blur.frames_skipped(), 0);
}

#[test]
fn nothing_in_nothing_out() {
    let mut rig = Rig::new(BlurConfig::default());
    let mut ctx = ProcessContext::new("blur", tick(1));
    rig.blur.process(&mut ctx).unwrap();
    assert!(rig.sink.recv().is_none());
    assert_eq!(rig.blur.ports().inputs()[0].name(), "video");
    assert_eq!(rig.blur.ports().outputs()[0].name(), "video");
    assert_eq!(rig.blur.ports().outputs()[0].caps(), MemoryCaps::CPU);
    assert_eq!(rig.blur.type_name(), "Blur");
}

#[test]
fn an_nv12_frame_is_refused_by_name() {
    let mut rig = Rig::new(BlurConfig::default());
    let layout = FrameLayout::new(16, 16, PixelFormat::Nv12).unwrap();
    let err = rig
        .push(cpu_frame(layout, vec![0; layout.buffer_len()]), 1)
        .unwrap_err();
    let video = err
        .as_error()
        .downcast_ref::<VideoError>()
        .expect("a VideoError");
    assert!(matches!(
        video,
        VideoError::UnsupportedFormat {
            handler: "blur",
            format: PixelFormat::Nv12,
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        "blur: nv12 frames are not supported (supported: rgba8, bgra8, gray8, i420)"
    );
    assert!(rig.sink.recv().is_none());
}

#[derive(Debug)]
struct FakeTexture;

impl GpuResource for FakeTexture {
    fn device_label(&self) -> &str {
        "fake"
    }
    fn byte_size(&self) -> usize {
        0
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[test]
fn a_gpu_frame_is_refused_by_name() {
    let mut rig = Rig::new(BlurConfig::default());
    let layout = FrameLayout::new(16, 16, PixelFormat::Rgba8).unwrap();
    let frame = VideoFrame::gpu(layout, GpuFrame::new(Arc::new(FakeTexture)));
    let err = rig.push(frame, 1).unwrap_err();
    assert!(matches!(
        err.as_error().downcast_ref::<VideoError>(),
        Some(VideoError::NotInCpuMemory { handler: "blur" })
    ));
    assert!(
        err.to_string().starts_with("blur: received a GPU frame"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Through a runtime.

/// Writes one pooled frame per tick, its content depending on the frame number.
struct PatternSource {
    out: OutputPort<VideoFrame>,
    pool: FramePool,
}

impl PatternSource {
    fn new(width: u32, height: u32, format: PixelFormat) -> Self {
        let layout = FrameLayout::new(width, height, format).unwrap();
        Self {
            out: OutputPort::new("video", MemoryCaps::CPU),
            pool: FramePool::new("source", layout, 8, 8).unwrap(),
        }
    }

    fn pattern(len: usize, frame: u64) -> Vec<u8> {
        noise(len, frame as u32 + 1)
    }
}

impl StreamHandler for PatternSource {
    fn ports(&self) -> Ports {
        Ports::new().output(&self.out)
    }
    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        let mut buf = self.pool.acquire()?;
        let pattern = Self::pattern(buf.len(), ctx.tick().frame_number);
        buf.copy_from_slice(&pattern);
        self.out.write(self.pool.frame(buf).with_tick(ctx.tick()));
        Ok(())
    }
}

/// What a recorder saw: (tick, frame number, pixels) for every frame received.
type Seen = Arc<Mutex<Vec<(u64, u64, Vec<u8>)>>>;

/// Records what arrives.
struct Recorder {
    input: InputPort<VideoFrame>,
    seen: Seen,
}

impl StreamHandler for Recorder {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input)
    }
    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        if let Some(frame) = self.input.recv() {
            let bytes = frame.cpu_bytes().unwrap_or_default().to_vec();
            self.seen
                .lock()
                .unwrap()
                .push((ctx.tick().frame_number, frame.frame_number(), bytes));
        }
        Ok(())
    }
}

fn recorder() -> (Recorder, Seen) {
    let seen = Seen::default();
    let recorder = Recorder {
        input: InputPort::new("video", MemoryCaps::CPU),
        seen: Arc::clone(&seen),
    };
    (recorder, seen)
}

/// source → blur (2 threads) → sink, plus source → direct (a branch without the blur).
fn pipeline(
    format: PixelFormat,
) -> (
    StreamRuntime,
    streamlib_clock::ManualClockHandle,
    Seen,
    Seen,
) {
    let (clock, ticks) = ManualClock::new(Rational::fps(30));
    let mut rt = StreamRuntime::new(clock);
    let source = PatternSource::new(64, 36, format);
    let blur = Blur::new(BlurConfig::default()).unwrap();
    let (sink, blurred) = recorder();
    let (direct, unblurred) = recorder();
    let so = source.out.handle();
    let (bi, bo) = (blur.input(), blur.output());
    let (si, di) = (sink.input.handle(), direct.input.handle());
    rt.add_stream(Stream::new("source", source)).unwrap();
    rt.add_stream(Stream::new("blur", blur).concurrency_limit(2))
        .unwrap();
    rt.add_stream(Stream::new("sink", sink)).unwrap();
    rt.add_stream(Stream::new("direct", direct)).unwrap();
    rt.connect(&so, &bi).unwrap();
    rt.connect(&bo, &si).unwrap();
    rt.connect(&so, &di).unwrap();
    (rt, ticks, blurred, unblurred)
}

fn pump(rt: &StreamRuntime, ticks: &streamlib_clock::ManualClockHandle, n: u64) {
    for k in 1..=n {
        ticks.tick();
        assert!(
            rt.wait_for_ticks(k, Duration::from_secs(10)),
            "tick {k} did not complete"
        );
    }
}

#[test]
fn frames_arrive_blurred_on_the_same_tick() {
    let (mut rt, ticks, seen, _) = pipeline(PixelFormat::Rgba8);
    rt.start().unwrap();
    pump(&rt, &ticks, 10);
    let stats = rt.stop().unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 10);
    for (tick, frame, pixels) in seen.iter() {
        assert_eq!(tick, frame, "frame {frame} arrived on tick {tick}");
        let src = PatternSource::pattern(64 * 36 * 4, *frame);
        assert_eq!(pixels, &blur_tight(&src, 64, 36, 4, 2.0), "frame {frame}");
    }
    let blur = stats.stream("blur").unwrap();
    assert_eq!((blur.ticks, blur.errors, blur.total_drops()), (10, 0, 0));
}

#[test]
fn an_error_in_process_is_contained() {
    let (mut rt, ticks, blurred, unblurred) = pipeline(PixelFormat::Nv12);
    rt.start().unwrap();
    pump(&rt, &ticks, 3);
    let stats = rt.stop().unwrap();
    let blur = stats.stream("blur").unwrap();
    assert_eq!(blur.state, StreamState::Failed);
    assert_eq!((blur.errors, blur.panics), (1, 0));
    assert!(blurred.lock().unwrap().is_empty());
    assert_eq!(
        unblurred.lock().unwrap().len(),
        3,
        "the other branch kept running"
    );
}

// ---------------------------------------------------------------------------------------------
// Allocation.

/// Drives `frames` frames through `process` and returns the allocations counted meanwhile
/// (after a warm-up of 8 frames), with `run` wrapping each `process` call.
fn allocations(frames: u64, bands: usize, run: &dyn Fn(&mut (dyn FnMut() + Send))) -> u64 {
    let mut rig = Rig::new(BlurConfig::default());
    let layout = FrameLayout::new(96, 54, PixelFormat::Rgba8).unwrap();
    let pool = FramePool::new("source", layout, 4, 4).unwrap();
    let mut counted = 0;
    for n in 0..8 + frames {
        let frame = pool.frame(pool.acquire().unwrap()).with_tick(&tick(n));
        common::set_counted(n >= 8);
        let before = common::allocations();
        let mut step = || {
            let out = rig.push(frame.clone(), bands).unwrap();
            assert!(out.is_some());
        };
        run(&mut step);
        if n >= 8 {
            counted += common::allocations() - before;
        }
        common::set_counted(false);
    }
    assert_eq!(rig.blur.frames_skipped(), 0);
    counted
}

#[test]
fn steady_state_allocates_nothing_on_one_thread() {
    let _turn = COUNTING_TESTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let counted = allocations(200, 1, &|step| step());
    assert_eq!(counted, 0, "allocations over 200 frames");
}

/// With bands, the work goes through rayon. Its pool threads are counted too (a pool of our
/// own, so other tests' rayon work is not), and `process` is entered from outside the pool as
/// a dispatcher thread would. Rayon's job injector (crossbeam's `Injector`) allocates one
/// 63-slot block per 63 jobs injected from outside the pool, so a frame costs 1/63 of an
/// allocation on average; nothing else allocates.
#[test]
fn steady_state_with_bands_allocates_only_rayons_injector_blocks() {
    let _turn = COUNTING_TESTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .start_handler(|_| common::set_counted(true))
        .build()
        .unwrap();
    let frames = 630;
    let counted = allocations(frames, 2, &|step| pool.install(step));
    assert!(
        counted <= frames / 63 + 1,
        "{counted} allocations over {frames} frames"
    );
}
