//! Fuzz target: PTP datagrams through the slave's state machine.
//!
//! The input is read as a sequence of steps: Announce, Sync (one- and two-step), Follow_Up
//! and Delay_Resp messages from a few would-be masters with the input's fields, the same
//! encoded and then damaged, raw bytes, and time passing (announce timeouts). Whatever
//! arrives, nothing panics and every datagram ends in exactly one counter. Runs as an
//! ordinary test on bounded random inputs (plus the seed corpus in
//! `src/slave/__fuzz__/slave__fuzz__ptp_slave/corpus/`), and under libFuzzer or AFL with
//! `cargo xtask fuzz ptp_slave`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::net::{Ipv4Addr, UdpSocket};

use super::*;
use crate::Transport;
use crate::message::{Announce, ClockQuality};
use streamlib_test_support::FuzzInput as Input;

/// Would-be masters: a few, so that selection and changes of master happen.
fn source(n: u8) -> PortIdentity {
    PortIdentity {
        clock: ClockIdentity([0x02, 0, 0, 0xff, 0xfe, 0, 0, n % 4]),
        port: 1,
    }
}

/// Master time for local time `local`: a fixed offset, or anything at all.
fn master_time(input: &mut Input<'_>, local: u64) -> PtpTimestamp {
    match input.u8() % 4 {
        0 => PtpTimestamp {
            seconds: input.u64() & 0xffff_ffff_ffff,
            nanoseconds: input.u32(),
        },
        _ => PtpTimestamp::from_ns(
            local
                .wrapping_add(37_000_000_000)
                .wrapping_add(u64::from(input.u16())),
        ),
    }
}

fn run(data: &[u8], peer: &UdpSocket) {
    let lo = Ipv4Addr::LOCALHOST;
    let peer_port = peer.local_addr().unwrap().port();
    let config = PtpConfig::new(Transport::unicast(lo, (0, 0), lo, (peer_port, peer_port)));
    let sockets = PtpSockets::open(&config.transport).unwrap();
    let identity = PortIdentity {
        clock: ClockIdentity([0x02, 0, 0, 0xff, 0xfe, 0, 0, 0x99]),
        port: 1,
    };
    let status = PtpStatus::new(identity);
    let mut port = SlavePort::new(sockets, config, identity, status);
    let mut input = Input(data);
    let mut now = local_monotonic_ns();
    let mut pushed = 0u64;
    let mut steps = 0;
    while !input.0.is_empty() && steps < 256 {
        steps += 1;
        now += 1_000_000;
        let op = input.u8();
        let channel = if op & 0x80 == 0 {
            Channel::Event
        } else {
            Channel::General
        };
        let from = source(input.u8());
        let sequence_id = u16::from(input.u8() % 4);
        let mut header = |message_type| {
            let mut h = Header::new(message_type, from, sequence_id);
            h.flags = if input.u8() & 1 == 0 {
                flags::TWO_STEP
            } else {
                0
            };
            h.correction = i64::from(input.u16() as i16) << 16;
            h
        };
        let message = match op % 9 {
            0 | 1 => {
                let header = header(MessageType::Announce);
                Some(Message {
                    header,
                    body: Body::Announce(Announce {
                        origin: master_time(&mut input, now),
                        current_utc_offset: 37,
                        priority1: input.u8(),
                        quality: ClockQuality {
                            class: input.u8(),
                            ..ClockQuality::default()
                        },
                        priority2: 128,
                        grandmaster: ClockIdentity([input.u8(); 8]),
                        steps_removed: u16::from(input.u8()),
                        time_source: 0xa0,
                    }),
                })
            }
            2 | 3 => {
                let header = header(MessageType::Sync);
                Some(Message {
                    header,
                    body: Body::Sync {
                        origin: master_time(&mut input, now),
                    },
                })
            }
            4 => {
                let header = header(MessageType::FollowUp);
                Some(Message {
                    header,
                    body: Body::FollowUp {
                        precise_origin: master_time(&mut input, now),
                    },
                })
            }
            5 => {
                let mut header = header(MessageType::DelayResp);
                if input.u8() & 1 == 0 {
                    header.sequence_id = port.delay_sequence;
                }
                let requesting = if input.u8() % 4 == 0 { from } else { identity };
                Some(Message {
                    header,
                    body: Body::DelayResp {
                        receive: master_time(&mut input, now),
                        requesting,
                    },
                })
            }
            6 => {
                // Time passes: announces expire.
                now += u64::from(input.u16()) * 1_000_000;
                port.housekeeping(now);
                None
            }
            _ => None,
        };
        let bytes = match (message, op % 9) {
            (Some(m), _) => {
                let mut bytes = m.to_vec();
                if input.u8() % 8 == 0 {
                    let at = usize::from(input.u8()) % bytes.len();
                    bytes[at] ^= input.u8().max(1);
                }
                bytes
            }
            (None, 6) => continue,
            (None, _) => {
                let len = usize::from(input.u8() % 80);
                (0..len).map(|_| input.u8()).collect()
            }
        };
        let datagram = Datagram {
            len: bytes.len(),
            from: None,
            rx_mono: now,
            kernel_stamp: op & 0x40 != 0,
        };
        port.handle(channel, datagram, &bytes);
        pushed += 1;
        port.housekeeping(now);
        port.publish();
        let c = port.counters;
        assert_eq!(c.received, pushed, "{c:?}");
        assert_eq!(
            c.received,
            c.malformed
                + c.unsupported
                + c.other_domain
                + c.ignored
                + c.announces
                + c.syncs
                + c.follow_ups
                + c.delay_responses,
            "every datagram in one counter: {c:?}"
        );
        assert!(c.samples <= c.syncs + c.follow_ups, "{c:?}");
        if let Some(master) = port.master {
            assert!(
                port.selection.get(master).is_some(),
                "master {master} not known"
            );
        }
    }
}

#[test]
fn ptp_slave() {
    // Delay_Reqs go here, unread: a real socket, so sends succeed.
    let peer = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    // Long inputs: a master is chosen only after a few announces.
    bolero::check!()
        .with_generator(bolero::produce::<Vec<u8>>().with().len(64usize..2048))
        .with_iterations(1_000)
        .for_each(|data: &Vec<u8>| run(data, &peer));
}
