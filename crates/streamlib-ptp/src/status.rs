//! [`PtpStatus`]: what the protocol thread knows, shared with the clock and with users.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering, fence};
use std::sync::{Arc, Mutex, PoisonError};

use streamlib_clock::LockState;

use crate::servo::Model;
use crate::time::{local_monotonic_ns, system_tai_ns};
use crate::{ClockIdentity, PortIdentity};

/// Counters since the port was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PtpCounters {
    /// Datagrams received on both sockets.
    pub received: u64,
    /// Datagrams that were not well-formed PTPv2 (dropped).
    pub malformed: u64,
    /// PTPv2 messages of types an ordinary clock does not use (peer delay, management, …).
    pub unsupported: u64,
    /// Messages of another PTP domain.
    pub other_domain: u64,
    /// Messages ignored for their sender (not the chosen master, ourselves) or because they
    /// answer someone else.
    pub ignored: u64,
    /// Announce messages accepted into the best master selection.
    pub announces: u64,
    /// Sync messages from the chosen master.
    pub syncs: u64,
    /// Follow_Up messages from the chosen master.
    pub follow_ups: u64,
    /// Delay_Req messages sent.
    pub delay_requests: u64,
    /// Delay_Resp messages that answered ours.
    pub delay_responses: u64,
    /// Completed offset measurements fed to the servo.
    pub samples: u64,
    /// Sync samples set aside as outliers (far outside the recent offset spread).
    pub sync_outliers: u64,
    /// Times the model was stepped instead of slewed.
    pub steps: u64,
    /// Times the chosen master changed (including the first choice).
    pub master_changes: u64,
    /// Masters dropped after the announce receipt timeout.
    pub announce_timeouts: u64,
    /// Event datagrams stamped by the kernel on receive.
    pub kernel_rx_timestamps: u64,
    /// Event datagrams stamped in user space on receive (no kernel timestamp).
    pub user_rx_timestamps: u64,
    /// Event messages stamped by the kernel on send.
    pub kernel_tx_timestamps: u64,
    /// Event messages stamped in user space on send.
    pub user_tx_timestamps: u64,
    /// Failed sends and receives.
    pub io_errors: u64,
}

/// A consistent view of a PTP port.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PtpSnapshot {
    /// This port's identity.
    pub port_identity: PortIdentity,
    /// `Unlocked` without a master, `Locking` while the servo settles, `Locked` after.
    pub lock_state: LockState,
    /// The chosen master's port.
    pub master: Option<PortIdentity>,
    /// The grandmaster behind it (the master's own identity for a grandmaster).
    pub grandmaster: Option<ClockIdentity>,
    /// Model minus master at the latest Sync, ns (ptp4l's "master offset").
    pub offset_ns: i64,
    /// Filtered mean path delay, ns, once measured.
    pub mean_path_delay_ns: Option<i64>,
    /// The model's rate relative to the local monotonic clock, ppb.
    pub frequency_ppb: f64,
    /// TAI − UTC announced by the grandmaster, s.
    pub current_utc_offset: Option<i16>,
    /// Whether the grandmaster announces the PTP (TAI) timescale rather than an arbitrary one.
    pub ptp_timescale: bool,
    /// Counters.
    pub counters: PtpCounters,
}

/// The model behind a seqlock: read on every tick without a lock, written a few times a
/// second by the protocol thread.
#[derive(Debug, Default)]
struct ModelCell {
    seq: AtomicU64,
    valid: AtomicBool,
    base_ns: AtomicU64,
    local_base_ns: AtomicU64,
    freq_bits: AtomicU64,
}

