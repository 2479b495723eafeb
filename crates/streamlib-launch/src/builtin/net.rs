//! `networksend`, `networkreceive`: SMPTE ST 2110-20 over RTP.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;
use streamlib_clock::Rational;
use streamlib_net::{
    FrameTimestamps, NetworkReceive, NetworkReceiveConfig, NetworkSend, NetworkSendConfig,
    PacketPacing, RefClock, Sampling, SdpSession, VideoFormat,
};
use streamlib_ports::{DeliveryMode, HandlerError, MemoryCaps, PortKind};

use crate::registry::{BuiltHandler, CheckError, Direction, HandlerSpec, Properties, port, prop};
use crate::value::{PropType, Value};
use crate::{Access, PolicyError, Registry};

const SAMPLINGS: &[&str] = &["ycbcr422-8", "ycbcr422-10", "rgb8"];

pub(super) fn register(registry: &mut Registry) {
    registry.register(network_send());
    registry.register(network_receive());
    registry.register(network_audio_send());
    registry.register(network_audio_receive());
    registry.add_check("networksend", Arc::new(check_send));
    registry.add_check("networkaudiosend", Arc::new(check_audio_send));
    registry.add_check("networkreceive", Arc::new(check_receive));
    registry.add_check("networkaudioreceive", Arc::new(check_audio_receive));
}

/// The largest SDP file read: a session description is a few hundred bytes.
const MAX_SDP_BYTES: u64 = 64 * 1024;

fn refused(property: &str, error: PolicyError) -> CheckError {
    CheckError::Refused {
        property: property.to_owned(),
        error,
    }
}

/// What a sender's factory would refuse, and its destination against the policy.
fn check_send(p: &Properties) -> Result<(), CheckError> {
    let destination = address("destination", p.text("destination"))?;
    send_config(p, destination)?;
    p.policy()
        .check_destination(destination)
        .map_err(|e| refused("destination", e))
}

fn check_audio_send(p: &Properties) -> Result<(), CheckError> {
    let destination = address("destination", p.text("destination"))?;
    audio_format_of(p)?;
    p.policy()
        .check_destination(destination)
        .map_err(|e| refused("destination", e))
}

/// The addresses a receiver binds and joins, against the policy: from its SDP file when it
/// has one (`sdp` names the rule then), else from `bind` and `multicast`.
fn check_addresses(
    p: &Properties,
    bind: SocketAddr,
    group: Option<IpAddr>,
) -> Result<(), CheckError> {
    let from_sdp = !p.text("sdp").is_empty();
    let policy = p.policy();
    policy
        .check_bind(bind)
        .map_err(|e| refused(if from_sdp { "sdp" } else { "bind" }, e))?;
    match group {
        Some(group) => policy
            .check_group(group)
            .map_err(|e| refused(if from_sdp { "sdp" } else { "multicast" }, e)),
        None => Ok(()),
    }
}

fn check_receive(p: &Properties) -> Result<(), CheckError> {
    let config = receive_config(p)?;
    check_addresses(p, config.endpoint.bind, config.endpoint.multicast_group)
}

fn check_audio_receive(p: &Properties) -> Result<(), CheckError> {
    let config = audio_receive_config(p)?;
    check_addresses(p, config.endpoint.bind, config.endpoint.multicast_group)
}

/// A parse error of the SDP file at `path`, by position only: the file's text is never
/// quoted back (an agent could otherwise read a line of any file it may name).
fn sdp_error(path: &str, error: &streamlib_net::NetError) -> HandlerError {
    match error {
        streamlib_net::NetError::Sdp { line: 0, text, .. } => {
            HandlerError::msg(format!("the SDP {path} lacks a required line ({text})"))
        }
        streamlib_net::NetError::Sdp { line, .. } => {
            HandlerError::msg(format!("the SDP {path} is not valid at line {line}"))
        }
        _ => HandlerError::msg(format!(
            "the SDP {path} does not describe a stream this receiver takes"
        )),
    }
}

fn sampling(name: &str) -> Sampling {
    match name {
        "ycbcr422-8" => Sampling::YCbCr422Depth8,
        "rgb8" => Sampling::RgbDepth8,
        _ => Sampling::YCbCr422Depth10,
    }
}

