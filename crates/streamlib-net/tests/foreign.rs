//! Receivers accept only their stream: a stranger sending to the receiver's port from another
//! address, or a second SSRC from the sender's own address, is counted and never delivered or
//! followed.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use common::*;
use streamlib_clock::{Clock, FreeRunningClock, Rational};
use streamlib_net::*;
use streamlib_ports::{StartContext, StreamHandler};

const SENDER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
/// Another address of the loopback interface (Linux routes all of 127/8 there).
const STRANGER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// Every datagram of frame `n` of `format`, as a sender with `ssrc` numbers them.
fn frame_packets(format: &VideoFormat, ssrc: u32, n: u32) -> Vec<Vec<u8>> {
    let mut p = Packetizer::new(
        *format,
        PacketizerConfig {
            ssrc,
            initial_sequence: n * 1000,
            ..PacketizerConfig::default()
        },
    )
    .unwrap();
    let stride = format.layout().unwrap().stride() as usize;
    packetize(&mut p, &pattern(format, n), stride, n * 3000)
}

fn send_from(from: Ipv4Addr, to: SocketAddr, packets: &[Vec<u8>]) {
    let socket = UdpSocket::bind((from, 0)).unwrap();
    for d in packets {
        socket.send_to(d, to).unwrap();
    }
}

/// Bound to `bind`, accepting only [`SENDER`].
fn only_sender(bind: SocketAddr) -> ReceiveEndpoint {
    ReceiveEndpoint {
        source: Some(IpAddr::V4(SENDER)),
        ..ReceiveEndpoint::new(bind)
    }
}

/// Starts `rx` outside a runtime, as a runtime of `fps` ticks would.
fn start(rx: &mut impl StreamHandler, fps: u32) {
    let clock = FreeRunningClock::new(Rational::fps(fps)).info();
    rx.on_start(&StartContext::new("rx", &clock)).unwrap();
}

/// Waits (up to 5 s) until the receiver completed a frame; fails with its counters if not.
fn wait_for_a_frame(stats: &ReceiveStatsHandle) {
    assert!(
        wait_for(Duration::from_secs(5), || stats
            .snapshot()
            .counters
            .frames_complete
            >= 1),
        "{:?}",
        stats.snapshot()
    );
}

#[test]
fn a_stranger_on_the_port_is_counted_not_delivered() {
    let format = format(Sampling::YCbCr422Depth10, 64, 16);
    let port = free_port("127.0.0.1");
    let bind = SocketAddr::new(IpAddr::V4(SENDER), port);
    let config = NetworkReceiveConfig::with_endpoint(only_sender(bind), format);
    let mut rx = NetworkReceive::new(config).unwrap();
    let stats = rx.stats();
    start(&mut rx, 30);

    // The stranger sends first: were its packets taken, its SSRC would be locked and the
    // real sender's refused.
    let forged = frame_packets(&format, 0xBAD, 0);
    send_from(STRANGER, bind, &forged);
    assert!(
        wait_for(Duration::from_secs(5), || stats.snapshot().foreign_packets
            == forged.len() as u64),
        "{:?}",
        stats.snapshot()
    );
    let s = stats.snapshot();
    assert_eq!(s.counters.datagrams, 0, "{s:?}");
    assert_eq!(s.counters.frames_complete, 0, "{s:?}");

    let real = frame_packets(&format, 0x600D, 1);
    send_from(SENDER, bind, &real);
    // A second frame finalizes the first (its timestamp moves the stream on).
    send_from(SENDER, bind, &frame_packets(&format, 0x600D, 2));
    wait_for_a_frame(&stats);
    let s = stats.snapshot();
    assert_eq!(s.foreign_packets, forged.len() as u64, "{s:?}");
    assert_eq!(s.counters.foreign_ssrc, 0, "{s:?}");
    rx.on_stop().unwrap();
}

/// The receiver's configured SSRC is locked from the start: another SSRC that arrives first
/// is counted, not taken.
#[test]
fn a_receiver_pinned_to_an_ssrc_refuses_another_that_comes_first() {
    let format = format(Sampling::YCbCr422Depth10, 64, 16);
    let port = free_port("127.0.0.1");
    let bind = SocketAddr::new(IpAddr::V4(SENDER), port);
    let endpoint = ReceiveEndpoint {
        ssrc: Some(0x600D),
        ..only_sender(bind)
    };
    let mut rx =
        NetworkReceive::new(NetworkReceiveConfig::with_endpoint(endpoint, format)).unwrap();
    let stats = rx.stats();
    start(&mut rx, 30);

    let other = frame_packets(&format, 0xBAD, 0);
    send_from(SENDER, bind, &other);
    send_from(SENDER, bind, &frame_packets(&format, 0x600D, 1));
    send_from(SENDER, bind, &frame_packets(&format, 0x600D, 2));
    wait_for_a_frame(&stats);
    let s = stats.snapshot();
    assert_eq!(s.counters.foreign_ssrc, other.len() as u64, "{s:?}");
    assert_eq!(s.foreign_packets, other.len() as u64, "{s:?}");
    rx.on_stop().unwrap();
}

