//! The console's memory of the last hour, so a person sees throughput and lag over time with
//! no Prometheus running: every `SAMPLE_INTERVAL` the broker's own metrics (the text
//! `/metrics` serves) are read and a few totals kept, `CONSOLE_HISTORY_SAMPLES_MAX` samples
//! at most (an hour at 10 s): bytes produced and fetched (counters, shown as rates between
//! samples) and each group's total lag (a gauge), for at most `CONSOLE_HISTORY_GROUPS_MAX`
//! groups. Kept in memory only: a restart starts a new hour.
//!
//! Also the reading of that text (`Series`), which the overview uses for its current figures.
//!
//! Not owned here: the metrics themselves (the broker's registry), drawing (`chart`).

use sluice_types::limits::{CONSOLE_HISTORY_GROUPS_MAX, CONSOLE_HISTORY_SAMPLES_MAX};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

/// How often the metrics are sampled.
pub(crate) const SAMPLE_INTERVAL: Duration = Duration::from_secs(10);

/// One series of the OpenMetrics text: its name, labels and value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Series {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Series {
    pub(crate) fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Every series of `text` (comments and lines it cannot read are skipped).
pub(crate) fn parse(text: &str) -> Vec<Series> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

/// `name{k="v",...} value` or `name value`.
fn parse_line(line: &str) -> Option<Series> {
    let (name, rest) = match line.find(['{', ' ']) {
        Some(at) => line.split_at(at),
        None => return None,
    };
    let (labels, rest) = match rest.strip_prefix('{') {
        Some(inner) => parse_labels(inner)?,
        None => (Vec::new(), rest),
    };
    let value = rest.split_whitespace().next()?.parse::<f64>().ok()?;
    Some(Series {
        name: name.to_string(),
        labels,
        value,
    })
}

/// The labels up to the closing `}`, with `\"`, `\\` and `\n` unescaped, and what follows.
fn parse_labels(mut text: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        text = text.trim_start_matches(',');
        if let Some(rest) = text.strip_prefix('}') {
            return Some((labels, rest));
        }
        let (key, rest) = text.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            let (at, c) = chars.next()?;
            match c {
                '"' => break at,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        };
        labels.push((key.to_string(), value));
        text = &rest[end + 1..];
    }
}

/// The sum of every series named `name`.
pub(crate) fn total(series: &[Series], name: &str) -> f64 {
    series
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum()
}

/// The sum of the series named `name` by the value of their label `label`.
pub(crate) fn total_by(series: &[Series], name: &str, label: &str) -> BTreeMap<String, f64> {
    let mut totals = BTreeMap::new();
    for s in series.iter().filter(|s| s.name == name) {
        if let Some(key) = s.label(label) {
            *totals.entry(key.to_string()).or_insert(0.0) += s.value;
        }
    }
    totals
}

#[derive(Debug, Clone)]
struct Sample {
    at_ms: i64,
    produced_bytes: f64,
    fetched_bytes: f64,
    group_lag: BTreeMap<String, f64>,
}

/// A point of a chart: when (Unix ms) and how much.
pub(crate) type Point = (i64, f64);

/// Bytes produced and fetched per topic at one sample (counters).
#[derive(Debug, Clone, Default)]
struct ByTopic {
    at_ms: i64,
    produced: BTreeMap<String, f64>,
    fetched: BTreeMap<String, f64>,
}

#[derive(Debug, Default)]
pub(crate) struct History {
    samples: Mutex<VecDeque<Sample>>,
    /// The last two samples' per-topic counters, for each topic's current rates (only two:
    /// a topic's history would cost an hour of samples per topic).
    by_topic: Mutex<(ByTopic, ByTopic)>,
}

impl History {
    /// Keeps what `metrics` (the OpenMetrics text) says at `at_ms`.
    pub(crate) fn record(&self, metrics: &str, at_ms: i64) {
        let series = parse(metrics);
        let mut group_lag = total_by(&series, "sluice_group_lag", "group");
        while group_lag.len() > CONSOLE_HISTORY_GROUPS_MAX {
            group_lag.pop_last();
        }
        let sample = Sample {
            at_ms,
            produced_bytes: total(&series, "sluice_produced_bytes_total"),
            fetched_bytes: total(&series, "sluice_fetched_bytes_total"),
            group_lag,
        };
        let mut samples = self.lock();
        if samples.len() == CONSOLE_HISTORY_SAMPLES_MAX {
            samples.pop_front();
        }
        samples.push_back(sample);
        drop(samples);
        let latest = ByTopic {
            at_ms,
            produced: total_by(&series, "sluice_produced_bytes_total", "topic"),
            fetched: total_by(&series, "sluice_fetched_bytes_total", "topic"),
        };
        let mut by_topic = self.by_topic.lock().unwrap_or_else(|p| p.into_inner());
        by_topic.0 = std::mem::replace(&mut by_topic.1, latest);
    }