fn rate(text: &str) -> Result<Rational, HandlerError> {
    let parsed = match text.split_once('/') {
        Some((n, d)) => n.parse().ok().zip(d.parse().ok()),
        None => text.parse().ok().map(|n| (n, 1)),
    };
    let (num, den): (u32, u32) =
        parsed.ok_or_else(|| HandlerError::msg(format!("fps `{text}` is not N or N/D")))?;
    Ok(Rational::new(num, den)?)
}

fn address(name: &str, text: &str) -> Result<SocketAddr, HandlerError> {
    text.parse()
        .map_err(|_| HandlerError::msg(format!("{name} `{text}` is not an address:port")))
}

fn format_of(p: &Properties) -> Result<VideoFormat, HandlerError> {
    let (width, height) = p.size("size");
    Ok(VideoFormat::new(
        sampling(p.text("sampling")),
        width,
        height,
        rate(p.text("fps"))?,
    )?)
}

/// A video sender's configuration: the sampling always (4:2:2 10-bit unless set), and the
/// size and rate only where `size=` / `fps=` are given; else they are negotiated.
fn send_config(p: &Properties, destination: SocketAddr) -> Result<NetworkSendConfig, HandlerError> {
    let mut config = NetworkSendConfig::following_input(destination, sampling(p.text("sampling")));
    if let Some((width, height)) = send_size(p)? {
        (config.format.width, config.format.height) = (width, height);
        config.fix_size = true;
    }
    if !p.text("fps").is_empty() {
        config.format.fps = rate(p.text("fps"))?;
        config.fix_rate = true;
    }
    config.format.check()?;
    config.pacing = match p.text("pacing") {
        "wide" => PacketPacing::Wide,
        "burst" => PacketPacing::Burst,
        _ => PacketPacing::Narrow,
    };
    config.gso = p.bool("gso");
    let sdp = p.text("sdp");
    config.sdp_file = (!sdp.is_empty()).then(|| PathBuf::from(sdp));
    config.ref_clock = RefClock::Ptp { grandmaster: None };
    Ok(config)
}

/// A sender's `size`: `None` when empty (the registry has no property without a value, so
/// "not given" is the empty default of a text property, checked here as a size).
fn send_size(p: &Properties) -> Result<Option<(u32, u32)>, HandlerError> {
    const SIZE: PropType = PropType::Size { max: 32_767 };
    match p.get("size") {
        Some(Value::Size(w, h)) => Ok(Some((*w, *h))),
        Some(Value::Text(text)) if !text.is_empty() => SIZE
            .parse(text)
            .ok()
            .and_then(|v| v.as_size())
            .map(Some)
            .ok_or_else(|| {
                HandlerError::msg(format!(
                    "size `{text}` is not {} within the frame limits",
                    SIZE.describe()
                ))
            }),
        _ => Ok(None),
    }
}

/// The properties both receivers share: `sdp`, `bind`, `multicast`.
fn receive_props() -> Vec<crate::PropertySpec> {
    vec![
        prop(
            "sdp",
            PropType::Text,
            Some(""),
            false,
            "configure from this SDP file (address, port, format); the other properties are then ignored",
        )
        .access(Access::Read)
        .no_file(""),
        prop(
            "bind",
            PropType::Text,
            Some("0.0.0.0:5004"),
            false,
            "local address:port to receive on",
        ),
        prop(
            "multicast",
            PropType::Text,
            Some(""),
            false,
            "multicast group to join (empty: unicast)",
        ),
        prop(
            "source",
            PropType::Text,
            Some(""),
            false,
            "accept datagrams from this sender address only (source-specific multicast with an \
             IPv4 group); empty: the SDP's a=source-filter, else any sender",
        ),
        prop(
            "ssrc",
            PropType::Int {
                min: -1,
                max: u32::MAX as i64,
            },
            Some("-1"),
            false,
            "accept this RTP SSRC only; -1: the SDP's a=ssrc, else lock to the first one seen",
        ),
    ]
}

