//! Failed authentications per source address, as token buckets: an address may fail
//! `SASL_FAILURES_PER_ADDRESS_BURST` times in a row and earns
//! `SASL_FAILURES_PER_ADDRESS_PER_SECOND` more each second; past that, its attempts are
//! refused without being checked. At most `SASL_FAILURE_ADDRESSES_MAX` addresses are
//! tracked: a flood from many addresses costs a fixed amount of memory.

use sluice_types::limits::{
    SASL_FAILURE_ADDRESSES_MAX, SASL_FAILURES_PER_ADDRESS_BURST,
    SASL_FAILURES_PER_ADDRESS_PER_SECOND,
};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Failures the address may still have.
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refilled(self, now: Instant) -> Bucket {
        let earned = now.saturating_duration_since(self.at).as_secs_f64()
            * f64::from(SASL_FAILURES_PER_ADDRESS_PER_SECOND);
        Bucket {
            tokens: (self.tokens + earned).min(f64::from(SASL_FAILURES_PER_ADDRESS_BURST)),
            at: now,
        }
    }

    fn full(&self) -> bool {
        self.tokens >= f64::from(SASL_FAILURES_PER_ADDRESS_BURST)
    }
}

#[derive(Debug, Default)]
pub(crate) struct FailedLogins {
    buckets: HashMap<IpAddr, Bucket>,
}

impl FailedLogins {
    /// Whether `address` may try to authenticate now.
    pub(crate) fn may_try(&mut self, address: IpAddr, now: Instant) -> bool {
        match self.buckets.get_mut(&address) {
            None => true,
            Some(bucket) => {
                *bucket = bucket.refilled(now);
                bucket.tokens >= 1.0
            }
        }
    }

    /// Counts a failure of `address`.
    pub(crate) fn failed(&mut self, address: IpAddr, now: Instant) {
        if !self.buckets.contains_key(&address) && self.buckets.len() >= SASL_FAILURE_ADDRESSES_MAX
        {
            self.make_room(now);
        }
        let bucket = self.buckets.entry(address).or_insert(Bucket {
            tokens: f64::from(SASL_FAILURES_PER_ADDRESS_BURST),
            at: now,
        });
        *bucket = bucket.refilled(now);
        bucket.tokens = (bucket.tokens - 1.0).max(0.0);
    }

    /// Forgets addresses whose buckets have refilled (they carry nothing), else the one with
    /// the fewest failures outstanding.
    fn make_room(&mut self, now: Instant) {
        self.buckets.retain(|_, b| !b.refilled(now).full());
        if self.buckets.len() >= SASL_FAILURE_ADDRESSES_MAX {
            let fullest = self
                .buckets
                .iter()
                .max_by(|a, b| {
                    a.1.refilled(now)
                        .tokens
                        .total_cmp(&b.1.refilled(now).tokens)
                })
                .map(|(address, _)| *address);
            if let Some(address) = fullest {
                self.buckets.remove(&address);
            }
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_address_is_stopped_after_its_burst_and_earns_tries_back() {
        let mut failed = FailedLogins::default();
        let address: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let start = Instant::now();
        for _ in 0..SASL_FAILURES_PER_ADDRESS_BURST {
            assert!(failed.may_try(address, start));
            failed.failed(address, start);
        }
        assert!(!failed.may_try(address, start), "the burst is spent");
        assert!(
            failed.may_try(other, start),
            "another address is not affected"
        );
        let one_earned =
            Duration::from_secs_f64(1.0 / f64::from(SASL_FAILURES_PER_ADDRESS_PER_SECOND));
        assert!(failed.may_try(address, start + one_earned));
        failed.failed(address, start + one_earned);
        assert!(!failed.may_try(address, start + one_earned));
    }

    #[test]
    fn many_addresses_cost_a_bounded_amount_of_memory() {
        let mut failed = FailedLogins::default();
        let now = Instant::now();
        for i in 0..(SASL_FAILURE_ADDRESSES_MAX as u32 + 500) {
            failed.failed(IpAddr::from(i.to_be_bytes()), now);
        }
        assert!(failed.tracked() <= SASL_FAILURE_ADDRESSES_MAX);
    }
}
