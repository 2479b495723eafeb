//! The window thread: owns the minifb window, draws the newest frame, polls input.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;
use std::thread;
use std::time::{Duration, Instant};

use minifb::{MouseMode, Scale, ScaleMode, Window, WindowOptions};
use streamlib_buffers::LatestReader;
use streamlib_ports::VideoFrame;

use super::input::{KeyCallback, KeyTracker, MouseState, MouseTracker, window_to_frame};
use super::{Counters, Shared, convert};

/// Size of the window when negotiation did not say how big frames are (the first frame
/// resizes it).
const INITIAL_SIZE: (usize, usize) = (640, 480);
/// How often input is polled while no frame is due.
const POLL_INTERVAL: Duration = Duration::from_millis(4);

/// What the window thread needs from the configuration.
pub(super) struct Settings {
    pub(super) title: String,
    pub(super) scale: Scale,
    /// Shortest time between two window updates (`None`: no limit).
    pub(super) min_interval: Option<Duration>,
    /// The frame size negotiated on the input, when known: the window opens at it.
    pub(super) size: Option<(usize, usize)>,
}

/// The open window and the buffer it is drawn from (allocated once per frame size).
struct Surface {
    window: Window,
    pixels: Vec<u32>,
    size: (usize, usize),
}

/// Runs the window thread: opens the window, reports on `ready`, then shows frames until
/// `shared.shutdown`. A panic is caught and reported as the display's failure.
pub(super) fn run(
    settings: &Settings,
    shared: &Arc<Shared>,
    counters: &Counters,
    ready: &SyncSender<Result<(), String>>,
) {
    let reader = shared.frames.reader();
    let surface = match open(settings, shared, settings.size.unwrap_or(INITIAL_SIZE)) {
        Ok(surface) => surface,
        Err(reason) => {
            let _ = ready.send(Err(reason));
            return;
        }
    };
    counters.open.store(true, Ordering::Relaxed);
    let _ = ready.send(Ok(()));
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        show_frames(settings, shared, counters, &reader, surface);
    }));
    counters.open.store(false, Ordering::Relaxed);
    if let Err(panic) = outcome {
        let reason = format!("the window thread panicked: {}", panic_message(&*panic));
        tracing::error!(title = %settings.title, "{reason}");
        let _ = shared.failure.set(reason);
    }
}

/// Opens a window for frames of `size`, showing black.
fn open(
    settings: &Settings,
    shared: &Arc<Shared>,
    size: (usize, usize),
) -> Result<Surface, String> {
    let options = WindowOptions {
        resize: false,
        scale: settings.scale,
        scale_mode: ScaleMode::Stretch,
        ..WindowOptions::default()
    };
    let created = catch_unwind(|| Window::new(&settings.title, size.0, size.1, options))
        .map_err(|panic| format!("opening the window panicked: {}", panic_message(&*panic)))?;
    let mut window = created.map_err(|e| {
        let display = std::env::var("DISPLAY").unwrap_or_default();
        format!("{e} (DISPLAY={display:?})")
    })?;
    // We pace updates ourselves; minifb would otherwise sleep inside every update.
    window.set_target_fps(0);
    window.set_input_callback(Box::new(KeyCallback {
        shared: Arc::clone(shared),
        tracker: KeyTracker::default(),
    }));
    let pixels = vec![0; size.0 * size.1];
    window
        .update_with_buffer(&pixels, size.0, size.1)
        .map_err(|e| e.to_string())?;
    Ok(Surface {
        window,
        pixels,
        size,
    })
}

fn show_frames(
    settings: &Settings,
    shared: &Arc<Shared>,
    counters: &Counters,
    reader: &LatestReader<VideoFrame>,
    surface: Surface,
) {
    let mut surface = Some(surface);
    let mut mouse = MouseTracker::default();
    let mut last_update: Option<Instant> = None;
    // Skips before a restart stay counted.
    let skipped_before = counters.skipped.load(Ordering::Relaxed);
    while !shared.shutdown.load(Ordering::Acquire) {
        let now = Instant::now();
        let due = match (settings.min_interval, last_update) {
            (Some(interval), Some(last)) => last + interval,
            _ => now,
        };
        if let Some(open) = surface.as_mut() {
            let mut drawn = false;
            if now >= due
                && let Some(frame) = reader.read_new()
            {
                counters
                    .skipped
                    .store(skipped_before + reader.dropped(), Ordering::Relaxed);
                match draw(settings, shared, open, frame) {
                    Ok(()) => {
                        counters.shown.fetch_add(1, Ordering::Relaxed);
                        last_update = Some(now);
                        drawn = true;
                    }
                    Err(reason) => {
                        tracing::error!(title = %settings.title, "{reason}");
                        let _ = shared.failure.set(reason);
                        break;
                    }
                }
            }
            if !drawn {
                open.window.update();
            }
            poll_mouse(shared, &mut mouse, open);
            if !open.window.is_open() {
                // Dropping the window destroys it; `process` stops the runtime if configured.
                surface = None;
                counters.open.store(false, Ordering::Relaxed);
                shared.closed.store(true, Ordering::Release);
            }
        }
        let wait = if surface.is_some() && reader.has_new() {
            due.saturating_duration_since(Instant::now())
                .min(POLL_INTERVAL)
        } else {
            POLL_INTERVAL
        };
        thread::park_timeout(wait);
    }
}

/// Draws `frame`, reopening the window first if the frame size changed. The frame goes back
/// to its pool as soon as it is converted, before the (slower) hand-over to the X server.
fn draw(
    settings: &Settings,
    shared: &Arc<Shared>,
    surface: &mut Surface,
    frame: VideoFrame,
) -> Result<(), String> {
    let size = (frame.width() as usize, frame.height() as usize);
    if size != surface.size {
        *surface = open(settings, shared, size)?;
    }
    if let Some(bytes) = frame.cpu_bytes() {
        convert::to_0rgb(bytes, frame.layout(), frame.alpha(), &mut surface.pixels);
    }
    drop(frame);
    surface
        .window
        .update_with_buffer(&surface.pixels, size.0, size.1)
        .map_err(|e| e.to_string())
}

fn poll_mouse(shared: &Shared, tracker: &mut MouseTracker, surface: &Surface) {
    let window = &surface.window;
    let state = MouseState {
        position: window
            .get_unscaled_mouse_pos(MouseMode::Discard)
            .and_then(|pos| window_to_frame(pos, window.get_size(), surface.size)),
        buttons: [
            window.get_mouse_down(minifb::MouseButton::Left),
            window.get_mouse_down(minifb::MouseButton::Right),
            window.get_mouse_down(minifb::MouseButton::Middle),
        ],
        scroll: window.get_scroll_wheel(),
    };
    tracker.poll(state, |event| {
        shared.mouse.push(event);
    });
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}