/// Applies `source=` and `ssrc=`, which win over what the SDP text (if any) names.
fn stream_filter(
    p: &Properties,
    sdp: Option<(&str, IpAddr)>,
) -> Result<(Option<IpAddr>, Option<u32>), HandlerError> {
    let from_sdp = sdp
        .map(|(text, dest)| streamlib_net::SdpStreamFilter::parse(text, dest))
        .unwrap_or_default();
    let text = p.text("source");
    let source = if text.is_empty() {
        from_sdp.source
    } else {
        Some(
            text.parse()
                .map_err(|_| HandlerError::msg(format!("source `{text}` is not an IP address")))?,
        )
    };
    let ssrc = u32::try_from(p.int("ssrc")).ok().or(from_sdp.ssrc);
    Ok((source, ssrc))
}

/// The `multicast` property as a group to join, `None` when empty.
fn multicast_group(p: &Properties) -> Result<Option<IpAddr>, HandlerError> {
    let group = p.text("multicast");
    if group.is_empty() {
        return Ok(None);
    }
    group
        .parse()
        .map(Some)
        .map_err(|_| HandlerError::msg(format!("multicast `{group}` is not an IP address")))
}

/// The SDP file at `path` (already checked against the policy: `sdp` is [`Access::Read`]),
/// at most [`MAX_SDP_BYTES`] of it.
fn read_sdp(path: &str) -> Result<String, HandlerError> {
    use std::io::Read as _;
    let cannot = |e: std::io::Error| HandlerError::msg(format!("cannot read the SDP {path}: {e}"));
    let file = std::fs::File::open(path).map_err(cannot)?;
    let mut text = String::new();
    file.take(MAX_SDP_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(cannot)?;
    if text.len() as u64 > MAX_SDP_BYTES {
        return Err(HandlerError::msg(format!(
            "the SDP {path} is larger than {MAX_SDP_BYTES} bytes"
        )));
    }
    Ok(text)
}

/// A video receiver's configuration: from its SDP file, or from `bind`, `multicast` and the
/// format properties.
fn receive_config(p: &Properties) -> Result<NetworkReceiveConfig, HandlerError> {
    let path = p.text("sdp");
    if path.is_empty() {
        let mut config = NetworkReceiveConfig::new(address("bind", p.text("bind"))?, format_of(p)?);
        config.endpoint.multicast_group = multicast_group(p)?;
        (config.endpoint.source, config.endpoint.ssrc) = stream_filter(p, None)?;
        Ok(config)
    } else {
        let text = read_sdp(path)?;
        let sdp = SdpSession::parse(&text).map_err(|e| sdp_error(path, &e))?;
        let mut config = NetworkReceiveConfig::from_sdp(&sdp);
        (config.endpoint.source, config.endpoint.ssrc) =
            stream_filter(p, Some((&text, sdp.destination.ip())))?;
        Ok(config)
    }
}

/// An audio receiver's configuration, the same way.
fn audio_receive_config(
    p: &Properties,
) -> Result<streamlib_net::NetworkAudioReceiveConfig, HandlerError> {
    let path = p.text("sdp");
    if path.is_empty() {
        let mut config = streamlib_net::NetworkAudioReceiveConfig::new(
            address("bind", p.text("bind"))?,
            audio_format_of(p)?,
        );
        config.jitter.payload_type = u8::try_from(p.int("payload")).ok();
        config.endpoint.multicast_group = multicast_group(p)?;
        (config.endpoint.source, config.endpoint.ssrc) = stream_filter(p, None)?;
        Ok(config)
    } else {
        let text = read_sdp(path)?;
        let sdp = streamlib_net::AudioSdpSession::parse(&text).map_err(|e| sdp_error(path, &e))?;
        let mut config = streamlib_net::NetworkAudioReceiveConfig::from_sdp(&sdp);
        (config.endpoint.source, config.endpoint.ssrc) =
            stream_filter(p, Some((&text, sdp.destination.ip())))?;
        Ok(config)
    }
}

/// The policy's verdict on the addresses a built configuration uses (the factories check
/// again: the SDP file may have changed since the pipeline was checked).
fn recheck(p: &Properties, bind: SocketAddr, group: Option<IpAddr>) -> Result<(), HandlerError> {
    check_addresses(p, bind, group).map_err(|e| match e {
        CheckError::Refused { property, error } => HandlerError::msg(format!("{property} {error}")),
        CheckError::Invalid(e) => e,
    })
}

/// Writes a sender's SDP to `path` (nothing when empty), with the address this host sends to
/// `destination` from as origin (the loopback address of its family when there is no route)
/// and a PTP-traceable reference clock.
/// A sender whose SDP file (`path`, none when empty) is written at start, before its first
/// packet: building it writes nothing.
struct SdpOnStart<H> {
    inner: H,
    path: String,
    text: String,
}

impl<H: streamlib_ports::StreamHandler> streamlib_ports::StreamHandler for SdpOnStart<H> {
    fn ports(&self) -> streamlib_ports::Ports {
        self.inner.ports()
    }
    fn on_start(&mut self, ctx: &streamlib_ports::StartContext<'_>) -> Result<(), HandlerError> {
        if !self.path.is_empty() {
            std::fs::write(&self.path, &self.text).map_err(|e| {
                HandlerError::msg(format!("cannot write the SDP to {}: {e}", self.path))
            })?;
        }
        self.inner.on_start(ctx)
    }
    fn process(
        &mut self,
        ctx: &mut streamlib_ports::ProcessContext<'_>,
    ) -> Result<(), HandlerError> {
        self.inner.process(ctx)
    }
    fn on_stop(&mut self) -> Result<(), HandlerError> {
        self.inner.on_stop()
    }
    fn type_name(&self) -> &'static str {
        self.inner.type_name()
    }
}

