//! # streamlib
//!
//! A composable, realtime streaming SDK: Unix-pipe-style handlers for video, audio and data,
//! wired into clock-driven pipelines that pass frames by reference.
//!
//! Three layers:
//! - a [`StreamHandler`](prelude::StreamHandler) holds pure processing logic and its ports;
//! - a [`Stream`](prelude::Stream) says how to run it (dispatcher, restart policy, deadlines);
//! - a [`StreamRuntime`](prelude::StreamRuntime) owns one clock, wires and negotiates ports,
//!   runs every handler once per tick after its upstream, and supervises failures.
//!
//! Each layer is its own crate, re-exported here as a module; pull a single crate into your
//! project when that is all you need (a handler crate needs only [`ports`]).
//!
//! | module | crate | what it holds |
//! |---|---|---|
//! | [`buffers`] | `streamlib-buffers` | latest-read ring buffer, ordered queue, buffer pool |
//! | [`clock`] | `streamlib-clock` | `Clock`, software / free-running / manual / genlock clocks |
//! | [`ports`] | `streamlib-ports` | messages, ports, memory capabilities, `StreamHandler` |
//! | [`dispatch`] | `streamlib-dispatch` | inline, thread-pool, dedicated-thread and async dispatchers |
//! | [`runtime`] | `streamlib-runtime` | `StreamRuntime`, `Stream`, negotiation, supervision, stats |
//! | `video` | `streamlib-handlers-video` | test pattern, display, blur, compositor, drawing |
//! | `audio` | `streamlib-handlers-audio` | audio test source, volume, EBU R128 loudness, convert, mixer |
//! | `file` | `streamlib-handlers-file` | FFmpeg `FileReader` and `FileWriter` |
//! | `gpu` | `streamlib-gpu` | wgpu context, GPU frames, transfers, GPU dispatcher, blur and compositing kernels |
//! | `net` | `streamlib-net` | ST 2110-20 RTP send/receive, jitter buffer, SDP |
//! | `ptp` | `streamlib-ptp` | IEEE 1588 PTP slave and `PtpClock` (TAI) |
//! | `launch` | `streamlib-launch` | handler registry, pipeline text/JSON, live properties |
//!
//! ## Features
//! - `async` (default): the tokio-backed [`AsyncDispatcher`](dispatch::AsyncDispatcher).
//! - `ctrlc` (default): [`StreamRuntime::run`](prelude::StreamRuntime::run) returns on Ctrl-C.
//! - `video` (default): the video handlers (minifb window, tiny-skia drawing, fontdue text).
//! - `audio`: audio handlers: `audiotestsrc`, `volume`, `loudness` (EBU R128 / BS.1770-4),
//!   `audioconvert`, `audiomixer`.
//! - `file`: FFmpeg file I/O (needs FFmpeg's development libraries; `cargo xtask setup`).
//! - `gpu`: wgpu (Vulkan, GL; the lavapipe software driver where there is no GPU): GPU frames,
//!   the CPU↔GPU transfers the runtime inserts (`gpu::register_transfers`), and the GPU paths
//!   of `video`'s blur and compositor (`Blur::with_gpu`; `blur memory=gpu` in pipeline text).
//! - `net`: SMPTE ST 2110-20 (RFC 4175) video over RTP, ST 2110-21 pacing, jitter buffer, SDP.
//! - `ptp`: an IEEE 1588 PTP clock (`PtpClock`) in TAI; it never steers the system clock.
//! - `launch`: pipelines as text (`testpattern ! blur sigma=2 ! display`) and JSON, the handler
//!   registry, live property control; the `streamlib` command is built on it.
//! - `full`: all of the above.
//!
//! ## Example
//! ```
//! use streamlib::prelude::*;
//!
//! /// Emits the tick's frame number.
//! struct Count { out: OutputPort<DataMessage> }
//! impl StreamHandler for Count {
//!     fn ports(&self) -> Ports { Ports::new().output(&self.out) }
//!     fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
//!         let tick = ctx.tick();
//!         self.out.write(DataMessage::text("n", &tick.frame_number.to_string(), tick.timestamp));
//!         Ok(())
//!     }
//! }
//! /// Adds up what arrives.
//! struct Sum { input: InputPort<DataMessage>, total: u64 }
//! impl StreamHandler for Sum {
//!     fn ports(&self) -> Ports { Ports::new().input(&self.input) }
//!     fn process(&mut self, _: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
//!         while let Some(m) = self.input.recv() {
//!             self.total += m.as_text().and_then(|t| t.parse::<u64>().ok()).unwrap_or(0);
//!         }
//!         Ok(())
//!     }
//! }
//!
//! // Ten ticks as fast as the pipeline goes, then end of stream.
//! let mut runtime = StreamRuntime::new(FreeRunningClock::new(Rational::fps(30)).with_limit(10));
//! let count = Count { out: OutputPort::new("n", MemoryCaps::CPU) };
//! let sum = Sum { input: InputPort::new("n", MemoryCaps::CPU), total: 0 };
//! let (out, inp) = (count.out.handle(), sum.input.handle());
//! runtime.add_stream(Stream::new("count", count))?;
//! runtime.add_stream(Stream::new("sum", sum))?;
//! runtime.connect(&out, &inp)?;
//! let stats = runtime.run()?; // returns once the clock ended and `sum` drained
//! assert_eq!(stats.stream("count").map(|s| s.ticks), Some(10));
//! assert_eq!(stats.stream("sum").map(|s| s.state), Some(StreamState::Ended));
//! # Ok::<(), streamlib::runtime::RuntimeError>(())
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

