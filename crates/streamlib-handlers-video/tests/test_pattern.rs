//! `TestPattern`: exact colours, the moving box as a function of the frame number, pooled
//! output that allocates nothing per frame, and clear errors for bad sizes.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use proptest::prelude::*;
use streamlib_clock::{ClockSourceId, Rational, TimedTick};
use streamlib_handlers_video::{Pattern, TestPattern, TestPatternConfig, VideoError};
use streamlib_ports::{
    AlphaMode, InputPort, MemoryCaps, PixelFormat, ProcessContext, StreamHandler, VideoFrame,
};

/// Counts allocations made by threads that have switched counting on, so tests running in
/// parallel on other threads do not disturb the count.
mod common;

#[global_allocator]
static GLOBAL: common::Counting = common::Counting;

const WHITE_75: [u8; 3] = [191, 191, 191];
const YELLOW_75: [u8; 3] = [191, 191, 0];
const CYAN_75: [u8; 3] = [0, 191, 191];
const GREEN_75: [u8; 3] = [0, 191, 0];
const MAGENTA_75: [u8; 3] = [191, 0, 191];
const RED_75: [u8; 3] = [191, 0, 0];
const BLUE_75: [u8; 3] = [0, 0, 191];
const BLACK: [u8; 3] = [0, 0, 0];

fn tick(n: u64) -> TimedTick {
    TimedTick {
        timestamp: n * 33_333_333,
        frame_number: n,
        clock_source_id: ClockSourceId::MANUAL,
        fps: Rational::fps(30),
    }
}

/// A source wired to an input, as a runtime would.
struct Rig {
    source: TestPattern,
    sink: InputPort<VideoFrame>,
}

impl Rig {
    fn new(width: u32, height: u32, pattern: Pattern, moving_box: bool) -> Self {
        Self::with_config(TestPatternConfig {
            moving_box,
            ..TestPatternConfig::new(width, height, pattern)
        })
    }

    fn with_config(config: TestPatternConfig) -> Self {
        let source = TestPattern::new(config).unwrap();
        let sink = InputPort::new("video", MemoryCaps::CPU);
        source
            .output()
            .erased()
            .connect_to(&*sink.handle().erased())
            .unwrap();
        Self { source, sink }
    }

    fn frame(&mut self, n: u64) -> VideoFrame {
        self.source
            .process(&mut ProcessContext::new("pattern", tick(n)))
            .unwrap();
        self.sink.recv().expect("a frame per tick")
    }
}

fn pixel(frame: &VideoFrame, x: u32, y: u32) -> [u8; 4] {
    let bytes = frame.cpu_bytes().unwrap();
    let i = (y * frame.stride() + x * 4) as usize;
    bytes[i..i + 4].try_into().unwrap()
}

fn rgb(frame: &VideoFrame, x: u32, y: u32) -> [u8; 3] {
    let [r, g, b, a] = pixel(frame, x, y);
    assert_eq!(a, 255, "opaque at ({x}, {y})");
    [r, g, b]
}

#[test]
fn smpte_bars_have_the_75_percent_colours() {
    for (w, h) in [(640, 480), (1920, 1080), (723, 301)] {
        let mut rig = Rig::new(w, h, Pattern::SmpteBars, false);
        let frame = rig.frame(0);
        let centre = |i: u32, n: u32, d: u32| ((i * n) * w / d + ((i + 1) * n) * w / d) / 2;
        let top = [
            WHITE_75, YELLOW_75, CYAN_75, GREEN_75, MAGENTA_75, RED_75, BLUE_75,
        ];
        for (i, colour) in (0..).zip(top) {
            assert_eq!(
                rgb(&frame, centre(i, 1, 7), h / 3),
                colour,
                "{w}x{h} bar {i}"
            );
        }
        let castellations = [BLUE_75, BLACK, MAGENTA_75, BLACK, CYAN_75, BLACK, WHITE_75];
        let y = (2 * h / 3 + 3 * h / 4) / 2;
        for (i, colour) in (0..).zip(castellations) {
            assert_eq!(
                rgb(&frame, centre(i, 1, 7), y),
                colour,
                "{w}x{h} castellation {i}"
            );
        }
        let y = (3 * h / 4 + h) / 2;
        assert_eq!(rgb(&frame, 5 * w / 56, y), [0, 33, 76], "-I");
        assert_eq!(rgb(&frame, 15 * w / 56, y), [255, 255, 255], "100 % white");
        assert_eq!(rgb(&frame, 25 * w / 56, y), [50, 0, 106], "+Q");
        assert_eq!(rgb(&frame, 35 * w / 56, y), BLACK, "black");
        assert_eq!(rgb(&frame, 31 * w / 42, y), BLACK, "PLUGE -4 % (clipped)");
        assert_eq!(rgb(&frame, 33 * w / 42, y), BLACK, "PLUGE black");
        assert_eq!(rgb(&frame, 35 * w / 42, y), [10, 10, 10], "PLUGE +4 %");
        assert_eq!(rgb(&frame, w - 1, h - 1), BLACK, "bottom right");
    }
}

