//! Where reading starts: `earliest`, `latest`, an offset, or `@TIMESTAMP`, as the CLI's
//! `--from` and the HTTP API's `from` spell it, and the offset that names in a partition.

use crate::Client;
use crate::data::{self, EARLIEST, LATEST};
use crate::error::Result;

/// Where consumption starts, in every partition read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Earliest,
    Latest,
    Offset(i64),
    Timestamp(i64),
}

/// Parses `earliest`, `latest`, an offset, or `@TIMESTAMP` (see `parse_timestamp`).
pub fn parse_start(s: &str) -> std::result::Result<Start, String> {
    match s {
        "earliest" | "beginning" | "start" => Ok(Start::Earliest),
        "latest" | "end" => Ok(Start::Latest),
        _ => {
            if let Some(ts) = s.strip_prefix('@') {
                return parse_timestamp(ts).map(Start::Timestamp);
            }
            match s.parse::<i64>() {
                Ok(offset) if offset >= 0 => Ok(Start::Offset(offset)),
                _ => Err(format!(
                    "expected earliest, latest, an offset or @TIMESTAMP, got {s:?}"
                )),
            }
        }
    }
}

/// RFC 3339 (`2026-11-23T09:00:00Z`, `2026-11-23T10:00:00+01:00`) or milliseconds since the epoch.
pub fn parse_timestamp(s: &str) -> std::result::Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let at = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{s:?} is neither epoch milliseconds nor an RFC 3339 time: {e}"))?;
    Ok((at.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// The offset `from` names in `topic`-`partition`.
pub async fn start_offset(
    client: &mut Client,
    topic: &str,
    partition: i32,
    from: Start,
) -> Result<i64> {
    Ok(match from {
        Start::Earliest => data::list_offset(client, topic, partition, EARLIEST).await?,
        Start::Latest => data::list_offset(client, topic, partition, LATEST).await?,
        Start::Offset(offset) => offset,
        Start::Timestamp(ts) => data::list_offset(client, topic, partition, ts).await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts() {
        assert_eq!(parse_start("earliest"), Ok(Start::Earliest));
        assert_eq!(parse_start("latest"), Ok(Start::Latest));
        assert_eq!(parse_start("42"), Ok(Start::Offset(42)));
        assert_eq!(
            parse_start("@1700000000000"),
            Ok(Start::Timestamp(1_700_000_000_000))
        );
        assert_eq!(
            parse_start("@2023-11-14T22:13:20Z"),
            Ok(Start::Timestamp(1_700_000_000_000))
        );
        assert_eq!(
            parse_start("@2023-11-14T23:13:20+01:00"),
            Ok(Start::Timestamp(1_700_000_000_000))
        );
        assert!(parse_start("-1").is_err());
        assert!(parse_start("@yesterday").is_err());
        assert!(parse_start("soon").is_err());
    }
}
