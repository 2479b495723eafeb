//! `AudioConvert` (`audioconvert`): channel up- and down-mixing with the standard matrices.

use streamlib_ports::{
    AudioBuffer, AudioCaps, Caps, Field, Follow, HandlerError, InputPort, InputRef, MemoryCaps,
    OutputPort, OutputRef, Ports, ProcessContext, StreamHandler,
};

use crate::pools::PoolSet;
use crate::{AudioError, MAX_CHANNELS};

const HANDLER: &str = "audioconvert";
/// −3 dB, the ITU-R BS.775 weight of the centre and surround channels in a stereo downmix.
pub const MINUS_3DB: f32 = std::f32::consts::FRAC_1_SQRT_2;

/// The mixing matrix from `from` to `to` channels, row-major (`to` rows of `from`
/// coefficients), into `matrix` (cleared first). Channel orders are WAV/SMPTE: stereo L R,
/// quad L R Ls Rs, 5.1 L R C LFE Ls Rs.
///
/// - same count: identity;
/// - mono → N: the mono signal in L and R (in the one channel for N = 1), the rest silent;
/// - 5.1 → stereo (ITU-R BS.775): L' = L + 0.7071·C + 0.7071·Ls, R' = R + 0.7071·C +
///   0.7071·Rs, LFE dropped (peaks can exceed full scale, as the standard's are unnormalised);
/// - quad → stereo: L' = L + 0.7071·Ls, R' = R + 0.7071·Rs;
/// - N → mono: the average of the stereo downmix for 5.1 and quad, of all channels otherwise;
/// - anything else: channel `i` to channel `i` for the channels both have, the rest silent.
pub fn mix_matrix(from: usize, to: usize, matrix: &mut Vec<f32>) {
    matrix.clear();
    matrix.resize(from * to, 0.0);
    let mut set = |o: usize, i: usize, v: f32| matrix[o * from + i] = v;
    match (from, to) {
        (f, t) if f == t => (0..f).for_each(|c| set(c, c, 1.0)),
        (1, t) => {
            set(0, 0, 1.0);
            if t >= 2 {
                set(1, 0, 1.0);
            }
        }
        (6, 2) => {
            for (o, (front, surround)) in [(0, 4), (1, 5)].into_iter().enumerate() {
                set(o, front, 1.0);
                set(o, 2, MINUS_3DB);
                set(o, surround, MINUS_3DB);
            }
        }
        (4, 2) => {
            set(0, 0, 1.0);
            set(0, 2, MINUS_3DB);
            set(1, 1, 1.0);
            set(1, 3, MINUS_3DB);
        }
        (6, 1) => {
            for (i, v) in [(0, 0.5), (1, 0.5), (2, MINUS_3DB), (4, 0.5 * MINUS_3DB)] {
                set(0, i, v);
            }
            set(0, 5, 0.5 * MINUS_3DB);
        }
        (4, 1) => {
            for i in 0..2 {
                set(0, i, 0.5);
                set(0, i + 2, 0.5 * MINUS_3DB);
            }
        }
        (f, 1) => (0..f).for_each(|i| set(0, i, 1.0 / f as f32)),
        (f, t) => (0..f.min(t)).for_each(|c| set(c, c, 1.0)),
    }
}

/// Checks a channel count: `1 ..= MAX_CHANNELS`, the error naming `property`.
fn check_channels(property: &'static str, channels: u32) -> Result<u16, AudioError> {
    match u16::try_from(channels) {
        Ok(c) if (1..=MAX_CHANNELS).contains(&c) => Ok(c),
        _ => Err(AudioError::InvalidProperty {
            handler: HANDLER,
            property,
            value: channels.to_string(),
            expected: format!("a channel count in 1 ..= {MAX_CHANNELS}"),
        }),
    }
}

/// A transform with input `"audio"` (`[cpu]`, any rate and channels) and output `"audio"`
/// (the input's rate; the channel count set, or else the one negotiated downstream): mixes
/// every frame through [`mix_matrix`]. Buffers already at the output's channel count pass
/// through untouched (no copy). The matrix is rebuilt only when the input's channel count
/// changes and output buffers come from per-size pools, so steady state allocates nothing.
pub struct AudioConvert {
    input: InputPort<AudioBuffer>,
    output: OutputPort<AudioBuffer>,
    pools: PoolSet,
    /// The channel count asked for; `None`: the one negotiated on the output.
    channels: Option<u16>,
    /// The matrix in use and the `(from, to)` it was built for.
    matrix: Vec<f32>,
    built: (usize, usize),
}

