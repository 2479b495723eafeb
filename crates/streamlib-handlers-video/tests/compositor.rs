//! The compositor: exact blending in both alpha modes against an independent implementation of
//! the documented formula, clipping, z-order, missing-layer policies and live controls through
//! a real runtime, every configuration error, and an allocation-free steady state.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use streamlib_buffers::PooledBuf;
use streamlib_clock::{ClockSourceId, ManualClock, ManualClockHandle, Rational, TimedTick};
use streamlib_handlers_video::{
    Compositor, CompositorConfig, LayerConfig, MissingLayer, VideoError, composite_over,
    unpremultiply,
};
use streamlib_ports::{
    AlphaMode, FrameLayout, GpuFrame, GpuResource, HandlerError, InputPort, MemoryCaps, OutputPort,
    PixelFormat, Ports, ProcessContext, StreamHandler, VideoFrame,
};
use streamlib_runtime::{Stream, StreamRuntime};

// ---------------------------------------------------------------------------------------------
// Allocation counting: only on threads that opted in (the test's own, and rayon's workers
// while the allocation test runs), so tests running in parallel do not disturb it.

mod common;

#[global_allocator]
static GLOBAL: common::Counting = common::Counting;

// ---------------------------------------------------------------------------------------------
// The documented formula, written independently of the crate (plain u32 arithmetic, whole
// images, no fast paths).

/// `v / 255` rounded to nearest.
fn div255(v: u32) -> u32 {
    (v + 127) / 255
}

/// A test image: pixels in the frame's own channel order, rows padded by `pad` bytes.
#[derive(Debug, Clone)]
struct Img {
    w: u32,
    h: u32,
    px: Vec<[u8; 4]>,
    bgra: bool,
    premultiplied: bool,
    pad: u32,
}

impl Img {
    fn solid(w: u32, h: u32, p: [u8; 4]) -> Self {
        Self {
            w,
            h,
            px: vec![p; (w * h) as usize],
            bgra: false,
            premultiplied: false,
            pad: 0,
        }
    }

    fn premultiplied(mut self) -> Self {
        self.premultiplied = true;
        self
    }

    fn frame(&self) -> VideoFrame {
        let format = if self.bgra {
            PixelFormat::Bgra8
        } else {
            PixelFormat::Rgba8
        };
        let layout = FrameLayout::new(self.w, self.h, format)
            .unwrap()
            .with_stride(self.w * 4 + self.pad)
            .unwrap();
        let mut data = Vec::new();
        for row in self.px.chunks(self.w as usize) {
            data.extend(row.iter().flatten());
            data.extend(std::iter::repeat_n(0xAB, self.pad as usize));
        }
        let mode = if self.premultiplied {
            AlphaMode::Premultiplied
        } else {
            AlphaMode::Straight
        };
        VideoFrame::cpu(layout, PooledBuf::from_vec(data))
            .unwrap()
            .with_alpha(mode)
    }

    /// Pixel (x, y) as R, G, B, A.
    fn rgba(&self, x: u32, y: u32) -> [u32; 4] {
        let p = self.px[(y * self.w + x) as usize].map(u32::from);
        if self.bgra {
            [p[2], p[1], p[0], p[3]]
        } else {
            p
        }
    }
}

/// Source-over of `img` at (x, y) and opacity byte `o` onto a premultiplied canvas.
fn reference_over(canvas: &mut [[u32; 4]], cw: u32, ch: u32, img: &Img, x: i32, y: i32, o: u32) {
    for ly in 0..img.h {
        for lx in 0..img.w {
            let (cx, cy) = (i64::from(x) + i64::from(lx), i64::from(y) + i64::from(ly));
            if cx < 0 || cy < 0 || cx >= i64::from(cw) || cy >= i64::from(ch) {
                continue;
            }
            let s = img.rgba(lx, ly);
            let d = &mut canvas[(cy * i64::from(cw) + cx) as usize];
            let a = div255(s[3] * o);
            if img.premultiplied {
                for k in 0..4 {
                    d[k] = div255(s[k] * o + d[k] * (255 - a)).min(255);
                }
            } else {
                for k in 0..3 {
                    d[k] = div255(s[k] * a + d[k] * (255 - a));
                }
                d[3] = div255(255 * a + d[3] * (255 - a));
            }
        }
    }
}

fn opacity_byte(opacity: f32) -> u32 {
    (opacity * 255.0).round() as u32
}

fn unpremultiplied(p: [u32; 4]) -> [u8; 4] {
    let a = p[3];
    // 0 where a = 0.
    let c = |c: u32| {
        (c * 255 + a / 2)
            .checked_div(a)
            .map_or(0, |v| v.min(255) as u8)
    };
    [c(p[0]), c(p[1]), c(p[2]), a as u8]
}