    /// Each topic's bytes per second in and out between the last two samples.
    pub(crate) fn topic_rates(&self) -> BTreeMap<String, (f64, f64)> {
        let by_topic = self.by_topic.lock().unwrap_or_else(|p| p.into_inner());
        let (before, after) = &*by_topic;
        let seconds = (after.at_ms - before.at_ms) as f64 / 1000.0;
        let mut rates = BTreeMap::new();
        if seconds <= 0.0 {
            return rates;
        }
        let rate = |earlier: Option<&f64>, later: f64| {
            earlier.map_or(0.0, |e| ((later - e) / seconds).max(0.0))
        };
        for (topic, produced) in &after.produced {
            let entry = rates.entry(topic.clone()).or_insert((0.0, 0.0));
            entry.0 = rate(before.produced.get(topic), *produced);
        }
        for (topic, fetched) in &after.fetched {
            let entry = rates.entry(topic.clone()).or_insert((0.0, 0.0));
            entry.1 = rate(before.fetched.get(topic), *fetched);
        }
        rates
    }

    /// Bytes per second produced and fetched between consecutive samples (a counter that went
    /// down, a restarted registry, gives no point).
    pub(crate) fn throughput(&self) -> (Vec<Point>, Vec<Point>) {
        let samples = self.lock();
        let pairs = samples.iter().zip(samples.iter().skip(1));
        let (mut produced, mut fetched) = (Vec::new(), Vec::new());
        for (before, after) in pairs {
            let seconds = (after.at_ms - before.at_ms) as f64 / 1000.0;
            if seconds <= 0.0 {
                continue;
            }
            let rate = |a: f64, b: f64| (b >= a).then(|| (b - a) / seconds);
            if let Some(r) = rate(before.produced_bytes, after.produced_bytes) {
                produced.push((after.at_ms, r));
            }
            if let Some(r) = rate(before.fetched_bytes, after.fetched_bytes) {
                fetched.push((after.at_ms, r));
            }
        }
        (produced, fetched)
    }

    /// `group`'s total lag at each sample that knew the group.
    pub(crate) fn group_lag(&self, group: &str) -> Vec<Point> {
        self.lock()
            .iter()
            .filter_map(|s| s.group_lag.get(group).map(|lag| (s.at_ms, *lag)))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Sample>> {
        self.samples.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Samples the broker's metrics into `state.history` every `SAMPLE_INTERVAL`, until the
/// task is aborted (with the HTTP API).
pub(crate) async fn sample(state: std::sync::Arc<crate::AppState>) {
    let mut ticks = tokio::time::interval(SAMPLE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let text = (state.metrics)();
        state.history.record(&text, sluice_types::now_ms());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP sluice_produced_bytes Record batch bytes appended.\n\
        # TYPE sluice_produced_bytes counter\n\
        sluice_produced_bytes_total{topic=\"a\"} 100\n\
        sluice_produced_bytes_total{topic=\"b\"} 50\n\
        sluice_fetched_bytes_total{topic=\"a\"} 10\n\
        sluice_group_lag{group=\"g\",topic=\"a\",partition=\"0\"} 7\n\
        sluice_group_lag{group=\"g\",topic=\"a\",partition=\"1\"} 3\n\
        sluice_group_lag{group=\"odd \\\"one\\\"\",topic=\"a\",partition=\"0\"} 1\n\
        sluice_connections 4\n\
        # EOF\n";

    #[test]
    fn the_text_is_read_series_by_series() {
        let series = parse(TEXT);
        assert_eq!(series.len(), 7);
        assert_eq!(total(&series, "sluice_produced_bytes_total"), 150.0);
        assert_eq!(total(&series, "sluice_connections"), 4.0);
        let lag = total_by(&series, "sluice_group_lag", "group");
        assert_eq!(lag.get("g"), Some(&10.0));
        assert_eq!(lag.get("odd \"one\""), Some(&1.0));
        assert!(parse("garbage\nname{unclosed=\"x 1\n").is_empty());
    }

    #[test]
    fn rates_come_from_consecutive_samples_and_lag_per_group() {
        let history = History::default();
        history.record(TEXT, 0);
        let later = TEXT.replace("} 100", "} 2100");
        history.record(&later, 10_000);
        let (produced, fetched) = history.throughput();
        assert_eq!(produced, vec![(10_000, 200.0)]);
        assert_eq!(fetched, vec![(10_000, 0.0)]);
        // A counter that went down (a restart) gives no point.
        history.record(TEXT, 20_000);
        assert_eq!(history.throughput().0.len(), 1);
        assert_eq!(history.group_lag("g").len(), 3);
        assert!(history.group_lag("none").is_empty());
        // Per topic, between the last two samples: 2100 back to 100 is no negative rate.
        history.record(&later, 30_000);
        assert_eq!(history.topic_rates().get("a"), Some(&(200.0, 0.0)));
        assert_eq!(history.topic_rates().get("b"), Some(&(0.0, 0.0)));
    }

    #[test]
    fn an_hour_is_kept_and_no_more() {
        let history = History::default();
        for i in 0..CONSOLE_HISTORY_SAMPLES_MAX as i64 + 5 {
            history.record(TEXT, i * 10_000);
        }
        assert_eq!(history.lock().len(), CONSOLE_HISTORY_SAMPLES_MAX);
        assert_eq!(history.lock().front().unwrap().at_ms, 50_000);
    }
}
