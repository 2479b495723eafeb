//! The best master clock algorithm of an ordinary slave: the foreign masters heard on the
//! port, their qualification and expiry, and the dataset comparison (IEEE 1588-2008 9.3.4).

use std::cmp::Ordering;

use crate::{Announce, Header, PortIdentity};

/// A master must send this many Announces within [`QUALIFY_WINDOW_INTERVALS`] before it can
/// be chosen (FOREIGN_MASTER_THRESHOLD).
const QUALIFY_ANNOUNCES: u32 = 2;
/// FOREIGN_MASTER_TIME_WINDOW, in the master's announce intervals.
const QUALIFY_WINDOW_INTERVALS: u64 = 4;
/// More foreign masters than this are not tracked (a flood cannot grow memory); a newcomer
/// to a full table takes the place of a worse or stale entry (see
/// [`MasterSelection::on_announce`]).
pub(crate) const MAX_FOREIGN_MASTERS: usize = 16;

/// The announce interval `2^log` s in ns, with the exponent clamped to sane values (1/128 s
/// to 64 s), since it comes from the network.
pub(crate) fn interval_ns(log_interval: i8) -> u64 {
    let log = log_interval.clamp(-7, 6);
    if log >= 0 {
        1_000_000_000 << log
    } else {
        1_000_000_000 >> (-log)
    }
}

/// One master heard on the port.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ForeignMaster {
    pub(crate) port: PortIdentity,
    pub(crate) announce: Announce,
    pub(crate) flags: u16,
    interval_ns: u64,
    /// Announces received within the qualification window (saturating).
    recent: u32,
    last_rx: u64,
}

/// Orders two masters, best first: the grandmaster datasets (priority1, clockClass,
/// clockAccuracy, offsetScaledLogVariance, priority2, identity), then for the same
/// grandmaster the path (stepsRemoved, then the sender's port identity).
pub(crate) fn compare(a: &ForeignMaster, b: &ForeignMaster) -> Ordering {
    let (x, y) = (&a.announce, &b.announce);
    if x.grandmaster != y.grandmaster {
        return (
            x.priority1,
            x.quality.class,
            x.quality.accuracy,
            x.quality.variance,
            x.priority2,
            x.grandmaster,
        )
            .cmp(&(
                y.priority1,
                y.quality.class,
                y.quality.accuracy,
                y.quality.variance,
                y.priority2,
                y.grandmaster,
            ));
    }
    (x.steps_removed, a.port).cmp(&(y.steps_removed, b.port))
}

/// The foreign master table.
#[derive(Debug, Default)]
pub(crate) struct MasterSelection {
    masters: Vec<ForeignMaster>,
}

impl MasterSelection {
    /// Records an Announce received at local time `now`.
    ///
    /// The table is bounded; when it is full, a newcomer replaces, in this order: the entry
    /// silent the longest past the foreign-master window (no Announce within
    /// [`QUALIFY_WINDOW_INTERVALS`] of its intervals), whatever the newcomer; else the worst
    /// unqualified entry, else the worst qualified one, each only if the newcomer is better
    /// than it. The best qualified master is never taken for stale: it stays until a better
    /// newcomer replaces it or its announce receipt timeout expires it
    /// ([`expire`](Self::expire)), however long that timeout is, and its Announces keep it
    /// qualified meanwhile. Qualified masters are thus never pushed out by a flood of one-shot
    /// Announces, and the best master never by a worse one: fake masters cannot lock the real
    /// grandmaster out. (A fake that is *better* and keeps announcing wins the BMCA as the
    /// standard says; PTP has no authentication, see docs/SECURITY.md.)
    pub(crate) fn on_announce(&mut self, header: &Header, announce: &Announce, now: u64) {
        let interval = interval_ns(header.log_interval);
        let best = self.best().map(|m| m.port);
        if let Some(m) = self.masters.iter_mut().find(|m| m.port == header.source) {
            let in_window = now.saturating_sub(m.last_rx) <= QUALIFY_WINDOW_INTERVALS * interval;
            // The chosen master stays qualified while its receipt timeout has not expired it,
            // even if it missed more Announces than the window holds.
            m.recent = if in_window || best == Some(m.port) {
                m.recent.saturating_add(1)
            } else {
                1
            };
            m.announce = *announce;
            m.flags = header.flags;
            m.interval_ns = interval;
            m.last_rx = now;
            return;
        }
        let newcomer = ForeignMaster {
            port: header.source,
            announce: *announce,
            flags: header.flags,
            interval_ns: interval,
            recent: 1,
            last_rx: now,
        };
        if self.masters.len() < MAX_FOREIGN_MASTERS {
            self.masters.push(newcomer);
        } else if let Some(i) = self.victim(&newcomer, now) {
            self.masters[i] = newcomer;
        }
    }