/// A sender's format properties: `size` and `fps` empty by default (taken from the input's
/// negotiated caps); each one given fixes that field of the input's caps, and negotiation
/// inserts a converter where upstream differs. The sampling picks the frame format.
fn send_format_props() -> Vec<crate::PropertySpec> {
    vec![
        prop(
            "size",
            PropType::Text,
            Some(""),
            false,
            "frame size WxH (even width for 4:2:2); empty: the size negotiated on the input",
        ),
        prop(
            "sampling",
            PropType::Enum(SAMPLINGS),
            Some("ycbcr422-10"),
            false,
            "ST 2110-20 sampling and depth (4:2:2 takes UYVY frames, RGB RGBA8; negotiation converts to it)",
        ),
        prop(
            "fps",
            PropType::Text,
            Some(""),
            false,
            "frame rate, N or N/D (exactframerate in the SDP); empty: the rate negotiated on the input",
        ),
    ]
}

fn common_props() -> Vec<crate::PropertySpec> {
    vec![
        prop(
            "size",
            PropType::Size { max: 32_767 },
            Some("1920x1080"),
            false,
            "frame size (even width for 4:2:2)",
        ),
        prop(
            "sampling",
            PropType::Enum(SAMPLINGS),
            Some("ycbcr422-10"),
            false,
            "ST 2110-20 sampling and depth (4:2:2 travels as UYVY frames, RGB as RGBA8)",
        ),
        prop(
            "fps",
            PropType::Text,
            Some("30"),
            false,
            "frame rate, N or N/D (exactframerate in the SDP)",
        ),
    ]
}

