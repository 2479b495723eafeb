//! One socket worker's lifecycle, shared by every handler here (video and audio, send and
//! receive): a named thread started in `on_start`, told to stop and joined in `on_stop` (or
//! when the handler is dropped), a failure to start or a panic reported as the handler's
//! error. Also the receive loop both receivers run on that thread.

use std::net::{IpAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;

use crate::NetError;
use crate::socket::RecvBatch;

/// How often a receive thread wakes without traffic, to finalize (or conceal) what is due
/// and to notice a stop.
pub(crate) const RECEIVE_POLL: Duration = Duration::from_millis(1);

/// A handler's worker thread. Dropping it stops and joins the thread.
pub(crate) struct Worker {
    thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    handler: &'static str,
    what: &'static str,
}

impl Worker {
    /// Starts thread `name` running `body`, which must return soon after the flag it gets is
    /// set. `handler` and `what` (`"send"`, `"receive"`) name it in errors.
    pub(crate) fn spawn(
        handler: &'static str,
        what: &'static str,
        name: &str,
        body: impl FnOnce(&AtomicBool) + Send + 'static,
    ) -> Result<Self, NetError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name(name.into())
            .spawn(move || body(&flag))
            .map_err(|source| NetError::Thread {
                handler,
                what,
                source,
            })?;
        Ok(Self {
            thread: Some(thread),
            stop,
            handler,
            what,
        })
    }

    /// Wakes the thread if it is parked (new work for a sender).
    pub(crate) fn wake(&self) {
        if let Some(thread) = &self.thread {
            thread.thread().unpark();
        }
    }

    /// Tells the thread to stop, waits for it, and reports a panic.
    pub(crate) fn stop(mut self) -> Result<(), NetError> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<(), NetError> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        self.stop.store(true, Ordering::Release);
        thread.thread().unpark();
        thread.join().map_err(|_| NetError::ThreadPanicked {
            handler: self.handler,
            what: self.what,
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // A handler dropped without `on_stop`: nobody is left to hear about a panic.
        let _ = self.stop_and_join();
    }
}

/// Stops and joins the worker in `slot`, if any.
pub(crate) fn stop(slot: &mut Option<Worker>) -> Result<(), NetError> {
    slot.take().map_or(Ok(()), Worker::stop)
}

/// What a receive loop does with what arrives: the medium's jitter buffer and hand-over.
pub(crate) trait ReceivedStream {
    /// One datagram of the stream (from the configured source, not truncated), received at
    /// `now_ns` on the loop's monotonic clock.
    fn datagram(&mut self, datagram: &[u8], now_ns: u64);

    /// After each batch (or a poll timeout): let out what is due at `now_ns` and publish the
    /// counters; `truncated` datagrams (longer than a receive slot) were dropped so far.
    fn batch_done(&mut self, now_ns: u64, truncated: u64);

    /// Accepts only packets of `ssrc` from now on (the jitter buffer's `lock_ssrc`).
    fn lock_ssrc(&mut self, ssrc: u32);

    /// Where the receive loop counts what it drops itself.
    fn socket_counters(&self) -> Arc<SocketCounters>;
}

/// Stops and joins a receiver's worker in `slot`, then empties its hand-over queue `ready`,
/// so that what was not yet published goes back to the pool.
pub(crate) fn stop_receiver<T>(
    slot: &mut Option<Worker>,
    ready: &ArrayQueue<T>,
) -> Result<(), NetError> {
    let result = stop(slot);
    while ready.pop().is_some() {}
    result
}

/// Counters of the receive loop itself, beside the jitter buffer's.
#[derive(Debug, Default)]
pub(crate) struct SocketCounters {
    /// Failed `recvmmsg` calls.
    pub(crate) recv_errors: AtomicU64,
    /// Datagrams dropped because another address than the configured source sent them.
    pub(crate) foreign_source: AtomicU64,
}

/// Starts receive thread `name` of `handler`: [`receive_loop`] on `socket` into `stream`, in
/// batches that take GRO super-datagrams when `gro` (the socket has it enabled).
pub(crate) fn spawn_receiver(
    handler: &'static str,
    name: &str,
    socket: UdpSocket,
    gro: bool,
    source: Option<IpAddr>,
    mut stream: impl ReceivedStream + Send + 'static,
) -> Result<Worker, NetError> {
    let counters = stream.socket_counters();
    Worker::spawn(handler, "receive", name, move |stop| {
        let batch = if gro {
            RecvBatch::with_gro()
        } else {
            RecvBatch::new()
        };
        receive_loop(&socket, batch, source, &counters, stop, &mut stream);
    })
}

/// Reads datagrams in batches until `stop`, drops those from another address than `source`
/// (when given) and the truncated ones, and feeds the rest to `stream`.
pub(crate) fn receive_loop(
    socket: &UdpSocket,
    mut batch: RecvBatch,
    source: Option<IpAddr>,
    counters: &SocketCounters,
    stop: &AtomicBool,
    stream: &mut impl ReceivedStream,
) {
    let origin = Instant::now();
    let mut truncated = 0u64;
    while !stop.load(Ordering::Acquire) {
        let n = match batch.recv(socket) {
            Ok(n) => n,
            Err(_) => {
                counters.recv_errors.fetch_add(1, Ordering::Relaxed);
                thread::sleep(RECEIVE_POLL);
                0
            }
        };
        let now = origin.elapsed().as_nanos() as u64;
        for i in 0..n {
            let Some((datagram, cut)) = batch.get(i) else {
                break;
            };
            if source.is_some_and(|want| batch.source(i) != Some(want)) {
                counters.foreign_source.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if cut {
                truncated += 1;
                continue;
            }
            stream.datagram(datagram, now);
        }
        stream.batch_done(now, truncated);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn stop_joins_and_reports_a_panic() {
        let ran = Arc::new(AtomicBool::new(false));
        let seen = Arc::clone(&ran);
        let worker = Worker::spawn("Test", "send", "test-worker", move |stop| {
            while !stop.load(Ordering::Acquire) {
                thread::park_timeout(Duration::from_millis(50));
            }
            seen.store(true, Ordering::Release);
        })
        .unwrap();
        worker.wake();
        let mut slot = Some(worker);
        stop(&mut slot).unwrap();
        assert!(ran.load(Ordering::Acquire) && slot.is_none());
        assert!(stop(&mut slot).is_ok(), "stopping twice is fine");

        let worker = Worker::spawn("Test", "receive", "test-panic", |_| panic!("boom")).unwrap();
        let err = worker.stop().unwrap_err().to_string();
        assert_eq!(err, "Test: its receive thread panicked");
    }
}
