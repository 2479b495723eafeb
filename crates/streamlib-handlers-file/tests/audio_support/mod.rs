//! What the audio tests share: temporary directories, the FFmpeg CLI as a peer (making,
//! probing and decoding files), measurements of a tone, and two test handlers (a sink that
//! records audio buffers, a sine source).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use streamlib_buffers::PooledBuf;
use streamlib_ports::*;

pub const RATE: u32 = 48_000;
/// One AAC frame plus the encoder's priming: how far AAC durations may stray.
pub const AAC_SLACK: u64 = 2 * 1024;

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("streamlib-audio-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the ffmpeg CLI (quiet, overwrite) and insists it succeeds.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-nostdin"])
        .args(args)
        .output()
        .expect("ffmpeg CLI");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// 2 s of testsrc2 (30 fps) and a 1 kHz sine at 48 kHz (mono, amplitude 1/8), H.264 + AAC.
pub fn make_tone_file(dir: &TempDir, name: &str) -> PathBuf {
    let path = dir.file(name);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=30",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=1000:sample_rate=48000",
        "-t",
        "2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "aac",
        path.to_str().unwrap(),
    ]);
    path
}

/// ffprobe's streams, one map per stream.
pub fn probe_streams(path: &Path) -> Vec<HashMap<String, String>> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries"])
        .args(["stream=codec_type,codec_name,sample_rate,channels,duration"])
        .args(["-of", "compact=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            line.split('|')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

/// Decodes the whole file; FFmpeg must have nothing to complain about.
pub fn assert_decodes_cleanly(path: &Path) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success(), "ffmpeg failed on {}", path.display());
    assert!(
        out.stderr.is_empty(),
        "ffmpeg complained about {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The first audio stream decoded by the CLI as interleaved f32.
pub fn decode_audio(path: &Path) -> Vec<f32> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-map", "0:a:0", "-f", "f32le", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Video frames the CLI decodes.
pub fn count_video_frames(path: &Path) -> u64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_frames"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_end_matches(',')
        .parse()
        .unwrap()
}

/// One channel of interleaved samples.
pub fn channel(samples: &[f32], channels: usize, c: usize) -> Vec<f32> {
    samples.iter().skip(c).step_by(channels).copied().collect()
}

/// Frequency from rising zero crossings (interpolated), ignoring the first and last 5 %
/// (codec start-up and end).
pub fn frequency(signal: &[f32], rate: u32) -> f64 {
    let margin = signal.len() / 20;
    let part = &signal[margin..signal.len() - margin];
    let crossings: Vec<f64> = part
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] < 0.0 && w[1] >= 0.0)
        .map(|(i, w)| i as f64 + f64::from(w[0] / (w[0] - w[1])))
        .collect();
    assert!(
        crossings.len() > 10,
        "no tone: {} crossings",
        crossings.len()
    );
    let span = crossings[crossings.len() - 1] - crossings[0];
    (crossings.len() - 1) as f64 * f64::from(rate) / span
}

/// Root mean square over the middle 90 %.
pub fn rms(signal: &[f32]) -> f64 {
    let margin = signal.len() / 20;
    let part = &signal[margin..signal.len() - margin];
    (part.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / part.len() as f64).sqrt()
}

/// Power of `freq` relative to the signal's total (Goertzel): close to 1 for a pure tone.
pub fn tone_purity(signal: &[f32], rate: u32, freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in signal {
        let s = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let energy: f64 = signal.iter().map(|&x| f64::from(x).powi(2)).sum();
    2.0 * power / (signal.len() as f64 * energy)
}

/// Audio buffers with the tick each arrived on.
pub type Received = Arc<Mutex<Vec<(u64, AudioBuffer)>>>;

/// Collects every audio buffer with the tick it arrived on.
pub struct AudioSink {
    pub input: InputPort<AudioBuffer>,
    got: Received,
}

impl AudioSink {
    pub fn new() -> (Self, Received) {
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = Self {
            input: InputPort::new("audio", MemoryCaps::CPU)
                .with_delivery(DeliveryMode::Ordered { capacity: 4096 }),
            got: Arc::clone(&got),
        };
        (sink, got)
    }
}

impl StreamHandler for AudioSink {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input)
    }
    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        let tick = ctx.tick().frame_number;
        let mut got = self.got.lock().unwrap();
        while let Some(buffer) = self.input.recv() {
            got.push((tick, buffer));
        }
        Ok(())
    }
}

/// Generates a sine, the samples of each 1/30 s tick in one buffer.
pub struct SineSource {
    pub out: OutputPort<AudioBuffer>,
    rate: u32,
    channels: u16,
    freq: f64,
    sent: u64,
}

impl SineSource {
    pub fn new(rate: u32, channels: u16, freq: f64) -> Self {
        Self {
            out: OutputPort::new("audio", MemoryCaps::CPU),
            rate,
            channels,
            freq,
            sent: 0,
        }
    }
}

impl StreamHandler for SineSource {
    fn ports(&self) -> Ports {
        Ports::new().output(&self.out)
    }
    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        let n = ctx.tick().frame_number + 1;
        let target = n * u64::from(self.rate) / 30;
        let frames = target - self.sent;
        let mut samples = Vec::with_capacity(frames as usize * usize::from(self.channels));
        for i in self.sent..target {
            let t = i as f64 / f64::from(self.rate);
            let v = (0.5 * (2.0 * std::f64::consts::PI * self.freq * t).sin()) as f32;
            samples.extend(std::iter::repeat_n(v, usize::from(self.channels)));
        }
        let timestamp = self.sent * 1_000_000_000 / u64::from(self.rate);
        self.sent = target;
        let buffer = AudioBuffer::new(
            PooledBuf::from_vec(samples),
            self.channels,
            self.rate,
            timestamp,
        )?;
        self.out.write(buffer);
        Ok(())
    }
}
