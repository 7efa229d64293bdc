//! `sluice sql` and `sluice view`: SQL tables and materialized views (docs/views.md).
//!
//! Views live in `sluice serve`, so these commands ask it over its HTTP API (`--http-url`,
//! `SLUICE_HTTP_URL`) through the same routes any script uses: `POST /v1/sql`, `GET /v1/views`,
//! `GET|DELETE /v1/views/{v}`, `GET /v1/views/{v}/keys/{key}`, `GET /v1/views/{v}/rows`.
//! `--format json` prints the API's answer as it came (decimals with their exact digits); the
//! text form is a table whose cells are the answer's JSON values as written.
//!
//! Owns: the commands' arguments and output. Not: views (the engine), HTTP (`http_client`).

use super::http_client::{self, HttpFailure};
use super::{Output, Target};
use serde_json::value::RawValue;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct SqlArgs {
    /// One statement: CREATE TABLE, CREATE [OR REPLACE] MATERIALIZED VIEW, SELECT, SHOW,
    /// DESCRIBE or DROP.
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    statement: Option<String>,
    /// Run the statements of a file instead, one after another (each ends with `;`); the first
    /// that fails stops the rest.
    #[arg(short = 'f', long)]
    file: Option<PathBuf>,
    /// text: tables and messages; json: the HTTP API's answers, one per line.
    #[arg(long, value_enum, default_value_t)]
    format: Output,
}

#[derive(clap::Subcommand, Debug)]
pub enum ViewCommand {
    /// List tables and views with their state.
    List {
        #[arg(long, value_enum, default_value_t)]
        format: Output,
    },
    /// Show a table's or view's SQL, columns, state, counters and position.
    Describe {
        name: String,
        #[arg(long, value_enum, default_value_t)]
        format: Output,
    },
    /// Print the row of one key (a text key as is, a number as written, several keys as a JSON
    /// array). Exits 4 when the key has no row.
    Get {
        name: String,
        key: String,
        #[command(flatten)]
        freshness: Freshness,
        #[arg(long, value_enum, default_value_t)]
        format: Output,
    },
    /// Print rows in key order, a page at a time.
    Rows {
        name: String,
        /// Only rows whose key text starts with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Rows after this key (the last key of the page before).
        #[arg(long)]
        after: Option<String>,
        /// Rows to print (at most 10000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        freshness: Freshness,
        #[arg(long, value_enum, default_value_t)]
        format: Output,
    },
    /// Follow a table's or view's changes as they are committed: each changed row (`deleted`
    /// when it left the view), after every row first with --snapshot.
    Watch {
        name: String,
        /// Every row first, then the changes.
        #[arg(long)]
        snapshot: bool,
        /// Stop after this many rows.
        #[arg(short = 'n', long)]
        count: Option<u64>,
        /// text: `KEY  {row}` lines; json: each event's data, one per line (rows and positions).
        #[arg(long, value_enum, default_value_t)]
        format: Output,
    },
    /// Rebuild a table or view from its source's start, beside the running one (which answers
    /// until the new one has caught up); nothing is published again.
    Rebuild { name: String },
    /// Drop a table, view or stream: its engine, definition, checkpoint, group and output
    /// topic.
    Drop { name: String },
    /// Keep the views apart from the brokers: the catalog's definitions of --brokers, a
    /// checkpoint in --data-dir, and an HTTP API of its own (run the brokers with --views off).
    #[command(
        after_help = "Examples:\n  sluice view worker --brokers kafka-1:9092,kafka-2:9092 --http-listen 0.0.0.0:8081 --http-auth none\n  SLUICE_HTTP_URL=http://127.0.0.1:8081 sluice view list"
    )]
    Worker(crate::worker::WorkerArgs),
}

/// Read-your-writes for `get` and `rows`.
#[derive(Debug, clap::Args)]
pub struct Freshness {
    /// Wait until the view reflects this record first: TOPIC:PARTITION:OFFSET (the offset a
    /// produce answered), several comma-separated.
    #[arg(long)]
    min_position: Option<String>,
    /// How long to wait for --min-position, in ms (at most 60000).
    #[arg(long, default_value_t = 10_000)]
    wait_ms: u64,
}

impl Freshness {
    /// The query parameters that ask for it, if any.
    fn query(&self) -> Option<String> {
        let position = self.min_position.as_ref()?;
        Some(format!(
            "min_position={}&wait_ms={}",
            segment(position),
            self.wait_ms
        ))
    }

    /// How long the answer may take beyond the usual.
    fn wait(&self) -> Duration {
        Duration::from_millis(if self.min_position.is_some() {
            self.wait_ms
        } else {
            0
        })
    }
}

