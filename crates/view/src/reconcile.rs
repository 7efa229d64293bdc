//! Bringing a view's output topic to a state that was not folded through the view's own
//! commits: the state a `CREATE OR REPLACE` built beside the old definition, or one folded
//! anew because the checkpoint was of another definition (`state`, "stamps").
//!
//! The output topic (compacted, one partition) then shows the old rows. What to publish is the
//! difference: every row of the state whose record differs from the latest one of its key in
//! the topic, and a tombstone for every key the topic shows that the state does not hold. The
//! engine publishes it in one transaction with the source offsets the state reflects
//! (`engine`, "reconcile"); a crash before that transaction commits leaves the topic as it was,
//! and one after it leaves a difference of nothing but what came since, so a change is
//! published once either way.
//!
//! The topic's latest records are kept as a 64-bit hash of their value per key, not the
//! value: a million rows cost tens of megabytes, not their whole text again. Two values of
//! one key that hash alike (one chance in 2^64 a row) would leave the older in the topic.
//!
//! Owns: reading the topic's latest rows and the difference. Not: sending it (`engine`).

use crate::fold::RowChange;
use crate::output::change_record;
use crate::value::Value;
use sluice_client::data::{self, EARLIEST, FetchOptions, Isolation, LATEST};
use sluice_client::{Client, ClientError};
use sluice_types::limits::{VIEW_FETCH_PARTITION_BYTES, VIEW_GROUPS_MAX};
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

/// The latest record of each key of an output topic that is a row (not a tombstone): the
/// key's bytes and the hash of the row's value.
pub type Published = HashMap<Vec<u8>, u64>;

/// One output record to send: a key and its value (`None`: a tombstone).
pub type OutputChange = (Vec<u8>, Option<Vec<u8>>);

fn value_hash(value: &[u8]) -> u64 {
    // `DefaultHasher::new` has fixed keys: the same bytes hash alike in every process.
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// Reads `topic`-0 `read_committed` from its start to its last stable offset. More keys than a
/// view may hold is an error (the topic is not a view's).
pub async fn read_published(client: &mut Client, topic: &str) -> Result<Published, ClientError> {
    let end =
        data::list_offset_isolated(client, topic, 0, LATEST, Isolation::ReadCommitted).await?;
    let mut offset = data::list_offset(client, topic, 0, EARLIEST).await?;
    let mut latest = Published::new();
    let options = FetchOptions {
        max_wait: Duration::from_millis(100),
        partition_max_bytes: VIEW_FETCH_PARTITION_BYTES,
        isolation: Isolation::ReadCommitted,
    };
    while offset < end {
        let fetched = data::fetch_many(client, &[(topic, 0, offset)], options).await?;
        let Some(fetched) = fetched.into_iter().next() else {
            return Err(ClientError::Invalid(format!(
                "a fetch of {topic} answered nothing"
            )));
        };
        let fetched = fetched.result?;
        if offset < fetched.log_start_offset {
            offset = fetched.log_start_offset;
            continue;
        }
        let next =
            data::for_each_committed_record(&fetched.records, offset, &fetched.aborted, |r| {
                if r.offset >= end {
                    return;
                }
                let key = r.key.unwrap_or_default().to_vec();
                match r.value {
                    Some(value) => latest.insert(key, value_hash(value)),
                    None => latest.remove(&key),
                };
            })?;
        if latest.len() > VIEW_GROUPS_MAX {
            return Err(ClientError::Invalid(format!(
                "{topic} shows more than {VIEW_GROUPS_MAX} rows: it is not a view's output topic"
            )));
        }
        if next == offset {
            // Below its last stable offset a partition has batches to answer: an empty
            // answer is a leader moving, and a partial read would publish rows again.
            return Err(ClientError::Invalid(format!(
                "a fetch of {topic} at {offset} answered no records below its end {end}"
            )));
        }
        offset = next.min(end);
    }
    Ok(latest)
}

/// What to publish so that a topic showing `published` shows `rows` (each row its `key_len`
/// key columns, then its other columns, named by `columns`): the rows whose record differs,
/// in the order given, then a tombstone for each key no row has, in key order.
pub fn difference(
    columns: &[String],
    key_len: usize,
    rows: &[Vec<Value>],
    mut published: Published,
) -> Vec<OutputChange> {
    let mut out = Vec::new();
    for row in rows {
        let change = RowChange::Upsert {
            key: row[..key_len].to_vec(),
            values: row[key_len..].to_vec(),
        };
        let (key, value) = change_record(columns, &change);
        let value = value.expect("an upsert has a value");
        let shown = published.remove(&key);
        if shown != Some(value_hash(&value)) {
            out.push((key, Some(value)));
        }
    }
    let mut gone: Vec<Vec<u8>> = published.into_keys().collect();
    gone.sort();
    out.extend(gone.into_iter().map(|key| (key, None)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(account: &str, balance: i64) -> Vec<Value> {
        vec![Value::Text(account.into()), Value::Int(balance)]
    }

    #[test]
    fn only_what_differs_is_published_and_what_left_is_deleted() {
        let columns = vec!["account".to_string(), "balance".to_string()];
        let shown = |rows: &[Vec<Value>]| -> Published {
            difference(&columns, 1, rows, Published::new())
                .into_iter()
                .map(|(key, value)| (key, value_hash(&value.unwrap())))
                .collect()
        };
        let old = shown(&[row("ada", 5), row("bob", 7), row("cy", 1)]);
        let new = [row("ada", 5), row("bob", 8), row("dee", 2)];
        let out = difference(&columns, 1, &new, old);
        let named: Vec<(String, Option<String>)> = out
            .into_iter()
            .map(|(k, v)| {
                (
                    String::from_utf8(k).unwrap(),
                    v.map(|v| String::from_utf8(v).unwrap()),
                )
            })
            .collect();
        assert_eq!(
            named,
            vec![
                (
                    "bob".to_string(),
                    Some(r#"{"account":"bob","balance":8}"#.to_string())
                ),
                (
                    "dee".to_string(),
                    Some(r#"{"account":"dee","balance":2}"#.to_string())
                ),
                ("cy".to_string(), None),
            ]
        );
        // Published again over itself: nothing.
        let same = shown(&new);
        assert!(difference(&columns, 1, &new, same).is_empty());
    }
}
