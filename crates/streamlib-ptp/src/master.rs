//! [`PtpMaster`]: a minimal grandmaster (Announce, Sync / Follow_Up, Delay_Resp) so that a
//! slave can be tested without ptp4l.

use std::net::SocketAddrV4;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::bmca::interval_ns;
use crate::message::{
    Announce, Body, ClockQuality, Header, Message, MessageType, PtpTimestamp, flags, parse,
};
use crate::servo::Model;
use crate::slave::{ProtocolThread, random_identity};
use crate::socket::{Channel, PtpSockets};
use crate::time::{local_monotonic_ns, system_tai_ns};
use crate::{ClockIdentity, PortIdentity, PtpError, Transport};

/// How a [`PtpMaster`] announces itself and what time it serves.
#[derive(Clone, Debug, PartialEq)]
pub struct MasterConfig {
    /// Sockets and destination (the slave, or the multicast group).
    pub transport: Transport,
    /// PTP domain.
    pub domain: u8,
    /// The master's identity; `None` makes one up.
    pub clock_identity: Option<ClockIdentity>,
    /// grandmasterPriority1 (lower wins). Default 128.
    pub priority1: u8,
    /// grandmasterClockQuality. Default class 248, accuracy unknown.
    pub quality: ClockQuality,
    /// grandmasterPriority2. Default 128.
    pub priority2: u8,
    /// log2 of the Sync interval, s. Default −3 (8 per second).
    pub log_sync_interval: i8,
    /// log2 of the Announce interval, s. Default −2 (4 per second).
    pub log_announce_interval: i8,
    /// logMinDelayReqInterval told to slaves. Default −3.
    pub log_min_delay_req_interval: i8,
    /// Two-step (Sync + Follow_Up) or one-step (the time in the Sync). Default true.
    pub two_step: bool,
    /// Offset of the served time from the system's TAI, ns (lets a test tell the model from
    /// the local clock). Default 0.
    pub time_offset_ns: i64,
    /// Rate of the served time relative to the local monotonic clock, ppb. Default 0.
    pub frequency_offset_ppb: f64,
}

impl MasterConfig {
    /// A master on `transport` with the defaults above.
    pub fn new(transport: Transport) -> Self {
        Self {
            transport,
            domain: 0,
            clock_identity: None,
            priority1: 128,
            quality: ClockQuality::default(),
            priority2: 128,
            log_sync_interval: -3,
            log_announce_interval: -2,
            log_min_delay_req_interval: -3,
            two_step: true,
            time_offset_ns: 0,
            frequency_offset_ppb: 0.0,
        }
    }
}

/// Counters of a [`PtpMaster`].
#[derive(Debug, Default)]
struct MasterCounters {
    syncs: AtomicU64,
    delay_responses: AtomicU64,
    malformed: AtomicU64,
}

/// A PTP grandmaster on its own thread (joined on drop), serving a model of TAI that can be
/// offset and skewed on purpose.
#[derive(Debug)]
pub struct PtpMaster {
    identity: PortIdentity,
    model: Model,
    local: (SocketAddrV4, SocketAddrV4),
    counters: Arc<MasterCounters>,
    _thread: ProtocolThread,
}

impl PtpMaster {
    /// Opens the sockets and starts serving.
    ///
    /// # Errors
    /// [`PtpError::Bind`], [`PtpError::Interface`], [`PtpError::SocketOption`],
    /// [`PtpError::Thread`].
    pub fn spawn(config: MasterConfig) -> Result<Self, PtpError> {
        if !config.frequency_offset_ppb.is_finite() || config.frequency_offset_ppb.abs() > 1e6 {
            return Err(PtpError::InvalidConfig {
                what: format!(
                    "master frequency_offset_ppb {} is not within ±1e6",
                    config.frequency_offset_ppb
                ),
            });
        }
        let sockets = PtpSockets::open(&config.transport)?;
        let local = sockets.local_addrs();
        let identity = PortIdentity {
            clock: config.clock_identity.unwrap_or_else(random_identity),
            port: 1,
        };
        let now = local_monotonic_ns();
        let base = i128::from(system_tai_ns()) + i128::from(config.time_offset_ns);
        let model = Model {
            base_ns: u64::try_from(base.max(0)).unwrap_or(u64::MAX),
            local_base_ns: now,
            freq_ppb: config.frequency_offset_ppb,
        };
        let counters = Arc::new(MasterCounters::default());
        let mut port = MasterPort {
            sockets,
            config,
            identity,
            model,
            counters: Arc::clone(&counters),
            sync_sequence: 0,
            announce_sequence: 0,
            send_latency_ns: 0,
        };
        let thread = ProtocolThread::spawn("ptp-master", move |stop| port.run(stop))?;
        Ok(Self {
            identity,
            model,
            local,
            counters,
            _thread: thread,
        })
    }