/// The whole compositor: background, layers in (z, index) order, straight output. A `None`
/// layer contributes nothing.
fn reference_composite(
    w: u32,
    h: u32,
    background: [u8; 4],
    layers: &[(Option<&Img>, LayerConfig)],
) -> Vec<u8> {
    let bg = background.map(u32::from);
    let a = bg[3];
    let bg = [div255(bg[0] * a), div255(bg[1] * a), div255(bg[2] * a), a];
    let mut canvas = vec![bg; (w * h) as usize];
    let mut order: Vec<usize> = (0..layers.len()).collect();
    order.sort_by_key(|&i| (layers[i].1.z, i));
    for i in order {
        let (img, cfg) = &layers[i];
        if let (Some(img), true) = (img, cfg.visible) {
            let o = opacity_byte(cfg.opacity);
            reference_over(&mut canvas, w, h, img, cfg.x, cfg.y, o);
        }
    }
    canvas.into_iter().flat_map(unpremultiplied).collect()
}

// ---------------------------------------------------------------------------------------------
// Driving the handler by hand.

fn tick(n: u64) -> TimedTick {
    TimedTick {
        timestamp: n * 1_000_000,
        frame_number: n,
        clock_source_id: ClockSourceId::MANUAL,
        fps: Rational::fps(30),
    }
}

struct Rig {
    compositor: Compositor,
    feeds: Vec<OutputPort<VideoFrame>>,
    sink: InputPort<VideoFrame>,
    ticks: u64,
}

impl Rig {
    fn new(config: CompositorConfig) -> Self {
        let compositor = Compositor::new(config).unwrap();
        let sink = InputPort::new("video", MemoryCaps::CPU);
        compositor
            .output()
            .erased()
            .connect_to(&*sink.handle().erased())
            .unwrap();
        let feeds = (0..config.layers)
            .map(|i| {
                let out = OutputPort::new("video", MemoryCaps::CPU);
                out.handle()
                    .erased()
                    .connect_to(&*compositor.layer_input(i).unwrap().erased())
                    .unwrap();
                out
            })
            .collect();
        Self {
            compositor,
            feeds,
            sink,
            ticks: 0,
        }
    }

    /// Feeds the given frames (None: nothing new on that layer), processes one tick.
    fn try_tick(
        &mut self,
        frames: &[Option<&VideoFrame>],
        bands: usize,
    ) -> Result<VideoFrame, HandlerError> {
        for (feed, frame) in self.feeds.iter().zip(frames) {
            if let Some(frame) = frame {
                feed.write((*frame).clone());
            }
        }
        let mut ctx =
            ProcessContext::new("compositor", tick(self.ticks)).with_concurrency_limit(bands);
        self.ticks += 1;
        self.compositor.process(&mut ctx)?;
        Ok(self.sink.recv().expect("an output frame"))
    }

    fn tick(&mut self, frames: &[Option<&VideoFrame>], bands: usize) -> Vec<u8> {
        let frame = self.try_tick(frames, bands).unwrap();
        tight_bytes(&frame)
    }
}

/// A frame's pixels without row padding.
fn tight_bytes(frame: &VideoFrame) -> Vec<u8> {
    let bytes = frame.cpu_bytes().unwrap();
    let row = frame.width() as usize * 4;
    bytes
        .chunks(frame.stride() as usize)
        .take(frame.height() as usize)
        .flat_map(|r| &r[..row])
        .copied()
        .collect()
}

fn config(width: u32, height: u32, layers: usize) -> CompositorConfig {
    CompositorConfig {
        width,
        height,
        layers,
        ..CompositorConfig::default()
    }
}

fn at(x: i32, y: i32, opacity: f32) -> LayerConfig {
    LayerConfig {
        x,
        y,
        opacity,
        ..LayerConfig::default()
    }
}

/// A canvas-sized image of varied colours and alphas (opaque, clear and partial runs).
fn varied(w: u32, h: u32, seed: u32) -> Img {
    let px = (0..w * h)
        .map(|i| {
            let v = i
                .wrapping_mul(2_654_435_761)
                .wrapping_add(seed.wrapping_mul(97));
            let a = match (i / 7 + seed) % 4 {
                0 => 255,
                1 => 0,
                _ => (v >> 24) as u8,
            };
            [(v >> 8) as u8, (v >> 13) as u8, (v >> 18) as u8, a]
        })
        .collect();
    Img {
        w,
        h,
        px,
        bgra: false,
        premultiplied: false,
        pad: 0,
    }
}

// ---------------------------------------------------------------------------------------------
// Exact arithmetic.

