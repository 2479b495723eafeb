//! `AudioScope` (`audioscope`): the waveform per channel (lines or dots), or level meters
//! per channel with peak hold.

use streamlib_ports::{
    AudioBuffer, HandlerError, InputRef, OutputRef, Ports, ProcessContext, StartContext,
    StreamHandler, VideoFrame,
};

use super::canvas::{Canvas, Rgba, level_row, level_rows};
use super::{Cleared, History, ScopeIo, ScopeStatsHandle};
use crate::AudioError;
use crate::error::check_range;

const HANDLER: &str = "audioscope";
/// The longest waveform window, seconds.
const MAX_WINDOW_S: f64 = 10.0;
/// A level this close to the held peak (dB) renews its hold time.
const RENEW_DB: f64 = 0.1;
/// The peak-hold marker.
const MARKER: Rgba = [255, 255, 255, 255];

/// What an [`AudioScope`] draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ScopeStyle {
    /// The waveform, each column a vertical line from its lowest to its highest sample
    /// (joined to the column before), so it stays continuous however dense.
    #[default]
    Lines,
    /// The waveform, one pixel per sample.
    Dots,
    /// A vertical sample-peak meter per channel from `threshold` (bottom) to 0 dBFS (top),
    /// with a peak-hold marker.
    Meter,
}

impl ScopeStyle {
    /// The names in pipeline text, in declaration order.
    pub const NAMES: &'static [&'static str] = &["lines", "dots", "meter"];

    /// The style called `name` in pipeline text.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "lines" => Some(Self::Lines),
            "dots" => Some(Self::Dots),
            "meter" => Some(Self::Meter),
            _ => None,
        }
    }
}

/// How an [`AudioScope`] is set up.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioScopeConfig {
    /// Frame width in pixels, 1 ..= [`MAX_SCOPE_SIDE`](crate::MAX_SCOPE_SIDE).
    pub width: u32,
    /// Frame height in pixels, 1 ..= [`MAX_SCOPE_SIDE`](crate::MAX_SCOPE_SIDE).
    pub height: u32,
    /// What to draw.
    pub style: ScopeStyle,
    /// The waveform's span: the newest `window_s` seconds, across the frame (0.0001 ..= 10).
    pub window_s: f64,
    /// The trace's colour (waveform styles), RGBA.
    pub color: [u8; 4],
    /// The meter's floor, dBFS, `-200 ..< 0` (GStreamer's -60 by default).
    pub threshold: f64,
    /// How long the meter's peak marker stays before it falls, seconds (0 ..= 60).
    pub peak_hold_s: f64,
    /// How fast the marker then falls, dB per second (0 ..= 1000).
    pub peak_falloff_db_s: f64,
    /// The frame's background, RGBA (straight alpha); transparent by default.
    pub background: [u8; 4],
}

impl Default for AudioScopeConfig {
    /// 640 × 360 lines over 20 ms, meter from -60 dBFS holding peaks 1 s then falling
    /// 20 dB/s, transparent.
    fn default() -> Self {
        Self {
            width: 640,
            height: 360,
            style: ScopeStyle::Lines,
            window_s: 0.02,
            color: [80, 220, 255, 255],
            threshold: -60.0,
            peak_hold_s: 1.0,
            peak_falloff_db_s: 20.0,
            background: [0; 4],
        }
    }
}

/// One channel's meter state.
#[derive(Debug, Clone, Copy)]
struct Meter {
    /// The sample peak of the audio since the frame before, dBFS.
    level: f64,
    /// The held peak, dBFS, and when it was last raised (ns, the tick's time).
    hold: f64,
    held_at_ns: u64,
}

impl Default for Meter {
    fn default() -> Self {
        Self {
            level: f64::NEG_INFINITY,
            hold: f64::NEG_INFINITY,
            held_at_ns: 0,
        }
    }
}

