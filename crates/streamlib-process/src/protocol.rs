//! The control protocol between the parent and a child: small fixed-layout messages, one per
//! datagram of a `SOCK_SEQPACKET` socket pair (so the kernel keeps message boundaries).
//!
//! Every message starts with the protocol version and a kind byte; integers are little-endian;
//! strings are a `u16` length and UTF-8 bytes, borrowed from the receive buffer when decoded.
//! A message is at most [`MAX_MESSAGE`] bytes: decoding reads from a fixed buffer and
//! allocates nothing, and whatever the bytes — garbage, truncated, oversized, another version —
//! it returns a [`ProtocolError`], never panics.

use streamlib_ports::{FrameLayout, PixelFormat};

/// The version both ends must speak; a message of another version is refused.
pub const PROTOCOL_VERSION: u8 = 2;

/// The largest message in bytes (the receive buffer's size).
pub const MAX_MESSAGE: usize = 1024;

/// What can be wrong with a message's bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A datagram of zero bytes.
    #[error("empty control message")]
    Empty,
    /// The message ends before its fields do.
    #[error("control message `{kind}` truncated: {got} bytes, needs {need}")]
    Truncated {
        /// The message kind.
        kind: &'static str,
        /// Bytes it needs (so far).
        need: usize,
        /// Bytes there were.
        got: usize,
    },
    /// Bytes after the last field.
    #[error("control message `{kind}` has {extra} trailing bytes")]
    Trailing {
        /// The message kind.
        kind: &'static str,
        /// How many bytes too many.
        extra: usize,
    },
    /// A datagram longer than [`MAX_MESSAGE`] (it was cut by the kernel).
    #[error("control message of {len} bytes or more, the limit is {max}")]
    Oversized {
        /// Its length (at least).
        len: usize,
        /// [`MAX_MESSAGE`].
        max: usize,
    },
    /// The other end speaks another protocol version.
    #[error(
        "control protocol version {got}, this build speaks {expected}: parent and child must be the same build"
    )]
    WrongVersion {
        /// The version in the message.
        got: u8,
        /// [`PROTOCOL_VERSION`].
        expected: u8,
    },
    /// A kind byte no message has.
    #[error("unknown control message kind {0:#04x}")]
    UnknownKind(u8),
    /// A pixel format byte no format has.
    #[error("unknown pixel format code {0} in a frame message")]
    UnknownFormat(u8),
    /// A string field that is not UTF-8.
    #[error("field `{field}` of control message `{kind}` is not UTF-8")]
    NotUtf8 {
        /// The message kind.
        kind: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A string too long for one message (when encoding).
    #[error("field `{field}` is {len} bytes, at most {max} fit in a control message")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The room there is.
        max: usize,
    },
    /// A frame whose layout the ports crate refuses (zero size, stride below the row).
    #[error("frame message has an invalid layout: {0}")]
    BadLayout(String),
}

/// Set in [`FrameSlot::port`] of a parent → child frame: not an input frame but an empty slot
/// lent for output port `port & !LEND_PORT`, for the child to copy an output frame into (and
/// send back with that output's index) when the frame is not one of its input slots.
pub const LEND_PORT: u16 = 0x8000;

/// Where a frame lives in the pool and how its pixels are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSlot {
    /// Input port index (parent → child) or output port index (child → parent).
    pub port: u16,
    /// Slot index in the pool.
    pub slot: u32,
    /// The slot's generation when it was handed over (stale indices are refused).
    pub generation: u32,
    /// Bytes of pixel data from the slot's start.
    pub len: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Pixel format.
    pub format: PixelFormat,
    /// Bytes per row of the first plane.
    pub stride: u32,
}

impl FrameSlot {
    /// The layout as the ports crate checks it.
    pub fn layout(&self) -> Result<FrameLayout, ProtocolError> {
        FrameLayout::new(self.width, self.height, self.format)
            .and_then(|layout| layout.with_stride(self.stride))
            .map_err(|e| ProtocolError::BadLayout(e.to_string()))
    }
}

