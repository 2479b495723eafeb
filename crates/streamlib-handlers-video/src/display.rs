//! `Display`: a window showing the newest frame (minifb), with keyboard and mouse events out.
//!
//! minifb's window is not `Send` and handlers must be, so the window lives on a thread the
//! handler spawns in `on_start` and joins in `on_stop`. `process` hands it the newest frame
//! through a lock-free latest-read slot (a reference, no copy) and drains the events it
//! collected from lock-free queues.

mod convert;
mod input;
mod window;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use streamlib_buffers::{LatestBuffer, OrderedQueue, OverflowPolicy};
use streamlib_ports::{
    Caps, HandlerError, InputPort, InputRef, KeyEvent, MemoryCaps, MemorySpace, MouseEvent,
    OutputPort, OutputRef, PixelFormat, Ports, ProcessContext, StartContext, StreamHandler,
    VideoCaps, VideoFrame,
};

use crate::VideoError;

const HANDLER: &str = "Display";
/// What `on_start` says when there is no display server to talk to.
const NO_DISPLAY: &str = "no DISPLAY is set (run under Xvfb or use headless mode)";
/// How long `on_start` waits for the window to open.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Events that may wait between two `process` calls before the oldest are dropped (counted).
const KEY_QUEUE: usize = 256;
const MOUSE_QUEUE: usize = 1024;

/// How the window scales frames (whole-pixel, nearest-neighbour).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DisplayScale {
    /// The largest whole-number scale (at least 1) at which the window fits the screen.
    Fit,
    /// One window pixel per frame pixel.
    #[default]
    X1,
    /// Each frame pixel shown as 2 × 2 window pixels.
    X2,
    /// Each frame pixel shown as 4 × 4 window pixels.
    X4,
}

impl DisplayScale {
    fn to_minifb(self) -> minifb::Scale {
        match self {
            DisplayScale::Fit => minifb::Scale::FitScreen,
            DisplayScale::X1 => minifb::Scale::X1,
            DisplayScale::X2 => minifb::Scale::X2,
            DisplayScale::X4 => minifb::Scale::X4,
        }
    }
}

/// How a [`Display`] is set up.
#[derive(Debug, Clone, PartialEq)]
pub struct DisplayConfig {
    /// Window title (also names the display in errors).
    pub title: String,
    /// Window scale.
    pub scale: DisplayScale,
    /// The most window updates per second (`None`: one per frame received). Frames that arrive
    /// faster are skipped, counted in [`DisplayStats::frames_skipped`]. Default 60.
    pub max_fps: Option<f64>,
    /// Stop the runtime when the window is closed. Default true.
    pub stop_on_close: bool,
    /// Stop the runtime when Esc is pressed in the window. Default true.
    pub stop_on_escape: bool,
}

impl DisplayConfig {
    /// The defaults with another title.
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            ..Self::default()
        }
    }
}

impl Default for DisplayConfig {
    fn default() -> Self {
        Self {
            title: "streamlib".to_owned(),
            scale: DisplayScale::X1,
            max_fps: Some(60.0),
            stop_on_close: true,
            stop_on_escape: true,
        }
    }
}

/// Whether a window can be opened here: on Linux and the BSDs, `DISPLAY` or `WAYLAND_DISPLAY`
/// is set (demos use it to choose headless mode); elsewhere always true.
pub fn display_available() -> bool {
    if cfg!(any(target_os = "windows", target_os = "macos")) {
        return true;
    }
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
}

/// Counters a display keeps across restarts.
#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    shown: AtomicU64,
    skipped: AtomicU64,
    key_events: AtomicU64,
    mouse_events: AtomicU64,
    events_lost: AtomicU64,
    open: AtomicBool,
}

/// What a [`Display`] has done; cloneable, readable from any thread while it runs.
#[derive(Debug, Clone, Default)]
pub struct DisplayStats {
    counters: Arc<Counters>,
}

impl DisplayStats {
    /// Frames `process` received and handed to the window.
    pub fn frames_received(&self) -> u64 {
        self.counters.received.load(Ordering::Relaxed)
    }

    /// Frames drawn in the window.
    pub fn frames_shown(&self) -> u64 {
        self.counters.shown.load(Ordering::Relaxed)
    }

    /// Frames handed to the window but never drawn, because a newer one arrived first (the
    /// `max_fps` limit, or a slow window system).
    pub fn frames_skipped(&self) -> u64 {
        self.counters.skipped.load(Ordering::Relaxed)
    }

    /// Key events delivered to the `"keys"` output.
    pub fn key_events(&self) -> u64 {
        self.counters.key_events.load(Ordering::Relaxed)
    }

    /// Mouse events delivered to the `"mouse"` output.
    pub fn mouse_events(&self) -> u64 {
        self.counters.mouse_events.load(Ordering::Relaxed)
    }

