//! Format caps of the network handlers: the sender accepts its sampling's frames at any size
//! and rate and takes what was negotiated at start (SDP included); receivers publish the
//! caps their SDP fixes; frames that still do not match are counted and warned about once
//! per change.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use common::*;
use streamlib_clock::{
    ClockInfo, ClockSourceId, FreeRunningClock, Pacing, Rational, SoftwareClock, Timescale,
};
use streamlib_net::*;
use streamlib_ports::*;

fn clock_info(fps: Rational) -> ClockInfo {
    ClockInfo {
        name: "test".into(),
        id: ClockSourceId::MANUAL,
        fps,
        timescale: Timescale::Media,
        pacing: Pacing::Pipeline,
    }
}

fn uyvy(width: u32, height: u32) -> Caps {
    Caps::Video(VideoCaps::fixed(PixelFormat::Uyvy, width, height))
}

#[test]
fn on_start_takes_the_size_and_rate_negotiated_on_the_input() {
    let dir = scratch_dir("caps-by-hand");
    let sdp_path = dir.join("send.sdp");
    let dest = localhost(free_port("127.0.0.1"));
    let mut config = NetworkSendConfig::following_input(dest, Sampling::YCbCr422Depth8);
    config.sdp_file = Some(sdp_path.clone());
    let mut send = NetworkSend::new(config).unwrap();
    let ports = send.ports();
    let input = &ports.inputs()[0];
    // What it declares: its sampling's frame format, any size, any rate.
    assert_eq!(input.format_caps().to_string(), "video uyvy any size");
    // Nothing is written before the start: the size is not known yet.
    assert!(!sdp_path.exists());

    let Caps::Video(negotiated) = uyvy(640, 480) else {
        unreachable!()
    };
    input.set_negotiated_format(Caps::Video(negotiated.with_rate(Rational::fps(25))));
    let info = clock_info(Rational::fps(30));
    send.on_start(&StartContext::new("send", &info)).unwrap();
    let want = VideoFormat::new(Sampling::YCbCr422Depth8, 640, 480, Rational::fps(25)).unwrap();
    assert_eq!(send.format(), want);
    let sdp = SdpSession::parse(&std::fs::read_to_string(&sdp_path).unwrap()).unwrap();
    assert_eq!(sdp.format, want);
    assert_eq!(sdp.destination, dest);
    send.on_stop().unwrap();

    // Fixed by the configuration: the input says so, and the negotiated size is not taken.
    let fixed = VideoFormat::new(Sampling::RgbDepth8, 320, 240, Rational::fps(50)).unwrap();
    let mut send = NetworkSend::new(NetworkSendConfig::new(dest, fixed)).unwrap();
    let ports = send.ports();
    assert_eq!(
        ports.inputs()[0].format_caps().to_string(),
        "video rgba8 320x240 50"
    );
    ports.inputs()[0].set_negotiated_format(Caps::Video(
        VideoCaps::fixed(PixelFormat::Rgba8, 320, 240).with_rate(Rational::fps(50)),
    ));
    send.on_start(&StartContext::new("send", &info)).unwrap();
    assert_eq!(send.format(), fixed);
    send.on_stop().unwrap();

    // A negotiated size the wire cannot carry is an error naming the handler.
    let config = NetworkSendConfig::following_input(dest, Sampling::YCbCr422Depth8);
    let mut send = NetworkSend::new(config).unwrap();
    send.ports().inputs()[0].set_negotiated_format(uyvy(641, 480));
    let err = send
        .on_start(&StartContext::new("send", &info))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("NetworkSend") && err.contains("641") && err.contains("set size="),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn receivers_publish_the_caps_their_stream_fixes() {
    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let f = VideoFormat::new(
        Sampling::YCbCr422Depth10,
        1280,
        720,
        Rational::new(60000, 1001).unwrap(),
    )
    .unwrap();
    let receive = NetworkReceive::new(NetworkReceiveConfig::new(bind, f)).unwrap();
    assert_eq!(
        receive.ports().outputs()[0].format_caps().to_string(),
        "video uyvy 1280x720 60000/1001"
    );
    let audio = AudioFormat::new(AudioEncoding::L24, 6).unwrap();
    let receive = NetworkAudioReceive::new(NetworkAudioReceiveConfig::new(bind, audio)).unwrap();
    assert_eq!(
        receive.ports().outputs()[0].format_caps(),
        Caps::Audio(AudioCaps::fixed(48_000, 6))
    );
    let send = NetworkAudioSend::new(NetworkAudioSendConfig::new(bind, audio)).unwrap();
    assert_eq!(
        send.ports().inputs()[0].format_caps(),
        Caps::Audio(AudioCaps::fixed(48_000, 6))
    );
}

/// A source of fixed caps 640x360 UYVY into a sender that was told no size: the runtime
/// negotiates, the sender's SDP says 640x360 at the clock's rate, and a receiver of that
/// format gets the frames byte for byte.
#[test]
fn a_sender_told_no_size_sends_what_its_source_makes() {
    let dir = scratch_dir("caps-runtime");
    let sdp_path = dir.join("send.sdp");
    let port = free_port("127.0.0.1");
    let dest: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let fps = Rational::fps(25);
    let f = VideoFormat::new(Sampling::YCbCr422Depth8, 640, 360, fps).unwrap();

    let receive = NetworkReceive::new(NetworkReceiveConfig::new(dest, f)).unwrap();
    let (mut rx, rx_stats, copies) = receive_video(at_100_hz(), receive);

    let mut config = NetworkSendConfig::following_input(dest, Sampling::YCbCr422Depth8);
    config.sdp_file = Some(sdp_path.clone());
    let send = NetworkSend::new(config).unwrap();
    let tx_stats = send.stats();
    let frames = 12;
    let source = PatternSource::new(f, frames);
    source.out.set_format(uyvy(640, 360));
    let mut tx = sending(
        SoftwareClock::new(fps),
        (source.out.handle(), source),
        (send.input(), send),
    );
    let edges = tx.negotiate().unwrap().to_vec();
    assert_eq!(
        edges[0].caps.as_ref().map(ToString::to_string).as_deref(),
        Some("video uyvy 640x360 25")
    );
    tx.run().unwrap();
    let sdp = SdpSession::parse(&std::fs::read_to_string(&sdp_path).unwrap()).unwrap();
    assert_eq!(sdp.format, f);
    let sent = tx_stats.snapshot();
    assert_eq!(sent.frames_rejected, 0, "{sent:?}");
    assert_eq!(
        sent.frames + sent.frames_skipped,
        u64::from(frames),
        "{sent:?}"
    );
    assert!(sent.frames > 0, "{sent:?}");
    assert!(wait_for(Duration::from_secs(10), || {
        rx_stats.snapshot().frames_published >= sent.frames
    }));
    rx.stop().unwrap();
    let got = copies.lock().unwrap().clone();
    assert_eq!(got.len() as u64, sent.frames);
    assert!(
        got.iter()
            .all(|frame| (0..frames).any(|k| *frame == pattern(&f, k)))
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Counts `warn` events whose message contains a text, from every thread.
struct Warnings {
    messages: Mutex<Vec<String>>,
}

impl tracing::Subscriber for &'static Warnings {
    fn enabled(&self, meta: &tracing::Metadata<'_>) -> bool {
        *meta.level() <= tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut m = Message(String::new());
        event.record(&mut m);
        self.messages.lock().unwrap().push(m.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn warnings() -> &'static Warnings {
    static W: OnceLock<&'static Warnings> = OnceLock::new();
    W.get_or_init(|| {
        let w: &'static Warnings = Box::leak(Box::new(Warnings {
            messages: Mutex::new(Vec::new()),
        }));
        tracing::subscriber::set_global_default(w).unwrap();
        w
    })
}

/// Writes `per_size` frames of each width in turn (UYVY, 32 lines), declaring the first.
struct ChangingSource {
    out: OutputPort<VideoFrame>,
    pools: Vec<FramePool>,
    per_size: u32,
    produced: u32,
}

impl StreamHandler for ChangingSource {
    fn ports(&self) -> Ports {
        Ports::new().output(&self.out)
    }
    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        let pool = &self.pools[(self.produced / self.per_size) as usize];
        let buf = pool.acquire()?;
        self.out.write(pool.frame(buf).with_tick(ctx.tick()));
        self.produced += 1;
        if self.produced >= self.per_size * self.pools.len() as u32 {
            ctx.end_of_stream();
        }
        Ok(())
    }
}

