//! `Identity`: passes frames on unchanged, and misbehaves on request — the way to prove
//! supervision, restart policies, watchdogs and exit codes from the shell (GStreamer's
//! `identity error-after=N drop-probability=P sleep-time=N`).
//!
//! Each misbehaviour is off unless asked for: library code never panics, aborts or faults
//! on its own. The counts are frames received since the last `on_start`: a restart begins
//! counting again, so `abort-after=60` with a restart policy fails every 60 frames, as a
//! fresh instance would (GStreamer likewise resets `error-after` on a state change).

use std::time::Duration;

use streamlib_ports::{
    Caps, Follow, HandlerError, InputPort, InputRef, MemoryCaps, OutputPort, OutputRef, Ports,
    ProcessContext, StartContext, StreamHandler, VideoFrame,
};

/// Passes every frame on as it came (a reference, no copy).
///
/// On request it fails: once `n` frames have come in (dropped ones included), every later
/// `process` call returns an error ([`Identity::new`]), panics ([`Identity::panic_after`]),
/// aborts the process ([`Identity::abort_after`]) or faults with SIGSEGV
/// ([`Identity::segfault_after`]). When several are reached at once, the harshest wins
/// (segfault, abort, panic, error). It can also sleep per frame ([`Identity::sleep`]) and drop
/// a share of the frames ([`Identity::drop_probability`]).
#[derive(Debug)]
pub struct Identity {
    input: InputPort<VideoFrame>,
    output: OutputPort<VideoFrame>,
    error_after: Option<u64>,
    panic_after: Option<u64>,
    abort_after: Option<u64>,
    segfault_after: Option<u64>,
    sleep: Duration,
    /// Drop when the next draw (below `2^53`) is under this; 0 drops nothing.
    drop_below: u64,
    seed: u64,
    rng: SplitMix64,
    /// Frames received since the last `on_start`.
    received: u64,
    dropped: u64,
}

impl Identity {
    /// A pass-through that returns an error once `error_after` frames have come in, if given.
    pub fn new(error_after: Option<u64>) -> Self {
        let input = InputPort::new("video", MemoryCaps::CPU_GPU).with_format(Caps::video());
        let output = OutputPort::new("video", MemoryCaps::CPU_GPU).with_format(Caps::video());
        output.follows(&input, Follow::ALL);
        input.forwards_to(&output);
        Self {
            input,
            output,
            error_after,
            panic_after: None,
            abort_after: None,
            segfault_after: None,
            sleep: Duration::ZERO,
            drop_below: 0,
            seed: 0,
            rng: SplitMix64(0),
            received: 0,
            dropped: 0,
        }
    }

    /// Panics (a Rust panic, which the runtime contains) once `n` frames have come in.
    pub fn panic_after(mut self, n: Option<u64>) -> Self {
        self.panic_after = n;
        self
    }

    /// Calls [`std::process::abort`] once `n` frames have come in: SIGABRT, the whole
    /// process ends unless the stream runs in a child process.
    pub fn abort_after(mut self, n: Option<u64>) -> Self {
        self.abort_after = n;
        self
    }

    /// Deliberately writes through an invalid pointer once `n` frames have come in: a real
    /// SIGSEGV from the hardware, as a crashing C library would give, which kills the whole
    /// process unless the stream runs in a child process. Nothing else in this crate does so.
    pub fn segfault_after(mut self, n: Option<u64>) -> Self {
        self.segfault_after = n;
        self
    }

    /// Sleeps this long for each frame, before passing it on: to overrun deadlines and
    /// watchdogs. The sleep blocks the thread `process` runs on.
    pub fn sleep(mut self, per_frame: Duration) -> Self {
        self.sleep = per_frame;
        self
    }

    /// Drops each frame with probability `p` (clamped to `0.0..=1.0`), drawn from a
    /// pseudo-random sequence started from `seed`: the same seed drops the same frames,
    /// run after run (and again after each restart).
    pub fn drop_probability(mut self, p: f64, seed: u64) -> Self {
        let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
        // A draw is uniform in 0..2^53; p = 1 drops every frame.
        self.drop_below = (p * (1_u64 << 53) as f64) as u64;
        self.seed = seed;
        self.rng = SplitMix64(seed);
        self
    }

    /// Frames dropped by [`Identity::drop_probability`] since the last `on_start`.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The `video` input.
    pub fn input(&self) -> InputRef<VideoFrame> {
        self.input.handle()
    }

    /// The `video` output.
    pub fn output(&self) -> OutputRef<VideoFrame> {
        self.output.handle()
    }

    /// Whether `after` is set and that many frames have come in.
    fn reached(&self, after: Option<u64>) -> bool {
        after.is_some_and(|n| self.received >= n)
    }
}

