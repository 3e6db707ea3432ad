//! The generic cell rate algorithm (GCRA), the one place its arithmetic lives: a window of
//! `limit` requests per `period` admits a burst of up to `limit`, then one request every
//! `period / limit` (the emission interval, rounded up to the microsecond so the sustained
//! rate is never above the limit). Its whole state is one time per window, the theoretical
//! arrival time (TAT): when the window would be empty again if nothing more came.
//!
//! The bound it keeps (property-tested below): over any stretch of time `L`, a window admits at
//! most `limit + floor(L / interval)` requests. Times are microseconds since the epoch.

/// One window of a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub limit: u64,
    pub period_us: i64,
}

impl Window {
    pub fn new(limit: u64, period_us: i64) -> Self {
        Self {
            limit: limit.max(1),
            period_us: period_us.max(1),
        }
    }

    /// The emission interval: sustained, one request per interval (rounded up).
    pub fn interval(&self) -> i64 {
        let limit = i64::try_from(self.limit).unwrap_or(i64::MAX);
        ((self.period_us + limit - 1) / limit).max(1)
    }

    /// How far ahead of now the TAT may run: `limit` requests at once.
    pub fn tolerance(&self) -> i64 {
        self.interval()
            .saturating_mul(i64::try_from(self.limit).unwrap_or(i64::MAX))
    }

    /// Requests the window would admit at once now, given its TAT.
    pub fn remaining(&self, tat: i64, now: i64) -> u64 {
        let used = tat.max(now) - now;
        let room = (self.tolerance() - used).max(0) / self.interval();
        (room as u64).min(self.limit)
    }

    /// Microseconds until the window is full again (nothing in flight).
    pub fn reset_after(&self, tat: i64, now: i64) -> i64 {
        (tat - now).max(0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Admitted: the windows' new TATs, in order.
    Admitted(Vec<i64>),
    /// Refused now; `retry_after_us` from now the same request would be admitted (if nothing
    /// else is taken meanwhile).
    Refused { retry_after_us: i64 },
    /// More than a window's limit at once: never admitted.
    TooLarge,
}

/// Takes `n` requests from every window at `now`, all or nothing. `tats` are the windows'
/// stored TATs (a missing one is any time in the past, e.g. 0).
pub fn take(windows: &[Window], tats: &[i64], now: i64, n: u64) -> Decision {
    let mut next = Vec::with_capacity(windows.len());
    let mut wait = 0i64;
    for (i, w) in windows.iter().enumerate() {
        if n > w.limit {
            return Decision::TooLarge;
        }
        let tat = tats.get(i).copied().unwrap_or(0).max(now);
        let cost = w
            .interval()
            .saturating_mul(i64::try_from(n).unwrap_or(i64::MAX));
        let new_tat = tat.saturating_add(cost);
        let admit_at = new_tat - w.tolerance();
        wait = wait.max(admit_at - now);
        next.push(new_tat);
    }
    if wait > 0 {
        Decision::Refused {
            retry_after_us: wait,
        }
    } else {
        Decision::Admitted(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SEC: i64 = 1_000_000;

    #[test]
    fn a_burst_of_the_limit_then_one_per_interval() {
        let w = [Window::new(100, 60 * SEC)];
        let mut tats = vec![0];
        let now = 1_000 * SEC;
        for _ in 0..100 {
            match take(&w, &tats, now, 1) {
                Decision::Admitted(next) => tats = next,
                other => panic!("refused inside the burst: {other:?}"),
            }
        }
        assert_eq!(w[0].remaining(tats[0], now), 0);
        // The next one is 0.6 s away: 60 s / 100.
        assert_eq!(
            take(&w, &tats, now, 1),
            Decision::Refused {
                retry_after_us: 600_000
            }
        );
        assert!(matches!(
            take(&w, &tats, now + 600_000, 1),
            Decision::Admitted(_)
        ));
        assert_eq!(w[0].reset_after(tats[0], now), 60 * SEC);
        assert_eq!(w[0].remaining(tats[0], now + 60 * SEC), 100);
    }

    #[test]
    fn every_window_must_admit_and_the_longest_wait_is_told() {
        let w = [Window::new(3, 60 * SEC), Window::new(4, 3_600 * SEC)];
        let mut tats = vec![0, 0];
        let mut now = 0;
        let mut admitted = 0;
        for _ in 0..10 {
            match take(&w, &tats, now, 1) {
                Decision::Admitted(next) => {
                    tats = next;
                    admitted += 1;
                }
                Decision::Refused { retry_after_us } => now += retry_after_us,
                Decision::TooLarge => unreachable!(),
            }
        }
        // Three at once, the fourth 20 s later (the minute window), then the hour's
        // 15 minutes per request decides.
        assert!(admitted >= 5);
        assert!(now >= 15 * 60 * SEC);
        assert_eq!(take(&w, &tats, now, 5), Decision::TooLarge);
    }

    #[test]
    fn a_rate_that_does_not_divide_is_never_exceeded() {
        // 7 a minute: 8,571,429 µs apart (rounded up), 7 at once.
        let w = Window::new(7, 60 * SEC);
        assert_eq!(w.interval(), 8_571_429);
        assert_eq!(w.remaining(0, SEC), 7);
    }

    proptest! {
        /// Over every stretch between two requests, a window admits at most
        /// `limit + floor(stretch / interval)` of them.
        #[test]
        fn admissions_stay_within_the_bound(
            limit in 1u64..50,
            period_s in 1i64..120,
            steps in proptest::collection::vec((0i64..3 * SEC, 1u64..4), 1..150),
        ) {
            let w = [Window::new(limit, period_s * SEC)];
            let mut tats = vec![0];
            let mut now = 10 * SEC;
            let mut admitted: Vec<(i64, u64)> = Vec::new();
            for (advance, n) in steps {
                now += advance;
                if let Decision::Admitted(next) = take(&w, &tats, now, n) {
                    tats = next;
                    admitted.push((now, n));
                }
            }
            let interval = w[0].interval();
            for (i, (start, _)) in admitted.iter().enumerate() {
                let mut total = 0;
                for (at, n) in &admitted[i..] {
                    total += n;
                    let bound = limit + ((at - start) / interval) as u64;
                    prop_assert!(total <= bound, "{total} admitted in {} µs, bound {bound}", at - start);
                }
            }
        }
    }
}
