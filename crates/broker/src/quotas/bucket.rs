//! A token bucket measuring one sensor's use against its quota: it fills at the quota's rate up
//! to one `QUOTA_BURST_MS` of it, each use takes its amount (the level may go below zero: a
//! use is never refused, only followed by a wait), and a level below zero is the time to wait
//! before the rate is back within the quota. Time is an argument.

use sluice_types::limits::QUOTA_BURST_MS;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Bucket {
    level: f64,
    at_ms: u64,
}

impl Bucket {
    /// A full bucket for `rate_per_second`.
    pub(crate) fn new(rate_per_second: f64, now_ms: u64) -> Bucket {
        Bucket {
            level: burst(rate_per_second),
            at_ms: now_ms,
        }
    }

    /// Takes `amount` at `now_ms`; the milliseconds to wait before the rate is within
    /// `rate_per_second` again (0: within it).
    pub(crate) fn take(&mut self, amount: f64, rate_per_second: f64, now_ms: u64) -> u64 {
        self.refill(rate_per_second, now_ms);
        self.level -= amount;
        self.wait_ms(rate_per_second)
    }

    /// The wait owed at `now_ms`, taking nothing.
    pub(crate) fn owed_ms(&mut self, rate_per_second: f64, now_ms: u64) -> u64 {
        self.refill(rate_per_second, now_ms);
        self.wait_ms(rate_per_second)
    }

    /// Whether the bucket is full: forgetting it changes nothing.
    pub(crate) fn is_full(&mut self, rate_per_second: f64, now_ms: u64) -> bool {
        self.refill(rate_per_second, now_ms);
        self.level >= burst(rate_per_second)
    }

    fn refill(&mut self, rate_per_second: f64, now_ms: u64) {
        let elapsed_ms = now_ms.saturating_sub(self.at_ms) as f64;
        self.level =
            (self.level + elapsed_ms * rate_per_second / 1000.0).min(burst(rate_per_second));
        self.at_ms = self.at_ms.max(now_ms);
    }

    fn wait_ms(&self, rate_per_second: f64) -> u64 {
        if self.level >= 0.0 {
            0
        } else {
            (-self.level * 1000.0 / rate_per_second).ceil() as u64
        }
    }
}

fn burst(rate_per_second: f64) -> f64 {
    rate_per_second * QUOTA_BURST_MS as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_free_then_the_rate_holds() {
        let rate = 1000.0; // per second; the burst is 1,000
        let mut b = Bucket::new(rate, 0);
        assert_eq!(b.take(1000.0, rate, 0), 0, "the burst");
        assert_eq!(b.take(500.0, rate, 0), 500, "half a second owed");
        assert_eq!(b.owed_ms(rate, 200), 300);
        assert_eq!(b.owed_ms(rate, 500), 0);
        // Using exactly the rate, in steps, owes nothing more.
        for step in 1..=10 {
            assert_eq!(b.take(100.0, rate, 500 + step * 100), 0);
        }
    }

    #[test]
    fn a_steady_excess_is_held_to_the_rate() {
        // A client that sends 10 units every time it may: over 100 s it gets 100 s of rate,
        // plus the burst.
        let rate = 50.0;
        let mut b = Bucket::new(rate, 0);
        let (mut now, mut sent) = (0u64, 0.0);
        while now < 100_000 {
            sent += 10.0;
            now += b.take(10.0, rate, now).max(1);
        }
        let expected = rate * 100.0 + rate;
        assert!(
            (sent - expected).abs() / expected < 0.02,
            "{sent} against {expected}"
        );
    }

    #[test]
    fn a_full_bucket_can_be_forgotten() {
        let mut b = Bucket::new(10.0, 0);
        assert!(b.is_full(10.0, 0));
        b.take(5.0, 10.0, 0);
        assert!(!b.is_full(10.0, 100));
        assert!(b.is_full(10.0, 500));
    }
}
