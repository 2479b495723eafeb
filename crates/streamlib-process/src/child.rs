//! `Child`: the parent's handle on one worker process — spawn with limits, the start
//! handshake, ticks with a watchdog, and death noticed within one tick.
//!
//! No thread per child: every wait is a `poll` on the control socket and the child's pidfd
//! (Linux ≥ 5.3; older kernels fall back to a 10 ms `waitpid(WNOHANG)` check) done by the
//! caller's thread, bounded by the tick deadline.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::channel::{ControlChannel, Received, wait};
use crate::protocol::{ChildStats, Crossing, FrameSlot, Message, PROTOCOL_VERSION};
use crate::{ChildId, ProcessError, ShmPool, SlotLease};

/// The environment variable that tells a re-executed process it is a worker, and where its
/// descriptors are: `1:<socket fd>:<pool fd>:<child id>`.
pub const WORKER_ENV: &str = "STREAMLIB_PROCESS_WORKER";

/// How a child process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildEnd {
    /// It exited with this status.
    Exited(i32),
    /// A signal killed it.
    Signaled(i32),
}

impl ChildEnd {
    fn from_status(status: ExitStatus) -> Self {
        match (status.code(), status.signal()) {
            (Some(code), _) => ChildEnd::Exited(code),
            (None, Some(signal)) => ChildEnd::Signaled(signal),
            (None, None) => ChildEnd::Exited(-1),
        }
    }
}

impl std::fmt::Display for ChildEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            ChildEnd::Exited(0) => write!(f, "exited with status 0 in the middle of the run"),
            ChildEnd::Exited(code) => write!(f, "exited with status {code}"),
            ChildEnd::Signaled(signal) => {
                let (name, what) = signal_name(signal);
                write!(f, "was killed by {name} ({what})")
            }
        }
    }
}

/// A signal's name and what it usually means here.
pub fn signal_name(signal: i32) -> (&'static str, &'static str) {
    match signal {
        libc::SIGSEGV => ("SIGSEGV", "segmentation fault: an invalid memory access"),
        libc::SIGABRT => (
            "SIGABRT",
            "abort: a failed assertion, a Rust abort or an allocation failure",
        ),
        libc::SIGKILL => ("SIGKILL", "killed: the OOM killer, a watchdog or a user"),
        libc::SIGBUS => (
            "SIGBUS",
            "bus error: a mapped file shrank or a misaligned access",
        ),
        libc::SIGILL => ("SIGILL", "illegal instruction"),
        libc::SIGFPE => ("SIGFPE", "arithmetic exception"),
        libc::SIGTERM => ("SIGTERM", "asked to terminate"),
        libc::SIGINT => ("SIGINT", "interrupted"),
        libc::SIGPIPE => ("SIGPIPE", "wrote to a closed pipe"),
        libc::SIGXCPU => ("SIGXCPU", "CPU time limit exceeded"),
        _ => ("a signal", "see signal(7)"),
    }
}

/// How a child is started and watched.
#[derive(Debug, Clone)]
pub struct ChildOptions {
    /// The id the pool knows it by (distinct per child sharing a pool).
    pub id: ChildId,
    /// Time from spawn to `Ready` before the child is killed.
    pub start_timeout: Duration,
    /// Time from `start_tick` to `Done` before the watchdog kills the child.
    pub tick_deadline: Duration,
    /// Address-space limit in bytes (`RLIMIT_AS`).
    pub memory_limit: Option<u64>,
    /// CPUs the child may run on (`sched_setaffinity`).
    pub cpu_affinity: Option<Vec<usize>>,
    /// Niceness (`setpriority`; negative values need privileges).
    pub nice: Option<i32>,
}

impl Default for ChildOptions {
    fn default() -> Self {
        Self {
            id: ChildId(0),
            start_timeout: Duration::from_secs(10),
            tick_deadline: Duration::from_secs(1),
            memory_limit: None,
            cpu_affinity: None,
            nice: None,
        }
    }
}

/// What a child answered for one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TickDone {
    /// The tick's frame number.
    pub frame: u64,
    /// The handler's time, as the child measured it.
    pub process_ns: u64,
    /// Slots handed to the child this tick that it did not return (reclaimed at `Done`).
    pub unreturned: usize,
    /// The handler ended its stream this tick (`ProcessContext::end_of_stream`).
    pub end_of_stream: bool,
    /// The handler asked to stop the pipeline this tick (`ProcessContext::request_stop`).
    pub stop_requested: bool,
}