impl StreamHandler for Identity {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input).output(&self.output)
    }

    fn on_start(&mut self, _ctx: &StartContext<'_>) -> Result<(), HandlerError> {
        // A (re)started instance behaves as a fresh one: counts and drops begin again.
        self.received = 0;
        self.dropped = 0;
        self.rng = SplitMix64(self.seed);
        Ok(())
    }

    fn process(&mut self, _ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        if self.reached(self.segfault_after) {
            segfault();
        }
        if let Some(n) = self.abort_after
            && self.received >= n
        {
            tracing::error!("identity: abort-after={n} reached (as asked): aborting");
            std::process::abort();
        }
        if let Some(n) = self.panic_after
            && self.received >= n
        {
            panic!("identity: panic-after={n} reached (as asked)");
        }
        if let Some(n) = self.error_after
            && self.received >= n
        {
            return Err(HandlerError::msg(format_args!(
                "identity: error-after={n} reached (as asked)"
            )));
        }
        if let Some(frame) = self.input.recv() {
            self.received += 1;
            if !self.sleep.is_zero() {
                std::thread::sleep(self.sleep);
            }
            if self.drop_below > 0 && self.rng.next_53() < self.drop_below {
                self.dropped += 1;
            } else {
                self.output.write(frame);
            }
        }
        Ok(())
    }
}

/// The fault `segfault-after` asks for: a store to an address no mapping covers.
#[cold]
fn segfault() -> ! {
    tracing::error!("identity: segfault-after reached (as asked): faulting");
    // SAFETY: none, deliberately: a volatile store to an address outside any allocation is
    // performed as written (not assumed away), and page 0 is never mapped on Linux, so the
    // kernel answers with SIGSEGV. The address is aligned and non-null so no debug
    // precondition check turns the fault into a panic first.
    unsafe { std::ptr::without_provenance_mut::<u64>(16).write_volatile(1) };
    // Reached only where address 16 is mapped (not on Linux): end the process all the same.
    std::process::abort()
}

