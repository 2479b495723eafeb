//! Fuzz targets for the control protocol: whatever bytes a broken or hostile child writes,
//! decoding returns a message or a typed error — never a panic, never an allocation beyond the
//! fixed buffer — and every message that decodes encodes back to the same message.
//!
//! Each target runs as an ordinary test on a bounded number of random inputs, and for as long
//! as asked under libFuzzer or AFL through cargo-bolero. `BOLERO_RANDOM_ITERATIONS` overrides
//! the count here.
//!
//! Raw bytes rarely get past the version byte, so the first input byte chooses: raw bytes, or
//! a valid message of every kind with its bytes flipped, cut or extended.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use bolero::check;
use streamlib_ports::PixelFormat;
use streamlib_process::{
    AudioSlot, ChildStats, ControlChannel, FrameSlot, MAX_MESSAGE, Message, PROTOCOL_VERSION,
    Received, decode,
};

/// Random inputs per target in an ordinary test run (CI).
const ITERATIONS: usize = 2_000;

fn samples() -> [Message<'static>; 11] {
    [
        Message::Hello {
            version: PROTOCOL_VERSION,
            handler: "identity",
            properties: 3,
        },
        Message::Ready {
            version: PROTOCOL_VERSION,
            handler: "identity",
            pid: 77,
        },
        Message::Tick {
            frame: 5,
            timestamp_ns: 1,
        },
        Message::Frame(FrameSlot {
            port: 1,
            slot: 2,
            generation: 3,
            len: 4,
            width: 1,
            height: 1,
            format: PixelFormat::Nv12,
            stride: 4,
        }),
        Message::Audio(AudioSlot {
            port: 0,
            slot: 1,
            generation: 2,
            len: 8,
            channels: 2,
            sample_rate: 48_000,
            timestamp_ns: 3,
        }),
        Message::TickEnd { frame: 5 },
        Message::Done {
            frame: 5,
            process_ns: 9,
        },
        Message::Error { message: "boom" },
        Message::Stats(ChildStats {
            processed: 1,
            errors: 0,
            max_process_ns: 2,
            frames_copied: 3,
            bytes_copied: 4,
            outputs_dropped: 5,
        }),
        Message::SetProperty {
            name: "sleep-us",
            value: "100",
        },
        Message::Stop,
    ]
}

/// Raw bytes, or a sample message mutated by the input.
fn bytes_from(data: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        out.extend_from_slice(rest);
        return;
    }
    let samples = samples();
    let message = samples[usize::from(mode / 2) % samples.len()];
    let mut buf = [0; MAX_MESSAGE];
    let len = message.encode(&mut buf).unwrap();
    out.extend_from_slice(&buf[..len]);
    // Pairs of (position, value): overwrite, then cut or extend by the last byte.
    for pair in rest.chunks_exact(2) {
        if !out.is_empty() {
            let at = usize::from(pair[0]) % out.len();
            // Keep the version byte valid most of the time, to reach the fields.
            if at != 0 || pair[1] % 8 == 0 {
                out[at] = pair[1];
            }
        }
    }
    if let Some(&last) = rest.last() {
        match last % 4 {
            0 => out.truncate(usize::from(last) % (len + 1)),
            1 => out.extend(std::iter::repeat_n(last, usize::from(last))),
            _ => {}
        }
    }
}

#[test]
fn control_decode() {
    let mut bytes = Vec::with_capacity(2 * MAX_MESSAGE);
    check!()
        .with_iterations(ITERATIONS)
        .for_each(|data: &[u8]| {
            bytes_from(data, &mut bytes);
            if let Ok(message) = decode(&bytes) {
                let mut buf = [0; MAX_MESSAGE];
                let len = message
                    .encode(&mut buf)
                    .unwrap_or_else(|e| panic!("{message:?} decoded but does not encode: {e}"));
                assert_eq!(
                    &buf[..len],
                    &bytes[..],
                    "{message:?} re-encodes differently"
                );
                assert_eq!(decode(&buf[..len]), Ok(message));
            }
        });
}

#[test]
fn control_channel() {
    // Datagrams of any length (past MAX_MESSAGE too) through a real socket pair: the receiver
    // reads each as a message or a typed error, and the channel keeps working after it.
    let (mut parent, child) = ControlChannel::pair().unwrap();
    let mut child = ControlChannel::from_fd(child);
    let mut bytes = Vec::with_capacity(4 * MAX_MESSAGE);
    check!()
        .with_iterations(ITERATIONS / 4)
        .for_each(|data: &[u8]| {
            bytes_from(data, &mut bytes);
            if data.first().is_some_and(|b| b % 3 == 0) {
                // An oversized datagram: the kernel cuts it, the receiver says so.
                bytes.resize(MAX_MESSAGE + 1 + data.len(), 0xaa);
            }
            if bytes.is_empty() {
                return;
            }
            send_datagram(&child, &bytes);
            match parent.receive(true).unwrap() {
                Received::Message(message) => assert_eq!(decode(&bytes), Ok(message)),
                Received::Malformed(error) => assert!(!error.to_string().is_empty()),
                other => panic!("unexpected {other:?}"),
            }
            child.send(&Message::Stop).unwrap();
            assert!(matches!(
                parent.receive(true).unwrap(),
                Received::Message(Message::Stop)
            ));
        });
}

fn send_datagram(channel: &ControlChannel, bytes: &[u8]) {
    // `send_raw` caps at MAX_MESSAGE; an oversized datagram needs the socket itself.
    // SAFETY: the buffer is valid for `bytes.len()` bytes; the socket is open.
    let sent = unsafe {
        libc::send(
            channel.raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    assert_eq!(sent, bytes.len() as isize);
}
