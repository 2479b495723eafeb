//! [`PtpSlave`]: an ordinary clock in slave mode, on its own thread.

use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddrV4;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use streamlib_clock::LockState;

use crate::bmca::{MasterSelection, interval_ns};
use crate::message::{Body, Header, Message, MessageType, PtpTimestamp, flags, parse};
use crate::servo::Servo;
use crate::socket::{Channel, Datagram, PtpSockets};
use crate::status::{PtpCounters, PtpSnapshot};
use crate::time::local_monotonic_ns;
use crate::{ClockIdentity, PortIdentity, PtpConfig, PtpError, PtpStatus};

/// How often the protocol thread wakes without traffic (stop requests, timeouts).
const POLL_MS: i32 = 20;
/// A Delay_Req without an answer after this long is given up.
const DELAY_RESP_TIMEOUT_NS: u64 = 2_000_000_000;

/// A locally administered EUI-64 that differs per process and per call.
pub(crate) fn random_identity() -> ClockIdentity {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u64(local_monotonic_ns());
    let mut bytes = hasher.finish().to_be_bytes();
    // Locally administered, unicast.
    bytes[0] = (bytes[0] | 0x02) & !0x01;
    ClockIdentity(bytes)
}

/// The stop flag and thread of a protocol loop; joined on drop.
#[derive(Debug)]
pub(crate) struct ProtocolThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl ProtocolThread {
    pub(crate) fn spawn(
        name: &str,
        body: impl FnOnce(&AtomicBool) + Send + 'static,
    ) -> Result<Self, PtpError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || body(&flag))
            .map_err(|source| PtpError::Thread {
                name: name.to_owned(),
                source,
            })?;
        Ok(Self {
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for ProtocolThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(handle) = self.handle.take() {
            // A panic on the protocol thread was already reported by the panic hook.
            let _ = handle.join();
        }
    }
}

/// An IEEE 1588 ordinary clock in slave mode over UDP/IPv4.
///
/// It listens for Announce messages, picks the best master, measures its offset with
/// Sync / Follow_Up (one- and two-step) and the end-to-end delay request-response mechanism,
/// and steers a model of the master's time (never the system clock). Everything runs on a
/// thread started by [`spawn`](Self::spawn) and joined when the slave is dropped; read the
/// state through [`status`](Self::status).
#[derive(Debug)]
pub struct PtpSlave {
    status: PtpStatus,
    local: (SocketAddrV4, SocketAddrV4),
    _thread: ProtocolThread,
}

impl PtpSlave {
    /// Opens the sockets and starts the protocol thread.
    ///
    /// # Errors
    /// [`PtpError::InvalidConfig`], [`PtpError::Bind`] (e.g. port 319 held by ptp4l, or not
    /// root), [`PtpError::Interface`], [`PtpError::SocketOption`], [`PtpError::Thread`].
    pub fn spawn(config: PtpConfig) -> Result<Self, PtpError> {
        config.validate()?;
        let sockets = PtpSockets::open(&config.transport)?;
        let local = sockets.local_addrs();
        let identity = PortIdentity {
            clock: config.clock_identity.unwrap_or_else(random_identity),
            port: 1,
        };
        let status = PtpStatus::new(identity);
        let mut port = SlavePort::new(sockets, config, identity, status.clone());
        let thread = ProtocolThread::spawn("ptp-slave", move |stop| port.run(stop))?;
        Ok(Self {
            status,
            local,
            _thread: thread,
        })
    }

    /// A handle on the slave's state.
    pub fn status(&self) -> PtpStatus {
        self.status.clone()
    }

    /// The bound (event, general) addresses; useful when ports 0 were asked for.
    pub fn local_addrs(&self) -> (SocketAddrV4, SocketAddrV4) {
        self.local
    }
}

/// A Sync waiting for its Follow_Up, or the other way round.
#[derive(Clone, Copy, Debug)]
struct HalfSync {
    sequence_id: u16,
    /// t2 (Sync) on the local timebase, or t1 (Follow_Up) in master ns.
    time: u64,
    correction_ns: i64,
}

/// A completed Sync: t1 + corrections (master ns) and t2 (local ns).
#[derive(Clone, Copy, Debug)]
struct SyncSample {
    t1c: i128,
    t2: u64,
}

#[derive(Clone, Copy, Debug)]
struct PendingDelay {
    sequence_id: u16,
    t3: u64,
    sync: SyncSample,
}

struct SlavePort {
    sockets: PtpSockets,
    config: PtpConfig,
    identity: PortIdentity,
    status: PtpStatus,
    selection: MasterSelection,
    servo: Servo,
    counters: PtpCounters,
    master: Option<PortIdentity>,
    pending_sync: Option<HalfSync>,
    pending_follow_up: Option<HalfSync>,
    last_sync: Option<SyncSample>,
    pending_delay: Option<PendingDelay>,
    delay_sequence: u16,
    last_delay_req: Option<u64>,
    master_delay_log_interval: i8,
    offset_ns: i64,
}

