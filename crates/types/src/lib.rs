//! Domain names shared by every Sluice crate: topic-partition identity, topic-name rules, and
//! the limits module.
//!
//! This crate owns no behaviour beyond validation of names (and reading the wall clock in
//! Kafka's unit, `now_ms`, Kafka's hash of a coordinator key, `partition_for`, and blocking
//! work spread over a few threads, `in_parallel`), plus the big-endian primitives of internal
//! records (`wire`) and the seeded generator of the simulation tests (`sim`). It knows nothing of Kafka API messages, files or sockets, so every other
//! crate may depend on it.

pub mod limits;
pub mod sim;
pub mod wire;

use std::fmt;

/// The partition of an internal topic that coordinates `key` (a group id in
/// `__consumer_offsets`, a transactional id in `__transaction_state`): Kafka's choice
/// (`abs(String.hashCode) % partitions`), so a group or transactional id lands where Kafka
/// would put it.
pub fn partition_for(key: &str, partitions: i32) -> i32 {
    assert!(partitions > 0);
    let hash = key.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    // Kafka's Utils.abs maps i32::MIN to 0 rather than overflowing.
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions
}

/// `work` on each item, on up to `threads_max` scoped threads (blocking work such as opening
/// or fsyncing many partitions' files, which gains from running side by side); the results
/// in item order. One item runs on the caller's thread.
pub fn in_parallel<T: Send, R: Send>(
    items: Vec<T>,
    threads_max: usize,
    work: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    assert!(threads_max > 0);
    if items.len() <= 1 {
        return items.into_iter().map(work).collect();
    }
    let per_thread = items.len().div_ceil(threads_max);
    let mut chunks: Vec<Vec<T>> = Vec::new();
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        chunks.push(items.by_ref().take(per_thread).collect());
    }
    let work = &work;
    std::thread::scope(|scope| {
        let threads: Vec<_> = chunks
            .into_iter()
            .map(|chunk| scope.spawn(move || chunk.into_iter().map(work).collect::<Vec<R>>()))
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().expect("in_parallel's work does not panic"))
            .collect()
    })
}

/// Milliseconds since the Unix epoch, Kafka's unit for timestamps: the one wall clock every
/// crate that needs one reads (the broker passes it into storage; the pure crates take time as
/// an argument).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A topic name and a partition index: the unit of ordering and of storage.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

/// Partitions grouped by topic, each topic's indexes in the order given (Kafka's wire shapes
/// name a topic once, with its partitions).
pub fn by_topic<'a>(
    partitions: impl IntoIterator<Item = &'a TopicPartition>,
) -> std::collections::BTreeMap<&'a str, Vec<i32>> {
    let mut grouped: std::collections::BTreeMap<&str, Vec<i32>> = Default::default();
    for tp in partitions {
        grouped.entry(&tp.topic).or_default().push(tp.partition);
    }
    grouped
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Why a topic name is refused. Kafka's rules: 1 to 249 characters from `[a-zA-Z0-9._-]`,
/// and neither `.` nor `..` (they would name directories).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicNameError {
    #[error("topic name is empty")]
    Empty,
    #[error("topic name is {0} characters long; the limit is {max}", max = limits::TOPIC_NAME_CHARS_MAX)]
    TooLong(usize),
    #[error("topic name '{0}' is not allowed")]
    Reserved(String),
    #[error(
        "topic name '{0}' contains a character other than ASCII letters, digits, '.', '_' and '-'"
    )]
    IllegalCharacter(String),
}

/// Checks a topic name against Kafka's rules.
pub fn validate_topic_name(name: &str) -> Result<(), TopicNameError> {
    if name.is_empty() {
        return Err(TopicNameError::Empty);
    }
    if name.len() > limits::TOPIC_NAME_CHARS_MAX {
        return Err(TopicNameError::TooLong(name.len()));
    }
    if name == "." || name == ".." {
        return Err(TopicNameError::Reserved(name.to_string()));
    }
    let legal = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-';
    if !name.chars().all(legal) {
        return Err(TopicNameError::IllegalCharacter(name.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_parallel_keeps_item_order_on_any_thread_count() {
        for threads in [1, 3, 8] {
            for count in [0, 1, 2, 7, 100] {
                let items: Vec<u64> = (0..count).collect();
                let squares = in_parallel(items, threads, |n| n * n);
                assert_eq!(squares, (0..count).map(|n| n * n).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_EU-west").is_ok());
        assert_eq!(validate_topic_name(""), Err(TopicNameError::Empty));
        assert_eq!(
            validate_topic_name(".."),
            Err(TopicNameError::Reserved("..".into()))
        );
        assert!(matches!(
            validate_topic_name("a/b"),
            Err(TopicNameError::IllegalCharacter(_))
        ));
        assert!(matches!(
            validate_topic_name("ü"),
            Err(TopicNameError::IllegalCharacter(_))
        ));
        assert!(validate_topic_name(&"x".repeat(249)).is_ok());
        assert_eq!(
            validate_topic_name(&"x".repeat(250)),
            Err(TopicNameError::TooLong(250))
        );
    }
}