#[test]
fn hand_computed_values() {
    let mut rig = Rig::new(config(2, 1, 1));
    // Opaque white at 50 % over opaque black: a = 128, out = div255(255 * 128) = 128.
    rig.compositor.set_layer(0, at(0, 0, 0.5)).unwrap();
    let white = Img::solid(2, 1, [255, 255, 255, 255]).frame();
    assert_eq!(rig.tick(&[Some(&white)], 1)[..4], [128, 128, 128, 255]);
    // Premultiplied half-transparent red (128, 0, 0, 128) over black: red 128, opaque.
    rig.compositor.set_layer(0, at(0, 0, 1.0)).unwrap();
    let red = Img::solid(2, 1, [128, 0, 0, 128]).premultiplied().frame();
    assert_eq!(rig.tick(&[Some(&red)], 1)[..4], [128, 0, 0, 255]);
    // Straight half-transparent red over a transparent background stays (255, 0, 0, 128).
    let mut rig = Rig::new(CompositorConfig {
        background: [0, 0, 0, 0],
        ..config(2, 1, 1)
    });
    let red = Img::solid(2, 1, [255, 0, 0, 128]).frame();
    assert_eq!(rig.tick(&[Some(&red)], 1)[..4], [255, 0, 0, 128]);
}

#[test]
fn opaque_layer_at_full_opacity_is_copied_exactly() {
    let canvas_layout = FrameLayout::new(37, 5, PixelFormat::Rgba8).unwrap();
    let canvas: Vec<u8> = (0..37 * 5 * 4).map(|i| (i * 7 % 256) as u8).collect();
    for premultiplied in [false, true] {
        for bgra in [false, true] {
            let mut img = varied(37, 5, 3);
            img.px.iter_mut().for_each(|p| p[3] = 255);
            img.premultiplied = premultiplied;
            img.bgra = bgra;
            let mut out = canvas.clone();
            composite_over(&mut out, canvas_layout, &img.frame(), 0, 0, 255).unwrap();
            let expected: Vec<u8> = img
                .px
                .iter()
                .flat_map(|p| if bgra { [p[2], p[1], p[0], p[3]] } else { *p })
                .collect();
            assert_eq!(out, expected, "premultiplied {premultiplied}, bgra {bgra}");
        }
    }
}

#[test]
fn zero_opacity_and_invisible_layers_leave_the_canvas_untouched() {
    let canvas_layout = FrameLayout::new(40, 3, PixelFormat::Rgba8).unwrap();
    let canvas: Vec<u8> = (0..40 * 3 * 4).map(|i| (i * 11 % 256) as u8).collect();
    let img = varied(40, 3, 1);
    let mut out = canvas.clone();
    composite_over(&mut out, canvas_layout, &img.frame(), 0, 0, 0).unwrap();
    assert_eq!(out, canvas);

    let background = [10, 20, 30, 255];
    let mut rig = Rig::new(CompositorConfig {
        background,
        ..config(40, 3, 2)
    });
    rig.compositor
        .set_layer(
            0,
            LayerConfig {
                visible: false,
                ..LayerConfig::default()
            },
        )
        .unwrap();
    rig.compositor.set_layer(1, at(0, 0, 0.0)).unwrap();
    let frame = img.frame();
    let out = rig.tick(&[Some(&frame), Some(&frame)], 1);
    assert_eq!(out, background.repeat(40 * 3));
}

#[test]
fn unpremultiply_follows_the_formula() {
    let layout = FrameLayout::new(256, 256, PixelFormat::Rgba8).unwrap();
    let mut canvas: Vec<u8> = (0..256 * 256)
        .flat_map(|i| [(i % 256) as u8, (i / 256) as u8, 255, (i / 256) as u8])
        .collect();
    let expected: Vec<u8> = canvas
        .chunks(4)
        .flat_map(|p| unpremultiplied([p[0], p[1], p[2], p[3]].map(u32::from)))
        .collect();
    unpremultiply(&mut canvas, layout).unwrap();
    assert_eq!(canvas, expected);
}

fn img_strategy(max_w: u32, max_h: u32) -> impl Strategy<Value = Img> {
    (1..=max_w, 1..=max_h, any::<bool>(), any::<bool>(), 0..8u32).prop_flat_map(
        |(w, h, bgra, premultiplied, pad)| {
            let alpha = prop_oneof![Just(0u8), Just(255u8), any::<u8>()];
            let pixel = (any::<[u8; 3]>(), alpha).prop_map(|(c, a)| [c[0], c[1], c[2], a]);
            // Runs of equal pixels, so whole chunks are opaque or clear sometimes.
            let run = (pixel, 1..40usize).prop_map(|(p, n)| vec![p; n]);
            proptest::collection::vec(run, 1..8).prop_map(move |runs| {
                let mut px: Vec<[u8; 4]> = runs.concat();
                px.resize((w * h) as usize, [1, 2, 3, 4]);
                let third = px.len() / 3;
                px.rotate_left(third);
                Img {
                    w,
                    h,
                    px,
                    bgra,
                    premultiplied,
                    pad,
                }
            })
        },
    )
}

