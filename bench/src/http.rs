//! HTTP produce load: connections that each POST batches of records to the HTTP API, one
//! request in flight per connection, over HTTP/1.1 keep-alive; and a single GET (the broker's
//! metrics). The client is a few lines over a `TcpStream` so that it costs little next to the
//! server it measures.

use anyhow::{Context, bail};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Sends `batches` requests of `batch` records of `size` bytes over `connections` connections;
/// returns the elapsed time once every request was answered 200.
pub fn produce(
    address: &str,
    topic: &str,
    connections: usize,
    batches: usize,
    batch: usize,
    size: usize,
) -> anyhow::Result<Duration> {
    let value = "x".repeat(size);
    let record = format!(r#"{{"value":"{value}"}}"#);
    let body = format!(r#"{{"records":[{}]}}"#, vec![record; batch].join(","));
    let request = format!(
        "POST /v1/topics/{topic}/records HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let start = Instant::now();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let workers: Vec<_> = (0..connections)
            .map(|c| {
                let share = batches / connections + usize::from(c < batches % connections);
                let request = request.as_bytes();
                scope.spawn(move || post_many(address, request, share))
            })
            .collect();
        for w in workers {
            w.join()
                .map_err(|_| anyhow::anyhow!("HTTP worker panicked"))??;
        }
        Ok(())
    })?;
    Ok(start.elapsed())
}

/// GETs `path` once on a new connection; returns the body of a 200 answer.
pub fn get(address: &str, path: &str) -> anyhow::Result<String> {
    let stream = TcpStream::connect(address).with_context(|| format!("connecting to {address}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    write!(writer, "GET {path} HTTP/1.1\r\nhost: {address}\r\n\r\n")?;
    let mut body = Vec::new();
    let status = read_response(&mut reader, &mut body)?;
    if status != 200 {
        bail!("GET {path} answered {status}");
    }
    Ok(String::from_utf8(body)?)
}

fn post_many(address: &str, request: &[u8], count: usize) -> anyhow::Result<()> {
    let stream = TcpStream::connect(address).with_context(|| format!("connecting to {address}"))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut body = Vec::new();
    for _ in 0..count {
        writer.write_all(request)?;
        let status = read_response(&mut reader, &mut body)?;
        if status != 200 {
            bail!(
                "HTTP produce answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    Ok(())
}

/// Reads one response (status line, headers, a `content-length` body); returns the status.
fn read_response(reader: &mut BufReader<TcpStream>, body: &mut Vec<u8>) -> anyhow::Result<u16> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .context("no status line")?
        .parse()?;
    let mut length = 0usize;
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse()?;
        }
    }
    body.resize(length, 0);
    reader.read_exact(body)?;
    Ok(status)
}
