//! `sluice consume -f TEMPLATE`: a record printed through a format string, with kcat's
//! tokens (and rpk's `%v` / `%V` for the value):
//!
//! | token | prints |
//! |---|---|
//! | `%t` | topic |
//! | `%p` | partition |
//! | `%o` | offset |
//! | `%T` | timestamp, milliseconds since the epoch |
//! | `%k` | key (nothing when null) |
//! | `%K` | key length in bytes (`-1` when null) |
//! | `%s`, `%v` | value (nothing when null) |
//! | `%S`, `%V` | value length in bytes (`-1` when null) |
//! | `%h` | headers, `k=v` joined by `,` |
//! | `%%` | `%` |
//!
//! Escapes: `\n`, `\r`, `\t`, `\0`, `\\`. Nothing is added: a template that should end lines
//! ends in `\n`. Owns: parsing and rendering templates. Not: fetching.

use sluice_record::Record;
use std::io::Write;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(Vec<u8>),
    Topic,
    Partition,
    Offset,
    Timestamp,
    Key,
    KeyLength,
    Value,
    ValueLength,
    Headers,
}

/// A parsed format string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Piece>);

/// Parses a template; an unknown `%x` or `\x` is an error naming it.
pub fn parse_template(text: &str) -> Result<Template, String> {
    let mut pieces = Vec::new();
    let mut literal = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => {
                let token = chars.next().ok_or("the template ends in a lone %")?;
                let piece = match token {
                    '%' => {
                        literal.push(b'%');
                        continue;
                    }
                    't' => Piece::Topic,
                    'p' => Piece::Partition,
                    'o' => Piece::Offset,
                    'T' => Piece::Timestamp,
                    'k' => Piece::Key,
                    'K' => Piece::KeyLength,
                    's' | 'v' => Piece::Value,
                    'S' | 'V' => Piece::ValueLength,
                    'h' => Piece::Headers,
                    other => {
                        return Err(format!(
                            "unknown token %{other} (known: %t %p %o %T %k %K %s %v %S %V %h %%)"
                        ));
                    }
                };
                if !literal.is_empty() {
                    pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                }
                pieces.push(piece);
            }
            '\\' => {
                let escaped = chars.next().ok_or("the template ends in a lone \\")?;
                literal.push(match escaped {
                    'n' => b'\n',
                    'r' => b'\r',
                    't' => b'\t',
                    '0' => 0,
                    '\\' => b'\\',
                    other => {
                        return Err(format!(
                            "unknown escape \\{other} (known: \\n \\r \\t \\0 \\\\)"
                        ));
                    }
                });
            }
            c => {
                let mut buf = [0u8; 4];
                literal.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok(Template(pieces))
}

impl Template {
    /// Writes `record` of `topic`-`partition` through the template.
    pub fn render(
        &self,
        out: &mut impl Write,
        topic: &str,
        partition: i32,
        record: &Record<'_>,
    ) -> std::io::Result<()> {
        for piece in &self.0 {
            match piece {
                Piece::Literal(bytes) => out.write_all(bytes)?,
                Piece::Topic => out.write_all(topic.as_bytes())?,
                Piece::Partition => write!(out, "{partition}")?,
                Piece::Offset => write!(out, "{}", record.offset)?,
                Piece::Timestamp => write!(out, "{}", record.timestamp)?,
                Piece::Key => out.write_all(record.key.unwrap_or_default())?,
                Piece::KeyLength => write!(out, "{}", length(record.key))?,
                Piece::Value => out.write_all(record.value.unwrap_or_default())?,
                Piece::ValueLength => write!(out, "{}", length(record.value))?,
                Piece::Headers => {
                    for (i, h) in record.headers.iter().enumerate() {
                        if i > 0 {
                            out.write_all(b",")?;
                        }
                        out.write_all(h.key)?;
                        out.write_all(b"=")?;
                        out.write_all(h.value.unwrap_or_default())?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn length(bytes: Option<&[u8]>) -> i64 {
    bytes.map_or(-1, |b| b.len() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_record::RecordHeader;

    fn render(template: &str, record: &Record<'_>) -> String {
        let mut out = Vec::new();
        parse_template(template)
            .unwrap()
            .render(&mut out, "orders", 3, record)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_token_renders() {
        let record = Record {
            offset: 42,
            timestamp: 1_700_000_000_000,
            key: Some(b"k1"),
            value: Some(b"hello"),
            headers: vec![
                RecordHeader {
                    key: b"a",
                    value: Some(b"1"),
                },
                RecordHeader {
                    key: b"b",
                    value: None,
                },
            ],
        };
        assert_eq!(
            render("%k %v %p %o %T\\n", &record),
            "k1 hello 3 42 1700000000000\n"
        );
        assert_eq!(
            render("%t/%p@%o %K:%S %s|%h 100%%\\t\\\\", &record),
            "orders/3@42 2:5 hello|a=1,b= 100%\t\\"
        );
    }

    #[test]
    fn nulls_print_nothing_and_length_minus_one() {
        let record = Record {
            offset: 0,
            timestamp: 0,
            key: None,
            value: None,
            headers: vec![],
        };
        assert_eq!(render("[%k][%v] %K %V", &record), "[][] -1 -1");
    }

    #[test]
    fn unknown_tokens_and_escapes_are_refused() {
        assert!(parse_template("%x").unwrap_err().contains("%x"));
        assert!(parse_template("\\q").unwrap_err().contains("\\q"));
        assert!(parse_template("50%").is_err());
        assert_eq!(
            parse_template("é").unwrap(),
            Template(vec![Piece::Literal("é".into())])
        );
    }
}