/// Where a buffer of interleaved `f32` audio samples lives in the pool (little-endian, from
/// the slot's start), and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioSlot {
    /// Input port index (parent → child) or output port index (child → parent); with
    /// [`LEND_PORT`] set, an empty slot lent for that output.
    pub port: u16,
    /// Slot index in the pool.
    pub slot: u32,
    /// The slot's generation when it was handed over.
    pub generation: u32,
    /// Bytes of samples from the slot's start (4 per sample).
    pub len: u32,
    /// Interleaved channels.
    pub channels: u16,
    /// Samples per second per channel.
    pub sample_rate: u32,
    /// The buffer's first sample's time, in nanoseconds.
    pub timestamp_ns: u64,
}

/// A slot crossing either way: a video frame or an audio buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crossing {
    /// A video frame.
    Video(FrameSlot),
    /// An audio buffer.
    Audio(AudioSlot),
}

impl Crossing {
    /// The port index (with [`LEND_PORT`] when it is a lent slot).
    pub fn port(&self) -> u16 {
        match self {
            Crossing::Video(f) => f.port,
            Crossing::Audio(a) => a.port,
        }
    }
    /// The slot index.
    pub fn slot(&self) -> u32 {
        match self {
            Crossing::Video(f) => f.slot,
            Crossing::Audio(a) => a.slot,
        }
    }
    /// The slot's generation.
    pub fn generation(&self) -> u32 {
        match self {
            Crossing::Video(f) => f.generation,
            Crossing::Audio(a) => a.generation,
        }
    }
    /// Bytes used from the slot's start.
    pub fn len(&self) -> u32 {
        match self {
            Crossing::Video(f) => f.len,
            Crossing::Audio(a) => a.len,
        }
    }
    /// Whether no byte is used.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The same crossing in slot `slot` at `generation`.
    pub fn in_slot(mut self, slot: u32, generation: u32) -> Self {
        match &mut self {
            Crossing::Video(f) => (f.slot, f.generation) = (slot, generation),
            Crossing::Audio(a) => (a.slot, a.generation) = (slot, generation),
        }
        self
    }
    /// As a message.
    pub fn message(self) -> Message<'static> {
        match self {
            Crossing::Video(f) => Message::Frame(f),
            Crossing::Audio(a) => Message::Audio(a),
        }
    }
}

/// Per-child counters a child reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChildStats {
    /// Ticks processed.
    pub processed: u64,
    /// Handler errors.
    pub errors: u64,
    /// Longest processing time of a tick, in nanoseconds.
    pub max_process_ns: u64,
    /// Input frames the child copied because their slot was still held there (an input
    /// ring or the handler kept an earlier frame of it).
    pub frames_copied: u64,
    /// Bytes of those copies.
    pub bytes_copied: u64,
    /// Output frames dropped: more than the lent slots, or a lent slot still held there.
    pub outputs_dropped: u64,
}

