//! The latest audio per channel, for drawing: a ring of a fixed number of frames per
//! channel, with non-finite samples flushed to 0 (counted) and each channel's peak since the
//! last frame drawn.

/// The last `len` frames of each channel.
pub(crate) struct History {
    channels: usize,
    rate: u32,
    len: usize,
    /// Channel-major: channel `c` is `data[c * len .. (c + 1) * len]`, a ring.
    data: Vec<f32>,
    /// Where the next frame goes.
    write: usize,
    /// Largest absolute sample per channel since [`History::take_peaks`].
    peaks: Vec<f32>,
    /// Whether any frame arrived since [`History::take_peaks`].
    fresh: bool,
}

impl History {
    /// Room for `len` frames (at least 1) of `channels` channels at `rate`, all silence.
    pub(crate) fn new(channels: u16, rate: u32, len: usize) -> Self {
        let (channels, len) = (usize::from(channels).max(1), len.max(1));
        Self {
            channels,
            rate,
            len,
            data: vec![0.0; channels * len],
            write: 0,
            peaks: vec![0.0; channels],
            fresh: false,
        }
    }

    pub(crate) fn channels(&self) -> usize {
        self.channels
    }

    pub(crate) fn rate(&self) -> u32 {
        self.rate
    }

    /// Whether it holds this format.
    pub(crate) fn fits(&self, channels: u16, rate: u32) -> bool {
        self.channels == usize::from(channels) && self.rate == rate
    }

    /// Appends interleaved `samples` (whole frames); returns how many were not finite (they
    /// are kept as 0).
    pub(crate) fn push(&mut self, samples: &[f32]) -> u64 {
        let mut non_finite = 0;
        // Only the newest `len` frames can survive.
        let frames = samples.len() / self.channels;
        let skip = frames.saturating_sub(self.len);
        for frame in samples[..skip * self.channels].chunks_exact(self.channels) {
            for (peak, s) in self.peaks.iter_mut().zip(frame) {
                if s.is_finite() {
                    *peak = peak.max(s.abs());
                } else {
                    non_finite += 1;
                }
            }
        }
        if skip > 0 {
            self.write = (self.write + skip) % self.len;
        }
        for frame in samples[skip * self.channels..].chunks_exact(self.channels) {
            for (c, &s) in frame.iter().enumerate() {
                let s = if s.is_finite() {
                    s
                } else {
                    non_finite += 1;
                    0.0
                };
                self.data[c * self.len + self.write] = s;
                let peak = &mut self.peaks[c];
                *peak = peak.max(s.abs());
            }
            self.write += 1;
            if self.write == self.len {
                self.write = 0;
            }
        }
        self.fresh |= frames > 0;
        non_finite
    }

    /// Copies channel `channel`'s newest `out.len()` frames (at most `len`), oldest first.
    pub(crate) fn latest(&self, channel: usize, out: &mut [f32]) {
        let n = out.len().min(self.len);
        let ring = &self.data[channel * self.len..(channel + 1) * self.len];
        let start = (self.write + self.len - n) % self.len;
        let first = (self.len - start).min(n);
        out[..first].copy_from_slice(&ring[start..start + first]);
        out[first..n].copy_from_slice(&ring[..n - first]);
    }

    /// The newest `out.len()` frames mixed to mono (the mean of the channels), oldest first.
    pub(crate) fn latest_mono(&self, out: &mut [f32]) {
        self.latest(0, out);
        if self.channels == 1 {
            return;
        }
        let n = out.len().min(self.len);
        let start = (self.write + self.len - n) % self.len;
        for c in 1..self.channels {
            let ring = &self.data[c * self.len..(c + 1) * self.len];
            for (i, o) in out[..n].iter_mut().enumerate() {
                let mut j = start + i;
                if j >= self.len {
                    j -= self.len;
                }
                *o += ring[j];
            }
        }
        let scale = 1.0 / self.channels as f32;
        out[..n].iter_mut().for_each(|o| *o *= scale);
    }

    /// Each channel's largest absolute sample since the last call, or `None` when no audio
    /// arrived since; resets them.
    pub(crate) fn take_peaks(&mut self, out: &mut [f32]) -> bool {
        let fresh = self.fresh;
        if fresh {
            for (o, p) in out.iter_mut().zip(&mut self.peaks) {
                *o = *p;
                *p = 0.0;
            }
        }
        self.fresh = false;
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_frames_in_order_and_flushes_nan() {
        let mut h = History::new(2, 48_000, 4);
        let bad = h.push(&[1.0, -1.0, 2.0, f32::NAN, 3.0, -3.0]);
        assert_eq!(bad, 1);
        let mut out = [9.0; 4];
        h.latest(0, &mut out);
        assert_eq!(out, [0.0, 1.0, 2.0, 3.0]);
        h.latest(1, &mut out[..2]);
        assert_eq!(out[..2], [0.0, -3.0]);
        // More than fits: only the newest survive.
        h.push(&[
            4.0,
            0.0,
            5.0,
            0.0,
            6.0,
            0.0,
            7.0,
            0.0,
            8.0,
            0.0,
            f32::INFINITY,
            0.0,
        ]);
        h.latest(0, &mut out);
        assert_eq!(out, [6.0, 7.0, 8.0, 0.0]);
        let mut mono = [0.0; 2];
        h.latest_mono(&mut mono);
        assert_eq!(mono, [4.0, 0.0]);
        let mut peaks = [0.0; 2];
        assert!(h.take_peaks(&mut peaks));
        assert_eq!(peaks, [8.0, 3.0]);
        assert!(!h.take_peaks(&mut peaks));
    }
}