    /// Events dropped because more piled up between two `process` calls than the queues hold.
    pub fn events_lost(&self) -> u64 {
        self.counters.events_lost.load(Ordering::Relaxed)
    }

    /// Whether the window is open now.
    pub fn is_open(&self) -> bool {
        self.counters.open.load(Ordering::Relaxed)
    }
}

/// State shared by `process` and the window thread.
struct Shared {
    /// The newest frame; `process` writes, the window thread reads.
    frames: LatestBuffer<VideoFrame>,
    keys: OrderedQueue<KeyEvent>,
    mouse: OrderedQueue<MouseEvent>,
    /// The user closed the window.
    closed: AtomicBool,
    /// Esc was pressed in the window.
    escape: AtomicBool,
    /// `on_stop` asks the window thread to close the window and return.
    shutdown: AtomicBool,
    /// Why the window thread gave up, if it did.
    failure: OnceLock<String>,
}

impl Shared {
    fn new() -> Result<Self, VideoError> {
        let queue_error = |source| VideoError::Pool {
            handler: HANDLER,
            source,
        };
        Ok(Self {
            frames: LatestBuffer::new(),
            keys: OrderedQueue::new(KEY_QUEUE, OverflowPolicy::DropOldest).map_err(queue_error)?,
            mouse: OrderedQueue::new(MOUSE_QUEUE, OverflowPolicy::DropOldest)
                .map_err(queue_error)?,
            closed: AtomicBool::new(false),
            escape: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            failure: OnceLock::new(),
        })
    }
}

/// The running window thread.
struct Ui {
    shared: Arc<Shared>,
    /// `None` only in unit tests that drive the event path without a window.
    thread: Option<JoinHandle<()>>,
}

/// A sink that shows the newest frame in a window (minifb: X11, loaded at run time).
///
/// - Input `"video"` (`[cpu]`, latest mode): `Rgba8` (straight alpha is composited over black,
///   premultiplied shown as is), `Bgra8` (likewise) and `Gray8`. Other formats and GPU frames
///   fail `process` with [`VideoError::UnsupportedFormat`] / [`VideoError::NotInCpuMemory`].
/// - Output `"keys"`: a [`KeyEvent`] per key press and release (no auto-repeat). Letters map
///   to lower-case [`Key::Char`](streamlib_ports::Key::Char) (shift is in the modifiers),
///   digits and US-layout punctuation to `Char`, Escape, Enter, Space, Tab, Backspace, the
///   arrows and F1–F15 to their keys, anything else to `Other(minifb key code)`.
/// - Output `"mouse"`: [`MouseEvent`]s (moves inside the image, left/right/middle buttons,
///   wheel) in frame pixel coordinates.
///
/// Event timestamps are the timestamp of the tick whose `process` call delivered them. The
/// window opens in `on_start` (at 640 × 480, reopened at the first frame's size times the
/// scale if that differs), which fails with [`VideoError::Display`] when no display server can be reached:
/// never a panic. Closing the window or pressing Esc makes the next `process` call ask the
/// runtime to stop (see [`DisplayConfig`]).
pub struct Display {
    config: DisplayConfig,
    input: InputPort<VideoFrame>,
    keys: OutputPort<KeyEvent>,
    mouse: OutputPort<MouseEvent>,
    stats: DisplayStats,
    ui: Option<Ui>,
}

impl Display {
    /// A display; nothing opens until the runtime starts it.
    pub fn new(config: DisplayConfig) -> Self {
        Self {
            config,
            input: InputPort::new("video", MemoryCaps::CPU).with_format(Caps::Video(
                VideoCaps::any().with_formats(&[
                    PixelFormat::Rgba8,
                    PixelFormat::Bgra8,
                    PixelFormat::Gray8,
                ]),
            )),
            keys: OutputPort::new("keys", MemoryCaps::CPU),
            mouse: OutputPort::new("mouse", MemoryCaps::CPU),
            stats: DisplayStats::default(),
            ui: None,
        }
    }

    /// The frame input (`"video"`).
    pub fn input(&self) -> InputRef<VideoFrame> {
        self.input.handle()
    }

    /// Key events (`"keys"`).
    pub fn keys(&self) -> OutputRef<KeyEvent> {
        self.keys.handle()
    }

    /// Mouse events (`"mouse"`).
    pub fn mouse(&self) -> OutputRef<MouseEvent> {
        self.mouse.handle()
    }

    /// A handle to its counters.
    pub fn stats(&self) -> DisplayStats {
        self.stats.clone()
    }

    /// The configuration.
    pub fn config(&self) -> &DisplayConfig {
        &self.config
    }

    fn error(&self, reason: impl Into<String>) -> VideoError {
        VideoError::Display {
            title: self.config.title.clone(),
            reason: reason.into(),
        }
    }

