//! Bookkeeping both jitter buffers (video and audio) share: which source they follow (the
//! SSRC lock and its takeover after silence), when a run of unplaceable packets means the
//! source restarted, and how a sequence verdict is counted.

use crate::rtp::SeqVerdict;

/// How long a jitter buffer's SSRC must be silent before a packet of another SSRC takes the
/// stream over (a sender that restarted with a new SSRC), 500 ms.
const SSRC_TAKEOVER_NS: u64 = 500_000_000;

/// Packets in a row that a receiver could not place because they look far older than its
/// stream. After [`StaleRun::LIMIT`] of them the source has restarted its numbering or
/// stepped its clock, and the receiver follows it instead of dropping everything as late;
/// a few stray old packets never get there.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct StaleRun(u32);

impl StaleRun {
    /// Packets in a row that make a resync.
    pub(crate) const LIMIT: u32 = 16;

    /// Counts one more; true (and the count starts over) when it reaches the limit.
    pub(crate) fn stale(&mut self) -> bool {
        self.0 += 1;
        if self.0 >= Self::LIMIT {
            self.0 = 0;
            return true;
        }
        false
    }

    /// A packet found its place: the run is over.
    pub(crate) fn placed(&mut self) {
        self.0 = 0;
    }
}

/// What [`SourceLock::admit`] decided for a packet's SSRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// The stream's source (or the first one seen, now locked).
    Ours,
    /// Another source while ours is live (or pinned): count and drop it.
    Foreign,
    /// Another source after ours went silent: it is the stream's now; what was held for the
    /// old one must leave first.
    TakeOver,
}

/// The SSRC a jitter buffer follows. The first valid packet's SSRC is locked; another may
/// take over only after [`SSRC_TAKEOVER_NS`] of silence (a sender restarted with a new SSRC),
/// never when the SSRC was pinned (an SDP's `a=ssrc:`). Only a receiver's source-address
/// filter tells a restarted sender from a stranger on the same port: without one, a stranger
/// can take over a stream that went silent, never a live one.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SourceLock {
    ssrc: Option<u32>,
    pinned: bool,
    last_packet_ns: u64,
}

impl SourceLock {
    /// Accepts only `ssrc`, for good.
    pub(crate) fn pin(&mut self, ssrc: u32) {
        self.ssrc = Some(ssrc);
        self.pinned = true;
    }

    /// The SSRC followed, once there is one.
    pub(crate) fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    /// Decides for a valid packet of `ssrc` that arrived at `now_ns`; a packet that is
    /// [`Ours`](Admission::Ours) or [`TakeOver`](Admission::TakeOver) keeps the source alive.
    pub(crate) fn admit(&mut self, ssrc: u32, now_ns: u64) -> Admission {
        let admission = match self.ssrc {
            Some(ours) if ours != ssrc => {
                if self.pinned || now_ns.saturating_sub(self.last_packet_ns) < SSRC_TAKEOVER_NS {
                    return Admission::Foreign;
                }
                Admission::TakeOver
            }
            _ => Admission::Ours,
        };
        self.ssrc = Some(ssrc);
        self.last_packet_ns = now_ns;
        admission
    }
}

/// Counts a sequence verdict (reordered, duplicate, too old as late) and gives the unwrapped
/// number of a packet to place, `None` for one to drop.
pub(crate) fn placeable(
    verdict: SeqVerdict,
    reordered: &mut u64,
    duplicates: &mut u64,
    late: &mut u64,
) -> Option<u64> {
    match verdict {
        SeqVerdict::InOrder { seq, .. } => Some(seq),
        SeqVerdict::Reordered { seq } => {
            *reordered += 1;
            Some(seq)
        }
        SeqVerdict::Duplicate => {
            *duplicates += 1;
            None
        }
        SeqVerdict::TooOld => {
            *late += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_takes_over_only_after_silence_and_never_when_pinned() {
        let mut lock = SourceLock::default();
        assert_eq!(lock.admit(1, 0), Admission::Ours);
        assert_eq!(lock.admit(2, 100_000_000), Admission::Foreign);
        assert_eq!(lock.admit(1, 200_000_000), Admission::Ours);
        // 500 ms after ours was last heard from.
        assert_eq!(lock.admit(2, 699_999_999), Admission::Foreign);
        assert_eq!(lock.admit(2, 700_000_000), Admission::TakeOver);
        assert_eq!(
            (lock.ssrc(), lock.admit(2, 700_000_001)),
            (Some(2), Admission::Ours)
        );
        let mut pinned = SourceLock::default();
        pinned.pin(7);
        assert_eq!(pinned.admit(8, u64::MAX), Admission::Foreign);
        assert_eq!(pinned.ssrc(), Some(7));
    }

    #[test]
    fn verdicts_are_counted() {
        let (mut r, mut d, mut l) = (0, 0, 0);
        let mut count = |v| placeable(v, &mut r, &mut d, &mut l);
        assert_eq!(count(SeqVerdict::InOrder { seq: 5, gap: 0 }), Some(5));
        assert_eq!(count(SeqVerdict::Reordered { seq: 4 }), Some(4));
        assert_eq!(count(SeqVerdict::Duplicate), None);
        assert_eq!(count(SeqVerdict::TooOld), None);
        assert_eq!((r, d, l), (1, 1, 1));
    }
}
