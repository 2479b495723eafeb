//! `spectrum` and `audioscope`: audio in, video out (bars, waveform, level meters).
//!
//! Both take interleaved f32 audio on `"audio"` and draw one RGBA8 frame per clock tick on
//! `"video"` from the newest audio, stamped with the tick, on a transparent background by
//! default (alpha 0, straight alpha), so `compositor` lays them over a picture. The newest
//! audio lives in a ring per channel (`History`); frames come from a pool; the FFT is planned
//! once. At steady state neither allocates. NaN and infinite samples are drawn as 0 and
//! counted in [`ScopeStats::non_finite_samples`].

mod audioscope;
mod canvas;
mod fft;
mod history;
mod spectrum;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use audioscope::{AudioScope, AudioScopeConfig, ScopeStyle};
pub use canvas::level_row;
pub use spectrum::{Spectrum, SpectrumConfig};
use streamlib_clock::TimedTick;
use streamlib_ports::{
    AlphaMode, AudioBuffer, Caps, FrameLayout, FramePool, InputPort, MemoryCaps, OutputPort,
    PixelFormat, VideoCaps, VideoFrame,
};

use crate::AudioError;
use crate::error::{check_format, check_range};
use canvas::Canvas;
use history::History;

/// The largest frame width or height the scopes draw.
pub const MAX_SCOPE_SIDE: u32 = 16_384;
/// Frames the pool holds from the start; it grows up to `POOL_MAX` when readers keep frames.
const POOL_INITIAL: usize = 4;
const POOL_MAX: usize = 32;

/// What a scope did so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScopeStats {
    /// Video frames drawn and sent.
    pub frames: u64,
    /// Audio frames (samples per channel) received.
    pub audio_frames: u64,
    /// Samples that were NaN or infinite, drawn as 0.
    pub non_finite_samples: u64,
    /// Times the audio's rate or channel count changed and the scope started over.
    pub restarts: u64,
}

#[derive(Debug, Default)]
struct SharedStats([AtomicU64; 4]);

/// Reads a scope's [`ScopeStats`] from any thread while it runs.
#[derive(Debug, Clone, Default)]
pub struct ScopeStatsHandle(Arc<SharedStats>);

impl ScopeStatsHandle {
    /// The latest figures (updated after every frame).
    pub fn snapshot(&self) -> ScopeStats {
        let c = |i: usize| self.0.0[i].load(Ordering::Relaxed);
        ScopeStats {
            frames: c(0),
            audio_frames: c(1),
            non_finite_samples: c(2),
            restarts: c(3),
        }
    }

    fn store(&self, s: &ScopeStats) {
        let values = [s.frames, s.audio_frames, s.non_finite_samples, s.restarts];
        for (cell, v) in self.0.0.iter().zip(values) {
            cell.store(v, Ordering::Relaxed);
        }
    }
}

/// Checks a scope's frame size.
fn check_size(handler: &'static str, width: u32, height: u32) -> Result<(), AudioError> {
    let side = f64::from(MAX_SCOPE_SIDE);
    check_range(handler, "width", f64::from(width), 1.0, side)?;
    check_range(handler, "height", f64::from(height), 1.0, side)
}

/// Who clears a frame to its background.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cleared {
    /// The whole frame, before drawing.
    First,
    /// The drawing, row by row ([`Canvas::clear_row`]); every row must be cleared.
    ByRows,
}

/// What both scopes share: the ports, the frame pool, the background, the newest audio.
struct ScopeIo {
    handler: &'static str,
    input: InputPort<AudioBuffer>,
    output: OutputPort<VideoFrame>,
    pool: FramePool,
    width: usize,
    height: usize,
    /// One row of the background, copied into every row of a new frame.
    background: Vec<u8>,
    transparent: bool,
    history: Option<History>,
    stats: ScopeStats,
    shared: ScopeStatsHandle,
}