/// One control message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// Parent → child, first: the handler to run; `properties` `SetProperty` messages follow,
    /// then the child starts the handler and answers `Ready`.
    Hello {
        /// The sender's protocol version.
        version: u8,
        /// Registered handler name.
        handler: &'a str,
        /// How many initial properties follow.
        properties: u16,
    },
    /// Child → parent: the handler started; the child takes ticks now.
    Ready {
        /// The sender's protocol version.
        version: u8,
        /// The handler it runs.
        handler: &'a str,
        /// The child's process id, as it sees it.
        pid: u32,
    },
    /// Parent → child: process this tick (its frames follow, then the child answers `Done`).
    Tick {
        /// The tick's frame number.
        frame: u64,
        /// Its timestamp in nanoseconds.
        timestamp_ns: u64,
    },
    /// A frame in a pool slot, either way.
    Frame(FrameSlot),
    /// An audio buffer in a pool slot, either way.
    Audio(AudioSlot),
    /// Parent → child: the frames of this tick are all sent.
    TickEnd {
        /// The tick's frame number.
        frame: u64,
    },
    /// Child → parent: this tick is done (its output frames were sent before).
    Done {
        /// The tick's frame number.
        frame: u64,
        /// Time the handler took, in nanoseconds.
        process_ns: u64,
    },
    /// Child → parent: the handler failed (the child lives on).
    Error {
        /// What went wrong.
        message: &'a str,
    },
    /// Child → parent: counters.
    Stats(ChildStats),
    /// Parent → child: change a property.
    SetProperty {
        /// Property name.
        name: &'a str,
        /// Its new value, as pipeline text writes it.
        value: &'a str,
    },
    /// Parent → child: stop the handler and exit.
    Stop,
    /// Parent → child, within a tick: every upstream has ended and been drained; the
    /// handler's `process` sees `inputs_ended` and should flush.
    InputsEnded,
    /// Child → parent, before `Done`: the handler ended its stream (`end_of_stream`) and/or
    /// asked to stop the whole pipeline (`request_stop`) in this tick.
    Ended {
        /// `ProcessContext::end_of_stream` was called.
        stream: bool,
        /// `ProcessContext::request_stop` was called.
        pipeline: bool,
    },
}

const HELLO: u8 = 1;
const READY: u8 = 2;
const TICK: u8 = 3;
const FRAME: u8 = 4;
const TICK_END: u8 = 5;
const DONE: u8 = 6;
const ERROR: u8 = 7;
const STATS: u8 = 8;
const SET_PROPERTY: u8 = 9;
const STOP: u8 = 10;
const AUDIO: u8 = 11;
const INPUTS_ENDED: u8 = 12;
const ENDED: u8 = 13;

impl Message<'_> {
    /// The kind's name, for errors and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "hello",
            Message::Ready { .. } => "ready",
            Message::Tick { .. } => "tick",
            Message::Frame(_) => "frame",
            Message::Audio(_) => "audio",
            Message::InputsEnded => "inputs-ended",
            Message::Ended { .. } => "ended",
            Message::TickEnd { .. } => "tick-end",
            Message::Done { .. } => "done",
            Message::Error { .. } => "error",
            Message::Stats(_) => "stats",
            Message::SetProperty { .. } => "set-property",
            Message::Stop => "stop",
        }
    }

    /// Writes the message into `buf`: the number of bytes used.
    pub fn encode(&self, buf: &mut [u8; MAX_MESSAGE]) -> Result<usize, ProtocolError> {
        let mut w = Writer { buf, len: 0 };
        w.u8(PROTOCOL_VERSION);
        match *self {
            Message::Hello {
                handler,
                properties,
                ..
            } => {
                w.u8(HELLO);
                w.u16(properties);
                w.str("handler", handler)?;
            }
            Message::Ready { handler, pid, .. } => {
                w.u8(READY);
                w.u32(pid);
                w.str("handler", handler)?;
            }
            Message::Tick {
                frame,
                timestamp_ns,
            } => {
                w.u8(TICK);
                w.u64(frame);
                w.u64(timestamp_ns);
            }
            Message::Frame(f) => {
                w.u8(FRAME);
                w.u16(f.port);
                w.u32(f.slot);
                w.u32(f.generation);
                w.u32(f.len);
                w.u32(f.width);
                w.u32(f.height);
                w.u8(format_code(f.format));
                w.u32(f.stride);
            }
            Message::Audio(a) => {
                w.u8(AUDIO);
                w.u16(a.port);
                w.u32(a.slot);
                w.u32(a.generation);
                w.u32(a.len);
                w.u16(a.channels);
                w.u32(a.sample_rate);
                w.u64(a.timestamp_ns);
            }
            Message::TickEnd { frame } => {
                w.u8(TICK_END);
                w.u64(frame);
            }
            Message::Done { frame, process_ns } => {
                w.u8(DONE);
                w.u64(frame);
                w.u64(process_ns);
            }
            Message::Error { message } => {
                w.u8(ERROR);
                w.str("message", message)?;
            }
            Message::Stats(s) => {
                w.u8(STATS);
                w.u64(s.processed);
                w.u64(s.errors);
                w.u64(s.max_process_ns);
                w.u64(s.frames_copied);
                w.u64(s.bytes_copied);
                w.u64(s.outputs_dropped);
            }
            Message::SetProperty { name, value } => {
                w.u8(SET_PROPERTY);
                w.str("name", name)?;
                w.str("value", value)?;
            }
            Message::Stop => w.u8(STOP),
            Message::InputsEnded => w.u8(INPUTS_ENDED),
            Message::Ended { stream, pipeline } => {
                w.u8(ENDED);
                w.u8(u8::from(stream) | u8::from(pipeline) << 1);
            }
        }
        Ok(w.len)
    }
}

