//! The waveforms of [`AudioTestSrc`](crate::AudioTestSrc) and the generator that fills
//! buffers with them, phase continuous across buffers and frequency changes.

use std::f64::consts::TAU;

/// What [`AudioTestSrc`](crate::AudioTestSrc) generates (GStreamer's `audiotestsrc wave=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wave {
    /// A sine at `freq`.
    Sine,
    /// A square wave at `freq` (naive, not band-limited, as GStreamer's).
    Square,
    /// A rising sawtooth at `freq` (naive).
    Saw,
    /// Uniform white noise, independent per channel.
    WhiteNoise,
    /// Pink (1/f) noise, independent per channel.
    PinkNoise,
    /// Zeros.
    Silence,
    /// A logarithmic sine sweep from [`SWEEP_START_HZ`] to [`SWEEP_END_HZ`] over
    /// [`SWEEP_SECONDS`], repeated; restarts on the clock's multiples of [`SWEEP_SECONDS`].
    Sweep,
    /// A sync tick: a [`TICK_SECONDS`]-long sine beep at `freq` once a second, its first
    /// sample on the clock's second boundary (the beep starts at zero phase on that
    /// sample), silence between beeps. For lip-sync tests beside a test pattern that
    /// flashes on each second.
    Ticks,
}

/// Lowest frequency of [`Wave::Sweep`], Hz.
pub const SWEEP_START_HZ: f64 = 20.0;
/// Highest frequency of [`Wave::Sweep`], Hz (capped below Nyquist at low rates).
pub const SWEEP_END_HZ: f64 = 20_000.0;
/// Length of one [`Wave::Sweep`], seconds.
pub const SWEEP_SECONDS: u64 = 10;
/// Length of one [`Wave::Ticks`] beep, seconds (its last 5 ms fade out so it does not click).
pub const TICK_SECONDS: f64 = 0.05;
const TICK_FADE_SECONDS: f64 = 0.005;

impl Wave {
    /// Every wave's pipeline name, in declaration order.
    pub const NAMES: &'static [&'static str] = &[
        "sine",
        "square",
        "saw",
        "white-noise",
        "pink-noise",
        "silence",
        "sweep",
        "ticks",
    ];
    const ALL: [Wave; 8] = [
        Wave::Sine,
        Wave::Square,
        Wave::Saw,
        Wave::WhiteNoise,
        Wave::PinkNoise,
        Wave::Silence,
        Wave::Sweep,
        Wave::Ticks,
    ];

    /// The pipeline name (`white-noise`).
    pub fn name(self) -> &'static str {
        let index = Self::ALL.iter().position(|w| *w == self).unwrap_or(0);
        Self::NAMES[index]
    }

    /// The wave a pipeline name means.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| Self::ALL[i])
    }
}

/// Pink noise by Paul Kellett's refined filter over white noise: seven one-pole sections.
#[derive(Debug, Clone, Copy, Default)]
struct Pink([f64; 7]);

impl Pink {
    fn next(&mut self, white: f64) -> f64 {
        let b = &mut self.0;
        b[0] = 0.99886 * b[0] + white * 0.0555179;
        b[1] = 0.99332 * b[1] + white * 0.0750759;
        b[2] = 0.96900 * b[2] + white * 0.1538520;
        b[3] = 0.86650 * b[3] + white * 0.3104856;
        b[4] = 0.55000 * b[4] + white * 0.5329522;
        b[5] = -0.7616 * b[5] - white * 0.0168980;
        let out = b[0] + b[1] + b[2] + b[3] + b[4] + b[5] + b[6] + white * 0.5362;
        b[6] = white * 0.115926;
        // The filter's gain is about 5 at low frequencies: scaled to a peak near 1.
        out * 0.11
    }
}

/// Fills buffers with one wave.
#[derive(Debug, Clone)]
pub(crate) struct Generator {
    pub(crate) wave: Wave,
    pub(crate) freq: f64,
    pub(crate) volume: f64,
    rate: u32,
    /// Position in the current cycle, `0.0 .. 1.0`.
    phase: f64,
    rng: u64,
    pink: Vec<Pink>,
}

impl Generator {
    pub(crate) fn new(wave: Wave, freq: f64, volume: f64, rate: u32, channels: u16) -> Self {
        Self {
            wave,
            freq,
            volume,
            rate,
            phase: 0.0,
            rng: 0x9E37_79B9_7F4A_7C15,
            pink: vec![Pink::default(); usize::from(channels)],
        }
    }

    /// Uniform in `[-1, 1)` (xorshift64*).
    fn white(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        let bits = x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        bits as f64 / (1u64 << 52) as f64 - 1.0
    }

    /// Advances the phase by one sample at `freq` and returns the phase before.
    fn step(&mut self, freq: f64) -> f64 {
        let phase = self.phase;
        self.phase += freq / f64::from(self.rate);
        self.phase -= self.phase.floor();
        phase
    }

    /// Fills `out` (interleaved, `channels` per frame) with the samples whose absolute
    /// index (samples since the clock's zero) starts at `first`.
    pub(crate) fn fill(&mut self, out: &mut [f32], first: u64, channels: usize) {
        let amp = self.volume;
        let rate = u64::from(self.rate);
        match self.wave {
            Wave::Silence => out.fill(0.0),
            Wave::Sine | Wave::Square | Wave::Saw => {
                let freq = self.freq;
                for frame in out.chunks_exact_mut(channels) {
                    let phase = self.step(freq);
                    let v = match self.wave {
                        Wave::Sine => (TAU * phase).sin(),
                        Wave::Square if phase < 0.5 => 1.0,
                        Wave::Square => -1.0,
                        _ => 2.0 * phase - 1.0,
                    };
                    frame.fill((v * amp) as f32);
                }
            }
            Wave::WhiteNoise => {
                for s in out.iter_mut() {
                    *s = (self.white() * amp) as f32;
                }
            }
            Wave::PinkNoise => {
                for frame in out.chunks_exact_mut(channels) {
                    for (c, s) in frame.iter_mut().enumerate() {
                        let white = self.white();
                        let v = self.pink.get_mut(c).map_or(0.0, |p| p.next(white));
                        *s = (v * amp) as f32;
                    }
                }
            }
            Wave::Sweep => {
                let period = SWEEP_SECONDS * rate;
                let end = SWEEP_END_HZ.min(0.45 * f64::from(self.rate));
                for (i, frame) in out.chunks_exact_mut(channels).enumerate() {
                    let pos = (first + i as u64) % period;
                    if pos == 0 {
                        self.phase = 0.0;
                    }
                    let t = pos as f64 / period as f64;
                    let freq = SWEEP_START_HZ * (end / SWEEP_START_HZ).powf(t);
                    let phase = self.step(freq);
                    frame.fill(((TAU * phase).sin() * amp) as f32);
                }
            }
            Wave::Ticks => {
                let rate_f = f64::from(self.rate);
                let beep = (TICK_SECONDS * rate_f) as u64;
                let fade = (TICK_FADE_SECONDS * rate_f).max(1.0);
                for (i, frame) in out.chunks_exact_mut(channels).enumerate() {
                    let pos = (first + i as u64) % rate;
                    let v = if pos < beep {
                        let envelope = ((beep - pos) as f64 / fade).min(1.0);
                        (TAU * self.freq * pos as f64 / rate_f).sin() * envelope
                    } else {
                        0.0
                    };
                    frame.fill((v * amp) as f32);
                }
            }
        }
    }
}
