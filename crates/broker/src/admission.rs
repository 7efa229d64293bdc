//! Which connections are let in: at most `max_connections_per_ip` open at once from one
//! address (Kafka's `max.connections.per.ip`), with per-address exceptions
//! (`max.connections.per.ip.overrides`), and at most as many client connections as the
//! process's descriptors allow with a reserve left for files (`client_connections_max`). The
//! accept loop enforces the broker-wide cap; this module computes it and counts per address.

use sluice_types::limits::CONNECTIONS_MAX;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Descriptors kept for everything but client connections (segment files, checkpoints,
/// directory syncs, the internal listener): at least this many, or a quarter of the limit.
const DESCRIPTORS_RESERVED_MIN: u64 = 256;

/// Raises the process's soft descriptor limit to its hard limit (as Go's runtime does), then
/// returns how many client connections fit under it with the reserve kept, at most
/// `CONNECTIONS_MAX`. So clients alone cannot use up the descriptors that segment rolls and
/// fsyncs need: under `ulimit -n 1024` that is 768 connections.
pub(crate) fn client_connections_max() -> usize {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let mut soft = limit.current.unwrap_or(u64::MAX);
    if let Some(hard) = limit.maximum
        && hard > soft
        && setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(hard),
                maximum: Some(hard),
            },
        )
        .is_ok()
    {
        soft = hard;
    }
    let reserve = DESCRIPTORS_RESERVED_MIN.max(soft / 4);
    let fit = soft.saturating_sub(reserve).max(1);
    usize::try_from(fit)
        .unwrap_or(usize::MAX)
        .min(CONNECTIONS_MAX)
}

#[derive(Debug)]
pub(crate) struct Admission {
    per_ip_max: usize,
    overrides: HashMap<IpAddr, usize>,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// A connection's place in its address's count, given back when dropped.
#[derive(Debug)]
pub(crate) struct Admitted {
    /// None for a connection outside the per-address counts.
    admission: Option<Arc<Admission>>,
    ip: IpAddr,
}

impl Admission {
    pub(crate) fn new(per_ip_max: usize, overrides: HashMap<IpAddr, usize>) -> Admission {
        Admission {
            per_ip_max,
            overrides,
            open: Mutex::new(HashMap::new()),
        }
    }

    fn limit(&self, ip: IpAddr) -> usize {
        self.overrides.get(&ip).copied().unwrap_or(self.per_ip_max)
    }

    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a new connection from `ip`, or None if that address already has its limit.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Admitted> {
        let limit = self.limit(ip);
        let mut open = self.open();
        let count = open.entry(ip).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(Admitted {
            admission: Some(self.clone()),
            ip,
        })
    }

    /// A connection no per-address limit applies to (the internal listener's).
    pub(crate) fn exempt(&self) -> Option<Admitted> {
        Some(Admitted {
            admission: None,
            ip: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let Some(admission) = &self.admission else {
            return;
        };
        let mut open = admission.open();
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_has_its_limit_and_gets_places_back() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let admission = Arc::new(Admission::new(2, HashMap::from([(b, 0)])));
        let first = admission.admit(a).unwrap();
        let _second = admission.admit(a).unwrap();
        assert!(admission.admit(a).is_none());
        assert!(admission.admit(b).is_none(), "override of 0");
        drop(first);
        assert!(admission.admit(a).is_some());
    }
}