fn layer_config_strategy() -> impl Strategy<Value = LayerConfig> {
    (
        -45..=45i32,
        -12..=20i32,
        prop_oneof![Just(0.0f32), Just(1.0f32), 0.0f32..=1.0],
        -2..=2i32,
        proptest::bool::weighted(0.85),
    )
        .prop_map(|(x, y, opacity, z, visible)| LayerConfig {
            x,
            y,
            opacity,
            z,
            visible,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// The public kernel, on any canvas bytes (valid premultiplied or not), any placement.
    #[test]
    fn kernel_matches_the_formula(
        (cw, ch) in (1..=40u32, 1..=12u32),
        canvas_seed in any::<u32>(),
        img in img_strategy(48, 14),
        (x, y) in (-50..=50i32, -15..=15i32),
        opacity in any::<u8>(),
    ) {
        let layout = FrameLayout::new(cw, ch, PixelFormat::Rgba8).unwrap();
        let mut canvas: Vec<u8> = (0..cw * ch * 4)
            .map(|i| (i.wrapping_mul(2_246_822_519) ^ canvas_seed).to_le_bytes()[1])
            .collect();
        let mut expected: Vec<[u32; 4]> = canvas
            .chunks(4)
            .map(|p| [p[0], p[1], p[2], p[3]].map(u32::from))
            .collect();
        reference_over(&mut expected, cw, ch, &img, x, y, u32::from(opacity));
        composite_over(&mut canvas, layout, &img.frame(), x, y, opacity).unwrap();
        let expected: Vec<u8> = expected.into_iter().flatten().map(|v| v as u8).collect();
        prop_assert_eq!(canvas, expected);
    }

    /// The handler: several layers of any size, mode, order and placement, any background,
    /// any band count.
    #[test]
    fn handler_matches_the_formula(
        (w, h) in (1..=40u32, 1..=16u32),
        background in prop_oneof![
            any::<[u8; 3]>().prop_map(|c| [c[0], c[1], c[2], 255]),
            any::<[u8; 4]>(),
        ],
        layers in proptest::collection::vec(
            (proptest::option::weighted(0.9, img_strategy(44, 18)), layer_config_strategy()),
            1..=4,
        ),
        bands in 1..=4usize,
    ) {
        let mut rig = Rig::new(CompositorConfig { background, ..config(w, h, layers.len()) });
        for (i, (_, cfg)) in layers.iter().enumerate() {
            rig.compositor.set_layer(i, *cfg).unwrap();
        }
        let frames: Vec<Option<VideoFrame>> =
            layers.iter().map(|(img, _)| img.as_ref().map(Img::frame)).collect();
        let frames: Vec<Option<&VideoFrame>> = frames.iter().map(Option::as_ref).collect();
        let out = rig.tick(&frames, bands);
        let reference: Vec<(Option<&Img>, LayerConfig)> =
            layers.iter().map(|(img, cfg)| (img.as_ref(), *cfg)).collect();
        prop_assert_eq!(out, reference_composite(w, h, background, &reference));
    }
}

// ---------------------------------------------------------------------------------------------
// Geometry and order.

#[test]
fn clipping_at_every_edge_and_off_canvas() {
    let (w, h) = (41, 13);
    let img = varied(17, 6, 5);
    let frame = img.frame();
    let mut positions = vec![
        (-5, 4),       // left edge
        (30, 4),       // right edge
        (10, -3),      // top edge
        (10, 10),      // bottom edge
        (-9, -4),      // top-left corner
        (33, 9),       // bottom-right corner
        (-16, -5),     // one pixel in the top-left
        (40, 12),      // one pixel in the bottom-right
        (-30, -20),    // off, above and to the left
        (i32::MIN, 0), // far off, no overflow
        (i32::MAX, i32::MAX),
    ];
    // Exactly off each edge.
    positions.extend([(-17, 0), (41, 0), (0, -6), (0, 13)]);
    for &(x, y) in &positions {
        for premultiplied in [false, true] {
            let mut img = img.clone();
            img.premultiplied = premultiplied;
            let frame = img.frame();
            let mut rig = Rig::new(CompositorConfig {
                background: [9, 8, 7, 200],
                ..config(w, h, 1)
            });
            let cfg = at(x, y, 0.7);
            rig.compositor.set_layer(0, cfg).unwrap();
            let out = rig.tick(&[Some(&frame)], 2);
            let expected = reference_composite(w, h, [9, 8, 7, 200], &[(Some(&img), cfg)]);
            assert_eq!(
                out, expected,
                "layer at ({x}, {y}), premultiplied {premultiplied}"
            );
        }
    }
    // Off-canvas layers draw nothing at all.
    let mut rig = Rig::new(config(w, h, 1));
    for (x, y) in [(-17, 0), (41, 0), (0, -6), (0, 13), (i32::MIN, i32::MIN)] {
        rig.compositor.set_layer(0, at(x, y, 1.0)).unwrap();
        assert_eq!(rig.tick(&[Some(&frame)], 1), [0, 0, 0, 255].repeat(41 * 13));
    }
}

#[test]
fn layers_stack_in_z_order_with_ties_in_index_order() {
    let red = Img::solid(4, 4, [255, 0, 0, 255]).frame();
    let green = Img::solid(4, 4, [0, 255, 0, 255]).frame();
    let blue = Img::solid(4, 4, [0, 0, 255, 255]).frame();
    let mut rig = Rig::new(config(4, 4, 3));
    let frames = [Some(&red), Some(&green), Some(&blue)];
    let top = |rig: &mut Rig| rig.tick(&frames, 1)[..4].to_vec();
    // All z = 0: index order, blue (layer 2) on top.
    assert_eq!(top(&mut rig), [0, 0, 255, 255]);
    let z = |z| LayerConfig {
        z,
        ..LayerConfig::default()
    };
    rig.compositor.set_layer(0, z(5)).unwrap();
    assert_eq!(top(&mut rig), [255, 0, 0, 255]);
    rig.compositor.set_layer(1, z(5)).unwrap(); // tie with layer 0: index 1 wins
    assert_eq!(top(&mut rig), [0, 255, 0, 255]);
    rig.compositor.set_layer(2, z(6)).unwrap();
    assert_eq!(top(&mut rig), [0, 0, 255, 255]);
    rig.compositor.set_layer(2, z(-1)).unwrap();
    assert_eq!(top(&mut rig), [0, 255, 0, 255]);
}

#[test]
fn bgra_layers_are_read_in_their_channel_order() {
    let mut img = Img::solid(3, 1, [10, 20, 30, 255]); // B=10, G=20, R=30
    img.bgra = true;
    let mut rig = Rig::new(config(3, 1, 1));
    assert_eq!(rig.tick(&[Some(&img.frame())], 1)[..4], [30, 20, 10, 255]);
}

#[test]
fn every_band_count_draws_the_same_frame() {
    let (w, h) = (97, 61);
    let layers: Vec<Img> = (0..3).map(|i| varied(90 - 20 * i, 50, i)).collect();
    let frames: Vec<VideoFrame> = layers.iter().map(Img::frame).collect();
    let frames: Vec<Option<&VideoFrame>> = frames.iter().map(Some).collect();
    let mut rig = Rig::new(CompositorConfig {
        background: [1, 2, 3, 100],
        ..config(w, h, 3)
    });
    rig.compositor.set_layer(1, at(20, 15, 0.6)).unwrap();
    rig.compositor.set_layer(2, at(-10, 30, 0.3)).unwrap();
    let one = rig.tick(&frames, 1);
    for bands in [2, 3, 8, 61, 1000] {
        assert_eq!(rig.tick(&frames, bands), one, "{bands} bands");
    }
}

#[test]
fn output_is_a_straight_rgba_frame_of_its_own_stamped_with_the_tick() {
    let mut rig = Rig::new(config(16, 9, 2));
    let layer = Img::solid(16, 9, [1, 2, 3, 255]).frame();
    for n in 0..3 {
        let out = rig.try_tick(&[Some(&layer), None], 1).unwrap();
        assert_eq!((out.width(), out.height()), (16, 9));
        assert_eq!(out.format(), PixelFormat::Rgba8);
        assert_eq!(out.alpha(), AlphaMode::Straight);
        assert_eq!(out.frame_number(), n);
        assert_eq!(out.timestamp_ns(), n * 1_000_000);
        assert_eq!(out.clock_source_id(), ClockSourceId::MANUAL);
        assert!(
            !out.cpu_buffer()
                .unwrap()
                .ptr_eq(layer.cpu_buffer().unwrap())
        );
    }
}

#[test]
fn unconnected_layers_and_output_are_fine() {
    let mut compositor = Compositor::new(config(8, 8, 3)).unwrap();
    let mut ctx = ProcessContext::new("compositor", tick(0));
    compositor.process(&mut ctx).unwrap();
    let ports = compositor.ports();
    let names: Vec<&str> = ports.inputs().iter().map(|p| p.name()).collect();
    assert_eq!(names, ["layer0", "layer1", "layer2"]);
    assert!(ports.inputs().iter().all(|p| !p.is_required()));
    assert!(ports.inputs().iter().all(|p| p.caps() == MemoryCaps::CPU));
    assert_eq!(ports.outputs()[0].name(), "video");
}

// ---------------------------------------------------------------------------------------------
// Through a real runtime: missing layers and live controls.

/// Which ticks a feed writes on.
type Schedule = fn(u64) -> bool;

/// Writes its frame, stamped, on the ticks `on` selects.
struct Feed {
    out: OutputPort<VideoFrame>,
    frame: VideoFrame,
    on: Schedule,
}

impl StreamHandler for Feed {
    fn ports(&self) -> Ports {
        Ports::new().output(&self.out)
    }
    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        if (self.on)(ctx.tick().frame_number) {
            self.out.write(self.frame.clone().with_tick(ctx.tick()));
        }
        Ok(())
    }
}

fn always(_: u64) -> bool {
    true
}

fn every_third(n: u64) -> bool {
    n.is_multiple_of(3)
}

type Seen = Arc<Mutex<Vec<(u64, Vec<u8>)>>>;

/// Records (tick, pixels) of every frame it receives.
struct Record {
    input: InputPort<VideoFrame>,
    seen: Seen,
}

impl StreamHandler for Record {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input)
    }
    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        if let Some(frame) = self.input.recv() {
            assert_eq!(frame.frame_number(), ctx.tick().frame_number);
            let entry = (frame.frame_number(), tight_bytes(&frame));
            self.seen.lock().unwrap().push(entry);
        }
        Ok(())
    }
}