/// What the pre-exec hook applies in the forked child, prepared before the fork so the hook
/// only makes system calls.
struct Limits {
    fds: [RawFd; 2],
    memory: Option<libc::rlim_t>,
    cpus: Option<libc::cpu_set_t>,
    nice: Option<i32>,
}

impl Limits {
    /// Runs between fork and exec: only async-signal-safe system calls.
    fn apply(&self) -> std::io::Result<()> {
        let check = |rc: libc::c_int| {
            if rc < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        for fd in self.fds {
            // SAFETY: fcntl on a descriptor the parent keeps open across the fork.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
            check(flags)?;
            // SAFETY: as above; clears close-on-exec in the child's table only.
            check(unsafe { libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) })?;
        }
        if let Some(bytes) = self.memory {
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            // SAFETY: `limit` is a valid rlimit for the call.
            check(unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) })?;
        }
        if let Some(set) = &self.cpus {
            // SAFETY: `set` is a valid cpu_set_t of the size we pass; 0 is this process.
            check(unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), set) })?;
        }
        if let Some(nice) = self.nice {
            // SAFETY: plain call on this process.
            check(unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) })?;
        }
        Ok(())
    }
}

enum Event {
    Ready { version: u8 },
    Slot(Crossing),
    Done { frame: u64, process_ns: u64 },
    Ended { stream: bool, pipeline: bool },
    Error(String),
    Stats(ChildStats),
    Unexpected(&'static str),
}

enum Waited {
    Event(Event),
    TimedOut,
    Died,
}

/// A running worker process and its control channel.
#[derive(Debug)]
pub struct Child {
    handler: String,
    process: std::process::Child,
    pid: u32,
    pidfd: Option<OwnedFd>,
    channel: ControlChannel,
    pool: ShmPool,
    options: ChildOptions,
    tick: Option<(u64, Instant)>,
    handed: usize,
    ended: Option<ChildEnd>,
    stats: ChildStats,
    last_error: Option<String>,
}

impl Child {
    /// Starts `command` (typically the current executable with a hidden worker argument) as the
    /// worker for `handler`, passing it the control socket and `pool`'s descriptor, sends the
    /// handler name and `properties`, and waits for `Ready` (killing the child on timeout).
    pub fn spawn(
        mut command: Command,
        handler: &str,
        properties: &[(&str, &str)],
        pool: &ShmPool,
        options: ChildOptions,
    ) -> Result<Child, ProcessError> {
        let (channel, theirs) = ControlChannel::pair()?;
        let socket_fd = theirs.as_raw_fd();
        let pool_fd = pool.fd().as_raw_fd();
        command.env(
            WORKER_ENV,
            format!("1:{socket_fd}:{pool_fd}:{}", options.id.0),
        );
        let cpus = options.cpu_affinity.as_ref().map(|cpus| {
            // SAFETY: an all-zero cpu_set_t is the empty set.
            let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
            for &cpu in cpus {
                if cpu < libc::CPU_SETSIZE as usize {
                    // SAFETY: `cpu` is below CPU_SETSIZE, inside the set.
                    unsafe { libc::CPU_SET(cpu, &mut set) };
                }
            }
            set
        });
        let limits = Limits {
            fds: [socket_fd, pool_fd],
            memory: options.memory_limit,
            cpus,
            nice: options.nice,
        };
        // SAFETY: the hook runs in the forked child before exec and makes only
        // async-signal-safe system calls (fcntl, setrlimit, sched_setaffinity, setpriority) on
        // data prepared before the fork; it allocates nothing and takes no lock.
        unsafe {
            command.pre_exec(move || limits.apply());
        }
        let process = command.spawn().map_err(|source| ProcessError::Spawn {
            handler: handler.to_owned(),
            source,
        })?;
        // The child has its own copy; ours must go, or its death would not hang the socket up.
        drop(theirs);
        let pid = process.id();
        let pidfd = pidfd_open(pid);
        let mut child = Child {
            handler: handler.to_owned(),
            process,
            pid,
            pidfd,
            channel,
            pool: pool.clone(),
            options,
            tick: None,
            handed: 0,
            ended: None,
            stats: ChildStats::default(),
            last_error: None,
        };
        child.handshake(properties)?;
        Ok(child)
    }

