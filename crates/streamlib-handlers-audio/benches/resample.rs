//! Resampling 10 s of stereo 44.1 kHz noise to 48 kHz with `audioresample`, and mixing 8
//! stereo 48 kHz inputs of 10 s with `audiomixer`, each against FFmpeg and SoX on the same
//! samples, in the same run.
//!
//! `cargo bench -p streamlib-handlers-audio --bench resample` runs criterion: ours through
//! the handlers' ports and pools (30 fps buffers: 1470 frames at 44.1 kHz, 1600 at 48 kHz),
//! and each peer process timed back to back with its baseline and the baseline subtracted
//! (process start-up, reading the raw files, writing to `/dev/null`):
//!
//! - FFmpeg `-af aresample=48000` minus `-af anull`; `-filter_complex amix=inputs=8` minus
//!   `concat=n=8:v=0:a=1` of the same eight (reads and passes all, adds nothing), both with
//!   `-stream_loop 19` on every input
//!   (20 passes, the difference divided by 20: one pass is below FFmpeg's start-up noise);
//! - SoX `-r 48000` (its default quality, `rate -h`) and `rate -q 48000` minus a plain copy,
//!   the input given 20 times (SoX concatenates), divided by 20; `sox -m` of the eight
//!   (one pass) minus `sox` concatenating the same eight (reads all, mixes nothing).
//!
//! Then (with `--bench`) it prints a table from rounds that run ours and every peer
//! interleaved, one after the other, so that a loaded machine weighs on all alike: medians
//! and the ratios peer / ours. A peer that is not installed is named and skipped.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a bench that cannot set up should fail loudly, and prints its peer table"
)]

use std::hint::black_box;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group};
use streamlib_buffers::PooledBuf;
use streamlib_clock::{ClockSourceId, Rational, TimedTick};
use streamlib_handlers_audio::{
    AudioMixer, AudioMixerConfig, AudioResample, AudioResampleConfig, AudioTestSrc,
    AudioTestSrcConfig, ResampleQuality, Wave,
};
use streamlib_ports::{
    AudioBuffer, InputPort, MemoryCaps, OutputPort, ProcessContext, StreamHandler,
};

const SECONDS: u64 = 10;
const MIX_INPUTS: usize = 8;

fn tick(n: u64) -> TimedTick {
    let fps = Rational::fps(30);
    TimedTick {
        timestamp: fps.frame_time_ns(n),
        frame_number: n,
        clock_source_id: ClockSourceId::MANUAL,
        fps,
    }
}

/// `SECONDS` of stereo pink noise at `rate` from `AudioTestSrc`, as its 30 fps buffers.
fn noise(rate: u32, volume: f64) -> Vec<AudioBuffer> {
    let mut src = AudioTestSrc::new(AudioTestSrcConfig {
        wave: Wave::PinkNoise,
        volume,
        rate,
        ..AudioTestSrcConfig::default()
    })
    .unwrap();
    let sink = InputPort::<AudioBuffer>::new("audio", MemoryCaps::CPU)
        .with_delivery(streamlib_ports::DeliveryMode::Ordered { capacity: 64 });
    src.output()
        .erased()
        .connect_to(&*sink.handle().erased())
        .unwrap();
    let mut out = Vec::new();
    for n in 0..SECONDS * 30 {
        src.process(&mut ProcessContext::new("src", tick(n)))
            .unwrap();
        while let Some(b) = sink.recv() {
            // Own copies: the source's pool is small and would run dry.
            let copy = PooledBuf::from_vec(b.samples().to_vec());
            out.push(AudioBuffer::new(copy, 2, rate, b.timestamp_ns()).unwrap());
        }
    }
    out
}

fn write_raw(path: &Path, buffers: &[AudioBuffer]) {
    let bytes: Vec<u8> = buffers
        .iter()
        .flat_map(|b| b.samples().iter().flat_map(|s| s.to_le_bytes()))
        .collect();
    std::fs::File::create(path)
        .unwrap()
        .write_all(&bytes)
        .unwrap();
}

