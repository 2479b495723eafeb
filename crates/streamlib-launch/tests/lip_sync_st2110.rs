//! Lip sync through SMPTE ST 2110-20 + -30 between two runtimes on one host clock: the sender
//! runs `testpattern pattern=flash` and `audiotestsrc wave=ticks` into `networksend` and
//! `networkaudiosend`; the receiver stamps frames with the sender's media time
//! (`timestamps=media`) and writes both into a file, whose decoded onsets must agree within
//! one audio packet time (1 ms). Once with both runtimes on software clocks (one monotonic
//! timer), and once (feature `ptp`) on two PTP clocks locked to masters on loopback: TAI
//! timestamps, where the receiver must recover the whole media time from wrapped RTP
//! timestamps, and the writer must place the audio by timestamp (no two-clock fallback).
#![cfg(all(
    feature = "file",
    feature = "video",
    feature = "audio",
    feature = "net"
))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "tests; measured offsets are printed for the record (--nocapture)"
)]

use std::net::UdpSocket;
use std::time::Duration;

use streamlib_clock::{Clock, Rational, SoftwareClock};
use streamlib_launch::{BuiltPipeline, Registry, build, parse};
use streamlib_runtime::StreamRuntime;
use streamlib_test_support::media;

/// One ST 2110-30 packet time at `ptime=1`.
const PACKET_TIME_S: f64 = 0.001;
const WIDTH: usize = 320;
const HEIGHT: usize = 180;

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn flash_and_tick_stay_together_through_st2110() {
    let fps = Rational::fps(30);
    through_st2110("mkv", SoftwareClock::new(fps), SoftwareClock::new(fps));
}

/// The same between two runtimes on PTP clocks (TAI, 1.8e18 ns: RTP timestamps wrap many
/// times over, so the receiver must recover the whole media time), each locked to its own
/// master on loopback, both masters serving the host's TAI.
#[cfg(feature = "ptp")]
#[test]
fn flash_and_tick_stay_together_through_st2110_on_ptp() {
    use streamlib_clock::LockState;
    use streamlib_ptp::{MasterConfig, PtpClock, PtpConfig, PtpMaster, Transport};
    const LO: std::net::Ipv4Addr = std::net::Ipv4Addr::LOCALHOST;
    let fps = Rational::fps(30);
    let locked = || {
        let master_ports = (free_port(), free_port());
        let clock = PtpClock::new(
            fps,
            PtpConfig::new(Transport::unicast(LO, (0, 0), LO, master_ports)),
        )
        .unwrap();
        let (event, general) = clock.slave().local_addrs();
        let master = PtpMaster::spawn(MasterConfig::new(Transport::unicast(
            LO,
            master_ports,
            LO,
            (event.port(), general.port()),
        )))
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while clock.lock_state() != LockState::Locked {
            assert!(std::time::Instant::now() < deadline, "no PTP lock in 20 s");
            std::thread::sleep(Duration::from_millis(10));
        }
        (clock, master)
    };
    let (send_clock, _send_master) = locked();
    let (receive_clock, _receive_master) = locked();
    through_st2110("ptp", send_clock, receive_clock);
}

/// Sends flash + tick over ST 2110-20 and -30 from one runtime to another, which writes
/// them into a Matroska file; the decoded onsets agree within one packet time.
fn through_st2110(name: &str, send_clock: impl Clock, receive_clock: impl Clock) {
    let dir = media::temp_dir("launch-lip-sync-2110", name);
    let (video_port, audio_port) = (free_port(), free_port());
    let (video_sdp, audio_sdp) = (dir.join("video.sdp"), dir.join("audio.sdp"));
    let path = dir.join("received.mkv");
    let registry = Registry::builtin();

    let send = format!(
        "testpattern pattern=flash moving-box=false size={WIDTH}x{HEIGHT} format=uyvy ! \
         networksend destination=127.0.0.1:{video_port} sdp={}  \
         audiotestsrc wave=ticks freq=1000 ! networkaudiosend destination=127.0.0.1:{audio_port} \
         sdp={}",
        video_sdp.display(),
        audio_sdp.display()
    );
    let mut sender = start(&registry, &send, send_clock);

    let receive = format!(
        "networkreceive sdp={} timestamps=media ! filewriter location={} name=w codec=ffv1 \
         audio-codec=pcm  networkaudioreceive sdp={} ! w.audio",
        video_sdp.display(),
        path.display(),
        audio_sdp.display()
    );
    let mut receiver = start(&registry, &receive, receive_clock);
    std::thread::sleep(Duration::from_millis(4_300));
    let received = receiver.runtime.stop().unwrap();
    sender.runtime.stop().unwrap();
    for stream in &received.streams {
        assert_eq!(stream.errors, 0, "{}", stream.id);
    }
    // Placed by timestamp, not by the writer's fallback for two clocks.
    let report = receiver.controls.report("w").expect("the writer's report");
    assert_eq!(report["audio_clock_mismatch"], false, "{report}");

    let (video, audio) = (
        media::flash_onsets(&path, WIDTH, HEIGHT),
        media::beep_onsets(&path),
    );
    eprintln!("st2110 {name}: flashes {video:?}, beeps {audio:?}");
    // The receiver publishes the newest frame per tick: on a loaded machine a late tick can
    // supersede a flash frame (counted as `superseded`), so one of the four may be missing.
    assert!(video.len() >= 2, "flashes {video:?}");
    let mut paired = 0;
    // A flash whose beep was not written (the track's first or last second) has none within
    // half a second. One at or just before the audio track's first sample has its beep cut
    // at the start (the receiver's first frame can be a flash): its onset reads late.
    let audio_start = media::probe_f64(&path, "a:0", "frame=pts_time");
    let whole: Vec<f64> = video
        .iter()
        .copied()
        .filter(|&v| v >= audio_start + PACKET_TIME_S)
        .collect();
    for (v, offset) in media::pair_flashes_with_beeps(&whole, &audio, 0.5) {
        eprintln!(
            "st2110 {name}: flash at {v:.6} s, beep {:+.3} ms",
            offset * 1e3
        );
        assert!(
            offset.abs() <= PACKET_TIME_S,
            "beep {:+.3} ms from its flash at {v} s",
            offset * 1e3
        );
        paired += 1;
    }
    assert!(paired >= 2, "flashes {video:?}, beeps {audio:?}");
}

/// Builds `text` into a runtime on `clock` and starts it.
fn start(registry: &Registry, text: &str, clock: impl Clock) -> BuiltPipeline {
    let mut built = build(registry, &parse(text).unwrap(), StreamRuntime::new(clock))
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    built.runtime.start().unwrap();
    built
}