/// A transform with input `"audio"` (`[cpu]`, any rate and channels) and output `"video"`
/// (`[cpu]`, RGBA8 at the configured size, straight alpha): one frame per tick showing the
/// newest audio, each channel in its own lane (stacked for the waveform, side by side for
/// the meter).
///
/// Waveform: a lane of height `hl` puts sample `v` (clamped to ±1) at row
/// `top + round((1 - v) / 2 * (hl - 1))`; the newest `window_s` seconds span the width.
/// Meter: the sample peak of the audio since the last frame, at row
/// [`level_row`]`(peak_dbfs, height, threshold)`, the bar filling down from there; the
/// peak-hold marker (two white rows from [`level_row`] of the held peak) stays `peak_hold_s`
/// after the level last reached it (within 0.1 dB), then falls `peak_falloff_db_s`, never
/// below the level.
pub struct AudioScope {
    config: AudioScopeConfig,
    io: ScopeIo,
    /// One channel's newest window.
    samples: Vec<f32>,
    peaks: Vec<f32>,
    meters: Vec<Meter>,
    /// Per channel, the meter being drawn: columns `x0..x1`, the bar from row `level` down,
    /// the marker's first row (`usize::MAX` for none).
    bars: Vec<(usize, usize, usize, usize)>,
    /// The tick time of the last frame, ns.
    last_ns: Option<u64>,
    rows: Vec<Rgba>,
}

impl AudioScope {
    /// Checks the configuration and allocates the frame pool.
    pub fn new(config: AudioScopeConfig) -> Result<Self, AudioError> {
        check_range(HANDLER, "window", config.window_s, 1e-4, MAX_WINDOW_S)?;
        super::spectrum::check_threshold(HANDLER, config.threshold)?;
        check_range(HANDLER, "peak-hold", config.peak_hold_s, 0.0, 60.0)?;
        check_range(
            HANDLER,
            "peak-falloff",
            config.peak_falloff_db_s,
            0.0,
            1000.0,
        )?;
        let io = ScopeIo::new(HANDLER, config.width, config.height, config.background)?;
        Ok(Self {
            rows: level_rows(config.height as usize, config.threshold),
            io,
            samples: Vec::new(),
            peaks: Vec::new(),
            meters: Vec::new(),
            bars: Vec::new(),
            last_ns: None,
            config,
        })
    }

    /// The input (`"audio"`).
    pub fn input(&self) -> InputRef<AudioBuffer> {
        self.io.input.handle()
    }

    /// The output (`"video"`).
    pub fn output(&self) -> OutputRef<VideoFrame> {
        self.io.output.handle()
    }

    /// The configuration (with the style as last set).
    pub fn config(&self) -> &AudioScopeConfig {
        &self.config
    }

    /// A handle to read the counters from another thread.
    pub fn stats(&self) -> ScopeStatsHandle {
        self.io.shared.clone()
    }

    /// Switches what is drawn, from the next frame on.
    pub fn set_style(&mut self, style: ScopeStyle) {
        self.config.style = style;
    }

    /// Each channel's held peak as last drawn, dBFS (`-inf` before any audio).
    pub fn held_peaks(&self) -> impl Iterator<Item = f64> + '_ {
        self.meters.iter().map(|m| m.hold)
    }

    /// Frames of history for `rate`.
    fn window_frames(window_s: f64, rate: u32) -> usize {
        ((window_s * f64::from(rate)).round() as usize).max(1)
    }

    /// Sizes the per-channel state for the history's format.
    fn fit(&mut self) {
        let Some(history) = self.io.history.as_ref() else {
            return;
        };
        let frames = Self::window_frames(self.config.window_s, history.rate());
        self.samples.resize(frames, 0.0);
        self.peaks.resize(history.channels(), 0.0);
        self.meters.clear();
        self.meters.resize(history.channels(), Meter::default());
        self.bars.clear();
        self.bars.reserve(history.channels());
    }

    /// The meters' geometry for this frame, from their levels.
    fn meter_bars(&mut self) {
        let (width, height) = (self.config.width as usize, self.config.height);
        let threshold = self.config.threshold;
        let channels = self.meters.len();
        let row = |db: f64| {
            if db > threshold {
                level_row(db, height, threshold) as usize
            } else {
                usize::MAX
            }
        };
        self.bars.clear();
        for (c, m) in self.meters.iter().enumerate() {
            let (x0, x1) = (c * width / channels, (c + 1) * width / channels);
            let inset = (x1 - x0) / 8;
            self.bars
                .push((x0 + inset, x1 - inset, row(m.level), row(m.hold)));
        }
    }

    /// Moves the meters on to the tick at `now_ns`.
    fn update_meters(&mut self, history: &mut History, now_ns: u64) {
        let fresh = history.take_peaks(&mut self.peaks);
        let elapsed = |from: u64| now_ns.saturating_sub(from) as f64 / 1e9;
        let hold_ns = (self.config.peak_hold_s * 1e9) as u64;
        let last = self.last_ns.unwrap_or(now_ns);
        for (meter, &peak) in self.meters.iter_mut().zip(&self.peaks) {
            if fresh {
                meter.level = 20.0 * f64::from(peak).log10();
            }
            // Reaching the held peak again (within 0.1 dB) holds it anew.
            if meter.level + RENEW_DB >= meter.hold {
                meter.hold = meter.hold.max(meter.level);
                meter.held_at_ns = now_ns;
                continue;
            }
            // Falls for the part of the last frame interval past the hold time.
            let falls_from = last.max(meter.held_at_ns.saturating_add(hold_ns));
            if now_ns > falls_from {
                meter.hold -= self.config.peak_falloff_db_s * elapsed(falls_from);
                meter.hold = meter.hold.max(meter.level);
            }
        }
        self.last_ns = Some(now_ns);
    }
}

