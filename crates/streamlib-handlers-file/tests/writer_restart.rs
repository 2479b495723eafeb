//! FileWriter restarted by its stream's restart policy after a real failure: each restart
//! writes the next numbered file instead of failing with "already finalized" forever.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use streamlib_buffers::PooledBuf;
use streamlib_clock::{Rational, SoftwareClock};
use streamlib_handlers_file::{FileWriter, WriterConfig};
use streamlib_ports::*;
use streamlib_runtime::{Backoff, RestartPolicy, Stream, StreamRuntime};

/// Emits `total` RGBA frames whose width grows by 16 every `step` frames, then ends: each
/// change is a frame the open file cannot take, a real failure of the writer.
struct GrowingSource {
    out: OutputPort<VideoFrame>,
    step: u64,
    total: u64,
    sent: u64,
}

impl StreamHandler for GrowingSource {
    fn ports(&self) -> Ports {
        Ports::new().output(&self.out)
    }

    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        let tick = *ctx.tick();
        if self.sent == self.total {
            ctx.end_of_stream();
            return Ok(());
        }
        let width = 64 + 16 * u32::try_from(self.sent / self.step).unwrap();
        self.sent += 1;
        let layout = FrameLayout::new(width, 48, PixelFormat::Rgba8).unwrap();
        let bytes = vec![(tick.frame_number * 8 % 256) as u8; layout.buffer_len()];
        let frame = VideoFrame::cpu(layout, PooledBuf::from_vec(bytes))
            .unwrap()
            .with_timing(tick.timestamp, tick.frame_number, tick.clock_source_id);
        self.out.write(frame);
        Ok(())
    }
}

/// (frames, width) of the file's video stream, as ffprobe reads them.
fn probe(path: &Path) -> (u64, u32) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=nb_read_frames,width",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let (width, frames) = text.trim().split_once(',').unwrap();
    (frames.parse().unwrap(), width.parse().unwrap())
}

/// A fresh directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "streamlib-writer-restart-{}-{}-{name}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `path` with a writer whose frames grow twice (two failures, two restarts) and
/// checks the first file: frames 0..20 are 64 wide; frame 20 (80 wide) fails it, the restart
/// takes the 80-wide frames that follow into the next numbered file, and frame 40 does the
/// same again.
fn record_with_two_restarts(path: &Path) {
    let writer = FileWriter::new(WriterConfig {
        fps: Some(Rational::fps(30)),
        ..WriterConfig::new(path)
    })
    .unwrap();
    let stats = writer.stats();
    let source = GrowingSource {
        out: OutputPort::new("video", MemoryCaps::CPU),
        step: 20,
        total: 60,
        sent: 0,
    };
    // A realtime clock: the restart (1 ms) completes between two frames, as it would in a
    // live recording; this also makes the files fragmented (auto).
    let mut runtime = StreamRuntime::new(SoftwareClock::new(Rational::fps(60)));
    let (src_out, writer_in) = (source.out.handle(), writer.input());
    runtime.add_stream(Stream::new("source", source)).unwrap();
    let policy = RestartPolicy::OnFailure(Backoff {
        initial: std::time::Duration::from_millis(1),
        ..Backoff::default()
    });
    runtime
        .add_stream(Stream::new("writer", writer).restart_policy(policy))
        .unwrap();
    runtime.connect(&src_out, &writer_in).unwrap();
    let run = runtime.run().unwrap();
    let writer_stats = run.streams.iter().find(|s| s.id == "writer").unwrap();
    assert_eq!(writer_stats.restarts, 2, "{writer_stats:?}");
    assert_eq!(stats.files_opened(), 3);
    assert!(stats.is_finalized());
    assert_eq!(probe(path), (20, 64), "{}", path.display());
}

/// The numbered files hold the 80- and 96-wide frames.
fn check_restart_files(dir: &Path, names: [&str; 2]) {
    for (name, width) in names.into_iter().zip([80, 96]) {
        let (frames, w) = probe(&dir.join(name));
        assert_eq!(w, width, "{name}");
        assert!((10..=19).contains(&frames), "{name}: {frames} frames");
    }
}

#[test]
fn a_failed_writer_restarts_into_the_next_numbered_file() {
    let dir = temp_dir("plain");
    record_with_two_restarts(&dir.join("out.mp4"));
    check_restart_files(&dir, ["out-0001.mp4", "out-0002.mp4"]);
    assert!(!dir.join("out-0003.mp4").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A restart never writes into a name that exists: a file of an earlier run is kept as it
/// is, and a symlink is neither followed (its target is untouched) nor replaced; the
/// restarts take the next free numbers.
#[test]
fn restarts_skip_existing_files_and_symlinks() {
    let dir = temp_dir("taken");
    let elsewhere = temp_dir("taken-target");
    let earlier = dir.join("out-0001.mp4");
    std::fs::write(&earlier, b"an earlier run's recording").unwrap();
    let target = elsewhere.join("precious.txt");
    std::fs::write(&target, b"not for the writer").unwrap();
    let link = dir.join("out-0002.mp4");
    std::os::unix::fs::symlink(&target, &link).unwrap();

    record_with_two_restarts(&dir.join("out.mp4"));
    check_restart_files(&dir, ["out-0003.mp4", "out-0004.mp4"]);
    assert!(!dir.join("out-0005.mp4").exists());
    assert_eq!(
        std::fs::read(&earlier).unwrap(),
        b"an earlier run's recording"
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"not for the writer");
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&elsewhere);
}