    /// The master's port identity.
    pub fn identity(&self) -> PortIdentity {
        self.identity
    }

    /// The time the master serves at local monotonic time `local_ns`, ns.
    pub fn time_at(&self, local_ns: u64) -> u64 {
        self.model.at(local_ns)
    }

    /// The bound (event, general) addresses.
    pub fn local_addrs(&self) -> (SocketAddrV4, SocketAddrV4) {
        self.local
    }

    /// Sync messages sent so far.
    pub fn syncs_sent(&self) -> u64 {
        self.counters.syncs.load(Ordering::Relaxed)
    }

    /// Delay_Req messages answered so far.
    pub fn delay_responses_sent(&self) -> u64 {
        self.counters.delay_responses.load(Ordering::Relaxed)
    }

    /// Datagrams dropped as malformed.
    pub fn malformed_received(&self) -> u64 {
        self.counters.malformed.load(Ordering::Relaxed)
    }
}

struct MasterPort {
    sockets: PtpSockets,
    config: MasterConfig,
    identity: PortIdentity,
    model: Model,
    counters: Arc<MasterCounters>,
    sync_sequence: u16,
    announce_sequence: u16,
    /// Moving average of (kernel send stamp − user-space read) for one-step origins.
    send_latency_ns: u64,
}

impl MasterPort {
    fn header(&self, message_type: MessageType, sequence_id: u16, log_interval: i8) -> Header {
        let mut h = Header::new(message_type, self.identity, sequence_id);
        h.domain = self.config.domain;
        h.log_interval = log_interval;
        h
    }

    fn send(&self, channel: Channel, msg: &Message, to: SocketAddrV4) -> Option<u64> {
        let mut out = [0u8; crate::message::MAX_MESSAGE_LEN];
        let len = msg.encode(&mut out).ok()?;
        let result = match channel {
            Channel::Event => {
                self.sockets.drain_tx_stamps();
                self.sockets.send_event(&out[..len], to).map(|s| s.tx_mono)
            }
            Channel::General => self.sockets.send_general(&out[..len], to).map(|()| 0),
        };
        result
            .inspect_err(|err| tracing::debug!(%err, %to, "PTP master send failed"))
            .ok()
    }

