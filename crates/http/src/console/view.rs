//! How values look on the console's pages: HTML escaping for what is drawn outside a template
//! (charts), sizes and rates in human units, times, and a record's key, value and headers as
//! the message browser shows them (JSON pretty-printed, other UTF-8 as text, anything else as
//! base64 or hex, as the reader chooses).
//!
//! Not owned here: the records' JSON (`sluice_client::json`, as `/v1/.../records` answers).

use base64::Engine;
use serde_json::Value;
use std::fmt::Write;

/// `text` safe inside HTML text and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Bytes in binary units: `512 B`, `1.5 KiB`, `3.2 GiB` (as the CLI shows them).
pub(crate) fn bytes(n: f64) -> String {
    sluice_client::units::human_bytes(n)
}

/// A rate of bytes: `1.5 KiB/s`.
pub(crate) fn rate(bytes_per_second: f64) -> String {
    format!("{}/s", bytes(bytes_per_second))
}

/// A count with thousands separated: `1,234,567`.
pub(crate) fn count(n: f64) -> String {
    let whole = n.round() as i64;
    let digits = whole.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if whole < 0 { format!("-{out}") } else { out }
}

/// A Kafka timestamp (Unix ms) as UTC, `2026-12-06 22:54:36.123`.
pub(crate) fn timestamp(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let in_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let (h, m, s) = (in_day / 3600, in_day % 3600 / 60, in_day % 60);
    format!("{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{s:02}.{millis:03}")
}

/// Days since 1970-01-01 as (year, month, day): Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// How binary keys and values are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Binary {
    Base64,
    Hex,
}

impl Binary {
    pub(crate) fn parse(text: Option<&str>) -> Binary {
        match text {
            Some("hex") => Binary::Hex,
            _ => Binary::Base64,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Binary::Base64 => "base64",
            Binary::Hex => "hex",
        }
    }
}

/// A key, value or header as shown: its text and what kind it is (`json`, `text`, `base64`,
/// `hex`, `null`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shown {
    pub kind: &'static str,
    pub text: String,
}

/// `object`'s field `name` (a string when UTF-8, else `name_base64`), as shown.
pub(crate) fn shown(object: &Value, name: &str, binary: Binary) -> Shown {
    if let Some(text) = object.get(name).and_then(Value::as_str) {
        return match serde_json::from_str::<Value>(text) {
            Ok(parsed) if parsed.is_object() || parsed.is_array() => Shown {
                kind: "json",
                text: serde_json::to_string_pretty(&parsed).unwrap_or_else(|_| text.to_string()),
            },
            _ => Shown {
                kind: "text",
                text: text.to_string(),
            },
        };
    }
    let Some(encoded) = object.get(format!("{name}_base64")).and_then(Value::as_str) else {
        return Shown {
            kind: "null",
            text: "null".into(),
        };
    };
    match binary {
        Binary::Base64 => Shown {
            kind: "base64",
            text: encoded.to_string(),
        },
        Binary::Hex => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .unwrap_or_default();
            let mut hex = String::with_capacity(raw.len() * 3);
            for (i, b) in raw.iter().enumerate() {
                let _ = write!(hex, "{}{b:02x}", if i > 0 { " " } else { "" });
            }
            Shown {
                kind: "hex",
                text: hex,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn units_and_times() {
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(bytes(3.0 * 1024.0 * 1024.0 * 1024.0), "3.0 GiB");
        assert_eq!(rate(2048.0), "2.0 KiB/s");
        assert_eq!(count(1_234_567.0), "1,234,567");
        assert_eq!(count(-1000.0), "-1,000");
        assert_eq!(count(12.0), "12");
        assert_eq!(timestamp(0), "1970-01-01 00:00:00.000");
        assert_eq!(timestamp(1_796_598_075_717), "2026-12-06 23:01:15.717");
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn values_are_shown_by_what_they_hold() {
        let record = json!({
            "key": "k", "value": "{\"a\":1}", "other": "plain",
            "bin_base64": "AP8=",
        });
        assert_eq!(shown(&record, "value", Binary::Base64).kind, "json");
        assert!(
            shown(&record, "value", Binary::Base64)
                .text
                .contains("\"a\": 1")
        );
        assert_eq!(shown(&record, "key", Binary::Base64).kind, "text");
        assert_eq!(shown(&record, "bin", Binary::Base64).text, "AP8=");
        assert_eq!(shown(&record, "bin", Binary::Hex).text, "00 ff");
        assert_eq!(shown(&record, "missing", Binary::Hex).kind, "null");
        // A number or string is JSON too, but reads best as it is.
        let scalar = json!({"value": "42"});
        assert_eq!(shown(&scalar, "value", Binary::Base64).kind, "text");
    }
}
