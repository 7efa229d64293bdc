//! The process's own figures for `/metrics`, read from `/proc/self` when a scrape asks:
//! CPU seconds, resident memory, open and allowed file descriptors, under Prometheus's standard
//! `process_*` names, so dashboards made for any exporter read them.
//!
//! Not owned here: the registry and the broker's own metrics (`metrics.rs`).

/// What `/proc/self` says now; a figure the system does not give is `None`.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ProcessFigures {
    pub cpu_seconds: Option<f64>,
    pub resident_memory_bytes: Option<i64>,
    pub open_fds: Option<i64>,
    pub max_fds: Option<i64>,
    pub start_time_seconds: Option<f64>,
}

pub(crate) fn read() -> ProcessFigures {
    let stat = std::fs::read_to_string("/proc/self/stat").ok();
    let fields: Vec<&str> = stat
        .as_deref()
        .and_then(|s| s.rsplit_once(')'))
        .map(|(_, after_name)| after_name.split_whitespace().collect())
        .unwrap_or_default();
    // After the command name: fields 14 and 15 of the line (utime, stime) are 11 and 12,
    // starttime (22) is 19, rss in pages (24) is 21.
    let number = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    let page = rustix::param::page_size() as f64;
    ProcessFigures {
        cpu_seconds: number(11)
            .zip(number(12))
            .map(|(user, system)| (user + system) / ticks),
        resident_memory_bytes: number(21).map(|pages| (pages * page) as i64),
        open_fds: std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as i64),
        max_fds: rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .map(|n| n.min(i64::MAX as u64) as i64),
        start_time_seconds: number(19).and_then(|t| Some(boot_time_seconds()? + t / ticks)),
    }
}

/// When the machine booted, in seconds since the Unix epoch (`btime` of `/proc/stat`).
fn boot_time_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("btime "))?;
    line["btime ".len()..].trim().parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_has_cpu_memory_and_descriptors() {
        let figures = super::read();
        assert!(figures.cpu_seconds.is_some_and(|s| s >= 0.0), "{figures:?}");
        assert!(figures.resident_memory_bytes.is_some_and(|b| b > 0));
        assert!(figures.open_fds.is_some_and(|n| n >= 3));
        assert!(
            figures
                .max_fds
                .is_some_and(|n| n >= figures.open_fds.unwrap())
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let started = figures.start_time_seconds.expect("a start time");
        assert!(started <= now + 1.0 && started > now - 86_400.0 * 365.0);
    }
}