#[test]
fn frames_are_opaque_straight_rgba_stamped_with_the_tick() {
    let mut rig = Rig::new(64, 48, Pattern::SmpteBars, true);
    let frame = rig.frame(42);
    assert_eq!(frame.format(), PixelFormat::Rgba8);
    assert_eq!(frame.alpha(), AlphaMode::Straight);
    assert_eq!(
        (frame.width(), frame.height(), frame.stride()),
        (64, 48, 256)
    );
    assert_eq!(frame.frame_number(), 42);
    assert_eq!(frame.timestamp_ns(), 42 * 33_333_333);
    assert_eq!(frame.clock_source_id(), ClockSourceId::MANUAL);
    assert!(frame.cpu_bytes().unwrap().chunks(4).all(|px| px[3] == 255));
}

#[test]
fn gradient_rises_left_to_right() {
    let mut rig = Rig::new(301, 7, Pattern::Gradient, false);
    let frame = rig.frame(0);
    for y in 0..7 {
        let row: Vec<[u8; 3]> = (0..301).map(|x| rgb(&frame, x, y)).collect();
        assert!(row.iter().all(|&[r, g, b]| r == g && g == b), "grey");
        assert!(row.windows(2).all(|p| p[0][0] <= p[1][0]), "monotonic");
        assert_eq!(row[0], BLACK);
        assert_eq!(row[300], [255, 255, 255]);
        assert_eq!(row[150], [128, 128, 128]);
    }
}

#[test]
fn black_white_and_checkerboard_are_exact() {
    let all = |frame: &VideoFrame, f: &dyn Fn(u32, u32) -> [u8; 3]| {
        for y in 0..frame.height() {
            for x in 0..frame.width() {
                assert_eq!(rgb(frame, x, y), f(x, y), "({x}, {y})");
            }
        }
    };
    all(
        &Rig::new(33, 17, Pattern::Black, false).frame(0),
        &|_, _| BLACK,
    );
    all(
        &Rig::new(33, 17, Pattern::White, false).frame(0),
        &|_, _| [255; 3],
    );
    let checker = Rig::new(33, 17, Pattern::Checkerboard { cell: 4 }, false).frame(0);
    all(&checker, &|x, y| {
        if (x / 4 + y / 4) % 2 == 0 {
            [255; 3]
        } else {
            BLACK
        }
    });
    let fine = Rig::new(5, 3, Pattern::Checkerboard { cell: 1 }, false).frame(0);
    all(&fine, &|x, y| {
        if (x + y) % 2 == 0 { [255; 3] } else { BLACK }
    });
}

/// The documented motion: a square of side `min(w, h) / 8` moving `side / 4` pixels per frame
/// number, bouncing between the edges, vertically centred.
fn expected_box(w: u32, h: u32, n: u64) -> (u32, u32, u32) {
    let size = (w.min(h) / 8).max(1);
    let step = u64::from((size / 4).max(1));
    let range = u64::from(w - size);
    let x = if range == 0 {
        0
    } else {
        let p = (n * step) % (2 * range);
        if p <= range { p } else { 2 * range - p }
    };
    (x as u32, (h - size) / 2, size)
}