/// Reads one message from a datagram's bytes; strings borrow from `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Message<'_>, ProtocolError> {
    if bytes.len() > MAX_MESSAGE {
        return Err(ProtocolError::Oversized {
            len: bytes.len(),
            max: MAX_MESSAGE,
        });
    }
    let (&version, rest) = bytes.split_first().ok_or(ProtocolError::Empty)?;
    if version != PROTOCOL_VERSION {
        return Err(ProtocolError::WrongVersion {
            got: version,
            expected: PROTOCOL_VERSION,
        });
    }
    let (&kind, rest) = rest.split_first().ok_or(ProtocolError::Truncated {
        kind: "?",
        need: 2,
        got: 1,
    })?;
    let name = kind_name(kind).ok_or(ProtocolError::UnknownKind(kind))?;
    let mut r = Reader {
        bytes: rest,
        at: 0,
        kind: name,
    };
    let message = match kind {
        HELLO => Message::Hello {
            version,
            properties: r.u16()?,
            handler: r.str("handler")?,
        },
        READY => Message::Ready {
            version,
            pid: r.u32()?,
            handler: r.str("handler")?,
        },
        TICK => Message::Tick {
            frame: r.u64()?,
            timestamp_ns: r.u64()?,
        },
        FRAME => Message::Frame(FrameSlot {
            port: r.u16()?,
            slot: r.u32()?,
            generation: r.u32()?,
            len: r.u32()?,
            width: r.u32()?,
            height: r.u32()?,
            format: {
                let code = r.u8()?;
                format_from_code(code).ok_or(ProtocolError::UnknownFormat(code))?
            },
            stride: r.u32()?,
        }),
        TICK_END => Message::TickEnd { frame: r.u64()? },
        DONE => Message::Done {
            frame: r.u64()?,
            process_ns: r.u64()?,
        },
        AUDIO => Message::Audio(AudioSlot {
            port: r.u16()?,
            slot: r.u32()?,
            generation: r.u32()?,
            len: r.u32()?,
            channels: r.u16()?,
            sample_rate: r.u32()?,
            timestamp_ns: r.u64()?,
        }),
        ERROR => Message::Error {
            message: r.str("message")?,
        },
        STATS => Message::Stats(ChildStats {
            processed: r.u64()?,
            errors: r.u64()?,
            max_process_ns: r.u64()?,
            frames_copied: r.u64()?,
            bytes_copied: r.u64()?,
            outputs_dropped: r.u64()?,
        }),
        SET_PROPERTY => Message::SetProperty {
            name: r.str("name")?,
            value: r.str("value")?,
        },
        INPUTS_ENDED => Message::InputsEnded,
        ENDED => {
            let bits = r.u8()?;
            Message::Ended {
                stream: bits & 1 != 0,
                pipeline: bits & 2 != 0,
            }
        }
        _ => Message::Stop,
    };
    r.finish()?;
    Ok(message)
}