/// A runtime with one `Feed` per (frame, schedule) into a compositor, and a `Record`.
fn pipeline(
    compositor: Compositor,
    feeds: Vec<(VideoFrame, Schedule)>,
) -> (StreamRuntime, ManualClockHandle, Seen) {
    let (clock, ticks) = ManualClock::new(Rational::fps(30));
    let mut rt = StreamRuntime::new(clock);
    let inputs: Vec<_> = (0..feeds.len())
        .map(|i| compositor.layer_input(i).unwrap())
        .collect();
    let output = compositor.output();
    rt.add_stream(Stream::new("compositor", compositor).concurrency_limit(2))
        .unwrap();
    for (i, ((frame, on), input)) in feeds.into_iter().zip(inputs).enumerate() {
        let feed = Feed {
            out: OutputPort::new("video", MemoryCaps::CPU),
            frame,
            on,
        };
        let out = feed.out.handle();
        rt.add_stream(Stream::new(format!("feed{i}"), feed))
            .unwrap();
        rt.connect(&out, &input).unwrap();
    }
    let seen = Seen::default();
    let record = Record {
        input: InputPort::new("video", MemoryCaps::CPU),
        seen: Arc::clone(&seen),
    };
    let input = record.input.handle();
    rt.add_stream(Stream::new("record", record)).unwrap();
    rt.connect(&output, &input).unwrap();
    rt.start().unwrap();
    (rt, ticks, seen)
}