#[test]
fn moving_box_is_at_f_of_the_frame_number() {
    let (w, h) = (320, 240);
    let mut with_box = Rig::new(w, h, Pattern::SmpteBars, true);
    let mut plain = Rig::new(w, h, Pattern::SmpteBars, false);
    let background = plain.frame(0);
    for n in [0, 1, 2, 7, 30, 31, 100, 1_000, 123_456_789] {
        let frame = with_box.frame(n);
        let (bx, by, size) = expected_box(w, h, n);
        let b = with_box.source.moving_box(n).unwrap();
        assert_eq!((b.x, b.y, b.size), (bx, by, size), "frame {n}");
        assert_eq!(frame.frame_number(), n);
        for y in 0..h {
            for x in 0..w {
                let [r, g, b] = rgb(&background, x, y);
                let inside = (bx..bx + size).contains(&x) && (by..by + size).contains(&y);
                let want = if inside {
                    [255 - r, 255 - g, 255 - b]
                } else {
                    [r, g, b]
                };
                assert_eq!(rgb(&frame, x, y), want, "frame {n} at ({x}, {y})");
            }
        }
    }
    // Consecutive frames differ: a dropped frame shows as a jump.
    assert_ne!(
        with_box.source.moving_box(5).unwrap(),
        with_box.source.moving_box(6).unwrap()
    );
    assert_eq!(plain.source.moving_box(5), None);
}

proptest! {
    #[test]
    fn box_stays_inside_and_moves_one_step(w in 1u32..400, h in 1u32..400, n in any::<u64>()) {
        let (x, y, size) = expected_box(w, h, n % 1_000_000_007);
        prop_assert!(x + size <= w && y + size <= h);
        let (x2, _, _) = expected_box(w, h, n % 1_000_000_007 + 1);
        let step = (size / 4).max(1);
        prop_assert!(x.abs_diff(x2) <= step);
    }
}

#[test]
fn moving_box_matches_the_documented_formula_for_any_size() {
    for (w, h) in [(1, 1), (2, 9), (9, 2), (17, 17), (1920, 1080), (16, 4000)] {
        let source = TestPattern::new(TestPatternConfig::new(w, h, Pattern::Black)).unwrap();
        for n in [0, 1, 2, 3, 10, 999, u64::MAX / 3] {
            let b = source.moving_box(n).unwrap();
            let n_mod = n % (2 * u64::from(w - b.size)).max(1);
            assert_eq!(
                (b.x, b.y, b.size),
                expected_box(w, h, n_mod),
                "{w}x{h} frame {n}"
            );
        }
    }
}

#[test]
fn output_is_pooled_and_allocates_nothing_per_frame() {
    let mut rig = Rig::new(1280, 720, Pattern::SmpteBars, true);
    for n in 0..10 {
        rig.frame(n);
    }
    common::set_counted(true);
    let before = common::allocations();
    for n in 10..210 {
        let frame = rig.frame(n);
        assert_eq!(frame.frame_number(), n);
    }
    let allocated = common::allocations() - before;
    common::set_counted(false);
    assert_eq!(allocated, 0, "allocations in 200 steady-state frames");
    let pool = rig.source.pool().pool();
    assert_eq!(pool.grown(), 0, "the pool never had to grow");
    assert_eq!(pool.exhausted(), 0);
}

#[test]
fn unconnected_output_costs_nothing() {
    let mut source = TestPattern::new(TestPatternConfig::new(64, 64, Pattern::White)).unwrap();
    for n in 0..100 {
        source
            .process(&mut ProcessContext::new("pattern", tick(n)))
            .unwrap();
    }
    assert_eq!(
        source.pool().pool().available(),
        source.pool().pool().allocated()
    );
}

#[test]
fn one_by_one_works_for_every_pattern() {
    for pattern in [
        Pattern::SmpteBars,
        Pattern::Gradient,
        Pattern::Black,
        Pattern::White,
        Pattern::Checkerboard { cell: 3 },
    ] {
        let mut rig = Rig::new(1, 1, pattern, true);
        let frame = rig.frame(7);
        assert_eq!(frame.cpu_bytes().unwrap().len(), 4, "{pattern:?}");
        assert_eq!(pixel(&frame, 0, 0)[3], 255);
    }
}

