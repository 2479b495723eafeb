//! `Convert` as a handler: RGB ↔ UYVY/I420 round trips, odd sizes, pass-through by reference,
//! and refused formats named.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use streamlib_buffers::PooledBuf;
use streamlib_clock::{ClockSourceId, Rational, TimedTick};
use streamlib_handlers_video::{Convert, VideoError};
use streamlib_ports::{
    FrameLayout, InputPort, MemoryCaps, OutputPort, PixelFormat, ProcessContext, StreamHandler,
    VideoFrame,
};

struct Rig {
    convert: Convert,
    source: OutputPort<VideoFrame>,
    sink: InputPort<VideoFrame>,
}

impl Rig {
    fn new(target: PixelFormat) -> Self {
        let convert = Convert::new(target).unwrap();
        let source = OutputPort::new("video", MemoryCaps::CPU);
        let sink = InputPort::new("video", MemoryCaps::CPU);
        source
            .handle()
            .erased()
            .connect_to(&*convert.input().erased())
            .unwrap();
        convert
            .output()
            .erased()
            .connect_to(&*sink.handle().erased())
            .unwrap();
        Self {
            convert,
            source,
            sink,
        }
    }

    fn push(&mut self, frame: VideoFrame, bands: usize) -> Result<VideoFrame, String> {
        self.source.write(frame);
        let tick = TimedTick {
            timestamp: 0,
            frame_number: 1,
            clock_source_id: ClockSourceId::MANUAL,
            fps: Rational::fps(30),
        };
        let mut ctx = ProcessContext::new("convert", tick).with_concurrency_limit(bands);
        self.convert.process(&mut ctx).map_err(|e| e.to_string())?;
        Ok(self.sink.recv().expect("a converted frame"))
    }
}

/// An RGBA frame of flat 2×2 colour blocks (so 4:2:0 and 4:2:2 subsampling lose nothing).
fn blocks(width: u32, height: u32) -> VideoFrame {
    let layout = FrameLayout::new(width, height, PixelFormat::Rgba8).unwrap();
    let mut bytes = vec![0u8; layout.buffer_len()];
    for y in 0..height as usize {
        for x in 0..width as usize {
            let (bx, by) = (x / 2, y / 2);
            let p = &mut bytes[(y * width as usize + x) * 4..][..4];
            p.copy_from_slice(&[
                (bx * 37 % 256) as u8,
                (by * 53 % 256) as u8,
                ((bx + by) * 29 % 256) as u8,
                255,
            ]);
        }
    }
    VideoFrame::cpu(layout, PooledBuf::from_vec(bytes))
        .unwrap()
        .with_timing(5, 7, ClockSourceId(3))
}

fn max_diff(a: &[u8], b: &[u8]) -> u8 {
    a.iter()
        .zip(b)
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0)
}

#[test]
fn rgba_through_uyvy_and_i420_and_back() {
    for (width, height) in [(64, 36), (30, 20)] {
        let src = blocks(width, height);
        for target in [PixelFormat::Uyvy, PixelFormat::I420] {
            let yuv = Rig::new(target).push(src.clone(), 2).unwrap();
            assert_eq!(
                (yuv.format(), yuv.width(), yuv.height()),
                (target, width, height)
            );
            assert_eq!((yuv.timestamp_ns(), yuv.frame_number()), (5, 7));
            let back = Rig::new(PixelFormat::Rgba8).push(yuv, 3).unwrap();
            let d = max_diff(back.cpu_bytes().unwrap(), src.cpu_bytes().unwrap());
            assert!(d <= 2, "{target} {width}x{height}: max difference {d}");
        }
    }
}

#[test]
fn odd_sizes_and_bgra() {
    let layout = FrameLayout::new(7, 5, PixelFormat::Bgra8).unwrap();
    let bytes: Vec<u8> = (0..layout.buffer_len())
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let frame = VideoFrame::cpu(layout, PooledBuf::from_vec(bytes.clone())).unwrap();
    let uyvy = Rig::new(PixelFormat::Uyvy).push(frame.clone(), 1).unwrap();
    assert_eq!(uyvy.stride(), 16, "4 pairs of 4 bytes for 7 pixels");
    let i420 = Rig::new(PixelFormat::I420).push(frame.clone(), 1).unwrap();
    assert_eq!(i420.cpu_bytes().unwrap().len(), 7 * 5 + 2 * 4 * 3);
    // BGRA -> RGBA swaps red and blue and keeps alpha.
    let rgba = Rig::new(PixelFormat::Rgba8).push(frame, 2).unwrap();
    let out = rgba.cpu_bytes().unwrap();
    for (o, i) in out.chunks(4).zip(bytes.chunks(4)) {
        assert_eq!(o, [i[2], i[1], i[0], i[3]]);
    }
}

#[test]
fn the_target_format_passes_through_by_reference() {
    let src = blocks(16, 8);
    let out = Rig::new(PixelFormat::Rgba8).push(src.clone(), 1).unwrap();
    assert_eq!(
        out.cpu_bytes().unwrap().as_ptr(),
        src.cpu_bytes().unwrap().as_ptr()
    );
}

#[test]
fn unsupported_formats_are_named() {
    let err = Convert::new(PixelFormat::Nv12).unwrap_err();
    assert!(matches!(
        err,
        VideoError::UnsupportedFormat {
            format: PixelFormat::Nv12,
            ..
        }
    ));
    let layout = FrameLayout::new(4, 4, PixelFormat::Gray8).unwrap();
    let gray = VideoFrame::cpu(layout, PooledBuf::from_vec(vec![0; 16])).unwrap();
    let err = Rig::new(PixelFormat::Uyvy).push(gray, 1).unwrap_err();
    assert!(err.contains("gray8 frames are not supported"), "{err}");
}
