//! Time comes from here, never from `Utc::now()` in a service, so tests and demos can move it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

pub type SharedClock = Arc<dyn Clock>;

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The wall clock plus an offset that only grows: tests and demos advance it to watch trials
/// end and renewals run. Time never goes backwards, so ordering by time stays meaningful.
#[derive(Debug, Default)]
pub struct TestClock {
    offset_ms: AtomicI64,
    /// When set, time stands still at `frozen + offset` (deterministic tests).
    frozen: Option<DateTime<Utc>>,
}

impl TestClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// A clock that stands at `at` until advanced.
    pub fn frozen_at(at: DateTime<Utc>) -> Self {
        Self {
            offset_ms: AtomicI64::new(0),
            frozen: Some(at),
        }
    }

    /// Moves time forward; a negative duration is ignored. Returns the new now.
    pub fn advance(&self, by: Duration) -> DateTime<Utc> {
        let ms = by.num_milliseconds().max(0);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
        self.now()
    }

    pub fn offset(&self) -> Duration {
        Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        self.frozen.unwrap_or_else(Utc::now) + self.offset()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_clock_moves_forward_only() {
        let clock = TestClock::new();
        let before = clock.now();
        clock.advance(Duration::days(3));
        assert!(clock.now() - before >= Duration::days(3));
        clock.advance(Duration::days(-10));
        assert!(clock.now() - before >= Duration::days(3));
    }
}
