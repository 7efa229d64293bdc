//! Which connections are let in: at most `max_connections_per_ip` open at once from one
//! address (Kafka's `max.connections.per.ip`), with per-address exceptions
//! (`max.connections.per.ip.overrides`). The broker-wide cap (`CONNECTIONS_MAX`) is the accept
//! loop's; this module only counts per address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

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
