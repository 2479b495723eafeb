//! What the demos share: command-line options, PNG snapshots, the stats summary and the
//! verdict on whether the pipeline held its frame rate.
#![allow(dead_code, reason = "each demo uses a subset")]

use std::fmt::Write as _;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use streamlib::prelude::*;

/// Options every demo accepts.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Run without a window even if a display is available.
    pub headless: bool,
    /// Stop after this many frames (headless default 300; with a window, run until closed).
    pub frames: Option<u64>,
    /// Where headless output goes.
    pub out: PathBuf,
    /// Frame size.
    pub width: u32,
    /// Frame size.
    pub height: u32,
    /// Frame rate.
    pub fps: u32,
    /// An input file, for demos that read one.
    pub input: Option<PathBuf>,
}

impl DemoOptions {
    /// Parses `--headless --frames N --out DIR --size WxH --fps F` from the command line.
    pub fn from_args(default_size: (u32, u32), default_out: &str) -> anyhow::Result<Self> {
        let mut options = Self {
            headless: false,
            frames: None,
            out: PathBuf::from(default_out),
            width: default_size.0,
            height: default_size.1,
            fps: 30,
            input: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value =
                |name: &str| args.next().with_context(|| format!("{name} needs a value"));
            match arg.as_str() {
                "--headless" => options.headless = true,
                "--frames" => {
                    options.frames = Some(value("--frames")?.parse().context("--frames N")?);
                }
                "--out" => options.out = PathBuf::from(value("--out")?),
                "--input" => options.input = Some(PathBuf::from(value("--input")?)),
                "--fps" => options.fps = value("--fps")?.parse().context("--fps F")?,
                "--size" => {
                    let size = value("--size")?;
                    let (w, h) = size
                        .split_once('x')
                        .with_context(|| format!("--size takes WxH, got '{size}'"))?;
                    options.width = w
                        .parse()
                        .with_context(|| format!("bad width in '{size}'"))?;
                    options.height = h
                        .parse()
                        .with_context(|| format!("bad height in '{size}'"))?;
                }
                "-h" | "--help" => {
                    bail!(
                        "options: --headless --frames N --out DIR --size WxH --fps F [--input FILE]"
                    )
                }
                other => bail!("unknown option '{other}' (try --help)"),
            }
        }
        if options.fps == 0 {
            bail!("--fps must be at least 1");
        }
        if !options.headless && !streamlib::video::display_available() {
            tracing::info!("no display found (DISPLAY is not set): running headless");
            options.headless = true;
        }
        if options.headless && options.frames.is_none() {
            options.frames = Some(300);
        }
        Ok(options)
    }

    /// The frames to snapshot: first, middle and last.
    pub fn snapshot_indices(&self) -> Vec<u64> {
        let n = self.frames.unwrap_or(1).max(1);
        vec![0, n / 2, n - 1]
    }
}

/// Writes a frame as an 8-bit RGBA PNG (converting premultiplied alpha back to straight).
pub fn write_png(frame: &VideoFrame, path: &Path) -> anyhow::Result<()> {
    let bytes = frame
        .cpu_bytes()
        .context("snapshot frame is not in CPU memory")?;
    let (w, h, stride) = (
        frame.width() as usize,
        frame.height() as usize,
        frame.stride() as usize,
    );
    let mut rgba = Vec::with_capacity(w * h * 4);
    for row in bytes.chunks(stride).take(h) {
        for px in row[..w * 4].chunks_exact(4) {
            let (mut r, mut g, mut b, a) = match frame.format() {
                PixelFormat::Bgra8 => (px[2], px[1], px[0], px[3]),
                _ => (px[0], px[1], px[2], px[3]),
            };
            if frame.alpha() == AlphaMode::Premultiplied && a > 0 && a < 255 {
                let un =
                    |c: u8| ((u32::from(c) * 255 + u32::from(a) / 2) / u32::from(a)).min(255) as u8;
                (r, g, b) = (un(r), un(g), un(b));
            }
            rgba.extend_from_slice(&[r, g, b, a]);
        }
    }
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), w as u32, h as u32);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder
        .write_header()
        .with_context(|| format!("cannot write {}", path.display()))?;
    writer
        .write_image_data(&rgba)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Whether the run held its frame rate, and the numbers behind the verdict.