    /// Opens the window on a new thread and waits until it is open or has failed.
    fn start_ui(&mut self) -> Result<(), VideoError> {
        if !display_available() {
            return Err(self.error(NO_DISPLAY));
        }
        let shared = Arc::new(Shared::new()?);
        let settings = window::Settings {
            title: self.config.title.clone(),
            scale: self.config.scale.to_minifb(),
            min_interval: self
                .config
                .max_fps
                .filter(|fps| fps.is_finite() && *fps > 0.0)
                .map(|fps| Duration::from_secs_f64(1.0 / fps)),
            // The window opens at the negotiated size: no resize on the first frame.
            size: self
                .input
                .negotiated_video()
                .map(|v| (v.width as usize, v.height as usize)),
        };
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let thread = {
            let shared = Arc::clone(&shared);
            let counters = Arc::clone(&self.stats.counters);
            thread::Builder::new()
                .name("streamlib-display".to_owned())
                .spawn(move || window::run(&settings, &shared, &counters, &ready_tx))
                .map_err(|e| self.error(format!("cannot start the window thread: {e}")))?
        };
        match ready_rx.recv_timeout(OPEN_TIMEOUT) {
            Ok(Ok(())) => {
                self.ui = Some(Ui {
                    shared,
                    thread: Some(thread),
                });
                Ok(())
            }
            Ok(Err(reason)) => {
                let _ = thread.join();
                Err(self.error(reason))
            }
            Err(_) => {
                // Stuck talking to the display server: ask it to quit and leave it detached
                // rather than block the runtime.
                shared.shutdown.store(true, Ordering::Release);
                thread.thread().unpark();
                Err(self.error(format!(
                    "the window did not open within {} s",
                    OPEN_TIMEOUT.as_secs()
                )))
            }
        }
    }

    /// Closes the window and joins its thread.
    fn stop_ui(&mut self) {
        let Some(ui) = self.ui.take() else {
            return;
        };
        ui.shared.shutdown.store(true, Ordering::Release);
        if let Some(thread) = ui.thread {
            thread.thread().unpark();
            if thread.join().is_err() {
                tracing::error!(title = %self.config.title, "the display thread panicked");
            }
        }
        self.stats.counters.open.store(false, Ordering::Relaxed);
    }

    /// Checks that the window thread can show `frame`.
    fn check(&self, frame: &VideoFrame) -> Result<(), VideoError> {
        if frame.memory() != MemorySpace::Cpu {
            return Err(VideoError::NotInCpuMemory { handler: HANDLER });
        }
        match frame.format() {
            PixelFormat::Rgba8 | PixelFormat::Bgra8 | PixelFormat::Gray8 => Ok(()),
            format => Err(VideoError::UnsupportedFormat {
                handler: HANDLER,
                format,
                supported: "rgba8, bgra8, gray8",
            }),
        }
    }
}

impl std::fmt::Debug for Display {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Display")
            .field("config", &self.config)
            .field("running", &self.ui.is_some())
            .finish_non_exhaustive()
    }
}

impl StreamHandler for Display {
    fn ports(&self) -> Ports {
        Ports::new()
            .input(&self.input)
            .output(&self.keys)
            .output(&self.mouse)
    }