    fn run(&mut self, stop: &AtomicBool) {
        let sync_every = interval_ns(self.config.log_sync_interval);
        let announce_every = interval_ns(self.config.log_announce_interval);
        let mut next_sync = local_monotonic_ns();
        let mut next_announce = next_sync;
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Acquire) {
            let now = local_monotonic_ns();
            // Sync first: a datagram sent just before it would wake the receiver, which can
            // preempt this thread between reading a one-step origin and sending it.
            if now >= next_sync {
                self.sync();
                next_sync = now + sync_every;
            }
            if now >= next_announce {
                self.announce();
                next_announce = now + announce_every;
            }
            let until = next_sync
                .min(next_announce)
                .saturating_sub(local_monotonic_ns());
            let wait_ms = (until / 1_000_000).clamp(0, 20) as i32;
            if self.sockets.wait_readable(wait_ms).is_err() {
                continue;
            }
            while let Ok(Some(d)) = self.sockets.recv(Channel::Event, &mut buf) {
                let len = d.len.min(buf.len());
                match parse(&buf[..len]) {
                    Ok(Message {
                        header,
                        body: Body::DelayReq { .. },
                    }) if header.domain == self.config.domain => {
                        let mut h = self.header(
                            MessageType::DelayResp,
                            header.sequence_id,
                            self.config.log_min_delay_req_interval,
                        );
                        h.correction = header.correction;
                        let msg = Message {
                            header: h,
                            body: Body::DelayResp {
                                receive: PtpTimestamp::from_ns(self.model.at(d.rx_mono)),
                                requesting: header.source,
                            },
                        };
                        let to = self.sockets.reply_destination(Channel::General, d.from);
                        if self.send(Channel::General, &msg, to).is_some() {
                            self.counters
                                .delay_responses
                                .fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(_) | Err(PtpError::UnsupportedMessage { .. }) => {}
                    Err(_) => {
                        self.counters.malformed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            // General traffic (other masters' announces) is not used by this master.
            while let Ok(Some(_)) = self.sockets.recv(Channel::General, &mut buf) {}
        }
    }

    fn announce(&mut self) {
        self.announce_sequence = self.announce_sequence.wrapping_add(1);
        let mut h = self.header(
            MessageType::Announce,
            self.announce_sequence,
            self.config.log_announce_interval,
        );
        h.flags = flags::PTP_TIMESCALE | flags::UTC_OFFSET_VALID;
        let msg = Message {
            header: h,
            body: Body::Announce(Announce {
                origin: PtpTimestamp::from_ns(self.model.at(local_monotonic_ns())),
                current_utc_offset: 37,
                priority1: self.config.priority1,
                quality: self.config.quality,
                priority2: self.config.priority2,
                grandmaster: self.identity.clock,
                steps_removed: 0,
                time_source: 0xa0,
            }),
        };
        let to = self.sockets.destination(Channel::General);
        self.send(Channel::General, &msg, to);
    }

    fn sync(&mut self) {
        self.sync_sequence = self.sync_sequence.wrapping_add(1);
        let seq = self.sync_sequence;
        let mut h = self.header(MessageType::Sync, seq, self.config.log_sync_interval);
        if self.config.two_step {
            h.flags = flags::TWO_STEP;
        }
        let msg = Message {
            header: h,
            body: Body::Sync {
                origin: PtpTimestamp::default(),
            },
        };
        let mut out = [0u8; crate::message::MAX_MESSAGE_LEN];
        let Ok(len) = msg.encode(&mut out) else {
            return;
        };
        let to = self.sockets.destination(Channel::Event);
        self.sockets.drain_tx_stamps();
        // One-step: software cannot patch the packet in flight, so the origin is read as
        // late as possible, right before the send; two-step: the Follow_Up carries the
        // kernel's send time.
        // The send itself takes microseconds before the kernel stamps the packet: a one-step
        // origin is predicted from the latency the kernel stamps showed so far.
        let read = local_monotonic_ns();
        let origin = PtpTimestamp::from_ns(self.model.at(read + self.send_latency_ns));
        crate::message::patch_origin(&mut out[..len], origin);
        let tx_mono = match self.sockets.send_event(&out[..len], to) {
            Ok(sent) => {
                if sent.kernel_stamp {
                    let latency = sent.tx_mono.saturating_sub(read).min(1_000_000);
                    self.send_latency_ns = (3 * self.send_latency_ns + latency) / 4;
                }
                sent.tx_mono
            }
            Err(err) => {
                tracing::debug!(%err, %to, "PTP master Sync send failed");
                return;
            }
        };
        self.counters.syncs.fetch_add(1, Ordering::Relaxed);
        if self.config.two_step {
            let follow_up = Message {
                header: self.header(MessageType::FollowUp, seq, self.config.log_sync_interval),
                body: Body::FollowUp {
                    precise_origin: PtpTimestamp::from_ns(self.model.at(tx_mono)),
                },
            };
            let to = self.sockets.destination(Channel::General);
            self.send(Channel::General, &follow_up, to);
        }
    }
}