pub struct Verdict {
    /// Frames the sink received.
    pub frames: u64,
    /// Frames per second achieved at the sink.
    pub fps: f64,
    /// Everything lost: clock ticks missed, ticks skipped by handlers, drops on inputs.
    pub lost: u64,
    /// Worst p99 tick-to-done latency of a sink, ms.
    pub latency_p99_ms: f64,
    /// Held: nothing lost and the sink saw every tick.
    pub held: bool,
}

/// Judges a finished run from its statistics. `sink` is the final stream's id.
pub fn verdict(stats: &RuntimeStats, sink: &str, frames: u64, target_fps: u32) -> Verdict {
    let missed = stats.clock_missed;
    // The MP4 writer reads in ordered mode: a tick it skips while encoding loses nothing (the
    // frames wait in its queue, and an overflow would show as drops), so only the video path's
    // skipped ticks count.
    let skipped: u64 = stats
        .streams
        .iter()
        .filter(|s| s.id != "mp4")
        .map(|s| s.skipped_ticks)
        .sum();
    let drops: u64 = stats.streams.iter().map(|s| s.total_drops()).sum();
    let sink_stats = stats.stream(sink);
    let received = sink_stats.map_or(0, |s| s.ticks);
    let latency = sink_stats.map_or(0.0, |s| s.latency_p99.as_secs_f64() * 1e3);
    let secs = stats.elapsed.as_secs_f64().max(1e-9);
    let fps = (received as f64 / secs).min(f64::from(target_fps) * 1.05);
    let lost = missed + skipped + drops;
    Verdict {
        frames,
        fps,
        lost,
        latency_p99_ms: latency,
        held: lost == 0 && received >= frames,
    }
}

/// Writes `stats.txt` and `summary.json` into `dir` and returns the summary text.
pub fn write_summary(
    dir: &Path,
    demo: &str,
    options: &DemoOptions,
    stats: &RuntimeStats,
    verdict: &Verdict,
    snapshots: &[PathBuf],
) -> anyhow::Result<String> {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{demo}: {}x{} @ {} fps, {} frames: {:.2} fps achieved, {} lost (missed + skipped + dropped), sink latency p99 {:.2} ms: {}",
        options.width,
        options.height,
        options.fps,
        verdict.frames,
        verdict.fps,
        verdict.lost,
        verdict.latency_p99_ms,
        if verdict.held {
            "HELD its frame rate"
        } else {
            "did NOT hold its frame rate"
        }
    );
    let _ = writeln!(text, "{stats}");
    std::fs::write(dir.join("stats.txt"), &text)
        .with_context(|| format!("cannot write {}", dir.join("stats.txt").display()))?;
    let handlers: Vec<serde_json::Value> = stats
        .streams
        .iter()
        .map(|s| {
            serde_json::json!({
                "id": s.id,
                "handler": s.handler,
                "ticks": s.ticks,
                "skipped_ticks": s.skipped_ticks,
                "drops": s.total_drops(),
                "errors": s.errors + s.panics,
                "p50_ms": s.p50.as_secs_f64() * 1e3,
                "p99_ms": s.p99.as_secs_f64() * 1e3,
                "latency_p99_ms": s.latency_p99.as_secs_f64() * 1e3,
            })
        })
        .collect();
    let summary = serde_json::json!({
        "demo": demo,
        "width": options.width,
        "height": options.height,
        "target_fps": options.fps,
        "frames": verdict.frames,
        "achieved_fps": verdict.fps,
        "clock_missed": stats.clock_missed,
        "lost": verdict.lost,
        "sink_latency_p99_ms": verdict.latency_p99_ms,
        "held_frame_rate": verdict.held,
        "snapshots": snapshots.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "handlers": handlers,
    });
    let json = serde_json::to_string_pretty(&summary)?;
    std::fs::write(dir.join("summary.json"), json)
        .with_context(|| format!("cannot write {}", dir.join("summary.json").display()))?;
    Ok(text)
}