pub async fn sql(target: &Target, args: SqlArgs) -> anyhow::Result<()> {
    let statements = match (&args.statement, &args.file) {
        (Some(statement), _) => vec![statement.clone()],
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            split_statements(&text)
        }
        (None, None) => unreachable!("clap requires a statement or a file"),
    };
    for statement in statements {
        let body = serde_json::json!({ "sql": statement }).to_string();
        let answer = http_client::call(target, "POST", "/v1/sql", Some(body)).await?;
        print_answer(&answer, args.format)?;
    }
    Ok(())
}

pub async fn run(target: &Target, command: ViewCommand) -> anyhow::Result<()> {
    match command {
        ViewCommand::List { format } => {
            let answer = http_client::call(target, "GET", "/v1/views", None).await?;
            print_answer(&answer, format)
        }
        ViewCommand::Describe { name, format } => {
            let path = format!("/v1/views/{}", segment(&name));
            let answer = http_client::call(target, "GET", &path, None).await?;
            if format == Output::Json {
                println!("{answer}");
                return Ok(());
            }
            for (name, value) in ordered_fields(&answer)? {
                println!("{name:<20} {}", cell(&value));
            }
            Ok(())
        }
        ViewCommand::Get {
            name,
            key,
            freshness,
            format,
        } => {
            let mut path = format!("/v1/views/{}/keys/{}", segment(&name), segment(&key));
            if let Some(query) = freshness.query() {
                path.push_str(&format!("?{query}"));
            }
            let answer =
                http_client::call_waiting(target, "GET", &path, None, freshness.wait()).await?;
            let parsed: RowAnswer = serde_json::from_str(&answer)?;
            if format == Output::Json {
                println!("{answer}");
            } else if let Some(row) = &parsed.row {
                for (column, value) in ordered_fields(row.get())? {
                    println!("{column:<20} {}", cell(&value));
                }
            }
            if parsed.row.is_none() {
                return Err(
                    HttpFailure::not_found(format!("{name} has no row for key {key}")).into(),
                );
            }
            Ok(())
        }
        ViewCommand::Rows {
            name,
            prefix,
            after,
            limit,
            freshness,
            format,
        } => {
            let mut path = format!("/v1/views/{}/rows?limit={limit}", segment(&name));
            for (param, value) in [("prefix", &prefix), ("after", &after)] {
                if let Some(value) = value {
                    path.push_str(&format!("&{param}={}", segment(value)));
                }
            }
            if let Some(query) = freshness.query() {
                path.push_str(&format!("&{query}"));
            }
            let answer =
                http_client::call_waiting(target, "GET", &path, None, freshness.wait()).await?;
            print_answer(&answer, format)
        }
        ViewCommand::Watch {
            name,
            snapshot,
            count,
            format,
        } => {
            let path = format!("/v1/views/{}/changes?snapshot={snapshot}", segment(&name));
            let mut rows = 0;
            http_client::events(target, &path, |event, data| {
                match (event, format) {
                    ("error", _) => {
                        let body: serde_json::Value = serde_json::from_str(data)?;
                        anyhow::bail!("{}", body["message"].as_str().unwrap_or(data));
                    }
                    (_, Output::Json) => println!("{data}"),
                    ("row", Output::Text) => {
                        let fields = ordered_fields(data)?;
                        let field = |n: &str| fields.iter().find(|(f, _)| f == n).map(|(_, v)| v);
                        let key = field("key").map_or(String::new(), |k| cell(k));
                        match field("row").map(|r| r.get()) {
                            None | Some("null") => println!("{key}  deleted"),
                            Some(row) => println!("{key}  {row}"),
                        }
                    }
                    _ => {}
                }
                if event == "row" {
                    rows += 1;
                }
                Ok(count.is_none_or(|n| rows < n))
            })
            .await
        }
        ViewCommand::Rebuild { name } => {
            let path = format!("/v1/views/{}/rebuild", segment(&name));
            let answer = http_client::call(target, "POST", &path, None).await?;
            print_answer(&answer, Output::Text)
        }
        ViewCommand::Drop { name } => {
            let path = format!("/v1/views/{}", segment(&name));
            let answer = http_client::call(target, "DELETE", &path, None).await?;
            print_answer(&answer, Output::Text)
        }
        // `main` runs the worker on a runtime of its own before this is reached.
        ViewCommand::Worker(_) => anyhow::bail!("the worker runs from `sluice view worker`"),
    }
}

#[derive(serde::Deserialize)]
struct RowAnswer {
    row: Option<Box<RawValue>>,
}

#[derive(serde::Deserialize)]
struct Summary {
    name: String,
    kind: String,
    source: String,
    state: String,
}