#[test]
fn frames_of_another_size_are_counted_and_warned_about_once_per_change() {
    let w = warnings();
    let dest = localhost(free_port("127.0.0.1"));
    let mut config = NetworkSendConfig::following_input(dest, Sampling::YCbCr422Depth8);
    config.pacing = PacketPacing::Burst;
    let send = NetworkSend::new(config).unwrap();
    let stats = send.stats();
    let widths = [64u32, 96, 128, 64, 128];
    let per_size = 5;
    let pools = widths
        .iter()
        .map(|&w| {
            let layout = FrameLayout::new(w, 32, PixelFormat::Uyvy).unwrap();
            FramePool::new("changing", layout, 4, 8).unwrap()
        })
        .collect();
    let source = ChangingSource {
        out: OutputPort::new("video", MemoryCaps::CPU).with_format(uyvy(64, 32)),
        pools,
        per_size,
        produced: 0,
    };
    let mut rt = sending(
        FreeRunningClock::new(Rational::fps(30)),
        (source.out.handle(), source),
        (send.input(), send),
    );
    rt.run().unwrap();
    let s = stats.snapshot();
    // 96, 128 and the last 128 do not match the negotiated 64x32.
    assert_eq!(s.frames_rejected, 3 * u64::from(per_size), "{s:?}");
    assert_eq!(
        s.frames + s.frames_skipped,
        2 * u64::from(per_size),
        "{s:?}"
    );
    let mine: Vec<String> = w
        .messages
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m.contains("does not match the stream's 64x32"))
        .cloned()
        .collect();
    // One per change of what arrives: 96, 128, then 128 again after 64 matched in between.
    assert_eq!(mine.len(), 3, "{mine:#?}");
    assert!(mine[0].contains("frame 96x32 uyvy"), "{}", mine[0]);
    assert!(mine[1].contains("frame 128x32 uyvy"), "{}", mine[1]);
}