/// An `audioresample` to 48 kHz wired between a source port and a sink port.
struct ResampleRig {
    handler: AudioResample,
    source: OutputPort<AudioBuffer>,
    sink: InputPort<AudioBuffer>,
}

impl ResampleRig {
    fn new(quality: ResampleQuality) -> Self {
        let handler = AudioResample::new(AudioResampleConfig {
            rate: 48_000,
            quality,
            drift: false,
        })
        .unwrap();
        let source = OutputPort::<AudioBuffer>::new("audio", MemoryCaps::CPU);
        let sink = InputPort::<AudioBuffer>::new("audio", MemoryCaps::CPU);
        source
            .handle()
            .erased()
            .connect_to(&*handler.input().erased())
            .unwrap();
        handler
            .output()
            .erased()
            .connect_to(&*sink.handle().erased())
            .unwrap();
        Self {
            handler,
            source,
            sink,
        }
    }

    /// Every buffer through; the output frames.
    fn run(&mut self, buffers: &[AudioBuffer]) -> usize {
        let mut frames = 0;
        for (n, buffer) in buffers.iter().enumerate() {
            self.source.write(buffer.clone());
            self.handler
                .process(&mut ProcessContext::new("r", tick(n as u64)))
                .unwrap();
            while let Some(b) = self.sink.recv() {
                frames += b.frames();
            }
        }
        frames
    }
}

/// An 8-input `audiomixer` at 48 kHz stereo with a source port per input.
struct MixRig {
    mixer: AudioMixer,
    sources: Vec<OutputPort<AudioBuffer>>,
    sink: InputPort<AudioBuffer>,
}

impl MixRig {
    fn new() -> Self {
        let mixer = AudioMixer::new(AudioMixerConfig {
            inputs: MIX_INPUTS,
            ..AudioMixerConfig::default()
        })
        .unwrap();
        let sources: Vec<_> = (0..MIX_INPUTS)
            .map(|n| {
                let port = OutputPort::<AudioBuffer>::new("audio", MemoryCaps::CPU);
                port.handle()
                    .erased()
                    .connect_to(&*mixer.input(n).unwrap().erased())
                    .unwrap();
                port
            })
            .collect();
        let sink = InputPort::<AudioBuffer>::new("audio", MemoryCaps::CPU);
        mixer
            .output()
            .erased()
            .connect_to(&*sink.handle().erased())
            .unwrap();
        Self {
            mixer,
            sources,
            sink,
        }
    }

    fn run(&mut self, inputs: &[Vec<AudioBuffer>]) -> usize {
        let mut frames = 0;
        for n in 0..inputs[0].len() {
            for (port, input) in self.sources.iter().zip(inputs) {
                port.write(input[n].clone());
            }
            self.mixer
                .process(&mut ProcessContext::new("m", tick(n as u64)))
                .unwrap();
            while let Some(b) = self.sink.recv() {
                frames += b.frames();
            }
        }
        frames
    }
}

/// A peer: a command line, the baseline subtracted from it, and how many times over it
/// processes the input (FFmpeg's work on 10 s is below the spread of its start-up, so it
/// reads its input [`LOOPS`] times over and the difference is divided by that).
struct Peer {
    name: &'static str,
    run: Vec<String>,
    base: Vec<String>,
    loops: u32,
}

/// Times a peer processes the input where one pass is lost in start-up noise.
const LOOPS: u32 = 20;