    /// The entry a newcomer to the full table replaces, if any (see `on_announce`).
    fn victim(&self, newcomer: &ForeignMaster, now: u64) -> Option<usize> {
        let silent = |m: &ForeignMaster| now.saturating_sub(m.last_rx);
        // The chosen master may miss Announces up to its receipt timeout, which can be
        // longer than the window.
        let best = self.best().map(|m| m.port);
        let stale = self
            .masters
            .iter()
            .enumerate()
            .filter(|(_, m)| Some(m.port) != best)
            .filter(|(_, m)| silent(m) > QUALIFY_WINDOW_INTERVALS * m.interval_ns)
            .max_by_key(|(_, m)| silent(m));
        if let Some((i, _)) = stale {
            return Some(i);
        }
        let worst = |qualified: bool| {
            self.masters
                .iter()
                .enumerate()
                .filter(|(_, m)| (m.recent >= QUALIFY_ANNOUNCES) == qualified)
                .max_by(|(_, a), (_, b)| compare(a, b))
        };
        match worst(false).or_else(|| worst(true)) {
            Some((i, m)) if compare(newcomer, m) == Ordering::Less => Some(i),
            _ => None,
        }
    }

    /// Masters tracked now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.masters.len()
    }

    /// Drops masters silent for `receipt_timeout` of their announce intervals; returns how
    /// many were dropped.
    pub(crate) fn expire(&mut self, now: u64, receipt_timeout: u8) -> usize {
        let before = self.masters.len();
        self.masters.retain(|m| {
            now.saturating_sub(m.last_rx) <= u64::from(receipt_timeout) * m.interval_ns
        });
        before - self.masters.len()
    }

    /// The best qualified master.
    pub(crate) fn best(&self) -> Option<&ForeignMaster> {
        self.masters
            .iter()
            .filter(|m| m.recent >= QUALIFY_ANNOUNCES)
            .min_by(|a, b| compare(a, b))
    }

    /// The record of `port`, if it is known.
    pub(crate) fn get(&self, port: PortIdentity) -> Option<&ForeignMaster> {
        self.masters.iter().find(|m| m.port == port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClockIdentity, ClockQuality, MessageType, PtpTimestamp};

    fn announce(gm: u8, priority1: u8, class: u8) -> Announce {
        Announce {
            origin: PtpTimestamp::default(),
            current_utc_offset: 37,
            priority1,
            quality: ClockQuality {
                class,
                accuracy: 0xfe,
                variance: 0xffff,
            },
            priority2: 128,
            grandmaster: ClockIdentity([gm; 8]),
            steps_removed: 0,
            time_source: 0xa0,
        }
    }

    fn header(sender: u8) -> Header {
        let source = PortIdentity {
            clock: ClockIdentity([sender; 8]),
            port: 1,
        };
        let mut h = Header::new(MessageType::Announce, source, 0);
        h.log_interval = 0;
        h
    }

    fn master(sender: u8, a: Announce) -> ForeignMaster {
        ForeignMaster {
            port: header(sender).source,
            announce: a,
            flags: 0,
            interval_ns: 1_000_000_000,
            recent: 2,
            last_rx: 0,
        }
    }

    #[test]
    fn datasets_compare_in_standard_order() {
        let base = announce(5, 128, 248);
        let better_p1 = announce(9, 127, 255);
        assert_eq!(
            compare(&master(9, better_p1), &master(5, base)),
            Ordering::Less
        );
        let better_class = announce(9, 128, 6);
        assert_eq!(
            compare(&master(9, better_class), &master(5, base)),
            Ordering::Less
        );
        let mut better_accuracy = base;
        better_accuracy.grandmaster = ClockIdentity([9; 8]);
        better_accuracy.quality.accuracy = 0x21;
        assert_eq!(
            compare(&master(9, better_accuracy), &master(5, base)),
            Ordering::Less
        );
        let mut better_variance = base;
        better_variance.grandmaster = ClockIdentity([9; 8]);
        better_variance.quality.variance = 0x4000;
        assert_eq!(
            compare(&master(9, better_variance), &master(5, base)),
            Ordering::Less
        );
        let mut better_p2 = base;
        better_p2.grandmaster = ClockIdentity([9; 8]);
        better_p2.priority2 = 1;
        assert_eq!(
            compare(&master(9, better_p2), &master(5, base)),
            Ordering::Less
        );
        // Everything equal: the lower identity wins.
        let twin = announce(4, 128, 248);
        assert_eq!(compare(&master(4, twin), &master(5, base)), Ordering::Less);
        // Same grandmaster: fewer steps, then the lower sender port.
        let mut far = base;
        far.steps_removed = 2;
        assert_eq!(
            compare(&master(1, far), &master(2, base)),
            Ordering::Greater
        );
        assert_eq!(compare(&master(1, base), &master(2, base)), Ordering::Less);
    }

    #[test]
    fn masters_qualify_after_two_announces_and_expire() {
        let mut table = MasterSelection::default();
        let s = 1_000_000_000;
        table.on_announce(&header(7), &announce(7, 128, 248), 0);
        assert!(table.best().is_none(), "one announce does not qualify");
        table.on_announce(&header(7), &announce(7, 128, 248), s);
        assert_eq!(table.best().map(|m| m.port), Some(header(7).source));
        // A better master appears and qualifies.
        table.on_announce(&header(3), &announce(3, 100, 248), s);
        table.on_announce(&header(3), &announce(3, 100, 248), 2 * s);
        assert_eq!(table.best().map(|m| m.port), Some(header(3).source));
        // It falls silent: after 3 intervals it is gone and the first one is chosen again.
        table.on_announce(&header(7), &announce(7, 128, 248), 4 * s);
        assert_eq!(table.expire(5 * s + 1, 3), 1);
        assert_eq!(table.best().map(|m| m.port), Some(header(7).source));
        assert!(table.get(header(3).source).is_none());
    }

    /// An Announce from fake master `n` (a distinct identity per `n`).
    fn fake(n: u16, priority1: u8) -> (Header, Announce) {
        let mut h = header(0);
        h.source.clock = ClockIdentity([0xFA, 0xCE, 0, 0, 0, 0, (n >> 8) as u8, n as u8]);
        let mut a = announce(0, priority1, 248);
        a.grandmaster = h.source.clock;
        (h, a)
    }

    #[test]
    fn a_flood_of_fake_masters_does_not_lock_out_the_grandmaster() {
        let s = 1_000_000_000;
        let gm = (header(7), announce(7, 128, 248));
        // 1: the table fills with worse fakes, each announcing twice (qualified), before the
        // real grandmaster is heard; it still gets in and is chosen.
        let mut table = MasterSelection::default();
        for n in 0..MAX_FOREIGN_MASTERS as u16 {
            let (h, a) = fake(n, 200);
            table.on_announce(&h, &a, 0);
            table.on_announce(&h, &a, s / 2);
        }
        assert_eq!(table.len(), MAX_FOREIGN_MASTERS);
        table.on_announce(&gm.0, &gm.1, s);
        table.on_announce(&gm.0, &gm.1, 2 * s);
        assert_eq!(table.best().map(|m| m.port), Some(gm.0.source));

        // 2: with the grandmaster qualified, thousands of one-shot fakes, better and worse,
        // cannot push it out: BMCA still picks it.
        let mut table = MasterSelection::default();
        table.on_announce(&gm.0, &gm.1, 0);
        table.on_announce(&gm.0, &gm.1, s);
        for n in 0..5000u16 {
            let (h, a) = fake(n, if n % 2 == 0 { 0 } else { 255 });
            table.on_announce(&h, &a, s + u64::from(n) * 1000);
        }
        assert_eq!(table.len(), MAX_FOREIGN_MASTERS);
        assert!(table.get(gm.0.source).is_some());
        assert_eq!(table.best().map(|m| m.port), Some(gm.0.source));

        // 3: a flood that went silent leaves stale entries, replaced by the next newcomers.
        table.on_announce(&gm.0, &gm.1, 20 * s);
        let (h, a) = fake(9999, 250);
        table.on_announce(&h, &a, 20 * s);
        assert!(table.get(h.source).is_some(), "a stale entry made room");
    }

    #[test]
    fn a_grandmaster_within_its_receipt_timeout_is_not_stale() {
        let s = 1_000_000_000;
        let gm = (header(7), announce(7, 128, 248));
        let mut table = MasterSelection::default();
        table.on_announce(&gm.0, &gm.1, 0);
        table.on_announce(&gm.0, &gm.1, s);
        // Worse masters fill the rest of the table and keep announcing.
        let fakes: Vec<_> = (0..MAX_FOREIGN_MASTERS as u16 - 1)
            .map(|n| fake(n, 200))
            .collect();
        for t in 1..=7 {
            for (h, a) in &fakes {
                table.on_announce(h, a, t * s);
            }
        }
        // The grandmaster has missed 6 Announces (past the 4-interval window) but, with a
        // receipt timeout of 8, it is still the master; a worse newcomer must not replace it.
        assert_eq!(table.expire(7 * s, 8), 0);
        let (h, a) = fake(9999, 250);
        table.on_announce(&h, &a, 7 * s);
        assert!(
            table.get(h.source).is_none(),
            "the worse newcomer found no room"
        );
        assert_eq!(table.best().map(|m| m.port), Some(gm.0.source));
        // Its next Announce finds it still qualified and chosen.
        table.on_announce(&gm.0, &gm.1, 8 * s);
        assert_eq!(table.best().map(|m| m.port), Some(gm.0.source));
        // A silent entry that is not the chosen master is stale and makes room.
        let mut table = MasterSelection::default();
        for (h, a) in &fakes {
            table.on_announce(h, a, 0);
        }
        for t in 0..=7 {
            table.on_announce(&gm.0, &gm.1, t * s);
        }
        table.on_announce(&h, &a, 7 * s);
        assert!(table.get(h.source).is_some(), "a stale entry made room");
    }

    #[test]
    fn hostile_intervals_are_clamped() {
        assert_eq!(interval_ns(0), 1_000_000_000);
        assert_eq!(interval_ns(-3), 125_000_000);
        assert_eq!(interval_ns(127), 64_000_000_000);
        assert_eq!(interval_ns(-128), 1_000_000_000 >> 7);
    }
}