/// `text` cut to at most `max` bytes on a character boundary (for error messages).
pub fn truncate_str(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn kind_name(kind: u8) -> Option<&'static str> {
    Some(match kind {
        HELLO => "hello",
        READY => "ready",
        TICK => "tick",
        FRAME => "frame",
        AUDIO => "audio",
        INPUTS_ENDED => "inputs-ended",
        ENDED => "ended",
        TICK_END => "tick-end",
        DONE => "done",
        ERROR => "error",
        STATS => "stats",
        SET_PROPERTY => "set-property",
        STOP => "stop",
        _ => return None,
    })
}

fn format_code(format: PixelFormat) -> u8 {
    PixelFormat::ALL
        .iter()
        .position(|f| *f == format)
        .map_or(u8::MAX, |i| i as u8)
}

fn format_from_code(code: u8) -> Option<PixelFormat> {
    PixelFormat::ALL.get(usize::from(code)).copied()
}

struct Writer<'b> {
    buf: &'b mut [u8; MAX_MESSAGE],
    len: usize,
}

impl Writer<'_> {
    // Fixed fields of every message fit in a few dozen bytes: only strings can overflow, and
    // `str` checks them first.
    fn put(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if let Some(dst) = self.buf.get_mut(self.len..end) {
            dst.copy_from_slice(bytes);
            self.len = end;
        }
    }
    fn u8(&mut self, v: u8) {
        self.put(&[v]);
    }
    fn u16(&mut self, v: u16) {
        self.put(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.put(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.put(&v.to_le_bytes());
    }
    fn str(&mut self, field: &'static str, s: &str) -> Result<(), ProtocolError> {
        let room = MAX_MESSAGE.saturating_sub(self.len + 2 + 2 + 2);
        let max = room.min(usize::from(u16::MAX));
        if s.len() > max {
            return Err(ProtocolError::TooLong {
                field,
                len: s.len(),
                max,
            });
        }
        self.u16(s.len() as u16);
        self.put(s.as_bytes());
        Ok(())
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    kind: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        let end = self.at.saturating_add(n);
        let got = self
            .bytes
            .get(self.at..end)
            .ok_or(ProtocolError::Truncated {
                kind: self.kind,
                need: 2 + end,
                got: 2 + self.bytes.len(),
            })?;
        self.at = end;
        Ok(got)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], ProtocolError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, ProtocolError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, ProtocolError> {
        self.array().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Result<u32, ProtocolError> {
        self.array().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Result<u64, ProtocolError> {
        self.array().map(u64::from_le_bytes)
    }
    fn str(&mut self, field: &'static str) -> Result<&'a str, ProtocolError> {
        let len = usize::from(self.u16()?);
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map_err(|_| ProtocolError::NotUtf8 {
            kind: self.kind,
            field,
        })
    }
    fn finish(self) -> Result<(), ProtocolError> {
        match self.bytes.len() - self.at {
            0 => Ok(()),
            extra => Err(ProtocolError::Trailing {
                kind: self.kind,
                extra,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(message: Message<'_>) {
        let mut buf = [0; MAX_MESSAGE];
        let len = message
            .encode(&mut buf)
            .unwrap_or_else(|e| panic!("encode {message:?}: {e}"));
        let decoded = decode(&buf[..len]).unwrap_or_else(|e| panic!("decode {message:?}: {e}"));
        assert_eq!(decoded, message);
        // Every shorter prefix is a typed error, not a panic or a wrong message.
        for cut in 0..len {
            assert!(
                decode(&buf[..cut]).is_err(),
                "{message:?} cut at {cut} decoded"
            );
        }
    }

    #[test]
    fn every_message_round_trips() {
        let frame = FrameSlot {
            port: 3,
            slot: 7,
            generation: u32::MAX,
            len: 1920 * 1080 * 4,
            width: 1920,
            height: 1080,
            format: PixelFormat::Rgba8,
            stride: 1920 * 4,
        };
        for message in [
            Message::Hello {
                version: PROTOCOL_VERSION,
                handler: "identity",
                properties: 2,
            },
            Message::Ready {
                version: PROTOCOL_VERSION,
                handler: "blür",
                pid: 42,
            },
            Message::Tick {
                frame: u64::MAX,
                timestamp_ns: 33_333_333,
            },
            Message::Frame(frame),
            Message::Audio(AudioSlot {
                port: LEND_PORT | 1,
                slot: 2,
                generation: 3,
                len: 4096,
                channels: 2,
                sample_rate: 48_000,
                timestamp_ns: u64::MAX,
            }),
            Message::InputsEnded,
            Message::Ended {
                stream: true,
                pipeline: false,
            },
            Message::TickEnd { frame: 9 },
            Message::Done {
                frame: 9,
                process_ns: 1234,
            },
            Message::Error { message: "" },
            Message::Stats(ChildStats {
                processed: 1,
                errors: 2,
                max_process_ns: 3,
                frames_copied: 4,
                bytes_copied: 5,
                outputs_dropped: 6,
            }),
            Message::SetProperty {
                name: "sigma",
                value: "2.5",
            },
            Message::Stop,
        ] {
            round_trip(message);
        }
    }

    #[test]
    fn wrong_version_unknown_kind_and_trailing_bytes_are_named() {
        assert_eq!(
            decode(&[9, STOP]),
            Err(ProtocolError::WrongVersion {
                got: 9,
                expected: PROTOCOL_VERSION
            })
        );
        assert_eq!(
            decode(&[PROTOCOL_VERSION, 0xee]),
            Err(ProtocolError::UnknownKind(0xee))
        );
        assert_eq!(
            decode(&[PROTOCOL_VERSION, STOP, 0]),
            Err(ProtocolError::Trailing {
                kind: "stop",
                extra: 1
            })
        );
        assert_eq!(decode(&[]), Err(ProtocolError::Empty));
        let big = vec![PROTOCOL_VERSION; MAX_MESSAGE + 1];
        assert!(matches!(decode(&big), Err(ProtocolError::Oversized { .. })));
    }

    #[test]
    fn a_string_length_beyond_the_datagram_is_truncation() {
        // handler length 0xffff with two bytes present.
        let bytes = [PROTOCOL_VERSION, HELLO, 0, 0, 0xff, 0xff, b'a', b'b'];
        assert!(matches!(
            decode(&bytes),
            Err(ProtocolError::Truncated { kind: "hello", .. })
        ));
        let bytes = [PROTOCOL_VERSION, ERROR, 2, 0, 0xff, 0xfe];
        assert!(matches!(decode(&bytes), Err(ProtocolError::NotUtf8 { .. })));
    }

    #[test]
    fn too_long_strings_are_refused_when_encoding() {
        let long = "x".repeat(MAX_MESSAGE);
        let mut buf = [0; MAX_MESSAGE];
        assert!(matches!(
            Message::Error { message: &long }.encode(&mut buf),
            Err(ProtocolError::TooLong {
                field: "message",
                ..
            })
        ));
        let cut = truncate_str("ééé", 3);
        assert_eq!(cut, "é");
        assert!(
            Message::Error {
                message: truncate_str(&long, 900)
            }
            .encode(&mut buf)
            .is_ok()
        );
    }

    #[test]
    fn frame_layouts_are_checked_by_the_ports_crate() {
        let mut frame = FrameSlot {
            port: 0,
            slot: 0,
            generation: 1,
            len: 16,
            width: 2,
            height: 2,
            format: PixelFormat::Rgba8,
            stride: 8,
        };
        assert!(frame.layout().is_ok());
        frame.stride = 4;
        assert!(matches!(frame.layout(), Err(ProtocolError::BadLayout(_))));
    }
}