fn pump(rt: &StreamRuntime, ticks: &ManualClockHandle, done: &mut u64, n: u64) {
    for _ in 0..n {
        ticks.tick();
        *done += 1;
        assert!(
            rt.wait_for_ticks(*done, Duration::from_secs(10)),
            "tick {done} did not complete"
        );
    }
}

fn pixel(bytes: &[u8], w: usize, x: usize, y: usize) -> [u8; 4] {
    let i = (y * w + x) * 4;
    [bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]
}

/// Layer 0 (blue, full canvas) arrives every tick, layer 1 (a red 2×2 at (3, 2)) only on
/// ticks divisible by 3; returns, per output tick, whether red was drawn.
fn red_drawn_per_tick(missing: MissingLayer) -> Vec<(u64, bool)> {
    let compositor = Compositor::new(CompositorConfig {
        missing,
        ..config(8, 6, 2)
    })
    .unwrap();
    compositor.controls().set_position(1, 3, 2).unwrap();
    let blue = Img::solid(8, 6, [0, 0, 255, 255]).frame();
    let red = Img::solid(2, 2, [255, 0, 0, 255]).frame();
    let (mut rt, ticks, seen) = pipeline(compositor, vec![(blue, always), (red, every_third)]);
    let mut done = 0;
    pump(&rt, &ticks, &mut done, 10);
    let stats = rt.stop().unwrap();
    assert_eq!(stats.stream("compositor").unwrap().errors, 0);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 10, "one output per tick");
    seen.iter()
        .map(|(n, bytes)| {
            let red = pixel(bytes, 8, 4, 3) == [255, 0, 0, 255];
            let blue_elsewhere = pixel(bytes, 8, 0, 0) == [0, 0, 255, 255];
            assert!(blue_elsewhere, "tick {n}");
            (*n, red)
        })
        .collect()
}