/// Writes the captured frames as `first.png`, `middle.png`, `last.png`.
pub fn write_snapshots(
    dir: &Path,
    capture: &streamlib::video::CaptureHandle,
) -> anyhow::Result<Vec<PathBuf>> {
    let names = ["first", "middle", "last"];
    let mut paths = Vec::new();
    for (i, (index, frame)) in capture.frames().iter().enumerate() {
        let name = names.get(i).copied().unwrap_or("extra");
        let path = dir.join(format!("{name}.png"));
        write_png(frame, &path)?;
        tracing::debug!(index, path = %path.display(), "snapshot");
        paths.push(path);
    }
    Ok(paths)
}

/// Ends the pipeline in `output` with a window, or headless with a frame capture, runs it,
/// and reports: headless runs write snapshots and the summary, and exit with status 3 when
/// the pipeline did not hold its frame rate.
pub fn run_to_sink(
    mut runtime: StreamRuntime,
    output: &streamlib::ports::OutputRef<VideoFrame>,
    options: &DemoOptions,
    demo: &str,
) -> anyhow::Result<()> {
    use std::time::Duration;
    use streamlib::video::{Display, DisplayConfig, FrameCapture};

    let handle = runtime.handle();
    let stop_at = |target: u64, count: Box<dyn Fn() -> u64 + Send>| {
        let handle = handle.clone();
        std::thread::spawn(move || {
            while count() < target {
                std::thread::sleep(Duration::from_millis(5));
            }
            handle.stop();
        });
    };
    if options.headless {
        let capture = FrameCapture::new(options.snapshot_indices());
        let (input, seen) = (capture.input(), capture.handle());
        runtime.add_stream(Stream::new("sink", capture))?;
        runtime.connect(output, &input)?;
        let target = options.frames.unwrap_or(300);
        std::fs::create_dir_all(&options.out)?;
        #[cfg(feature = "file")]
        let movie = {
            // The same frames, fanned out by reference, also go to an MP4 (H.264) on a thread
            // of its own so encoding never holds up the pipeline's pool.
            let path = options.out.join(format!("{demo}.mp4"));
            let writer =
                streamlib::file::FileWriter::new(streamlib::file::WriterConfig::new(&path))?;
            let input = writer.input();
            runtime.add_stream(
                Stream::new("mp4", writer)
                    .dispatcher(std::sync::Arc::new(DedicatedThreadDispatcher::new())),
            )?;
            runtime.connect(output, &input)?;
            path
        };
        let watcher = seen.clone();
        stop_at(target, Box::new(move || watcher.received()));
        let stats = runtime.run()?;
        let snapshots = write_snapshots(&options.out, &seen)?;
        let verdict = verdict(&stats, "sink", target, options.fps);
        let summary = write_summary(&options.out, demo, options, &stats, &verdict, &snapshots)?;
        println!("{summary}");
        println!("snapshots and stats in {}", options.out.display());
        #[cfg(feature = "file")]
        println!("video in {}", movie.display());
        if !verdict.held {
            std::process::exit(3);
        }
    } else {
        let display = Display::new(DisplayConfig {
            title: format!("streamlib {demo}"),
            ..DisplayConfig::default()
        });
        let input = display.input();
        let shown = display.stats();
        // The window gets a thread of its own so the pool never waits on it.
        runtime.add_stream(
            Stream::new("sink", display)
                .dispatcher(std::sync::Arc::new(DedicatedThreadDispatcher::new())),
        )?;
        runtime.connect(output, &input)?;
        if let Some(target) = options.frames {
            stop_at(target, Box::new(move || shown.frames_received()));
        }
        let stats = runtime.run()?;
        let ticks = stats.stream("sink").map_or(0, |s| s.ticks);
        let verdict = verdict(&stats, "sink", ticks, options.fps);
        println!("{stats}");
        println!(
            "{:.2} fps, {} lost: {}",
            verdict.fps,
            verdict.lost,
            if verdict.held {
                "held its frame rate"
            } else {
                "did not hold its frame rate"
            }
        );
    }
    Ok(())
}

/// Sets up logging (`RUST_LOG` overrides `info`).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
}