impl AudioConvert {
    /// A converter to `channels` channels (`1 ..= `[`MAX_CHANNELS`]), or with `0` to the
    /// count the output negotiates (the input's when nothing downstream fixes one).
    pub fn new(channels: u32) -> Result<Self, AudioError> {
        let channels = match channels {
            0 => None,
            n => Some(check_channels("channels", n)?),
        };
        let input = InputPort::new("audio", MemoryCaps::CPU).with_format(Caps::audio());
        let out_caps = AudioCaps {
            rate: Field::Any,
            channels: channels.map_or(Field::Any, |c| Field::Fixed(u32::from(c))),
        };
        let output = OutputPort::new("audio", MemoryCaps::CPU).with_format(Caps::Audio(out_caps));
        output.follows(&input, Follow::RATE);
        Ok(Self {
            input,
            output,
            pools: PoolSet::new(HANDLER),
            channels,
            matrix: Vec::with_capacity(usize::from(MAX_CHANNELS) * 2),
            built: (0, 0),
        })
    }

    /// A converter to the channel count `target` (fixed caps, as negotiation gives an
    /// inserted converter) fixes.
    pub fn for_caps(target: &Caps) -> Result<Self, AudioError> {
        let channels = target
            .as_audio()
            .and_then(|a| a.channels.fixed())
            .ok_or_else(|| AudioError::InvalidProperty {
                handler: HANDLER,
                property: "channels",
                value: target.to_string(),
                expected: "target caps that fix a channel count".to_owned(),
            })?;
        Self::new(channels)
    }

    /// The input (`"audio"`).
    pub fn input(&self) -> InputRef<AudioBuffer> {
        self.input.handle()
    }

    /// The output (`"audio"`).
    pub fn output(&self) -> OutputRef<AudioBuffer> {
        self.output.handle()
    }

    /// The channel count the output carries for input of `from` channels.
    fn target(&self, from: u16) -> Result<u16, AudioError> {
        if let Some(c) = self.channels {
            return Ok(c);
        }
        match self
            .output
            .negotiated_format()
            .as_ref()
            .and_then(Caps::as_audio)
            .and_then(|a| a.channels.fixed())
        {
            Some(c) => check_channels("negotiated channels", c),
            None => Ok(from),
        }
    }
}

impl StreamHandler for AudioConvert {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input).output(&self.output)
    }

    fn process(&mut self, _ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        while let Some(buffer) = self.input.recv() {
            let from = buffer.channels();
            check_channels("input channels", u32::from(from))?;
            let to = self.target(from)?;
            if from == to {
                self.output.write(buffer);
                continue;
            }
            let (from, to) = (usize::from(from), usize::from(to));
            if self.built != (from, to) {
                mix_matrix(from, to, &mut self.matrix);
                self.built = (from, to);
            }
            let src = buffer.samples();
            let Some(mut out) = self.pools.acquire(buffer.frames() * to, &self.output)? else {
                continue;
            };
            for (i, o) in src.chunks_exact(from).zip(out.chunks_exact_mut(to)) {
                for (o, row) in o.iter_mut().zip(self.matrix.chunks_exact(from)) {
                    *o = row.iter().zip(i).map(|(m, x)| m * x).sum();
                }
            }
            crate::pools::publish(
                HANDLER,
                &self.output,
                out,
                to as u16,
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

    fn apply(from: usize, to: usize, frame: &[f32]) -> Vec<f32> {
        let mut m = Vec::new();
        mix_matrix(from, to, &mut m);
        m.chunks_exact(from)
            .map(|row| row.iter().zip(frame).map(|(a, b)| a * b).sum())
            .collect()
    }

    #[test]
    fn standard_matrices() {
        assert_eq!(apply(1, 2, &[0.5]), [0.5, 0.5]);
        assert_eq!(apply(2, 1, &[0.2, 0.6]), [0.4]);
        // L R C LFE Ls Rs: LFE dropped, centre and surrounds at -3 dB (BS.775).
        let out = apply(6, 2, &[0.1, 0.2, 0.3, 0.9, 0.4, 0.5]);
        assert!((out[0] - (0.1 + MINUS_3DB * 0.3 + MINUS_3DB * 0.4)).abs() < 1e-6);
        assert!((out[1] - (0.2 + MINUS_3DB * 0.3 + MINUS_3DB * 0.5)).abs() < 1e-6);
        let mono = apply(6, 1, &[0.1, 0.2, 0.3, 0.9, 0.4, 0.5]);
        assert!((mono[0] - (out[0] + out[1]) / 2.0).abs() < 1e-6);
        assert_eq!(apply(2, 6, &[0.1, 0.2]), [0.1, 0.2, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn bad_channel_counts_name_the_property() {
        let err = AudioConvert::new(65).err().unwrap().to_string();
        assert!(
            err.contains("audioconvert") && err.contains("`channels`"),
            "{err}"
        );
        let err = AudioConvert::for_caps(&Caps::audio())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("fix a channel count"), "{err}");
        assert!(AudioConvert::new(0).is_ok());
    }
}