impl SlavePort {
    fn new(
        sockets: PtpSockets,
        config: PtpConfig,
        identity: PortIdentity,
        status: PtpStatus,
    ) -> Self {
        let servo = Servo::new(config.servo);
        Self {
            sockets,
            config,
            identity,
            status,
            selection: MasterSelection::default(),
            servo,
            counters: PtpCounters::default(),
            master: None,
            pending_sync: None,
            pending_follow_up: None,
            last_sync: None,
            pending_delay: None,
            delay_sequence: 0,
            last_delay_req: None,
            master_delay_log_interval: 0,
            offset_ns: 0,
        }
    }

    fn run(&mut self, stop: &AtomicBool) {
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Acquire) {
            if let Err(err) = self.sockets.wait_readable(POLL_MS) {
                tracing::warn!(%err, "PTP poll failed");
                self.counters.io_errors += 1;
                std::thread::sleep(Duration::from_millis(POLL_MS as u64));
            }
            // Drain both sockets, alternating, so a Sync is usually seen before its Follow_Up.
            loop {
                let mut any = false;
                for channel in [Channel::Event, Channel::General] {
                    match self.sockets.recv(channel, &mut buf) {
                        Ok(Some(d)) => {
                            any = true;
                            let len = d.len.min(buf.len());
                            self.handle(channel, d, &buf[..len]);
                        }
                        Ok(None) => {}
                        Err(err) => {
                            tracing::debug!(%err, ?channel, "PTP receive failed");
                            self.counters.io_errors += 1;
                        }
                    }
                }
                if !any {
                    break;
                }
            }
            self.housekeeping(local_monotonic_ns());
            self.publish();
        }
    }

    fn handle(&mut self, channel: Channel, datagram: Datagram, bytes: &[u8]) {
        self.counters.received += 1;
        let msg = match parse(bytes) {
            Ok(msg) => msg,
            Err(PtpError::UnsupportedMessage { .. }) => {
                self.counters.unsupported += 1;
                return;
            }
            Err(_) => {
                self.counters.malformed += 1;
                return;
            }
        };
        let h = msg.header;
        if h.domain != self.config.domain {
            self.counters.other_domain += 1;
            return;
        }
        if h.source.clock == self.identity.clock {
            self.counters.ignored += 1;
            return;
        }
        if channel == Channel::Event {
            if datagram.kernel_stamp {
                self.counters.kernel_rx_timestamps += 1;
            } else {
                self.counters.user_rx_timestamps += 1;
            }
        }
        let from_master = self.master == Some(h.source);
        match msg.body {
            Body::Announce(announce) if announce.steps_removed < 255 => {
                self.counters.announces += 1;
                self.selection.on_announce(&h, &announce, datagram.rx_mono);
                self.select_master();
            }
            Body::Sync { origin } if from_master && channel == Channel::Event => {
                self.counters.syncs += 1;
                let correction_ns = h.correction_ns();
                if !h.has_flag(flags::TWO_STEP) {
                    self.on_sync(origin.to_ns(), correction_ns, datagram.rx_mono);
                    return;
                }
                match self.pending_follow_up.take() {
                    Some(fu) if fu.sequence_id == h.sequence_id => {
                        self.on_sync(fu.time, correction_ns + fu.correction_ns, datagram.rx_mono);
                    }
                    _ => {
                        self.pending_sync = Some(HalfSync {
                            sequence_id: h.sequence_id,
                            time: datagram.rx_mono,
                            correction_ns,
                        });
                    }
                }
            }
            Body::FollowUp { precise_origin } if from_master => {
                self.counters.follow_ups += 1;
                let t1 = precise_origin.to_ns();
                match self.pending_sync.take() {
                    Some(sync) if sync.sequence_id == h.sequence_id => {
                        self.on_sync(t1, sync.correction_ns + h.correction_ns(), sync.time);
                    }
                    other => {
                        // The Follow_Up overtook its Sync (two sockets): keep it for the Sync.
                        self.pending_sync = other;
                        self.pending_follow_up = Some(HalfSync {
                            sequence_id: h.sequence_id,
                            time: t1,
                            correction_ns: h.correction_ns(),
                        });
                    }
                }
            }
            Body::DelayResp {
                receive,
                requesting,
            } if from_master && requesting == self.identity => match self.pending_delay {
                Some(p) if p.sequence_id == h.sequence_id => {
                    self.pending_delay = None;
                    self.counters.delay_responses += 1;
                    self.master_delay_log_interval = h.log_interval;
                    self.on_delay_resp(p, receive.to_ns(), h.correction_ns());
                }
                _ => self.counters.ignored += 1,
            },
            _ => self.counters.ignored += 1,
        }
    }

    fn select_master(&mut self) {
        let best = self.selection.best().map(|m| m.port);
        if best == self.master {
            return;
        }
        match best {
            Some(port) => {
                tracing::info!(master = %port, "PTP master selected");
                self.counters.master_changes += 1;
            }
            None => tracing::warn!("PTP master lost; holding over on the last model"),
        }
        self.master = best;
        self.servo.reset();
        self.pending_sync = None;
        self.pending_follow_up = None;
        self.last_sync = None;
        self.pending_delay = None;
        self.last_delay_req = None;
    }

    fn on_sync(&mut self, t1: u64, correction_ns: i64, t2: u64) {
        let t1c = i128::from(t1) + i128::from(correction_ns);
        let sample = SyncSample { t1c, t2 };
        self.last_sync = Some(sample);
        let delay = self.servo.delay_ns().unwrap_or(0);
        let now = local_monotonic_ns();
        let result = self.servo.sample(t2, t1c + i128::from(delay), now);
        self.counters.samples += 1;
        if result.stepped {
            self.counters.steps += 1;
        }
        if result.outlier {
            self.counters.sync_outliers += 1;
        }
        self.offset_ns = result.offset_ns;
        self.status.publish_model(self.servo.model());
        tracing::trace!(offset_ns = result.offset_ns, delay, state = ?self.servo.state(), "PTP sample");
        self.maybe_send_delay_req(now);
    }

    fn maybe_send_delay_req(&mut self, now: u64) {
        let Some(sync) = self.last_sync else { return };
        if let Some(p) = self.pending_delay {
            if now.saturating_sub(p.t3) < DELAY_RESP_TIMEOUT_NS {
                return;
            }
            self.pending_delay = None;
        }
        let interval = self.config.delay_req_interval.map_or_else(
            || interval_ns(self.master_delay_log_interval),
            |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
        );
        if self
            .last_delay_req
            .is_some_and(|last| now.saturating_sub(last) < interval)
        {
            return;
        }
        self.delay_sequence = self.delay_sequence.wrapping_add(1);
        let mut header = Header::new(MessageType::DelayReq, self.identity, self.delay_sequence);
        header.domain = self.config.domain;
        header.log_interval = 0x7f;
        let origin = self
            .servo
            .model()
            .map_or_else(PtpTimestamp::default, |m| PtpTimestamp::from_ns(m.at(now)));
        let msg = Message {
            header,
            body: Body::DelayReq { origin },
        };
        let mut out = [0u8; crate::message::MAX_MESSAGE_LEN];
        let Ok(len) = msg.encode(&mut out) else {
            return;
        };
        let to = self.sockets.destination(Channel::Event);
        self.sockets.drain_tx_stamps();
        match self.sockets.send_event(&out[..len], to) {
            Ok(sent) => {
                self.counters.delay_requests += 1;
                if sent.kernel_stamp {
                    self.counters.kernel_tx_timestamps += 1;
                } else {
                    self.counters.user_tx_timestamps += 1;
                }
                self.last_delay_req = Some(now);
                self.pending_delay = Some(PendingDelay {
                    sequence_id: self.delay_sequence,
                    t3: sent.tx_mono,
                    sync,
                });
            }
            Err(err) => {
                tracing::debug!(%err, %to, "PTP Delay_Req send failed");
                self.counters.io_errors += 1;
            }
        }
    }

    fn on_delay_resp(&mut self, p: PendingDelay, t4: u64, correction_ns: i64) {
        // delay = ((t4 − t1) − (t3 − t2)·rate − corrections) / 2: the master's round trip
        // minus the slave's turnaround, independent of the model's phase.
        let rate = 1.0 + self.servo.frequency_ppb() * 1e-9;
        let turnaround = (p.t3 as f64 - p.sync.t2 as f64) * rate;
        let master_span = i128::from(t4) - i128::from(correction_ns) - p.sync.t1c;
        let delay = ((master_span as f64 - turnaround) / 2.0).round() as i64;
        let filtered = self.servo.add_delay(delay);
        tracing::trace!(delay, filtered, "PTP path delay");
    }

    fn housekeeping(&mut self, now: u64) {
        let expired = self
            .selection
            .expire(now, self.config.announce_receipt_timeout);
        if expired > 0 {
            self.counters.announce_timeouts += expired as u64;
            self.select_master();
        }
    }

    fn publish(&self) {
        let master = self.master.and_then(|port| self.selection.get(port));
        let lock_state = if master.is_some() {
            self.servo.state()
        } else {
            LockState::Unlocked
        };
        self.status.publish(PtpSnapshot {
            port_identity: self.identity,
            lock_state,
            master: self.master,
            grandmaster: master.map(|m| m.announce.grandmaster),
            offset_ns: self.offset_ns,
            mean_path_delay_ns: self.servo.delay_ns(),
            frequency_ppb: self.servo.frequency_ppb(),
            current_utc_offset: master
                .filter(|m| m.flags & flags::UTC_OFFSET_VALID != 0)
                .map(|m| m.announce.current_utc_offset),
            ptp_timescale: master.is_some_and(|m| m.flags & flags::PTP_TIMESCALE != 0),
            counters: self.counters,
        });
    }
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_identities_are_local_unicast_and_distinct() {
        let a = random_identity();
        let b = random_identity();
        assert_ne!(a, b);
        assert_eq!(a.0[0] & 0x03, 0x02);
    }
}
