use streamlib_buffers::PooledBuf;

use crate::FrameError;

/// Interleaved `f32` audio samples with their format and time.
#[derive(Clone, Debug)]
pub struct AudioBuffer {
    samples: PooledBuf<f32>,
    channels: u16,
    sample_rate: u32,
    timestamp_ns: u64,
}

impl AudioBuffer {
    /// Wraps interleaved samples (`frames × channels` of them).
    pub fn new(
        samples: PooledBuf<f32>,
        channels: u16,
        sample_rate: u32,
        timestamp_ns: u64,
    ) -> Result<Self, FrameError> {
        if channels == 0 || sample_rate == 0 || !samples.len().is_multiple_of(channels as usize) {
            return Err(FrameError::InvalidAudio {
                samples: samples.len(),
                channels,
                sample_rate,
            });
        }
        Ok(Self {
            samples,
            channels,
            sample_rate,
            timestamp_ns,
        })
    }

    /// Interleaved samples.
    pub fn samples(&self) -> &[f32] {
        &self.samples
    }

    /// Channel count.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Samples per second per channel.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Time of the first sample, ns.
    pub fn timestamp_ns(&self) -> u64 {
        self.timestamp_ns
    }

    /// The same samples stamped `timestamp_ns` (no copy).
    pub fn with_timestamp(mut self, timestamp_ns: u64) -> Self {
        self.timestamp_ns = timestamp_ns;
        self
    }

    /// Samples per channel.
    pub fn frames(&self) -> usize {
        self.samples.len() / self.channels as usize
    }

    /// Duration in ns.
    pub fn duration_ns(&self) -> u64 {
        self.frames() as u64 * 1_000_000_000 / u64::from(self.sample_rate)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn validates_and_measures() {
        let buf = AudioBuffer::new(PooledBuf::from_vec(vec![0.0; 96]), 2, 48_000, 5).unwrap();
        assert_eq!((buf.frames(), buf.duration_ns()), (48, 1_000_000));
        let err = AudioBuffer::new(PooledBuf::from_vec(vec![0.0; 3]), 2, 48_000, 0).unwrap_err();
        assert!(err.to_string().contains("3 samples for 2 channels"));
    }
}
