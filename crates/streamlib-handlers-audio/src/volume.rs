//! `Volume` (`volume`): gain, linear or in dB, and mute, changed live without clicks.

use streamlib_ports::{
    AudioBuffer, Caps, Follow, HandlerError, InputPort, InputRef, MemoryCaps, OutputPort,
    OutputRef, Ports, ProcessContext, StreamHandler,
};

use crate::AudioError;
use crate::error::check_range;
use crate::pools::PoolSet;

const HANDLER: &str = "volume";
/// Largest linear gain (GStreamer's `volume` maximum), +20 dB.
pub const MAX_VOLUME: f64 = 10.0;
/// How long a gain change takes: a linear ramp this long avoids the click of a step.
pub const RAMP_SECONDS: f64 = 0.005;

/// Converts decibels to a linear gain.
pub fn db_to_linear(db: f64) -> f64 {
    10f64.powf(db / 20.0)
}

/// Converts a linear gain to decibels (`-inf` for 0).
pub fn linear_to_db(gain: f64) -> f64 {
    20.0 * gain.log10()
}

/// A transform with input `"audio"` and output `"audio"` (both `[cpu]`, any rate and
/// channels; the output follows the input): multiplies every sample by its gain. A change of
/// gain or mute ramps linearly over [`RAMP_SECONDS`]; at unity gain, not ramping, buffers pass
/// through untouched (no copy). Output buffers come from pools made per buffer size on first
/// sight, so steady state allocates nothing.
pub struct Volume {
    input: InputPort<AudioBuffer>,
    output: OutputPort<AudioBuffer>,
    pools: PoolSet,
    volume: f64,
    mute: bool,
    /// The gain applied to the last frame written.
    gain: f32,
    /// Per-frame increment of the ramp in progress, and frames left in it.
    step: f32,
    ramp_left: u64,
    /// Set when the target changed: the next buffer starts a ramp.
    retarget: bool,
}

impl Volume {
    /// A volume at linear gain `volume` (`0 ..= `[`MAX_VOLUME`]), muted or not.
    pub fn new(volume: f64, mute: bool) -> Result<Self, AudioError> {
        check_range(HANDLER, "volume", volume, 0.0, MAX_VOLUME)?;
        let input = InputPort::new("audio", MemoryCaps::CPU).with_format(Caps::audio());
        let output = OutputPort::new("audio", MemoryCaps::CPU).with_format(Caps::audio());
        output.follows(&input, Follow::ALL);
        let mut this = Self {
            input,
            output,
            pools: PoolSet::new(HANDLER),
            volume,
            mute,
            gain: 0.0,
            step: 0.0,
            ramp_left: 0,
            retarget: false,
        };
        // The first buffer starts at the target, without a ramp from silence.
        this.gain = this.target();
        Ok(this)
    }

    /// The input (`"audio"`).
    pub fn input(&self) -> InputRef<AudioBuffer> {
        self.input.handle()
    }

    /// The output (`"audio"`).
    pub fn output(&self) -> OutputRef<AudioBuffer> {
        self.output.handle()
    }

    /// The linear gain set (mute aside).
    pub fn volume(&self) -> f64 {
        self.volume
    }

    /// Whether muted.
    pub fn mute(&self) -> bool {
        self.mute
    }

    /// The gain the output reaches once any ramp is over.
    pub fn target(&self) -> f32 {
        if self.mute { 0.0 } else { self.volume as f32 }
    }

    /// Sets the linear gain (`0 ..= `[`MAX_VOLUME`]), ramped from the next buffer on.
    pub fn set_volume(&mut self, volume: f64) -> Result<(), AudioError> {
        check_range(HANDLER, "volume", volume, 0.0, MAX_VOLUME)?;
        self.volume = volume;
        self.retarget = true;
        Ok(())
    }

    /// Sets the gain in dB (`-inf ..= +20`; below -200 dB is silence), ramped.
    pub fn set_db(&mut self, db: f64) -> Result<(), AudioError> {
        if db.is_nan() || db > linear_to_db(MAX_VOLUME) + 1e-9 {
            return Err(AudioError::InvalidProperty {
                handler: HANDLER,
                property: "db",
                value: db.to_string(),
                expected: format!("a gain in dB up to {:+}", linear_to_db(MAX_VOLUME)),
            });
        }
        let gain = if db < -200.0 { 0.0 } else { db_to_linear(db) };
        self.set_volume(gain.min(MAX_VOLUME))
    }

    /// Mutes or unmutes, ramped.
    pub fn set_mute(&mut self, mute: bool) {
        self.mute = mute;
        self.retarget = true;
    }

    /// Applies the gain (and any ramp) to `src` into `dst`, `channels` samples per frame.
    fn apply(&mut self, src: &[f32], dst: &mut [f32], channels: usize, rate: u32) {
        let target = self.target();
        if self.retarget {
            self.retarget = false;
            let frames = (RAMP_SECONDS * f64::from(rate)).round().max(1.0) as u64;
            self.ramp_left = frames;
            self.step = (target - self.gain) / frames as f32;
        }
        let frames = src
            .chunks_exact(channels)
            .zip(dst.chunks_exact_mut(channels));
        for (i, o) in frames {
            if self.ramp_left > 0 {
                self.ramp_left -= 1;
                self.gain = if self.ramp_left == 0 {
                    target
                } else {
                    self.gain + self.step
                };
            }
            let g = self.gain;
            for (o, i) in o.iter_mut().zip(i) {
                *o = i * g;
            }
        }
    }
}

impl StreamHandler for Volume {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input).output(&self.output)
    }

    fn process(&mut self, _ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        while let Some(buffer) = self.input.recv() {
            if !self.retarget && self.ramp_left == 0 && self.gain == 1.0 {
                self.output.write(buffer);
                continue;
            }
            let src = buffer.samples();
            let Some(mut out) = self.pools.acquire(src.len(), &self.output)? else {
                continue;
            };
            self.apply(
                src,
                &mut out,
                usize::from(buffer.channels()),
                buffer.sample_rate(),
            );
            crate::pools::publish(
                HANDLER,
                &self.output,
                out,
                buffer.channels(),
                buffer.sample_rate(),
                buffer.timestamp_ns(),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn db_round_trips_and_bad_values_name_the_property() {
        assert!((db_to_linear(-6.0) - 0.501_187).abs() < 1e-6);
        assert!((linear_to_db(db_to_linear(3.5)) - 3.5).abs() < 1e-12);
        let mut v = Volume::new(1.0, false).unwrap();
        let err = v.set_db(30.0).unwrap_err().to_string();
        assert!(err.contains("volume") && err.contains("`db`"), "{err}");
        let err = Volume::new(f64::NAN, false).err().unwrap().to_string();
        assert!(err.contains("`volume`"), "{err}");
        v.set_db(f64::NEG_INFINITY).unwrap();
        assert_eq!(v.target(), 0.0);
    }
}