fn network_send() -> HandlerSpec {
    let mut properties = vec![
        prop(
            "destination",
            PropType::Text,
            None,
            false,
            "receiver or multicast group, address:port (IPv4 or [IPv6]:port)",
        ),
        prop(
            "pacing",
            PropType::Enum(&["narrow", "wide", "burst"]),
            Some("narrow"),
            false,
            "ST 2110-21 sender type; burst is unpaced (tests)",
        ),
        prop(
            "gso",
            PropType::Bool,
            Some("true"),
            false,
            "hand each burst to the kernel as one UDP GSO message (Linux; packets padded to one length)",
        ),
        prop(
            "sdp",
            PropType::Text,
            Some(""),
            false,
            "write the stream's SDP to this file at start, with the negotiated size and rate (for the receiver, GStreamer or FFmpeg)",
        )
        .access(Access::Write)
        .no_file(""),
    ];
    properties.extend(send_format_props());
    HandlerSpec {
        name: "networksend",
        summary: "Sends frames as SMPTE ST 2110-20 RTP (RFC 4175), paced per ST 2110-21",
        ports: vec![port(
            "video",
            Direction::Input,
            PortKind::Video,
            MemoryCaps::CPU,
            DeliveryMode::Latest,
            "UYVY frames (4:2:2) or RGBA8 (rgb8), any size and rate unless size= / fps= fix them",
        )],
        properties,
        factory: Arc::new(|p: &Properties| {
            let destination = address("destination", p.text("destination"))?;
            p.policy()
                .check_destination(destination)
                .map_err(|e| HandlerError::msg(format!("destination {e}")))?;
            // The SDP file is written at start, from the negotiated size and rate.
            let sender = NetworkSend::new(send_config(p, destination)?)?;
            let stats = sender.stats();
            Ok(BuiltHandler::fixed(sender).with_report(move || {
                let s = stats.snapshot();
                json!({
                    "frames": s.frames,
                    "packets": s.packets,
                    "bytes": s.bytes,
                    "send_errors": s.send_errors,
                    "frames_skipped": s.frames_skipped,
                    "frames_rejected": s.frames_rejected,
                    "burst": s.burst,
                    "burst_interval_ns": s.burst_interval_ns,
                    "gap_p50_ns": s.gap_p50_ns,
                    "gap_p99_ns": s.gap_p99_ns,
                    "gap_max_ns": s.gap_max_ns,
                    "frame_span_p50_ns": s.frame_span_p50_ns,
                    "gso": s.gso,
                })
            }))
        }),
    }
}

fn network_receive() -> HandlerSpec {
    let mut properties = receive_props();
    properties.push(prop(
        "gro",
        PropType::Bool,
        Some("true"),
        false,
        "ask the kernel for UDP GRO: datagrams sent together arrive as one buffer (Linux)",
    ));
    properties.push(prop(
        "timestamps",
        PropType::Enum(&["tick", "media"]),
        Some("tick"),
        false,
        "stamp frames with the publishing tick, or with the sender's media time from RTP (same timestamps on both ends when both run --clock ptp)",
    ));
    properties.extend(common_props());
    HandlerSpec {
        name: "networkreceive",
        summary: "Receives SMPTE ST 2110-20 RTP into frames, through a reordering jitter buffer",
        ports: vec![port(
            "video",
            Direction::Output,
            PortKind::Video,
            MemoryCaps::CPU,
            DeliveryMode::Latest,
            "UYVY (4:2:2) or RGBA8 (rgb8) frames, the newest complete one per tick",
        )],
        properties,
        factory: Arc::new(|p: &Properties| {
            let mut config = receive_config(p)?;
            recheck(p, config.endpoint.bind, config.endpoint.multicast_group)?;
            config.gro = p.bool("gro");
            if p.text("timestamps") == "media" {
                config.timestamps = FrameTimestamps::Media;
            }
            let receiver = NetworkReceive::new(config)?;
            let stats = receiver.stats();
            Ok(BuiltHandler::fixed(receiver).with_report(move || {
                let s = stats.snapshot();
                let c = s.counters;
                json!({
                    "datagrams": c.datagrams,
                    "packets": c.packets,
                    "malformed": c.malformed,
                    "foreign_ssrc": c.foreign_ssrc,
                    "foreign_packets": s.foreign_packets,
                    "duplicates": c.duplicates,
                    "reordered": c.reordered,
                    "late": c.late,
                    "lost_packets": c.lost_packets,
                    "frames_complete": c.frames_complete,
                    "frames_incomplete": c.frames_incomplete,
                    "frames_dropped": c.frames_dropped,
                    "pool_exhausted": c.pool_exhausted,
                    "resyncs": c.resyncs,
                    "frames_published": s.frames_published,
                    "frames_superseded": s.frames_superseded,
                    "recv_errors": s.recv_errors,
                    "assembly_p50_ns": s.assembly_p50_ns,
                    "assembly_p99_ns": s.assembly_p99_ns,
                    "media_latency_p50_ns": s.media_latency_p50_ns,
                    "media_latency_p99_ns": s.media_latency_p99_ns,
                    "frames_from_future": s.frames_from_future,
                })
            }))
        }),
    }
}