/// Audio of another layout fails to negotiate when its source declares it; from a source
/// that declares nothing, its buffers are counted and warned about once.
#[test]
fn audio_of_another_layout_is_refused_at_build_or_warned_about_once() {
    let w = warnings();
    let dest = localhost(free_port("127.0.0.1"));
    let stereo = AudioFormat::new(AudioEncoding::L24, 2).unwrap();
    let build = |declared: Option<Caps>| {
        let send = NetworkAudioSend::new(NetworkAudioSendConfig::new(dest, stereo)).unwrap();
        let stats = send.stats();
        let source = SineSource::new(440.0, 1, 6, 0);
        if let Some(caps) = declared {
            source.out.set_format(caps);
        }
        let rt = sending(
            FreeRunningClock::new(Rational::fps(100)),
            (source.out.handle(), source),
            (send.input(), send),
        );
        (rt, stats)
    };
    let (mut rt, _) = build(Some(Caps::Audio(AudioCaps::fixed(48_000, 1))));
    let err = rt.negotiate().unwrap_err().to_string();
    assert!(
        err.contains("send.audio") && err.contains("channels"),
        "{err}"
    );

    let (mut rt, stats) = build(None);
    rt.run().unwrap();
    assert_eq!(stats.snapshot().buffers_rejected, 6);
    let mine = w
        .messages
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m.contains("buffers of 1 channels at 48000 Hz"))
        .count();
    assert_eq!(mine, 1);
}