#[test]
fn missing_layers_reuse_their_last_frame_or_are_skipped() {
    let reuse = red_drawn_per_tick(MissingLayer::ReuseLast);
    let first_red = reuse.iter().find(|(n, _)| n % 3 == 0).unwrap().0;
    for &(n, red) in &reuse {
        assert_eq!(red, n >= first_red, "ReuseLast, tick {n}");
    }
    let skip = red_drawn_per_tick(MissingLayer::Skip);
    for &(n, red) in &skip {
        assert_eq!(red, n % 3 == 0, "Skip, tick {n}");
    }
}

#[test]
fn controls_change_a_running_compositor_on_the_next_tick() {
    let compositor = Compositor::new(config(6, 4, 1)).unwrap();
    let controls = compositor.controls();
    let red = Img::solid(2, 2, [255, 0, 0, 255]).frame();
    let (mut rt, ticks, seen) = pipeline(compositor, vec![(red, always)]);
    let mut done = 0;
    let last = |seen: &Seen| seen.lock().unwrap().last().unwrap().1.clone();

    pump(&rt, &ticks, &mut done, 2);
    assert_eq!(pixel(&last(&seen), 6, 0, 0), [255, 0, 0, 255]);

    // From another thread, as a UI would.
    let moved = controls.clone();
    std::thread::spawn(move || moved.set_position(0, 3, 1).unwrap())
        .join()
        .unwrap();
    pump(&rt, &ticks, &mut done, 1);
    let frame = last(&seen);
    assert_eq!(pixel(&frame, 6, 0, 0), [0, 0, 0, 255]);
    assert_eq!(pixel(&frame, 6, 3, 1), [255, 0, 0, 255]);
    assert_eq!(pixel(&frame, 6, 4, 2), [255, 0, 0, 255]);

    controls.set_opacity(0, 0.5).unwrap();
    pump(&rt, &ticks, &mut done, 1);
    assert_eq!(pixel(&last(&seen), 6, 3, 1), [128, 0, 0, 255]);

    controls.set_visible(0, false).unwrap();
    pump(&rt, &ticks, &mut done, 1);
    assert_eq!(pixel(&last(&seen), 6, 3, 1), [0, 0, 0, 255]);

    controls.set_visible(0, true).unwrap();
    controls.set_z(0, 7).unwrap();
    pump(&rt, &ticks, &mut done, 1);
    assert_eq!(pixel(&last(&seen), 6, 3, 1), [128, 0, 0, 255]);
    assert_eq!(
        controls.layer(0).unwrap(),
        LayerConfig {
            x: 3,
            y: 1,
            opacity: 0.5,
            z: 7,
            visible: true
        }
    );
    rt.stop().unwrap();
}

// ---------------------------------------------------------------------------------------------
// Errors.

#[test]
fn bad_sizes_and_layer_counts_are_refused() {
    for (w, h) in [(0, 10), (10, 0), (16_385, 10), (10, 16_385)] {
        let err = Compositor::new(config(w, h, 4)).unwrap_err();
        assert!(
            matches!(err, VideoError::InvalidSize { width, height, .. } if (width, height) == (w, h)),
            "{err}"
        );
    }
    for layers in [0, 65] {
        let err = Compositor::new(config(64, 64, layers)).unwrap_err();
        assert!(
            matches!(err, VideoError::OutOfRange { what: "layers", .. }),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            format!("compositor: layers = {layers} is out of range 1..=64")
        );
    }
    assert!(Compositor::new(config(1, 1, 64)).is_ok());
}

#[test]
fn a_layer_index_out_of_range_states_the_range() {
    let mut compositor = Compositor::new(config(8, 8, 4)).unwrap();
    let message = "compositor: layer 4 does not exist (it has 4 layers: 0..=3)";
    let err = compositor.layer_input(4).err().expect("layer 4 refused");
    assert!(matches!(
        err,
        VideoError::LayerOutOfRange {
            index: 4,
            layers: 4
        }
    ));
    assert_eq!(err.to_string(), message);
    let err = compositor.set_layer(4, LayerConfig::default()).unwrap_err();
    assert_eq!(err.to_string(), message);
    let controls = compositor.controls();
    assert_eq!(controls.layers(), 4);
    assert_eq!(
        controls.set_opacity(4, 0.5).unwrap_err().to_string(),
        message
    );
    assert!(
        controls
            .layer(9)
            .unwrap_err()
            .to_string()
            .contains("layer 9")
    );
}