    fn handshake(&mut self, properties: &[(&str, &str)]) -> Result<(), ProcessError> {
        let deadline = Instant::now() + self.options.start_timeout;
        let count = u16::try_from(properties.len()).unwrap_or(u16::MAX);
        let sent = self
            .channel
            .send(&Message::Hello {
                version: PROTOCOL_VERSION,
                handler: &self.handler,
                properties: count,
            })
            .and_then(|()| {
                properties
                    .iter()
                    .take(usize::from(count))
                    .try_for_each(|&(name, value)| {
                        self.channel.send(&Message::SetProperty { name, value })
                    })
            });
        if sent.is_err() {
            return Err(self.died());
        }
        loop {
            match self.wait_event(deadline)? {
                Waited::Event(Event::Ready { version }) if version == PROTOCOL_VERSION => {
                    return Ok(());
                }
                Waited::Event(Event::Error(message)) => {
                    let error = ProcessError::Handler {
                        handler: self.handler.clone(),
                        pid: self.pid,
                        message,
                    };
                    self.kill();
                    return Err(error);
                }
                Waited::Event(Event::Stats(stats)) => self.take_stats(stats),
                Waited::Event(_) => {
                    return Err(self.misbehaved("a message other than `ready` before it started"));
                }
                Waited::TimedOut => {
                    self.kill();
                    return Err(ProcessError::StartTimeout {
                        handler: self.handler.clone(),
                        pid: self.pid,
                        timeout: self.options.start_timeout,
                    });
                }
                Waited::Died => return Err(self.died()),
            }
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The handler it runs.
    pub fn handler(&self) -> &str {
        &self.handler
    }

    /// Its id in the pool.
    pub fn id(&self) -> ChildId {
        self.options.id
    }

    /// The last counters the child reported.
    pub fn stats(&self) -> ChildStats {
        self.stats
    }

    /// The last handler error the child reported during a tick (its `Error` message), taken:
    /// a caller that turns it into its own error sees each one once.
    pub fn take_error(&mut self) -> Option<String> {
        self.last_error.take()
    }

    /// How it ended, once it has.
    pub fn ended(&self) -> Option<ChildEnd> {
        self.ended
    }

    /// Sends a property change (applied by the child before its next tick).
    pub fn set_property(&mut self, name: &str, value: &str) -> Result<(), ProcessError> {
        self.ensure_alive()?;
        if self
            .channel
            .send(&Message::SetProperty { name, value })
            .is_err()
        {
            return Err(self.died());
        }
        Ok(())
    }

    /// Starts tick `frame`: the watchdog's deadline runs from here.
    pub fn start_tick(&mut self, frame: u64, timestamp_ns: u64) -> Result<(), ProcessError> {
        self.ensure_alive()?;
        self.tick = Some((frame, Instant::now()));
        self.handed = 0;
        if self
            .channel
            .send(&Message::Tick {
                frame,
                timestamp_ns,
            })
            .is_err()
        {
            return Err(self.died());
        }
        Ok(())
    }

    /// Hands `lease` to the child as input `port`'s frame for this tick (`frame.slot` and
    /// `frame.generation` are filled in from the lease).
    pub fn send_frame(&mut self, lease: SlotLease, frame: FrameSlot) -> Result<(), ProcessError> {
        self.send(lease, Crossing::Video(frame))
    }

    /// Hands `lease` to the child as what `slot` describes (a frame or an audio buffer; its
    /// slot and generation are filled in from the lease).
    pub fn send(&mut self, lease: SlotLease, slot: Crossing) -> Result<(), ProcessError> {
        self.ensure_alive()?;
        if slot.len() as usize > self.pool.slot_size() {
            return Err(ProcessError::FrameTooLong {
                slot: lease.index(),
                len: slot.len(),
                slot_size: self.pool.slot_size(),
            });
        }
        let (index, generation) = lease.hand_to(self.options.id)?;
        self.handed += 1;
        if self
            .channel
            .send(&slot.in_slot(index, generation).message())
            .is_err()
        {
            return Err(self.died());
        }
        Ok(())
    }

    /// Tells the child, within the tick [`start_tick`](Self::start_tick) began, that every
    /// upstream has ended: its handler's `process` sees `inputs_ended` and should flush.
    pub fn inputs_ended(&mut self) -> Result<(), ProcessError> {
        self.ensure_alive()?;
        if self.channel.send(&Message::InputsEnded).is_err() {
            return Err(self.died());
        }
        Ok(())
    }

    /// Ends the tick's input and waits for the child's `Done`, giving each output frame it
    /// sends to `on_frame` as a parent lease. Past the deadline the watchdog kills the child.
    /// On any failure the child is dead and its slots are back in the pool.
    pub fn finish_tick(
        &mut self,
        mut on_frame: impl FnMut(SlotLease, Crossing),
    ) -> Result<TickDone, ProcessError> {
        self.ensure_alive()?;
        let Some((frame, started)) = self.tick else {
            return Err(self.misbehaved("finish_tick without start_tick (a parent bug)"));
        };
        if self.channel.send(&Message::TickEnd { frame }).is_err() {
            return Err(self.died());
        }
        let deadline = started + self.options.tick_deadline;
        let (mut end_of_stream, mut stop_requested) = (false, false);
        loop {
            match self.wait_event(deadline)? {
                Waited::Event(Event::Slot(slot)) => {
                    match self
                        .pool
                        .take_back(self.options.id, slot.slot(), slot.generation())
                    {
                        Ok(lease) if slot.len() as usize <= self.pool.slot_size() => {
                            on_frame(lease, slot);
                        }
                        Ok(_) => return Err(self.misbehaved("a frame longer than its slot")),
                        Err(error) => return Err(self.misbehaved(&error.to_string())),
                    }
                }
                Waited::Event(Event::Done {
                    frame: done,
                    process_ns,
                }) if done == frame => {
                    self.tick = None;
                    // Slots it kept are not its to keep across ticks.
                    let unreturned = self.pool.reclaim(self.options.id);
                    return Ok(TickDone {
                        frame,
                        process_ns,
                        unreturned,
                        end_of_stream,
                        stop_requested,
                    });
                }
                Waited::Event(Event::Ended { stream, pipeline }) => {
                    end_of_stream |= stream;
                    stop_requested |= pipeline;
                }
                Waited::Event(Event::Done { .. }) => {
                    return Err(self.misbehaved("`done` for another tick"));
                }
                Waited::Event(Event::Stats(stats)) => self.take_stats(stats),
                Waited::Event(Event::Error(message)) => {
                    // The handler failed this tick; the child lives and still answers `done`.
                    self.stats.errors += 1;
                    tracing::debug!(handler = %self.handler, pid = self.pid, %message, "handler error in child");
                    self.last_error = Some(message);
                }
                Waited::Event(Event::Ready { .. }) => {
                    return Err(self.misbehaved("`ready` in the middle of the run"));
                }
                Waited::Event(Event::Unexpected(kind)) => {
                    let reason = format!("a `{kind}` message, which only the parent sends");
                    return Err(self.misbehaved(&reason));
                }
                Waited::TimedOut => {
                    self.kill();
                    let reclaimed = self.pool.reclaim(self.options.id);
                    return Err(ProcessError::Overran {
                        handler: self.handler.clone(),
                        pid: self.pid,
                        frame,
                        deadline: self.options.tick_deadline,
                        reclaimed,
                    });
                }
                Waited::Died => return Err(self.died()),
            }
        }
    }

    /// The child's counters, keeping the errors counted here (the child may not count its
    /// own).
    fn take_stats(&mut self, stats: ChildStats) {
        let errors = self.stats.errors.max(stats.errors);
        self.stats = ChildStats { errors, ..stats };
    }

    /// Checks, without blocking, that the child is still alive (between ticks).
    pub fn check(&mut self) -> Result<(), ProcessError> {
        self.ensure_alive()?;
        if let Ok(Some(status)) = self.process.try_wait() {
            self.ended = Some(ChildEnd::from_status(status));
            return Err(self.died());
        }
        Ok(())
    }

    /// Asks the child to stop and waits up to `timeout` for it to exit, then kills it.
    pub fn stop(mut self, timeout: Duration) -> ChildEnd {
        self.shutdown(timeout)
    }

    fn shutdown(&mut self, timeout: Duration) -> ChildEnd {
        if let Some(end) = self.ended {
            return end;
        }
        let _ = self.channel.send(&Message::Stop);
        let end = self.reap_within(timeout);
        self.pool.reclaim(self.options.id);
        end
    }

    fn ensure_alive(&mut self) -> Result<(), ProcessError> {
        match self.ended {
            None => Ok(()),
            Some(end) => Err(ProcessError::ChildDied {
                handler: self.handler.clone(),
                pid: self.pid,
                end,
                reclaimed: 0,
            }),
        }
    }

    fn wait_event(&mut self, deadline: Instant) -> Result<Waited, ProcessError> {
        let mut exited = false;
        loop {
            let event = match self.channel.receive(false)? {
                Received::Message(message) => match message {
                    Message::Ready { version, .. } => Event::Ready { version },
                    Message::Frame(slot) => Event::Slot(Crossing::Video(slot)),
                    Message::Audio(slot) => Event::Slot(Crossing::Audio(slot)),
                    Message::Done { frame, process_ns } => Event::Done { frame, process_ns },
                    Message::Ended { stream, pipeline } => Event::Ended { stream, pipeline },
                    Message::Error { message } => Event::Error(message.to_owned()),
                    Message::Stats(stats) => Event::Stats(stats),
                    other => Event::Unexpected(other.kind()),
                },
                Received::Malformed(error) => return Err(self.misbehaved(&error.to_string())),
                Received::Closed => return Ok(Waited::Died),
                // What it sent before it died has been delivered: now report the death.
                Received::Empty if exited => return Ok(Waited::Died),
                Received::Empty => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Ok(Waited::TimedOut);
                    }
                    let ready = wait(
                        self.channel.raw_fd(),
                        self.pidfd.as_ref().map(AsRawFd::as_raw_fd),
                        deadline - now,
                    );
                    exited = ready.exited
                        || !ready.socket
                            && self.pidfd.is_none()
                            && matches!(self.process.try_wait(), Ok(Some(_)));
                    continue;
                }
            };
            return Ok(Waited::Event(event));
        }
    }