/// Lock-free ring buffers, ordered queues and buffer pools (`streamlib-buffers`).
pub mod buffers {
    pub use streamlib_buffers::*;
}

/// Clocks and ticks (`streamlib-clock`).
pub mod clock {
    pub use streamlib_clock::*;
}

/// Messages, ports, memory capabilities and the handler trait (`streamlib-ports`).
pub mod ports {
    pub use streamlib_ports::*;
}

/// Execution contexts for handlers (`streamlib-dispatch`).
pub mod dispatch {
    pub use streamlib_dispatch::*;
}

/// The runtime: streams, wiring, negotiation, supervision, statistics (`streamlib-runtime`).
pub mod runtime {
    pub use streamlib_runtime::*;
}

/// Video handlers: test pattern, display, blur, compositor, drawing, frame capture
/// (`streamlib-handlers-video`, feature `video`).
#[cfg(feature = "video")]
pub mod video {
    pub use streamlib_handlers_video::*;
}

/// Audio handlers: test source, volume, EBU R128 loudness meter, channel conversion, mixer
/// (`streamlib-handlers-audio`, feature `audio`).
#[cfg(feature = "audio")]
pub mod audio {
    pub use streamlib_handlers_audio::*;
}

/// File I/O through FFmpeg: `FileReader`, `FileWriter` (`streamlib-handlers-file`, feature
/// `file`).
#[cfg(feature = "file")]
pub mod file {
    pub use streamlib_handlers_file::*;
}

#[cfg(feature = "gpu")]
pub mod gpu;

/// HTTP Live Streaming: `HlsSink` and its playlists (`streamlib-hls`, feature `hls`).
#[cfg(feature = "hls")]
pub mod hls {
    pub use streamlib_hls::*;
}

/// WebRTC: `WebRtcSink` (WHEP) and `WebRtcSrc` (WHIP) on str0m (`streamlib-webrtc`, feature
/// `webrtc`).
#[cfg(feature = "webrtc")]
pub mod webrtc {
    pub use streamlib_webrtc::*;
}

/// Process isolation (`streamlib-process`, feature `process`): shared-memory frame pools, the
/// parent–child control protocol, supervised child processes. In pipeline text: `@process`.
#[cfg(feature = "process")]
pub mod process {
    pub use streamlib_process::*;
}

/// Encoders and decoders through FFmpeg (`streamlib-codec`, feature `codec`).
#[cfg(feature = "codec")]
pub mod codec {
    pub use streamlib_codec::*;
}

/// SMPTE ST 2110-20 video over RTP: `NetworkSend`, `NetworkReceive`, the RFC 4175
/// packetizer, jitter buffer, SDP, paced sockets (`streamlib-net`, feature `net`).
#[cfg(feature = "net")]
pub mod net {
    pub use streamlib_net::*;
}

/// IEEE 1588 PTP: `PtpClock` (a `Clock` on the grandmaster's TAI frame boundaries), the slave,
/// status, and a small master for tests (`streamlib-ptp`, feature `ptp`).
#[cfg(feature = "ptp")]
pub mod ptp {
    pub use streamlib_ptp::*;
}

/// Pipelines as text and JSON: the handler registry, `parse`, `build`, live property
/// `Controls`, background `Session`s (`streamlib-launch`, feature `launch`).
#[cfg(feature = "launch")]
pub mod launch {
    pub use streamlib_launch::*;
}

// Each facade feature that has a launch counterpart must reach it: `--features launch,file`
// promises a registry with `filereader`. Checked here, at compile time, for every feature
// combination (`cargo xtask features` builds them).
/// `assert!`s at compile time that each facade feature reached its launch counterpart.
#[cfg(feature = "launch")]
macro_rules! forwarded {
    ($($feature:literal => $launch:literal, $flag:ident;)*) => {
        const _: () = {
            $(assert!(
                !cfg!(feature = $feature) || streamlib_launch::compiled::$flag,
                concat!("`", $feature, "` must enable streamlib-launch/", $launch)
            );)*
        };
    };
}
#[cfg(feature = "launch")]
forwarded! {
    "launch" => "video", VIDEO;
    "video" => "display", DISPLAY;
    "file" => "file", FILE;
    "net" => "net", NET;
    "ptp" => "ptp", PTP;
    "async" => "async", ASYNC;
    "gpu" => "gpu", GPU;
    "audio" => "audio", AUDIO;
}

/// The names most programs need: each crate's own prelude, composed — the core always, a
/// handler crate's with its feature (`video` brings `TestPattern`, `Blur`, `Display`, …).
pub mod prelude {
    pub use streamlib_buffers::prelude::*;
    pub use streamlib_clock::prelude::*;
    pub use streamlib_dispatch::prelude::*;
    #[cfg(feature = "gpu")]
    pub use streamlib_gpu::prelude::*;
    #[cfg(feature = "audio")]
    pub use streamlib_handlers_audio::prelude::*;
    #[cfg(feature = "file")]
    pub use streamlib_handlers_file::prelude::*;
    #[cfg(feature = "video")]
    pub use streamlib_handlers_video::prelude::*;
    #[cfg(feature = "launch")]
    pub use streamlib_launch::prelude::*;
    #[cfg(feature = "net")]
    pub use streamlib_net::prelude::*;
    pub use streamlib_ports::prelude::*;
    #[cfg(feature = "ptp")]
    pub use streamlib_ptp::prelude::*;
    pub use streamlib_runtime::prelude::*;
}