    fn on_start(&mut self, _ctx: &StartContext<'_>) -> Result<(), HandlerError> {
        self.stop_ui();
        self.start_ui()?;
        Ok(())
    }

    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        let Some(ui) = &self.ui else {
            return Ok(());
        };
        let shared = &*ui.shared;
        if let Some(reason) = shared.failure.get() {
            return Err(self.error(reason.clone()).into());
        }
        let counters = &*self.stats.counters;
        if let Some(frame) = self.input.recv() {
            self.check(&frame)?;
            // `process` is the only writer of this counter.
            let received = counters.received.load(Ordering::Relaxed) + 1;
            counters.received.store(received, Ordering::Relaxed);
            shared.frames.write(frame);
            if let Some(thread) = &ui.thread {
                thread.thread().unpark();
            }
        }
        let timestamp = ctx.tick().timestamp;
        while let Some(mut event) = shared.keys.pop() {
            event.timestamp_ns = timestamp;
            self.keys.write(event);
            counters.key_events.fetch_add(1, Ordering::Relaxed);
        }
        while let Some(mut event) = shared.mouse.pop() {
            event.timestamp_ns = timestamp;
            self.mouse.write(event);
            counters.mouse_events.fetch_add(1, Ordering::Relaxed);
        }
        let lost = shared.keys.overflowed() + shared.mouse.overflowed();
        counters.events_lost.store(lost, Ordering::Relaxed);
        let closed = self.config.stop_on_close && shared.closed.load(Ordering::Acquire);
        let escape = self.config.stop_on_escape && shared.escape.load(Ordering::Acquire);
        if closed || escape {
            ctx.request_stop();
        }
        Ok(())
    }

    fn on_stop(&mut self) -> Result<(), HandlerError> {
        self.stop_ui();
        Ok(())
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        self.stop_ui();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use input::KeyTracker;
    use streamlib_clock::{ClockSourceId, Rational, TimedTick};
    use streamlib_ports::{Key, KeyState};

    fn tick(n: u64) -> TimedTick {
        TimedTick {
            timestamp: n * 1_000,
            frame_number: n,
            clock_source_id: ClockSourceId::MANUAL,
            fps: Rational::fps(30),
        }
    }

    /// A display whose window thread is replaced by a fake event source.
    fn fake(config: DisplayConfig) -> (Display, Arc<Shared>) {
        let mut display = Display::new(config);
        let shared = Arc::new(Shared::new().unwrap());
        display.ui = Some(Ui {
            shared: Arc::clone(&shared),
            thread: None,
        });
        (display, shared)
    }

    fn key_sink(display: &Display) -> InputPort<KeyEvent> {
        let sink = InputPort::<KeyEvent>::new("keys", MemoryCaps::CPU);
        display
            .keys()
            .erased()
            .connect_to(&*sink.handle().erased())
            .unwrap();
        sink
    }

    #[test]
    fn escape_from_the_window_stops_the_runtime() {
        let (mut display, shared) = fake(DisplayConfig::default());
        let keys = key_sink(&display);
        let mut tracker = KeyTracker::default();
        for (key, down) in [
            (minifb::Key::LeftShift, true),
            (minifb::Key::A, true),
            (minifb::Key::A, true), // auto-repeat: ignored
            (minifb::Key::A, false),
            (minifb::Key::LeftShift, false),
        ] {
            if let Some(event) = tracker.event(key, down) {
                input::deliver_key(&shared, event);
            }
        }
        let mut ctx = ProcessContext::new("display", tick(1));
        display.process(&mut ctx).unwrap();
        assert!(!ctx.stop_requested(), "no Esc yet");
        let events: Vec<KeyEvent> = std::iter::from_fn(|| keys.recv()).collect();
        assert_eq!(events.len(), 4, "{events:?}");
        assert_eq!(events[1].key, Key::Char('a'));
        assert_eq!(events[1].state, KeyState::Pressed);
        assert!(events[1].modifiers.shift);
        assert_eq!(events[1].timestamp_ns, 1_000);
        assert_eq!(events[2].state, KeyState::Released);

        let event = tracker.event(minifb::Key::Escape, true).unwrap();
        input::deliver_key(&shared, event);
        let mut ctx = ProcessContext::new("display", tick(2));
        display.process(&mut ctx).unwrap();
        assert!(ctx.stop_requested());
        assert_eq!(keys.recv().unwrap().key, Key::Escape);
        assert_eq!(display.stats().key_events(), 5);
    }

    #[test]
    fn stop_flags_follow_the_config() {
        let config = DisplayConfig {
            stop_on_close: false,
            stop_on_escape: false,
            ..DisplayConfig::default()
        };
        let (mut display, shared) = fake(config);
        shared.closed.store(true, Ordering::Release);
        shared.escape.store(true, Ordering::Release);
        let mut ctx = ProcessContext::new("display", tick(0));
        display.process(&mut ctx).unwrap();
        assert!(!ctx.stop_requested());

        let (mut display, shared) = fake(DisplayConfig::default());
        shared.closed.store(true, Ordering::Release);
        let mut ctx = ProcessContext::new("display", tick(0));
        display.process(&mut ctx).unwrap();
        assert!(ctx.stop_requested(), "closing the window stops by default");
    }

    #[test]
    fn unsupported_frames_fail_process() {
        let (mut display, _shared) = fake(DisplayConfig::default());
        let source = OutputPort::<VideoFrame>::new("video", MemoryCaps::CPU);
        source
            .handle()
            .erased()
            .connect_to(&*display.input().erased())
            .unwrap();
        let layout = streamlib_ports::FrameLayout::new(4, 4, PixelFormat::Nv12).unwrap();
        let buf = streamlib_buffers::PooledBuf::from_vec(vec![0; layout.buffer_len()]);
        source.write(VideoFrame::cpu(layout, buf).unwrap());
        let err = display
            .process(&mut ProcessContext::new("display", tick(0)))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Display: nv12 frames are not supported (supported: rgba8, bgra8, gray8)"
        );
        assert_eq!(display.stats().frames_received(), 0);
    }

    #[test]
    fn window_failure_fails_process() {
        let (mut display, shared) = fake(DisplayConfig::new("demo"));
        shared.failure.set("it broke".to_owned()).unwrap();
        let err = display
            .process(&mut ProcessContext::new("display", tick(0)))
            .unwrap_err();
        assert_eq!(err.to_string(), "display 'demo': it broke");
    }
}