impl ModelCell {
    /// Single writer: the protocol thread.
    fn store(&self, model: Option<Model>) {
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        if let Some(m) = model {
            self.base_ns.store(m.base_ns, Ordering::Relaxed);
            self.local_base_ns.store(m.local_base_ns, Ordering::Relaxed);
            self.freq_bits
                .store(m.freq_ppb.to_bits(), Ordering::Relaxed);
        }
        self.valid.store(model.is_some(), Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    fn load(&self) -> Option<Model> {
        loop {
            let before = self.seq.load(Ordering::Acquire);
            if before % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let valid = self.valid.load(Ordering::Relaxed);
            let model = Model {
                base_ns: self.base_ns.load(Ordering::Relaxed),
                local_base_ns: self.local_base_ns.load(Ordering::Relaxed),
                freq_ppb: f64::from_bits(self.freq_bits.load(Ordering::Relaxed)),
            };
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == before {
                return valid.then_some(model);
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    model: ModelCell,
    lock_state: AtomicU8,
    grandmaster: AtomicU64,
    has_grandmaster: AtomicBool,
    snapshot: Mutex<PtpSnapshot>,
}

fn state_code(state: LockState) -> u8 {
    match state {
        LockState::Unlocked => 0,
        LockState::Locking => 1,
        LockState::Locked => 2,
    }
}

/// A cloneable handle on a PTP port's state; cheap to query from any thread.
#[derive(Clone, Debug)]
pub struct PtpStatus {
    shared: Arc<Shared>,
}

impl PtpStatus {
    pub(crate) fn new(port_identity: PortIdentity) -> Self {
        let snapshot = PtpSnapshot {
            port_identity,
            lock_state: LockState::Unlocked,
            master: None,
            grandmaster: None,
            offset_ns: 0,
            mean_path_delay_ns: None,
            frequency_ppb: 0.0,
            current_utc_offset: None,
            ptp_timescale: false,
            counters: PtpCounters::default(),
        };
        Self {
            shared: Arc::new(Shared {
                model: ModelCell::default(),
                lock_state: AtomicU8::new(0),
                grandmaster: AtomicU64::new(0),
                has_grandmaster: AtomicBool::new(false),
                snapshot: Mutex::new(snapshot),
            }),
        }
    }

    /// Everything at once (takes a short lock).
    pub fn snapshot(&self) -> PtpSnapshot {
        *self
            .shared
            .snapshot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The lock state, without locking.
    pub fn lock_state(&self) -> LockState {
        match self.shared.lock_state.load(Ordering::Acquire) {
            0 => LockState::Unlocked,
            1 => LockState::Locking,
            _ => LockState::Locked,
        }
    }

    /// The chosen grandmaster, without locking.
    pub fn grandmaster(&self) -> Option<ClockIdentity> {
        self.shared
            .has_grandmaster
            .load(Ordering::Acquire)
            .then(|| ClockIdentity::from_u64(self.shared.grandmaster.load(Ordering::Acquire)))
    }

    /// The master's time (TAI ns since the PTP epoch) at local monotonic time `local_ns`
    /// (see [`local_monotonic_ns`](crate::local_monotonic_ns)), once a master has been
    /// measured; the model is kept (holdover) when the master goes away.
    pub fn master_time_at(&self, local_ns: u64) -> Option<u64> {
        self.shared.model.load().map(|m| m.at(local_ns))
    }

    /// The local monotonic time at which the master's time reaches `master_ns`.
    pub fn local_time_at(&self, master_ns: u64) -> Option<u64> {
        self.shared.model.load().map(|m| m.local_at(master_ns))
    }

    /// Now in TAI ns: the master's time when it is known, else the system's TAI.
    pub fn now_tai_ns(&self) -> u64 {
        self.master_time_at(local_monotonic_ns())
            .unwrap_or_else(system_tai_ns)
    }

    #[cfg(test)]
    pub(crate) fn model(&self) -> Option<Model> {
        self.shared.model.load()
    }

    pub(crate) fn publish_model(&self, model: Option<Model>) {
        self.shared.model.store(model);
    }

    pub(crate) fn publish(&self, snapshot: PtpSnapshot) {
        self.shared
            .lock_state
            .store(state_code(snapshot.lock_state), Ordering::Release);
        if let Some(gm) = snapshot.grandmaster {
            self.shared
                .grandmaster
                .store(gm.to_u64(), Ordering::Release);
        }
        self.shared
            .has_grandmaster
            .store(snapshot.grandmaster.is_some(), Ordering::Release);
        *self
            .shared
            .snapshot
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = snapshot;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_cell_round_trips() {
        let status = PtpStatus::new(PortIdentity::default());
        assert_eq!(status.master_time_at(5), None);
        assert_eq!(status.lock_state(), LockState::Unlocked);
        let model = Model {
            base_ns: 100,
            local_base_ns: 10,
            freq_ppb: 0.0,
        };
        status.publish_model(Some(model));
        assert_eq!(status.master_time_at(15), Some(105));
        assert_eq!(status.local_time_at(105), Some(15));
        let mut snap = status.snapshot();
        snap.lock_state = LockState::Locked;
        snap.grandmaster = Some(ClockIdentity([1, 2, 3, 4, 5, 6, 7, 8]));
        status.publish(snap);
        assert_eq!(status.lock_state(), LockState::Locked);
        assert_eq!(
            status.grandmaster().map(ClockIdentity::to_u64),
            Some(0x0102_0304_0506_0708)
        );
    }

    #[test]
    fn readers_never_see_a_torn_model() {
        let status = PtpStatus::new(PortIdentity::default());
        let writer = {
            let status = status.clone();
            std::thread::spawn(move || {
                for i in 0..20_000u64 {
                    status.publish_model(Some(Model {
                        base_ns: i,
                        local_base_ns: i,
                        freq_ppb: i as f64,
                    }));
                }
            })
        };
        for _ in 0..20_000 {
            if let Some(m) = status.model() {
                assert_eq!(m.base_ns, m.local_base_ns);
                assert_eq!(m.freq_ppb, m.base_ns as f64);
            }
        }
        assert!(writer.join().is_ok());
    }
}