/// The waveform of `samples` in rows `top .. top + lane` of `canvas`, `width` wide.
fn draw_wave(
    canvas: &mut Canvas<'_>,
    samples: &[f32],
    (top, lane, width): (usize, usize, usize),
    style: ScopeStyle,
    color: Rgba,
) {
    let span = lane.saturating_sub(1) as f32;
    let row = |v: f32| top + ((1.0 - v.clamp(-1.0, 1.0)) * 0.5 * span).round() as usize;
    let n = samples.len();
    if n == 0 || width == 0 {
        return;
    }
    if style == ScopeStyle::Dots {
        for (i, &v) in samples.iter().enumerate() {
            canvas.put(i * width / n, row(v), color);
        }
        return;
    }
    let mut previous: Option<f32> = None;
    for x in 0..width {
        let (i0, i1) = (x * n / width, ((x + 1) * n / width).max(x * n / width + 1));
        let column = &samples[i0..i1.min(n)];
        let (mut lo, mut hi) = column
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        if let Some(p) = previous {
            (lo, hi) = (lo.min(p), hi.max(p));
        }
        if lo <= hi {
            canvas.vline(x, row(hi), row(lo), color);
        }
        previous = column.last().copied();
    }
}

impl std::fmt::Debug for AudioScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioScope")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl StreamHandler for AudioScope {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.io.input).output(&self.io.output)
    }

    fn on_start(&mut self, _ctx: &StartContext<'_>) -> Result<(), HandlerError> {
        let window = self.config.window_s;
        self.io.start(|rate| Self::window_frames(window, rate))?;
        self.fit();
        Ok(())
    }

    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        let window = self.config.window_s;
        if self.io.drain(|rate| Self::window_frames(window, rate))? {
            self.fit();
        }
        let now = ctx.tick().timestamp;
        // The history steps out of `io` while the meters read it (no copy).
        if let Some(mut history) = self.io.history.take() {
            self.update_meters(&mut history, now);
            self.io.history = Some(history);
        }
        let (width, height) = (self.config.width as usize, self.config.height as usize);
        if self.config.style == ScopeStyle::Meter {
            self.meter_bars();
            let (bars, rows) = (&self.bars, &self.rows);
            // Row by row, each cleared just before its bars: the frame is written once.
            self.io.frame(ctx.tick(), Cleared::ByRows, |canvas, _| {
                for (y, &color) in rows.iter().enumerate().take(height) {
                    canvas.clear_row(y);
                    for &(x0, x1, level, marker) in bars {
                        if marker != usize::MAX && (y == marker || y == marker + 1) {
                            canvas.span(y, x0, x1, MARKER);
                        } else if y >= level {
                            canvas.span(y, x0, x1, color);
                        }
                    }
                }
            });
            return Ok(());
        }
        let config = &self.config;
        let samples = &mut self.samples;
        self.io
            .frame(ctx.tick(), Cleared::First, |canvas, history| {
                let Some(history) = history else {
                    return;
                };
                let channels = history.channels();
                for c in 0..channels {
                    history.latest(c, samples);
                    let (top, lane) = (c * height / channels, height / channels);
                    draw_wave(
                        canvas,
                        samples,
                        (top, lane.max(1), width),
                        config.style,
                        config.color,
                    );
                }
            });
        Ok(())
    }
}
