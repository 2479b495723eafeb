//! Packetizing and depacketizing 1080p 4:2:2 10-bit frames (RFC 4175, 1500-byte MTU), in
//! Gbit/s of pixel payload. Criterion reports throughput in bytes/s of the wire pixel data
//! (5 184 000 bytes a frame); multiply by 8 for bit/s.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "bench"
)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use streamlib_clock::Rational;
use streamlib_net::*;
use streamlib_ports::FramePool;

fn setup() -> (VideoFormat, Vec<u8>) {
    let f = VideoFormat::new(Sampling::YCbCr422Depth10, 1920, 1080, Rational::FPS_59_94).unwrap();
    let px: Vec<u8> = (0..f.layout().unwrap().buffer_len())
        .map(|i| (i * 7) as u8)
        .collect();
    (f, px)
}

fn packetize(c: &mut Criterion) {
    let (f, px) = setup();
    let mut p = Packetizer::new(f, PacketizerConfig::default()).unwrap();
    let mut buf = vec![0u8; p.max_packet_len()];
    let mut g = c.benchmark_group("rtp_1080p_422_10bit");
    g.sample_size(20);
    g.throughput(Throughput::Bytes(f.frame_bytes() as u64));
    g.bench_function("packetize", |b| {
        b.iter(|| {
            let mut frame = p.frame(&px, 3840, 0).unwrap();
            let mut n = 0;
            while let Some(len) = frame.next_into(&mut buf) {
                n += len;
            }
            black_box(n)
        });
    });
    // All datagrams of one frame, fed to a jitter buffer (parse, check, unpack, assemble).
    let mut packets = Vec::new();
    let mut frame = p.frame(&px, 3840, 0).unwrap();
    while let Some(len) = frame.next_into(&mut buf) {
        packets.push(buf[..len].to_vec());
    }
    let pool = FramePool::new("bench", f.layout().unwrap(), 4, 4).unwrap();
    let mut jb = JitterBuffer::new(f, pool, JitterConfig::default()).unwrap();
    let mut ts = 0u32;
    let mut seq = 0u32;
    g.bench_function("depacketize", |b| {
        b.iter(|| {
            // A new frame each time: next timestamp and sequence numbers (else duplicates).
            ts = ts.wrapping_add(1501);
            let mut delivered = 0;
            for d in &mut packets {
                seq = seq.wrapping_add(1);
                d[2..4].copy_from_slice(&(seq as u16).to_be_bytes());
                d[4..8].copy_from_slice(&ts.to_be_bytes());
                d[12..14].copy_from_slice(&((seq >> 16) as u16).to_be_bytes());
                jb.push(d, 0, &mut |_| delivered += 1);
            }
            assert_eq!(delivered, 1);
            black_box(delivered)
        });
    });
    g.finish();
}

criterion_group!(benches, packetize);
criterion_main!(benches);