fn audio_format_of(p: &Properties) -> Result<streamlib_net::AudioFormat, HandlerError> {
    use streamlib_net::{AudioEncoding, AudioFormat, PacketTime};
    let encoding = match p.text("encoding") {
        "l16" => AudioEncoding::L16,
        _ => AudioEncoding::L24,
    };
    let channels = u16::try_from(p.int("channels")).map_err(|_| {
        HandlerError::msg(format!("channels `{}` is out of range", p.int("channels")))
    })?;
    let packet_time = match p.text("ptime") {
        "0.125" => PacketTime::Us125,
        _ => PacketTime::Ms1,
    };
    Ok(AudioFormat::new(encoding, channels)?.with_packet_time(packet_time))
}

fn audio_props() -> Vec<crate::PropertySpec> {
    vec![
        prop(
            "encoding",
            PropType::Enum(&["l24", "l16"]),
            Some("l24"),
            false,
            "linear PCM on the wire: 24- or 16-bit big-endian",
        ),
        prop(
            "channels",
            PropType::Int { min: 1, max: 8 },
            Some("2"),
            false,
            "interleaved channels (48 kHz)",
        ),
        prop(
            "ptime",
            PropType::Enum(&["1", "0.125"]),
            Some("1"),
            false,
            "packet time in ms (48 or 6 samples per channel per packet)",
        ),
        prop(
            "payload",
            PropType::Int { min: 96, max: 127 },
            Some("97"),
            false,
            "RTP payload type",
        ),
    ]
}

fn network_audio_send() -> HandlerSpec {
    let mut properties = vec![
        prop(
            "destination",
            PropType::Text,
            None,
            false,
            "receiver or multicast group, address:port (IPv4 or [IPv6]:port)",
        ),
        prop(
            "sdp",
            PropType::Text,
            Some(""),
            false,
            "write the stream's SDP to this file (for the receiver, GStreamer or FFmpeg)",
        )
        .access(Access::Write)
        .no_file(""),
    ];
    properties.extend(audio_props());
    HandlerSpec {
        name: "networkaudiosend",
        summary: "Sends audio as SMPTE ST 2110-30 / AES67 RTP (L24 or L16, 1 ms packets), paced in real time",
        ports: vec![port(
            "audio",
            Direction::Input,
            PortKind::Audio,
            MemoryCaps::CPU,
            DeliveryMode::Ordered { capacity: 64 },
            "interleaved f32 buffers of the configured channel count at 48 kHz, any length",
        )],
        properties,
        factory: Arc::new(|p: &Properties| {
            let destination = address("destination", p.text("destination"))?;
            p.policy()
                .check_destination(destination)
                .map_err(|e| HandlerError::msg(format!("destination {e}")))?;
            let mut config =
                streamlib_net::NetworkAudioSendConfig::new(destination, audio_format_of(p)?);
            config.rtp.payload_type = u8::try_from(p.int("payload")).unwrap_or(97);
            let sender = streamlib_net::NetworkAudioSend::new(config)?;
            // Written when the pipeline starts, not when it is built (`streamlib graph`
            // builds handlers and must write nothing).
            let origin = streamlib_net::sdp_origin(destination);
            let text = sender
                .sdp(origin, RefClock::Ptp { grandmaster: None })
                .to_sdp();
            let stats = sender.stats();
            let sender = SdpOnStart {
                inner: sender,
                path: p.text("sdp").to_owned(),
                text,
            };
            Ok(BuiltHandler::fixed(sender).with_report(move || {
                let s = stats.snapshot();
                json!({
                    "packets": s.packets,
                    "samples": s.samples,
                    "bytes": s.bytes,
                    "send_errors": s.send_errors,
                    "buffers_rejected": s.buffers_rejected,
                    "buffers_dropped": s.buffers_dropped,
                    "resyncs": s.resyncs,
                    "lateness_p50_ns": s.lateness_p50_ns,
                    "lateness_p99_ns": s.lateness_p99_ns,
                })
            }))
        }),
    }
}