    /// The child broke the protocol: kill it, reclaim, and say what it did.
    fn misbehaved(&mut self, reason: &str) -> ProcessError {
        self.kill();
        let reclaimed = self.pool.reclaim(self.options.id);
        ProcessError::Misbehaved {
            handler: self.handler.clone(),
            pid: self.pid,
            reason: reason.to_owned(),
            reclaimed,
        }
    }

    /// The child is dead or dying: learn how it ended (giving a natural exit 100 ms to show
    /// before killing), reclaim its slots.
    fn died(&mut self) -> ProcessError {
        let end = self.reap_within(Duration::from_millis(100));
        let reclaimed = self.pool.reclaim(self.options.id);
        ProcessError::ChildDied {
            handler: self.handler.clone(),
            pid: self.pid,
            end,
            reclaimed,
        }
    }

    /// Waits up to `grace` for the child to exit, then SIGKILLs it; reaps it either way.
    fn reap_within(&mut self, grace: Duration) -> ChildEnd {
        if let Some(end) = self.ended {
            return end;
        }
        let until = Instant::now() + grace;
        loop {
            if let Ok(Some(status)) = self.process.try_wait() {
                let end = ChildEnd::from_status(status);
                self.ended = Some(end);
                return end;
            }
            let now = Instant::now();
            if now >= until {
                break;
            }
            match &self.pidfd {
                Some(pidfd) => {
                    let _ = wait(-1, Some(pidfd.as_raw_fd()), until - now);
                }
                None => std::thread::sleep(Duration::from_millis(2).min(until - now)),
            }
        }
        self.kill();
        self.ended.unwrap_or(ChildEnd::Signaled(libc::SIGKILL))
    }

    /// SIGKILLs the child and reaps it.
    fn kill(&mut self) {
        if self.ended.is_some() {
            return;
        }
        let _ = self.process.kill();
        let end = match self.process.wait() {
            Ok(status) => ChildEnd::from_status(status),
            Err(_) => ChildEnd::Signaled(libc::SIGKILL),
        };
        self.ended = Some(end);
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // Never leave a child or a zombie behind.
        self.shutdown(Duration::from_millis(200));
    }
}

fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    // SAFETY: the pidfd_open system call takes a pid and flags; it returns a new descriptor
    // (close-on-exec) or -1. The child is not reaped yet, so the pid is still its own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = RawFd::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: a fresh descriptor owned by nobody else.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}
