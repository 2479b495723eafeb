//! Parsing and building PTP messages: how many per second one core handles.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;

use streamlib_ptp::{
    Announce, Body, ClockIdentity, ClockQuality, Header, Message, MessageType, PortIdentity,
    PtpTimestamp, message::MAX_MESSAGE_LEN, parse,
};

fn messages() -> Vec<(&'static str, Message)> {
    let source = PortIdentity {
        clock: ClockIdentity([0, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55]),
        port: 1,
    };
    let ts = PtpTimestamp::from_ns(1_780_000_037_123_456_789);
    let mut sync = Header::new(MessageType::Sync, source, 7);
    sync.flags = streamlib_ptp::message::flags::TWO_STEP;
    vec![
        (
            "sync",
            Message {
                header: sync,
                body: Body::Sync { origin: ts },
            },
        ),
        (
            "delay_resp",
            Message {
                header: Header::new(MessageType::DelayResp, source, 9),
                body: Body::DelayResp {
                    receive: ts,
                    requesting: source,
                },
            },
        ),
        (
            "announce",
            Message {
                header: Header::new(MessageType::Announce, source, 3),
                body: Body::Announce(Announce {
                    origin: ts,
                    current_utc_offset: 37,
                    priority1: 128,
                    quality: ClockQuality::default(),
                    priority2: 128,
                    grandmaster: source.clock,
                    steps_removed: 0,
                    time_source: 0xa0,
                }),
            },
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("ptp_messages");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(200));
    group.measurement_time(Duration::from_millis(500));
    group.throughput(Throughput::Elements(1));
    for (name, msg) in messages() {
        let bytes = msg.to_vec();
        group.bench_function(format!("parse_{name}"), |b| {
            b.iter(|| parse(black_box(&bytes)));
        });
        let mut out = [0u8; MAX_MESSAGE_LEN];
        group.bench_function(format!("build_{name}"), |b| {
            b.iter(|| black_box(&msg).encode(black_box(&mut out)));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