#[test]
fn bad_sizes_say_what_is_wrong() {
    let err = |w, h, pattern| TestPattern::new(TestPatternConfig::new(w, h, pattern)).unwrap_err();
    let e = err(0, 480, Pattern::SmpteBars);
    assert!(matches!(
        e,
        VideoError::InvalidSize {
            width: 0,
            height: 480,
            ..
        }
    ));
    assert_eq!(
        e.to_string(),
        "TestPattern: invalid size 0x480 (width and height must be at least 1)"
    );
    assert_eq!(
        err(640, 0, Pattern::Black).to_string(),
        "TestPattern: invalid size 640x0 (width and height must be at least 1)"
    );
    assert_eq!(
        err(16385, 10, Pattern::Black).to_string(),
        "TestPattern: invalid size 16385x10 (width and height must be at most 16384)"
    );
    assert_eq!(
        err(64, 64, Pattern::Checkerboard { cell: 0 }).to_string(),
        "TestPattern: checkerboard cell = 0 is out of range 1..=16384"
    );
    assert!(TestPattern::new(TestPatternConfig::new(16384, 1, Pattern::Black)).is_ok());
}

/// The UYVY test pattern is what `Convert` makes of the RGBA one, byte for byte, and its
/// moving box inverts whole pixel pairs (Y about the middle of 16..=235, Cb and Cr about 128).
#[test]
fn uyvy_frames_equal_the_converted_rgba_ones() {
    use streamlib_handlers_video::Convert;
    use streamlib_ports::OutputPort;
    for (w, h) in [(640, 360), (723, 301)] {
        let rig = |format, moving_box| {
            Rig::with_config(TestPatternConfig {
                format,
                moving_box,
                ..TestPatternConfig::new(w, h, Pattern::SmpteBars)
            })
        };
        let rgba = rig(PixelFormat::Rgba8, false).frame(0);
        let mut convert = Convert::new(PixelFormat::Uyvy).unwrap();
        let feed = OutputPort::<VideoFrame>::new("video", MemoryCaps::CPU);
        let out = InputPort::<VideoFrame>::new("video", MemoryCaps::CPU);
        feed.handle()
            .erased()
            .connect_to(&*convert.input().erased())
            .unwrap();
        convert
            .output()
            .erased()
            .connect_to(&*out.handle().erased())
            .unwrap();
        feed.write(rgba);
        convert
            .process(&mut ProcessContext::new("convert", tick(0)))
            .unwrap();
        let converted = out.recv().unwrap();

        let plain = rig(PixelFormat::Uyvy, false).frame(0);
        assert_eq!(plain.format(), PixelFormat::Uyvy);
        assert_eq!(plain.stride(), w.div_ceil(2) * 4);
        assert!(
            plain.cpu_bytes() == converted.cpu_bytes(),
            "{w}x{h}: UYVY pattern differs from Convert's"
        );
        // 75 % white at the top left: Y 180, Cb = Cr = 128.
        assert_eq!(&plain.cpu_bytes().unwrap()[..4], &[128, 180, 128, 180]);

        let mut boxed = rig(PixelFormat::Uyvy, true);
        let b = boxed.source.moving_box(3).unwrap();
        let frame = boxed.frame(3);
        let (a, z) = (plain.cpu_bytes().unwrap(), frame.cpu_bytes().unwrap());
        let stride = plain.stride() as usize;
        let row = (b.y + b.size / 2) as usize;
        let first_pair = (b.x / 2) as usize;
        let q = row * stride + first_pair * 4;
        assert_eq!(z[q] as u16 + a[q] as u16, 256, "Cb inverted");
        assert_eq!(z[q + 1] as u16 + a[q + 1] as u16, 251, "Y inverted");
        // Above the box nothing changes.
        let above = (b.y as usize - 1) * stride;
        assert_eq!(&z[above..above + stride], &a[above..above + stride]);
    }
}

#[test]
fn formats_other_than_rgba8_and_uyvy_are_refused() {
    let err = TestPattern::new(TestPatternConfig {
        format: PixelFormat::I420,
        ..TestPatternConfig::default()
    })
    .unwrap_err();
    assert!(matches!(err, VideoError::UnsupportedFormat { .. }), "{err}");
    assert!(err.to_string().contains("i420"), "{err}");
}
