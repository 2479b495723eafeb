//! What a paced sender and its receiver cost in CPU at the issue's packet rate (1080p59.94
//! 4:2:2 10-bit: 3576 datagrams of 1470 bytes a frame), over loopback, for burst sizes with
//! and without UDP GSO on the sender and UDP GRO on the receiver. The sender sleeps until
//! each burst is due (absolute deadlines, 1 ns timer slack), as `NetworkSend` does.
//!
//! ```text
//! cargo run --release -p streamlib-net --example socket_sweep [seconds per case, default 3]
//! ```
//!
//! Prints, per case, CPU seconds per second of each thread (1.00 = a whole core) and whether
//! the sender kept up. On loopback the receiver's kernel work partly runs in the sender's
//! context, so the two columns are not independent.
#![allow(clippy::print_stdout, reason = "an example that reports")]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use streamlib_clock::{monotonic_now_ns, set_thread_timer_slack_ns, sleep_until_monotonic_ns};
use streamlib_net::{
    RecvBatch, SendBatch, SocketConfig, enable_gro, receiver_socket, sender_socket,
};

const DATAGRAM: usize = 1470;
const PER_SECOND: f64 = 3576.0 * 60_000.0 / 1001.0;

/// CPU time of the calling thread, s.
fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn case(
    seconds: f64,
    burst: usize,
    gso: bool,
    gro: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let cfg = SocketConfig::default();
    let rx = receiver_socket(
        (Ipv4Addr::LOCALHOST, 0).into(),
        None,
        &cfg,
        Duration::from_millis(200),
    )?;
    let gro = gro && enable_gro(&rx);
    let dest = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), rx.local_addr()?.port());
    let done = Arc::new(AtomicBool::new(false));
    let done2 = Arc::clone(&done);
    let receiver = std::thread::spawn(move || {
        let mut batch = if gro {
            RecvBatch::with_gro()
        } else {
            RecvBatch::new()
        };
        let (start, mut got) = (thread_cpu_s(), 0u64);
        while let Ok(n) = batch.recv(&rx) {
            if n == 0 && done2.load(Ordering::Acquire) {
                break;
            }
            got += n as u64;
        }
        (thread_cpu_s() - start, got)
    });
    let tx = sender_socket(dest, None, &cfg)?;
    let mut batch = if gso {
        SendBatch::with_gso(DATAGRAM)
    } else {
        SendBatch::new(DATAGRAM)
    };
    set_thread_timer_slack_ns(1)?;
    let total = (seconds * PER_SECOND) as u64;
    let interval_ns = 1e9 / PER_SECOND * burst as f64;
    let (cpu0, t0) = (thread_cpu_s(), monotonic_now_ns());
    let mut sent = 0u64;
    let mut bursts = 0u64;
    while sent < total {
        sleep_until_monotonic_ns(t0 + (bursts as f64 * interval_ns) as u64)?;
        while batch.len() < burst && sent + (batch.len() as u64) < total {
            batch.push_with(|b| {
                b[..DATAGRAM].fill(0x80);
                Some(DATAGRAM)
            });
        }
        let (n, err) = batch.send(&tx);
        if let Some(err) = err {
            return Err(err.into());
        }
        sent += n as u64;
        bursts += 1;
    }
    let wall = (monotonic_now_ns() - t0) as f64 / 1e9;
    let tx_cpu = thread_cpu_s() - cpu0;
    std::thread::sleep(Duration::from_millis(300));
    done.store(true, Ordering::Release);
    let (rx_cpu, got) = receiver.join().map_err(|_| "receiver panicked")?;
    println!(
        "burst {burst:>2}  gso {:<5}  gro {:<5}  sender {:.2} core  receiver {:.2} core  {} of {total} received  {}",
        batch.gso(),
        gro,
        tx_cpu / wall,
        rx_cpu / wall,
        got,
        if wall > seconds * 1.05 {
            format!("BEHIND: {wall:.2} s for {seconds} s")
        } else {
            "kept up".into()
        }
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: f64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(3.0);
    println!("{PER_SECOND:.0} datagrams/s of {DATAGRAM} bytes, {seconds} s per case");
    for burst in [1, 5, 16, 44] {
        case(seconds, burst, false, false)?;
        case(seconds, burst, true, false)?;
        case(seconds, burst, true, true)?;
    }
    Ok(())
}