fn network_audio_receive() -> HandlerSpec {
    let mut properties = receive_props();
    properties.extend([prop(
        "buffer-packets",
        PropType::Int { min: 1, max: 1000 },
        Some("1"),
        false,
        "packet times per output buffer (1: lowest latency)",
    )]);
    properties.extend(audio_props());
    HandlerSpec {
        name: "networkaudioreceive",
        summary: "Receives SMPTE ST 2110-30 / AES67 RTP audio through a reordering jitter buffer; losses become silence",
        ports: vec![port(
            "audio",
            Direction::Output,
            PortKind::Audio,
            MemoryCaps::CPU,
            DeliveryMode::Ordered { capacity: 64 },
            "interleaved f32 buffers at 48 kHz, in order, every one that became due per tick",
        )],
        properties,
        factory: Arc::new(|p: &Properties| {
            let mut config = audio_receive_config(p)?;
            recheck(p, config.endpoint.bind, config.endpoint.multicast_group)?;
            config.packets_per_buffer = usize::try_from(p.int("buffer-packets")).unwrap_or(1);
            let receiver = streamlib_net::NetworkAudioReceive::new(config)?;
            let stats = receiver.stats();
            Ok(BuiltHandler::fixed(receiver).with_report(move || {
                let s = stats.snapshot();
                let c = s.counters;
                json!({
                    "datagrams": c.datagrams,
                    "packets": c.packets,
                    "samples": c.samples,
                    "malformed": c.malformed,
                    "foreign_ssrc": c.foreign_ssrc,
                    "foreign_packets": s.foreign_packets,
                    "duplicates": c.duplicates,
                    "reordered": c.reordered,
                    "late": c.late,
                    "lost": c.lost,
                    "concealed_samples": c.concealed_samples,
                    "resyncs": c.resyncs,
                    "buffers_published": s.buffers_published,
                    "packets_dropped": s.packets_dropped,
                    "recv_errors": s.recv_errors,
                })
            }))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdp_origin_is_the_address_that_reaches_the_destination() {
        let to = |s: &str| s.parse::<SocketAddr>().ok();
        let v4 = to("127.0.0.1:5004").map(streamlib_net::sdp_origin);
        assert_eq!(v4, Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)));
        let v6 = to("[::1]:5004").map(streamlib_net::sdp_origin);
        assert_eq!(v6, Some(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)));
    }

    fn props(pairs: &[(&str, Value)]) -> Properties {
        Properties::new(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn a_sender_fixes_only_the_fields_it_was_given() {
        let to: SocketAddr = ([127, 0, 0, 1], 5004).into();
        let open = send_config(&props(&[]), to).map_err(|e| e.to_string());
        let open = open
            .as_ref()
            .map(|c| (c.fix_size, c.fix_rate, c.sdp_file.is_none()));
        assert_eq!(open, Ok((false, false, true)));
        let given = send_config(
            &props(&[
                ("size", Value::Size(640, 480)),
                ("fps", Value::Text("25".into())),
                ("sdp", Value::Text("/tmp/x.sdp".into())),
            ]),
            to,
        )
        .map_err(|e| e.to_string());
        let given = given.as_ref().map(|c| {
            (
                c.fix_size,
                c.fix_rate,
                c.format.width,
                c.format.fps,
                c.input_caps().to_string(),
            )
        });
        assert_eq!(
            given,
            Ok((
                true,
                true,
                640,
                Rational::fps(25),
                "video uyvy 640x480 25".to_owned()
            ))
        );
        let text = send_config(&props(&[("size", Value::Text("320x240".into()))]), to);
        let text = text.map(|c| (c.fix_size, c.fix_rate, c.format.width, c.format.height));
        assert_eq!(text.map_err(|e| e.to_string()), Ok((true, false, 320, 240)));
        for bad in ["641x480", "640", "0x480", "40000x10"] {
            let got = send_config(&props(&[("size", Value::Text(bad.into()))]), to);
            assert!(got.is_err(), "{bad}");
        }
    }
}