/// Prints one answer of the API: as it came (json), or as a message, a table or `name value`
/// lines (text), by the fields it has.
fn print_answer(answer: &str, format: Output) -> anyhow::Result<()> {
    if format == Output::Json {
        println!("{answer}");
        return Ok(());
    }
    let fields = ordered_fields(answer)?;
    let field = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.get());
    if let (Some(name), Some(kind)) = (field("created"), field("kind")) {
        println!(
            "created {} {}",
            serde_json::from_str::<String>(kind)?,
            serde_json::from_str::<String>(name)?
        );
    } else if let Some(name) = field("rebuilt") {
        println!("rebuilt {}", serde_json::from_str::<String>(name)?);
    } else if let Some(dropped) = field("dropped") {
        match serde_json::from_str::<Option<String>>(dropped)? {
            Some(name) => println!("dropped {name}"),
            None => println!("nothing to drop"),
        }
    } else if field("sql").is_some() {
        // DESCRIBE.
        for (name, value) in &fields {
            println!("{name:<20} {}", cell(value));
        }
    } else if let Some(list) = field("views").or(field("tables")) {
        let list: Vec<Summary> = serde_json::from_str(list)?;
        let rows: Vec<Vec<String>> = list
            .into_iter()
            .map(|s| vec![s.name, s.kind, s.source, s.state])
            .collect();
        print_table(&["NAME", "KIND", "SOURCE", "STATE"], &rows);
    } else if let Some(rows) = field("rows") {
        let rows: Vec<Box<RawValue>> = serde_json::from_str(rows)?;
        let mut columns: Vec<String> = match field("columns") {
            Some(columns) => serde_json::from_str(columns)?,
            None => Vec::new(),
        };
        let mut cells = Vec::with_capacity(rows.len());
        for row in &rows {
            let row = ordered_fields(row.get())?;
            if columns.is_empty() {
                columns = row.iter().map(|(name, _)| name.clone()).collect();
            }
            cells.push(
                columns
                    .iter()
                    .map(|c| {
                        row.iter()
                            .find(|(n, _)| n == c)
                            .map_or(String::new(), |(_, v)| cell(v))
                    })
                    .collect(),
            );
        }
        let headers: Vec<&str> = columns.iter().map(String::as_str).collect();
        print_table(&headers, &cells);
        if field("more") == Some("true") {
            eprintln!("(more rows follow: --after the last key)");
        }
    } else {
        println!("{answer}");
    }
    Ok(())
}

/// A JSON object's fields in the order written (the API writes a row's columns in order),
/// each value as its JSON text.
fn ordered_fields(object: &str) -> anyhow::Result<Vec<(String, Box<RawValue>)>> {
    Ok(serde_json::from_str::<Fields>(object)?.0)
}

/// An object's fields in order, values unparsed.
struct Fields(Vec<(String, Box<RawValue>)>);

impl<'de> serde::Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Fields, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Fields;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Fields, A::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    fields.push(entry);
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// A value as a table cell: a string as its text, anything else as its JSON (a decimal with
/// its exact digits).
fn cell(value: &RawValue) -> String {
    serde_json::from_str::<String>(value.get()).unwrap_or_else(|_| value.get().to_string())
}

fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// A path segment or query value, percent-encoded.
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A file's statements: split at each `;` outside a quoted string or comment; blank ones
/// dropped.
fn split_statements(text: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '-') if chars.peek() == Some(&'-') => {
                // A comment to the end of the line.
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                current.push('\n');
                continue;
            }
            (None, ';') => {
                statements.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    statements.push(current);
    statements
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_splits_at_semicolons_outside_strings_and_comments() {
        let text = "CREATE TABLE t FROM TOPIC 'a;b';\n-- a note; not a statement\n\
                    SELECT * FROM t WHERE x = 'y;z' ;\n\n  ;";
        assert_eq!(
            split_statements(text),
            [
                "CREATE TABLE t FROM TOPIC 'a;b'",
                "SELECT * FROM t WHERE x = 'y;z'"
            ]
        );
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(segment("acct-1"), "acct-1");
        assert_eq!(segment("[\"a\",7]"), "%5B%22a%22%2C7%5D");
        assert_eq!(segment("payments:0:41"), "payments%3A0%3A41");
    }

    #[test]
    fn a_row_keeps_its_column_order() {
        let fields = ordered_fields(r#"{"z":1,"a":"x","m":2.50}"#).unwrap();
        let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["z", "a", "m"]);
        assert_eq!(cell(&fields[2].1), "2.50");
    }

    #[test]
    fn cells_keep_a_decimal_s_digits() {
        let value = RawValue::from_string("1234567890123456.78".into()).unwrap();
        assert_eq!(cell(&value), "1234567890123456.78");
        let text = RawValue::from_string("\"ada\"".into()).unwrap();
        assert_eq!(cell(&text), "ada");
    }
}