#[test]
fn a_second_ssrc_from_the_same_address_is_counted_not_followed() {
    let format = format(Sampling::YCbCr422Depth10, 64, 16);
    let mut jb = jitter(format, JitterConfig::default());
    let mut out = Out::new();
    let ms = 1_000_000u64;
    for d in frame_packets(&format, 1, 0) {
        jb.push(&d, 0, &mut collect(&mut out));
    }
    // Another SSRC while ours is live, with a timestamp far ahead: followed, it would
    // flush and resync.
    let foreign = frame_packets(&format, 2, 900);
    for d in &foreign {
        jb.push(d, 10 * ms, &mut collect(&mut out));
    }
    for d in frame_packets(&format, 1, 1) {
        jb.push(&d, 33 * ms, &mut collect(&mut out));
    }
    jb.flush(40 * ms, &mut collect(&mut out));
    let c = *jb.counters();
    assert_eq!(c.foreign_ssrc, foreign.len() as u64, "{c:?}");
    assert_eq!((c.resyncs, c.frames_complete), (0, 2), "{c:?}");
    assert_eq!(jb.ssrc(), Some(1));
    assert!(out.iter().all(|(ts, ..)| *ts < 900 * 3000), "{out:?}");
}

#[test]
fn a_restarted_sender_with_a_new_ssrc_takes_over_after_silence_unless_pinned() {
    let format = format(Sampling::YCbCr422Depth10, 64, 16);
    let ms = 1_000_000u64;
    for pinned in [false, true] {
        let mut jb = jitter(format, JitterConfig::default());
        if pinned {
            jb.lock_ssrc(1);
        }
        let mut out = Out::new();
        for d in frame_packets(&format, 1, 0) {
            jb.push(&d, 0, &mut collect(&mut out));
        }
        // 600 ms of silence, then a new SSRC: a sender that restarted.
        for n in 5..7 {
            for d in frame_packets(&format, 7, n) {
                jb.push(&d, 600 * ms, &mut collect(&mut out));
            }
        }
        jb.flush(700 * ms, &mut collect(&mut out));
        let c = *jb.counters();
        if pinned {
            assert_eq!(jb.ssrc(), Some(1), "{c:?}");
            assert_eq!(c.frames_complete, 1, "{c:?}");
            assert!(c.foreign_ssrc > 0, "{c:?}");
        } else {
            assert_eq!(jb.ssrc(), Some(7), "{c:?}");
            assert_eq!(c.frames_complete, 3, "{c:?}");
            assert_eq!(c.foreign_ssrc, 0, "{c:?}");
        }
    }
}

#[test]
fn a_source_specific_multicast_receiver_takes_only_its_sender() {
    let format = format(Sampling::YCbCr422Depth10, 64, 16);
    let port = free_port("0.0.0.0");
    let group: Ipv4Addr = "239.255.42.97".parse().unwrap();
    let endpoint = ReceiveEndpoint {
        multicast_group: Some(IpAddr::V4(group)),
        ..only_sender(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))
    };
    let mut config = NetworkReceiveConfig::with_endpoint(endpoint, format);
    config.socket.multicast_interface_v4 = SENDER;
    let mut rx = NetworkReceive::new(config).unwrap();
    let stats = rx.stats();
    start(&mut rx, 30);
    let to = SocketAddr::new(IpAddr::V4(group), port);
    let multicast_from = |from: Ipv4Addr, packets: &[Vec<u8>]| {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        socket
            .bind(&SocketAddr::new(IpAddr::V4(from), 0).into())
            .unwrap();
        socket.set_multicast_if_v4(&SENDER).unwrap();
        socket.set_multicast_loop_v4(true).unwrap();
        for d in packets {
            socket.send_to(d, &to.into()).unwrap();
        }
    };
    // The stranger's datagrams never reach the jitter buffer: the membership filters them in
    // the kernel (IGMPv3), or the receiver drops and counts them.
    multicast_from(STRANGER, &frame_packets(&format, 0xBAD, 0));
    multicast_from(SENDER, &frame_packets(&format, 0x600D, 1));
    multicast_from(SENDER, &frame_packets(&format, 0x600D, 2));
    let real = 2 * frame_packets(&format, 0x600D, 1).len() as u64;
    // Wait for every real datagram (the stranger's, sent first, would be counted by then).
    assert!(
        wait_for(Duration::from_secs(5), || {
            let s = stats.snapshot();
            s.counters.datagrams >= real && s.counters.frames_complete >= 1
        }),
        "{:?}",
        stats.snapshot()
    );
    std::thread::sleep(Duration::from_millis(20));
    let s = stats.snapshot();
    assert_eq!(s.counters.foreign_ssrc, 0, "{s:?}");
    assert_eq!(s.counters.datagrams, real, "{s:?}");
    rx.on_stop().unwrap();
}

#[test]
fn the_audio_receiver_drops_a_stranger_too() {
    let port = free_port("127.0.0.1");
    let format = AudioFormat::new(AudioEncoding::L16, 1).unwrap();
    let bind = SocketAddr::new(IpAddr::V4(SENDER), port);
    let config = NetworkAudioReceiveConfig::with_endpoint(only_sender(bind), format);
    let mut rx = NetworkAudioReceive::new(config).unwrap();
    let stats = rx.stats();
    start(&mut rx, 100);
    let mut packets = Vec::new();
    let mut p = AudioPacketizer::new(format, AudioPacketizerConfig::default()).unwrap();
    p.push(&[0.25; 480], 0, &mut |d: &[u8]| packets.push(d.to_vec()));
    send_from(STRANGER, bind, &packets);
    send_from(SENDER, bind, &packets);
    assert!(
        wait_for(Duration::from_secs(5), || {
            let s = stats.snapshot();
            s.counters.packets == packets.len() as u64 && s.foreign_packets == packets.len() as u64
        }),
        "{:?}",
        stats.snapshot()
    );
    assert_eq!(stats.snapshot().counters.datagrams, packets.len() as u64);
    rx.on_stop().unwrap();
}