/// SplitMix64 (Steele, Lea, Flood 2014): a small, fast, seedable generator, enough to pick
/// frames to drop reproducibly.
#[derive(Debug, Clone, Copy)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..2^53`.
    fn next_53(&mut self) -> u64 {
        self.next() >> 11
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::process::{Command, Stdio};
    use std::time::Instant;

    use streamlib_buffers::BufferPool;
    use streamlib_clock::{ClockInfo, ClockSourceId, Pacing, Rational, TimedTick, Timescale};
    use streamlib_ports::{FrameLayout, PixelFormat};

    use super::*;

    /// An identity wired between a test upstream and a test sink.
    struct Rig {
        identity: Identity,
        upstream: OutputPort<VideoFrame>,
        sink: InputPort<VideoFrame>,
        pool: BufferPool<u8>,
        layout: FrameLayout,
        tick: u64,
    }

    impl Rig {
        fn new(identity: Identity) -> Self {
            let upstream = OutputPort::<VideoFrame>::new("video", MemoryCaps::CPU);
            upstream
                .handle()
                .erased()
                .connect_to(&*identity.input().erased())
                .unwrap();
            let sink = InputPort::<VideoFrame>::new("video", MemoryCaps::CPU);
            identity
                .output()
                .erased()
                .connect_to(&*sink.handle().erased())
                .unwrap();
            let layout = FrameLayout::new(2, 2, PixelFormat::Gray8).unwrap();
            let pool = BufferPool::<u8>::new("test", layout.buffer_len(), 4, 16).unwrap();
            let mut rig = Self {
                identity,
                upstream,
                sink,
                pool,
                layout,
                tick: 0,
            };
            rig.start();
            rig
        }

        fn start(&mut self) {
            let clock = ClockInfo {
                name: "test".to_owned(),
                id: ClockSourceId::MANUAL,
                fps: Rational::fps(30),
                timescale: Timescale::Media,
                pacing: Pacing::Pipeline,
            };
            self.identity
                .on_start(&StartContext::new("identity", &clock))
                .unwrap();
        }

        /// Offers one frame and runs `process` once; whether a frame came out.
        fn step(&mut self) -> Result<bool, HandlerError> {
            let buf = self.pool.acquire().unwrap();
            let frame = VideoFrame::cpu(self.layout, buf.freeze()).unwrap();
            self.upstream.write(frame);
            self.tick += 1;
            let tick = TimedTick {
                timestamp: Rational::fps(30).frame_time_ns(self.tick),
                frame_number: self.tick,
                clock_source_id: ClockSourceId::MANUAL,
                fps: Rational::fps(30),
            };
            self.identity
                .process(&mut ProcessContext::new("identity", tick))?;
            Ok(self.sink.recv().is_some())
        }
    }

    #[test]
    fn passes_everything_by_default() {
        let mut rig = Rig::new(Identity::new(None));
        for _ in 0..100 {
            assert!(rig.step().unwrap());
        }
        assert_eq!(rig.identity.dropped(), 0);
    }

    #[test]
    fn error_after_fails_every_call_once_reached_and_a_restart_counts_again() {
        let mut rig = Rig::new(Identity::new(Some(3)));
        for _ in 0..3 {
            assert!(rig.step().unwrap());
        }
        for _ in 0..2 {
            let error = rig.step().unwrap_err().to_string();
            assert!(error.contains("error-after=3"), "{error}");
        }
        rig.start();
        for _ in 0..3 {
            assert!(rig.step().unwrap());
        }
        assert!(rig.step().is_err());
    }

    #[test]
    fn panic_after_panics_on_the_call_after_the_nth_frame_and_resets_on_start() {
        let mut rig = Rig::new(Identity::new(None).panic_after(Some(5)));
        for _ in 0..5 {
            assert!(rig.step().unwrap());
        }
        let payload = catch_unwind(AssertUnwindSafe(|| rig.step())).unwrap_err();
        let message = payload.downcast_ref::<String>().unwrap();
        assert!(message.contains("panic-after=5"), "{message}");
        rig.start();
        for _ in 0..5 {
            assert!(rig.step().unwrap());
        }
        assert!(catch_unwind(AssertUnwindSafe(|| rig.step())).is_err());
    }

    #[test]
    fn the_harshest_reached_failure_wins() {
        let mut rig = Rig::new(Identity::new(Some(2)).panic_after(Some(2)));
        rig.step().unwrap();
        rig.step().unwrap();
        assert!(catch_unwind(AssertUnwindSafe(|| rig.step())).is_err());
    }

    #[test]
    fn drop_probability_drops_that_share_reproducibly() {
        let passed = |p: f64, seed: u64| {
            let mut rig = Rig::new(Identity::new(None).drop_probability(p, seed));
            let pattern: Vec<bool> = (0..2000).map(|_| rig.step().unwrap()).collect();
            let dropped = rig.identity.dropped();
            assert_eq!(dropped, pattern.iter().filter(|p| !**p).count() as u64);
            // A restart starts the same sequence again.
            rig.start();
            let again: Vec<bool> = (0..2000).map(|_| rig.step().unwrap()).collect();
            assert_eq!(pattern, again);
            pattern
        };
        assert!(passed(0.0, 1).iter().all(|p| *p));
        assert!(passed(1.0, 1).iter().all(|p| !*p));
        let quarter = passed(0.25, 7);
        let dropped = quarter.iter().filter(|p| !**p).count();
        // 2000 draws at p = 0.25: 500 expected, sd ~19; 6 sd either side.
        assert!((385..=615).contains(&dropped), "{dropped} of 2000 dropped");
        assert_ne!(quarter, passed(0.25, 8), "another seed, other frames");
    }

    #[test]
    fn sleep_us_sleeps_per_frame() {
        let mut rig = Rig::new(Identity::new(None).sleep(Duration::from_millis(5)));
        let started = Instant::now();
        for _ in 0..4 {
            assert!(rig.step().unwrap());
        }
        assert!(started.elapsed() >= Duration::from_millis(20));
    }

    const ROLE: &str = "STREAMLIB_IDENTITY_TEST_ROLE";
    /// Linux's signal numbers (no libc dependency for two constants).
    const SIGABRT: i32 = 6;
    const SIGSEGV: i32 = 11;

    /// The child side: does nothing unless started by `crash_in_child` with a role.
    #[test]
    fn crash_child_entry() {
        let Ok(role) = std::env::var(ROLE) else {
            return;
        };
        let identity = match role.as_str() {
            "abort" => Identity::new(None).abort_after(Some(3)),
            "segfault" => Identity::new(None).segfault_after(Some(3)),
            _ => Identity::new(None),
        };
        let mut rig = Rig::new(identity);
        for _ in 0..3 {
            assert!(rig.step().unwrap());
        }
        // Not reached: the fourth call ends the process with a signal.
        let _ = rig.step();
        std::process::exit(0);
    }

    /// Runs `crash_child_entry` in a child process in `role`; the signal that ended it.
    fn crash_in_child(role: &str) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        let status = Command::new(std::env::current_exe().unwrap())
            .args([
                "identity::tests::crash_child_entry",
                "--exact",
                "--nocapture",
                "--test-threads=1",
                "-q",
            ])
            .env(ROLE, role)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        status.signal()
    }

    #[test]
    fn abort_after_ends_the_process_with_sigabrt() {
        assert_eq!(crash_in_child("abort"), Some(SIGABRT));
    }

    #[test]
    fn segfault_after_ends_the_process_with_sigsegv() {
        assert_eq!(crash_in_child("segfault"), Some(SIGSEGV));
    }

    #[test]
    fn a_child_that_is_not_asked_to_crash_exits_normally() {
        // The check above can fail: the same child without a crash property exits 0.
        assert_eq!(crash_in_child("none"), None);
    }
}
