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

/// The demos' clock: software-timed at `--fps`, ending after `--frames` ticks when given (so
/// a headless run drains and its counts are final).
pub struct DemoClock {
    inner: SoftwareClock,
    left: Option<u64>,
}

impl Clock for DemoClock {
    fn info(&self) -> streamlib::clock::ClockInfo {
        self.inner.info()
    }
    fn start(&mut self) -> Result<(), streamlib::clock::ClockError> {
        self.inner.start()
    }
    fn wait_tick(
        &mut self,
        timeout: std::time::Duration,
    ) -> Result<streamlib::clock::TickWait, streamlib::clock::ClockError> {
        use streamlib::clock::TickWait;
        if self.left == Some(0) {
            return Ok(TickWait::Ended);
        }
        let wait = self.inner.wait_tick(timeout)?;
        if let (TickWait::Tick(_), Some(left)) = (&wait, self.left.as_mut()) {
            *left -= 1;
        }
        Ok(wait)
    }
    fn now_ns(&self) -> u64 {
        self.inner.now_ns()
    }
    fn stats(&self) -> streamlib::clock::ClockStats {
        self.inner.stats()
    }
}

impl DemoOptions {
    /// The clock for this run (see [`DemoClock`]).
    pub fn clock(&self) -> DemoClock {
        DemoClock {
            inner: SoftwareClock::new(Rational::fps(self.fps)),
            left: self.frames,
        }
    }

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

/// Exit status of a headless demo whose pipeline ran but did not hold its frame rate.
pub const EXIT_NOT_HELD: i32 = 3;
/// Exit status of a demo in which a handler failed and was left failed (restart policy
/// `never`): the run did not do what it was asked, which is a defect, not load.
pub const EXIT_HANDLER_FAILED: i32 = 4;

/// What a run did, counted from its statistics, and whether it held its frame rate.
pub struct Verdict {
    /// Frame periods the run covered: clock ticks issued plus ticks the clock missed.
    pub frames: u64,
    /// Clock ticks issued.
    pub ticks: u64,
    /// Ticks the clock missed (it woke too late).
    pub clock_missed: u64,
    /// Frames the stream feeding the sink wrote.
    pub produced: u64,
    /// Frames not produced anywhere because a pool was empty (skipped and counted).
    pub skipped_pool_empty: u64,
    /// Ticks handlers skipped because they (or their upstream) were still busy.
    pub skipped_ticks: u64,
    /// Items lost on inputs (latest-read skips, ordered overflow).
    pub drops: u64,
    /// Frames the sink received.
    pub received: u64,
    /// Frames the file writer received, when there is one.
    pub file_received: Option<u64>,
    /// Frames written into the file (video packets muxed), when there is one.
    pub file_written: Option<u64>,
    /// Frames per second achieved at the sink.
    pub fps: f64,
    /// Frames the sink lacks: `frames - received`.
    pub lost: u64,
    /// Frames the file lacks: `frames - file_written`.
    pub file_lost: Option<u64>,
    /// Streams left failed: id, handler and error.
    pub failed: Vec<(String, &'static str, String)>,
    /// Worst p99 tick-to-done latency of a sink, ms.
    pub latency_p99_ms: f64,
    /// Held: nothing lost at the sink or in the file, and no handler failed.
    pub held: bool,
}

/// Judges a finished run from its statistics. `sink` is the final stream's id, `producer` the
/// stream feeding it, `file_written` the frames the file writer muxed (if there is one).
pub fn verdict(
    stats: &RuntimeStats,
    sink: &str,
    producer: &str,
    file_written: Option<u64>,
    target_fps: u32,
) -> Verdict {
    let frames = stats.clock_ticks + stats.clock_missed;
    let sink_stats = stats.stream(sink);
    let received = sink_stats.map_or(0, |s| s.items_in);
    let latency = sink_stats.map_or(0.0, |s| s.latency_p99.as_secs_f64() * 1e3);
    let secs = stats.elapsed.as_secs_f64().max(1e-9);
    let fps = (received as f64 / secs).min(f64::from(target_fps) * 1.05);
    let lost = frames.saturating_sub(received);
    let file_lost = file_written.map(|w| frames.saturating_sub(w));
    let failed: Vec<_> = stats
        .failed()
        .map(|s| {
            (
                s.id.clone(),
                s.handler,
                s.last_error
                    .clone()
                    .unwrap_or_else(|| "no message".to_owned()),
            )
        })
        .collect();
    Verdict {
        frames,
        ticks: stats.clock_ticks,
        clock_missed: stats.clock_missed,
        produced: stats.stream(producer).map_or(0, |s| s.items_out),
        skipped_pool_empty: stats.streams.iter().map(|s| s.skipped_pool_empty).sum(),
        skipped_ticks: stats.streams.iter().map(|s| s.skipped_ticks).sum(),
        drops: stats.streams.iter().map(|s| s.total_drops()).sum(),
        received,
        file_received: file_written.and_then(|_| stats.stream("mp4").map(|s| s.items_in)),
        file_written,
        fps,
        lost,
        file_lost,
        held: lost == 0 && file_lost.unwrap_or(0) == 0 && failed.is_empty(),
        failed,
        latency_p99_ms: latency,
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
        "{demo}: {}x{} @ {} fps, {} frames ({} ticks + {} missed by the clock): {:.2} fps achieved, sink latency p99 {:.2} ms: {}",
        options.width,
        options.height,
        options.fps,
        verdict.frames,
        verdict.ticks,
        verdict.clock_missed,
        verdict.fps,
        verdict.latency_p99_ms,
        if !verdict.failed.is_empty() {
            "a handler FAILED"
        } else if verdict.held {
            "HELD its frame rate"
        } else {
            "did NOT hold its frame rate"
        }
    );
    let _ = writeln!(
        text,
        "  produced {} (pool empty: {} skipped; {} ticks skipped, {} dropped on inputs); sink received {}, lost {}",
        verdict.produced,
        verdict.skipped_pool_empty,
        verdict.skipped_ticks,
        verdict.drops,
        verdict.received,
        verdict.lost,
    );
    if let (Some(received), Some(written), Some(lost)) = (
        verdict.file_received,
        verdict.file_written,
        verdict.file_lost,
    ) {
        let _ = writeln!(
            text,
            "  file received {received}, wrote {written} frames, lost {lost}"
        );
    }
    for (id, handler, error) in &verdict.failed {
        let _ = writeln!(text, "  FAILED: {id} ({handler}): {error}");
    }
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
                "state": s.state.to_string(),
                "ticks": s.ticks,
                "skipped_ticks": s.skipped_ticks,
                "items_in": s.items_in,
                "items_out": s.items_out,
                "skipped_pool_empty": s.skipped_pool_empty,
                "pool_grown": s.pool_grown,
                "pool_capacity": s.pool_capacity,
                "drops": s.total_drops(),
                "errors": s.errors + s.panics,
                "error": s.last_error,
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
        "clock_ticks": verdict.ticks,
        "clock_missed": verdict.clock_missed,
        "produced": verdict.produced,
        "skipped_pool_empty": verdict.skipped_pool_empty,
        "skipped_ticks": verdict.skipped_ticks,
        "drops": verdict.drops,
        "sink_received": verdict.received,
        "lost": verdict.lost,
        "file_received": verdict.file_received,
        "file_written": verdict.file_written,
        "file_lost": verdict.file_lost,
        "failed": verdict.failed.iter().map(|(id, handler, error)| serde_json::json!({
            "id": id, "handler": handler, "error": error,
        })).collect::<Vec<_>>(),
        "achieved_fps": verdict.fps,
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

/// Writes the captured frames as `first.png`, `middle.png`, `last.png` (the frames received
/// at `indices`). A run that received fewer frames than asked (frames were lost) never saw
/// some of those indices: the newest frame received stands in for each one missing.
pub fn write_snapshots(
    dir: &Path,
    capture: &streamlib::video::CaptureHandle,
    indices: &[u64],
) -> anyhow::Result<Vec<PathBuf>> {
    let names = ["first", "middle", "last"];
    let captured = capture.frames();
    let latest = capture.latest();
    let mut paths = Vec::new();
    for (name, wanted) in names.iter().zip(indices) {
        let frame = match captured.iter().find(|(index, _)| index == wanted) {
            Some((_, frame)) => frame,
            None => match &latest {
                Some(frame) => {
                    tracing::warn!(
                        "frame {wanted} never arrived: {name}.png shows the newest frame received"
                    );
                    frame
                }
                None => continue,
            },
        };
        let path = dir.join(format!("{name}.png"));
        write_png(frame, &path)?;
        tracing::debug!(wanted, path = %path.display(), "snapshot");
        paths.push(path);
    }
    Ok(paths)
}

/// Ends the pipeline in `output` with a window, or headless with a frame capture, runs it,
/// and reports: headless runs write snapshots and the summary, and exit with status
/// [`EXIT_NOT_HELD`] (3) when the pipeline did not hold its frame rate. Any run in which a
/// handler failed exits with [`EXIT_HANDLER_FAILED`] (4), naming the handler and its error.
pub fn run_to_sink(
    mut runtime: StreamRuntime,
    output: &streamlib::ports::OutputRef<VideoFrame>,
    options: &DemoOptions,
    demo: &str,
) -> anyhow::Result<()> {
    use streamlib::video::{Display, DisplayConfig, FrameCapture};

    if options.headless {
        let indices = options.snapshot_indices();
        let capture = FrameCapture::new(indices.iter().copied()).keep_latest();
        let (input, seen) = (capture.input(), capture.handle());
        runtime.add_stream(Stream::new("sink", capture))?;
        let producer = runtime
            .connect(output, &input)?
            .output
            .split_once('.')
            .map(|(stream, _)| stream.to_owned())
            .unwrap_or_default();
        std::fs::create_dir_all(&options.out)?;
        #[cfg(feature = "file")]
        let (movie, written) = {
            // The same frames, fanned out by reference, also go to an MP4 (H.264) on a thread
            // of its own so encoding never holds up the pipeline's pool.
            let path = options.out.join(format!("{demo}.mp4"));
            // `FileWriter` and `WriterConfig` come with the prelude when `file` is on.
            let writer = FileWriter::new(WriterConfig::new(&path))?;
            let (input, written) = (writer.input(), writer.stats());
            runtime.add_stream(
                Stream::new("mp4", writer)
                    .dispatcher(std::sync::Arc::new(DedicatedThreadDispatcher::new())),
            )?;
            runtime.connect(output, &input)?;
            (path, written)
        };
        // The clock (see `DemoOptions::clock`) ends after `--frames` ticks: every handler
        // then drains what it holds, so the counts below are final.
        let stats = runtime.run()?;
        let snapshots = write_snapshots(&options.out, &seen, &indices)?;
        #[cfg(feature = "file")]
        let file_written = Some(written.packets_written());
        #[cfg(not(feature = "file"))]
        let file_written = None;
        let verdict = verdict(&stats, "sink", &producer, file_written, options.fps);
        let summary = write_summary(&options.out, demo, options, &stats, &verdict, &snapshots)?;
        println!("{summary}");
        println!("snapshots and stats in {}", options.out.display());
        #[cfg(feature = "file")]
        println!("video in {}", movie.display());
        exit_if_failed(&verdict);
        if !verdict.held {
            std::process::exit(EXIT_NOT_HELD);
        }
    } else {
        let display = Display::new(DisplayConfig {
            title: format!("streamlib {demo}"),
            ..DisplayConfig::default()
        });
        let input = display.input();
        // The window gets a thread of its own so the pool never waits on it.
        runtime.add_stream(
            Stream::new("sink", display)
                .dispatcher(std::sync::Arc::new(DedicatedThreadDispatcher::new())),
        )?;
        runtime.connect(output, &input)?;
        let stats = runtime.run()?;
        let verdict = verdict(&stats, "sink", "", None, options.fps);
        println!("{stats}");
        println!(
            "{:.2} fps, {} of {} frames lost: {}",
            verdict.fps,
            verdict.lost,
            verdict.frames,
            if verdict.held {
                "held its frame rate"
            } else {
                "did not hold its frame rate"
            }
        );
        exit_if_failed(&verdict);
    }
    Ok(())
}

/// Names each failed handler with its error and exits with [`EXIT_HANDLER_FAILED`], if any
/// handler failed.
fn exit_if_failed(verdict: &Verdict) {
    if verdict.failed.is_empty() {
        return;
    }
    for (id, handler, error) in &verdict.failed {
        tracing::error!("handler '{id}' ({handler}) failed: {error}");
    }
    std::process::exit(EXIT_HANDLER_FAILED);
}

/// Sets up logging (`RUST_LOG` overrides `info`).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
}