impl ScopeIo {
    fn new(
        handler: &'static str,
        width: u32,
        height: u32,
        background: [u8; 4],
    ) -> Result<Self, AudioError> {
        check_size(handler, width, height)?;
        let layout = FrameLayout::new(width, height, PixelFormat::Rgba8)
            .map_err(|source| AudioError::Frame { handler, source })?;
        let pool = FramePool::new(handler, layout, POOL_INITIAL, POOL_MAX)
            .map_err(|source| AudioError::Pool { handler, source })?;
        let input = InputPort::new("audio", MemoryCaps::CPU).with_format(Caps::audio());
        let output = OutputPort::new("video", MemoryCaps::CPU).with_format(Caps::Video(
            VideoCaps::fixed(PixelFormat::Rgba8, width, height).with_alpha(AlphaMode::Straight),
        ));
        let background_row = background
            .iter()
            .copied()
            .cycle()
            .take(width as usize * 4)
            .collect();
        Ok(Self {
            handler,
            input,
            output,
            pool,
            width: width as usize,
            height: height as usize,
            background: background_row,
            transparent: background == [0; 4],
            history: None,
            stats: ScopeStats::default(),
            shared: ScopeStatsHandle::default(),
        })
    }

    /// Sizes the pool from the graph and, when the input's format is fixed, the history.
    fn start(&mut self, history_len: impl Fn(u32) -> usize) -> Result<(), AudioError> {
        self.pool
            .fit_output(&self.output)
            .map_err(|source| AudioError::Pool {
                handler: self.handler,
                source,
            })?;
        let negotiated = self.input.negotiated_format();
        if let Some(a) = negotiated.as_ref().and_then(Caps::as_audio)
            && let (Some(rate), Some(channels)) = (a.rate.fixed(), a.channels.fixed())
        {
            let channels = u16::try_from(channels).unwrap_or(u16::MAX);
            self.history_for(channels, rate, &history_len)?;
        }
        Ok(())
    }

    fn history_for(
        &mut self,
        channels: u16,
        rate: u32,
        history_len: &impl Fn(u32) -> usize,
    ) -> Result<(), AudioError> {
        if self
            .history
            .as_ref()
            .is_some_and(|h| h.fits(channels, rate))
        {
            return Ok(());
        }
        check_format(self.handler, rate, channels)?;
        if self.history.is_some() {
            self.stats.restarts += 1;
            tracing::warn!(
                handler = self.handler,
                channels,
                rate,
                "the audio's format changed; the scope starts over"
            );
        }
        self.history = Some(History::new(channels, rate, history_len(rate)));
        Ok(())
    }

    /// Takes every waiting buffer into the history. Returns whether the format changed.
    fn drain(&mut self, history_len: impl Fn(u32) -> usize) -> Result<bool, AudioError> {
        let mut changed = false;
        while let Some(buffer) = self.input.recv() {
            let before = self.stats.restarts;
            let fresh = self.history.is_none();
            self.history_for(buffer.channels(), buffer.sample_rate(), &history_len)?;
            changed |= fresh || self.stats.restarts != before;
            if let Some(history) = self.history.as_mut() {
                self.stats.non_finite_samples += history.push(buffer.samples());
                self.stats.audio_frames += buffer.frames() as u64;
            }
        }
        Ok(changed)
    }

    /// Draws one frame stamped `tick` (when the output is connected and the pool has a
    /// buffer): the background first unless `draw` clears rows itself (`cleared`), then
    /// `draw`.
    fn frame(
        &mut self,
        tick: &TimedTick,
        cleared: Cleared,
        draw: impl FnOnce(&mut Canvas<'_>, Option<&mut History>),
    ) {
        if self.output.is_connected()
            && let Some(mut buf) = self.pool.acquire_for(&self.output)
        {
            let mut canvas = Canvas::new(
                &mut buf,
                self.width,
                self.height,
                &self.background,
                self.transparent,
            );
            if cleared == Cleared::First {
                canvas.clear();
            }
            draw(&mut canvas, self.history.as_mut());
            let frame = self
                .pool
                .frame(buf)
                .with_tick(tick)
                .with_alpha(AlphaMode::Straight);
            self.output.write(frame);
            self.stats.frames += 1;
        }
        self.shared.store(&self.stats);
    }
}