#[test]
fn an_opacity_outside_zero_to_one_is_refused() {
    let mut compositor = Compositor::new(config(8, 8, 2)).unwrap();
    let controls = compositor.controls();
    for opacity in [f32::NAN, -0.01, 1.01, f32::INFINITY, f32::NEG_INFINITY] {
        let err = compositor.set_layer(1, at(0, 0, opacity)).unwrap_err();
        assert!(
            matches!(
                err,
                VideoError::OutOfRange {
                    what: "opacity",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("0.0..=1.0"), "{err}");
        assert!(controls.set_opacity(0, opacity).is_err());
    }
    // Refused changes change nothing.
    assert_eq!(controls.layer(1).unwrap(), LayerConfig::default());
    assert_eq!(controls.layer(0).unwrap(), LayerConfig::default());
    compositor.set_layer(1, at(0, 0, 0.0)).unwrap();
    compositor.set_layer(1, at(0, 0, 1.0)).unwrap();
}

/// A stand-in GPU resource.
#[derive(Debug)]
struct FakeTexture;

impl GpuResource for FakeTexture {
    fn device_label(&self) -> &str {
        "fake"
    }
    fn byte_size(&self) -> usize {
        0
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[test]
fn unusable_layer_frames_are_errors_not_panics() {
    let mut rig = Rig::new(config(8, 8, 2));
    let good = Img::solid(8, 8, [1, 2, 3, 255]).frame();
    let nv12_layout = FrameLayout::new(8, 8, PixelFormat::Nv12).unwrap();
    let nv12 = VideoFrame::cpu(
        nv12_layout,
        PooledBuf::from_vec(vec![0; nv12_layout.buffer_len()]),
    )
    .unwrap();
    let err = rig.try_tick(&[Some(&good), Some(&nv12)], 1).unwrap_err();
    assert!(
        matches!(
            err.as_error().downcast_ref::<VideoError>(),
            Some(VideoError::UnsupportedFormat {
                format: PixelFormat::Nv12,
                ..
            })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("nv12"), "{err}");

    let gray_layout = FrameLayout::new(8, 8, PixelFormat::Gray8).unwrap();
    let gray = VideoFrame::cpu(gray_layout, PooledBuf::from_vec(vec![0; 64])).unwrap();
    assert!(rig.try_tick(&[None, Some(&gray)], 1).is_err());

    let gpu_layout = FrameLayout::new(8, 8, PixelFormat::Rgba8).unwrap();
    let gpu = VideoFrame::gpu(gpu_layout, GpuFrame::new(Arc::new(FakeTexture)));
    let err = rig.try_tick(&[Some(&gpu), None], 1).unwrap_err();
    assert!(
        matches!(
            err.as_error().downcast_ref::<VideoError>(),
            Some(VideoError::NotInCpuMemory { .. })
        ),
        "{err}"
    );

    // The bad frames were dropped; the good one is still drawn.
    assert_eq!(rig.tick(&[None, None], 1)[..4], [1, 2, 3, 255]);
}

// ---------------------------------------------------------------------------------------------
// Allocation.

/// Allocations on this thread and rayon's workers over `frames` frames, after warm-up.
fn allocations_per_run(rig: &mut Rig, frames: &[Option<&VideoFrame>], bands: usize, n: u64) -> u64 {
    for _ in 0..50 {
        rig.try_tick(frames, bands).unwrap();
    }
    let flag = |on: bool| {
        common::set_counted(on);
        rayon::broadcast(|_| common::set_counted(on));
    };
    flag(true);
    let before = common::allocations();
    for _ in 0..n {
        rig.try_tick(frames, bands).unwrap();
    }
    let allocated = common::allocations() - before;
    flag(false);
    allocated
}

#[test]
fn steady_state_allocates_nothing() {
    let layers: Vec<Img> = (0..4).map(|i| varied(96, 54, i)).collect();
    let frames: Vec<VideoFrame> = layers.iter().map(Img::frame).collect();
    let frames: Vec<Option<&VideoFrame>> = frames.iter().map(Some).collect();
    let mut rig = Rig::new(CompositorConfig {
        background: [0, 0, 0, 128],
        ..config(96, 54, 4)
    });
    rig.compositor.set_layer(2, at(30, 20, 0.5)).unwrap();
    let controls = rig.compositor.controls();
    controls.set_opacity(3, 0.25).unwrap();

    // One band: exactly nothing, on the thread that does all the work.
    let n = 300;
    assert_eq!(allocations_per_run(&mut rig, &frames, 1, n), 0);

    // Two bands on rayon's pool. Entering the pool from outside pushes a job on rayon's
    // global injector, a crossbeam queue that allocates a block every 63 pushes: at most one
    // allocation per 63 frames, and nothing else.
    let two = allocations_per_run(&mut rig, &frames, 2, n);
    assert!(
        two <= n.div_ceil(63),
        "{two} allocations over {n} frames in 2 bands"
    );
}
