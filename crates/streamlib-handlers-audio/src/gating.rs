//! Gated integration over 100 ms steps (EBU Tech 3341 / 3342, BS.1770-4): integrated
//! loudness from the 400 ms blocks, loudness range from the 3 s blocks, both kept in fixed
//! histograms of 0.01 LU bins from -70 to +10 LUFS, the way FFmpeg's `ebur128` filter keeps
//! them, so memory stays fixed however long the run and results agree with it.
//!
//! (The `ebur128` crate gates too, but takes a short-term block for the range once a second
//! where Tech 3342 asks for at least ten a second, and bins its histogram at 0.1 LU.)

/// Blocks quieter than this are ignored (the absolute gate), LUFS.
const ABSOLUTE_GATE: f64 = -70.0;
/// Top of the histogram, LUFS (louder blocks fall in the last bin).
const TOP: f64 = 10.0;
/// Bins per LU.
const GRAIN: f64 = 100.0;
const BINS: usize = ((TOP - ABSOLUTE_GATE) * GRAIN) as usize + 1;

/// Mean-square energy to LUFS (BS.1770's -0.691 dB offset).
pub(crate) fn lufs(energy: f64) -> f64 {
    -0.691 + 10.0 * energy.log10()
}

/// LUFS to mean-square energy.
pub(crate) fn energy(lufs: f64) -> f64 {
    10f64.powf((lufs + 0.691) / 10.0)
}

/// A histogram of block loudness with the exact energy each bin collected.
pub(crate) struct Gate {
    counts: Box<[u64]>,
    energies: Box<[f64]>,
    kept_energy: f64,
    kept: u64,
}

fn bin(lufs: f64) -> usize {
    (((lufs - ABSOLUTE_GATE) * GRAIN) as usize).min(BINS - 1)
}

impl Gate {
    pub(crate) fn new() -> Self {
        Self {
            counts: vec![0; BINS].into_boxed_slice(),
            energies: vec![0.0; BINS].into_boxed_slice(),
            kept_energy: 0.0,
            kept: 0,
        }
    }

    /// Adds one block's energy (ignored below the absolute gate or when not finite).
    pub(crate) fn add(&mut self, block_energy: f64) {
        let l = lufs(block_energy);
        if !l.is_finite() || l < ABSOLUTE_GATE {
            return;
        }
        let i = bin(l);
        self.counts[i] += 1;
        self.energies[i] += block_energy;
        self.kept_energy += block_energy;
        self.kept += 1;
    }

    /// The first bin at or above the relative gate `offset` LU below the mean of the blocks
    /// above the absolute gate; `None` before any such block.
    fn relative_gate(&self, offset: f64) -> Option<usize> {
        (self.kept > 0)
            .then(|| bin((lufs(self.kept_energy / self.kept as f64) + offset).max(ABSOLUTE_GATE)))
    }

    /// Integrated loudness: the mean energy of the blocks above the relative gate (-10 LU),
    /// LUFS; `-inf` before any block passed the gates.
    pub(crate) fn integrated(&self) -> f64 {
        let Some(gate) = self.relative_gate(-10.0) else {
            return f64::NEG_INFINITY;
        };
        let count: u64 = self.counts[gate..].iter().sum();
        let sum: f64 = self.energies[gate..].iter().sum();
        if count == 0 {
            f64::NEG_INFINITY
        } else {
            lufs(sum / count as f64)
        }
    }

    /// Loudness range: the spread from the 10th to the 95th percentile of the blocks above
    /// the relative gate (-20 LU), LU; 0 before any block.
    pub(crate) fn range(&self) -> f64 {
        let Some(gate) = self.relative_gate(-20.0) else {
            return 0.0;
        };
        let total: u64 = self.counts[gate..].iter().sum();
        if total == 0 {
            return 0.0;
        }
        let at = |i: usize| i as f64 / GRAIN + ABSOLUTE_GATE;
        let low_rank = (0.10 * total as f64 + 0.5) as u64;
        let high_rank = (0.95 * total as f64 + 0.5) as u64;
        let mut seen = 0;
        let mut low = None;
        let mut high = None;
        for (i, &c) in self.counts.iter().enumerate().skip(gate) {
            seen += c;
            if low.is_none() && c > 0 && seen >= low_rank.max(1) {
                low = Some(at(i));
            }
            if c > 0 && seen >= high_rank.max(1) {
                high = Some(at(i));
                break;
            }
        }
        match (low, high) {
            (Some(l), Some(h)) => h - l,
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_blocks_integrate_to_their_level_with_no_range() {
        let mut g = Gate::new();
        assert_eq!(g.integrated(), f64::NEG_INFINITY);
        for _ in 0..100 {
            g.add(energy(-23.0));
        }
        g.add(energy(-80.0)); // below the absolute gate
        assert!((g.integrated() + 23.0).abs() < 1e-9);
        assert_eq!(g.range(), 0.0);
        // Two levels 10 LU apart in equal parts: the range spans them.
        for _ in 0..100 {
            g.add(energy(-33.0));
        }
        assert!((g.range() - 10.0).abs() < 0.02, "{}", g.range());
        // The quiet half is 10 LU below the mean... and above its gate: integrated between.
        assert!(g.integrated() < -23.0 && g.integrated() > -33.0);
    }
}
