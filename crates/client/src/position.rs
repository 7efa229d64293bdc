//! Where reading starts: `earliest`, `latest`, an offset, the last N records, or `@TIMESTAMP`,
//! as the CLI's `-o/--offset` (kcat's and rpk's forms) and the HTTP API's `from` spell it, and
//! the offset that names in a partition.

use crate::Client;
use crate::data::{self, EARLIEST, LATEST};
use crate::error::Result;

/// Where consumption starts, in every partition read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Earliest,
    Latest,
    Offset(i64),
    /// The last N records of each partition (`-N`).
    FromEnd(u64),
    Timestamp(i64),
}

/// Parses `earliest` (`beginning`), `latest` (`end`), an offset `N`, `-N` (the last N records
/// of each partition), or `@TIMESTAMP` (see `parse_timestamp`).
pub fn parse_start(s: &str) -> std::result::Result<Start, String> {
    match s {
        "earliest" | "beginning" | "start" | "oldest" => Ok(Start::Earliest),
        "latest" | "end" | "newest" => Ok(Start::Latest),
        _ => {
            if let Some(ts) = s.strip_prefix('@') {
                return parse_timestamp(ts).map(Start::Timestamp);
            }
            if let Some(last) = s.strip_prefix('-') {
                return match last.parse::<u64>() {
                    Ok(n) => Ok(Start::FromEnd(n)),
                    Err(_) => Err(format!("expected -N (the last N records), got {s:?}")),
                };
            }
            match s.parse::<i64>() {
                Ok(offset) if offset >= 0 => Ok(Start::Offset(offset)),
                _ => Err(format!(
                    "expected beginning, end, an offset N, -N for the last N, or @TIMESTAMP, got {s:?}"
                )),
            }
        }
    }
}

/// A time, as any of:
/// - milliseconds since the epoch (`1795420800000`);
/// - RFC 3339 (`2026-11-23T09:00:00Z`, `2026-11-23T10:00:00+01:00`);
/// - a date, meaning its midnight UTC (`2026-12-04`);
/// - a time before now, `-DURATION` with a unit of ms, s, m, h or d (`-1h`, `-90s`, `-2d`).
pub fn parse_timestamp(s: &str) -> std::result::Result<i64, String> {
    parse_timestamp_at(s, sluice_types::now_ms())
}

/// `parse_timestamp` with "now" given, so relative times test deterministically.
pub fn parse_timestamp_at(s: &str, now_ms: i64) -> std::result::Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    if let Some(ago) = s.strip_prefix('-') {
        return parse_duration_ms(ago).map(|d| now_ms.saturating_sub(d));
    }
    if let Some(midnight) = parse_date_ms(s) {
        return Ok(midnight);
    }
    let at = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            format!(
                "{s:?} is not epoch milliseconds, an RFC 3339 time, a date (2026-12-04) or a time ago (-1h): {e}"
            )
        })?;
    Ok((at.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// `90s`, `15m`, `1h`, `2d`, `500ms` in milliseconds.
fn parse_duration_ms(s: &str) -> std::result::Result<i64, String> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = s.split_at(digits);
    let unit_ms: i64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "{s:?}: a time ago is a number and a unit of ms, s, m, h or d (-1h)"
            ));
        }
    };
    let number: i64 = number
        .parse()
        .map_err(|_| format!("{s:?}: a time ago starts with a number (-1h)"))?;
    Ok(number.saturating_mul(unit_ms))
}

/// `YYYY-MM-DD` as its midnight UTC in epoch milliseconds.
fn parse_date_ms(s: &str) -> Option<i64> {
    let mut parts = s.split('-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return None;
    }
    let month = time::Month::try_from(month.parse::<u8>().ok()?).ok()?;
    let date = time::Date::from_calendar_date(year.parse().ok()?, month, day.parse().ok()?).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp() * 1000)
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
        Start::FromEnd(n) => {
            let end = data::list_offset(client, topic, partition, LATEST).await?;
            let first = data::list_offset(client, topic, partition, EARLIEST).await?;
            end.saturating_sub(n.min(i64::MAX as u64) as i64).max(first)
        }
        Start::Timestamp(ts) => data::list_offset(client, topic, partition, ts).await?,
    })
}

/// Where a reset `to` puts a group in `topic`-`partition` (Kafka's `--reset-offsets`): as
/// `start_offset`, and an explicit offset outside the log moves to its nearest end.
pub async fn reset_offset(
    client: &mut Client,
    topic: &str,
    partition: i32,
    to: Start,
) -> Result<i64> {
    let offset = start_offset(client, topic, partition, to).await?;
    if let Start::Offset(_) = to {
        let earliest = data::list_offset(client, topic, partition, EARLIEST).await?;
        let latest = data::list_offset(client, topic, partition, LATEST).await?;
        return Ok(offset.clamp(earliest, latest));
    }
    Ok(offset)
}

/// The offset DeleteRecords takes to delete the records before `to` in `topic`-`partition`:
/// `end` is Kafka's "up to the high watermark" (`DELETE_TO_END`), any other start the offset
/// it names.
pub async fn trim_offset(
    client: &mut Client,
    topic: &str,
    partition: i32,
    to: Start,
) -> Result<i64> {
    match to {
        Start::Latest => Ok(data::DELETE_TO_END),
        other => start_offset(client, topic, partition, other).await,
    }
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
        assert_eq!(parse_start("-1"), Ok(Start::FromEnd(1)));
        assert_eq!(parse_start("beginning"), Ok(Start::Earliest));
        assert_eq!(parse_start("end"), Ok(Start::Latest));
        assert!(parse_start("-x").is_err());
        assert!(parse_start("@yesterday").is_err());
        assert!(parse_start("soon").is_err());
    }

    #[test]
    fn times_ago_and_dates() {
        let now = 1_700_000_000_000;
        assert_eq!(parse_timestamp_at("-1h", now), Ok(now - 3_600_000));
        assert_eq!(parse_timestamp_at("-90s", now), Ok(now - 90_000));
        assert_eq!(parse_timestamp_at("-2d", now), Ok(now - 2 * 86_400_000));
        assert_eq!(parse_timestamp_at("-15m", now), Ok(now - 900_000));
        assert_eq!(parse_timestamp_at("-500ms", now), Ok(now - 500));
        assert_eq!(parse_timestamp_at("2023-11-14", now), Ok(1_699_920_000_000));
        assert!(parse_timestamp_at("-1y", now).is_err());
        assert!(parse_timestamp_at("-h", now).is_err());
        assert!(parse_timestamp_at("2023-13-01", now).is_err());
        assert_eq!(
            parse_start("@-1h").map(|s| matches!(s, Start::Timestamp(_))),
            Ok(true)
        );
    }
}