fn spawn(args: &[String]) -> bool {
    Command::new(&args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn timed(args: &[String]) -> Duration {
    let t = Instant::now();
    assert!(spawn(args), "{} failed", args.join(" "));
    t.elapsed()
}

/// The peer's time less its baseline's, run back to back, per pass over the input (at
/// least 1 ns: criterion refuses a zero).
fn net(peer: &Peer) -> Duration {
    let base = timed(&peer.base);
    let net = timed(&peer.run).saturating_sub(base) / peer.loops;
    net.max(Duration::from_nanos(1))
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

struct Files {
    dir: PathBuf,
    at_44k1: PathBuf,
    mix: Vec<PathBuf>,
}

impl Files {
    fn new(input: &[AudioBuffer], mix: &[Vec<AudioBuffer>]) -> Self {
        let dir = std::env::temp_dir().join(format!("streamlib-resample-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let at_44k1 = dir.join("in44100.raw");
        write_raw(&at_44k1, input);
        let mix = mix
            .iter()
            .enumerate()
            .map(|(n, buffers)| {
                let path = dir.join(format!("mix{n}.raw"));
                write_raw(&path, buffers);
                path
            })
            .collect();
        Self { dir, at_44k1, mix }
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

/// The peers that are installed (those that are not are named and skipped).
fn peers(files: &Files) -> (Vec<Peer>, Vec<Peer>) {
    let input = files.at_44k1.display();
    let ffmpeg = "ffmpeg -hide_banner -nostats -loglevel error";
    let ff = |filter: &str| {
        words(&format!(
            "{ffmpeg} -stream_loop {} -f f32le -ar 44100 -ac 2 -i {input} -af {filter} -f f32le \
             -y /dev/null",
            LOOPS - 1
        ))
    };
    // SoX concatenates its inputs: the same file LOOPS times.
    let sox_in: String = (0..LOOPS)
        .map(|_| format!(" -t f32 -r 44100 -c 2 {input}"))
        .collect();
    let sox_in = format!("sox{sox_in} -t f32");
    let mut resample = vec![
        Peer {
            name: "FFmpeg aresample=48000",
            run: ff("aresample=48000"),
            base: ff("anull"),
            loops: LOOPS,
        },
        Peer {
            name: "SoX -r 48000 (rate -h)",
            run: words(&format!("{sox_in} -r 48000 /dev/null")),
            base: words(&format!("{sox_in} /dev/null")),
            loops: LOOPS,
        },
        Peer {
            name: "SoX rate -q 48000",
            run: words(&format!("{sox_in} /dev/null rate -q 48000")),
            base: words(&format!("{sox_in} /dev/null")),
            loops: LOOPS,
        },
    ];
    let ff_inputs: String = files
        .mix
        .iter()
        .map(|p| {
            format!(
                " -stream_loop {} -f f32le -ar 48000 -ac 2 -i {}",
                LOOPS - 1,
                p.display()
            )
        })
        .collect();
    let sox_inputs: String = files
        .mix
        .iter()
        .map(|p| format!(" -t f32 -r 48000 -c 2 {}", p.display()))
        .collect();
    let mut mix = vec![
        Peer {
            name: "FFmpeg amix=inputs=8",
            run: words(&format!(
                "{ffmpeg}{ff_inputs} -filter_complex amix=inputs={MIX_INPUTS} -f f32le -y /dev/null"
            )),
            base: words(&format!(
                "{ffmpeg}{ff_inputs} -filter_complex concat=n={MIX_INPUTS}:v=0:a=1 -f f32le -y \
                 /dev/null"
            )),
            loops: LOOPS,
        },
        Peer {
            name: "SoX -m (8 inputs)",
            run: words(&format!("sox -m{sox_inputs} -t f32 /dev/null")),
            base: words(&format!("sox{sox_inputs} -t f32 /dev/null")),
            loops: 1,
        },
    ];
    for list in [&mut resample, &mut mix] {
        list.retain(|p| {
            let ok = spawn(&p.base) && spawn(&p.run);
            if !ok {
                println!("peer: {} not available ({}): skipped", p.name, p.run[0]);
            }
            ok
        });
    }
    (resample, mix)
}

fn benches(c: &mut Criterion) {
    let input = noise(44_100, 0.5);
    let mix: Vec<Vec<AudioBuffer>> = (0..MIX_INPUTS).map(|_| noise(48_000, 0.1)).collect();
    let files = Files::new(&input, &mix);
    let (resample_peers, mix_peers) = peers(&files);

    let mut group = c.benchmark_group("resample_44k1_to_48k_10s_stereo");
    group.throughput(Throughput::Elements(SECONDS * 44_100));
    group.sample_size(10);
    for quality in [ResampleQuality::Default, ResampleQuality::Fast] {
        group.bench_function(format!("streamlib_audioresample_{}", quality.name()), |b| {
            b.iter_batched(
                || ResampleRig::new(quality),
                |mut rig| black_box(rig.run(&input)),
                BatchSize::PerIteration,
            );
        });
    }
    for peer in &resample_peers {
        group.bench_function(peer.name, |b| {
            b.iter_custom(|iters| (0..iters).map(|_| net(peer)).sum());
        });
    }
    group.finish();

    let mut group = c.benchmark_group("mix_8x_stereo_48k_10s");
    group.throughput(Throughput::Elements(SECONDS * 48_000 * MIX_INPUTS as u64));
    group.sample_size(10);
    group.bench_function("streamlib_audiomixer", |b| {
        b.iter_batched(
            MixRig::new,
            |mut rig| black_box(rig.run(&mix)),
            BatchSize::PerIteration,
        );
    });
    for peer in &mix_peers {
        group.bench_function(peer.name, |b| {
            b.iter_custom(|iters| (0..iters).map(|_| net(peer)).sum());
        });
    }
    group.finish();

    if std::env::args().any(|a| a == "--bench") {
        interleaved(&input, &mix, &resample_peers, &mix_peers);
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Rounds of ours and every peer, one after the other; prints medians and ratios.
fn interleaved(input: &[AudioBuffer], mix: &[Vec<AudioBuffer>], rp: &[Peer], mp: &[Peer]) {
    const ROUNDS: usize = 7;
    let qualities = [ResampleQuality::Default, ResampleQuality::Fast];
    let mut ours = vec![Vec::new(); qualities.len()];
    let mut mixer = Vec::new();
    let mut theirs = vec![Vec::new(); rp.len()];
    let mut their_mix = vec![Vec::new(); mp.len()];
    for _ in 0..ROUNDS {
        for (q, times) in qualities.iter().zip(&mut ours) {
            let mut rig = ResampleRig::new(*q);
            let t = Instant::now();
            black_box(rig.run(input));
            times.push(t.elapsed());
        }
        for (peer, times) in rp.iter().zip(&mut theirs) {
            times.push(net(peer));
        }
        let mut rig = MixRig::new();
        let t = Instant::now();
        black_box(rig.run(mix));
        mixer.push(t.elapsed());
        for (peer, times) in mp.iter().zip(&mut their_mix) {
            times.push(net(peer));
        }
    }
    let ours: Vec<Duration> = ours.into_iter().map(median).collect();
    println!("\npeer table: medians of {ROUNDS} interleaved rounds (peers less their baseline)");
    println!("| task | streamlib | peer | peer ms | peer / streamlib |");
    println!("|---|---|---|---|---|");
    for (peer, times) in rp.iter().zip(theirs) {
        let t = median(times);
        for (q, o) in qualities.iter().zip(&ours) {
            println!(
                "| resample 10 s stereo 44.1→48 kHz | audioresample quality={} {:.1} ms | {} | {:.1} | {:.2} |",
                q.name(),
                ms(*o),
                peer.name,
                ms(t),
                t.as_secs_f64() / o.as_secs_f64()
            );
        }
    }
    let m = median(mixer);
    for (peer, times) in mp.iter().zip(their_mix) {
        let t = median(times);
        println!(
            "| mix 8 × 10 s stereo 48 kHz | audiomixer {:.1} ms | {} | {:.1} | {:.2} |",
            ms(m),
            peer.name,
            ms(t),
            t.as_secs_f64() / m.as_secs_f64()
        );
    }
}

criterion_group!(resample, benches);

fn main() {
    resample();
    Criterion::default().configure_from_args().final_summary();
}
