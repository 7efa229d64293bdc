//! A `sluice serve` of this build for the integration tests, on a free loopback port.

#![allow(dead_code)] // Each test file uses what it needs.

use sluice_record::Record;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `sluice serve` on a temporary directory, killed when dropped.
pub struct Server {
    child: Child,
    pub address: String,
    flags: Vec<String>,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start() -> Server {
    start_with(&[])
}

/// As `start`, with more flags for `sluice serve`.
pub fn start_with(flags: &[&str]) -> Server {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let address = format!("127.0.0.1:{port}");
    let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
    let child = spawn(&address, dir.path(), &flags);
    Server {
        child,
        address,
        flags,
        dir,
    }
}

impl Server {
    /// `kill -9`, then the same server again on the same directory and address.
    pub fn kill_and_restart(&mut self) {
        self.child.kill().expect("the server is killed");
        self.child.wait().expect("the killed server is reaped");
        self.child = spawn(&self.address, self.dir.path(), &self.flags);
    }
}

/// Starts `sluice serve` and waits until its Kafka listener accepts.
fn spawn(address: &str, dir: &std::path::Path, flags: &[String]) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "serve",
            "--listen",
            address,
            "--http-listen",
            "off",
            "--data-dir",
        ])
        .arg(dir)
        .args(flags)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sluice starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(address).is_err() {
        assert!(
            Instant::now() < deadline,
            "no broker on {address} after 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// Keyless records with `values`, at offsets 0..n (as `encode_records` takes them).
pub fn records<T: AsRef<[u8]>>(values: &[T]) -> Vec<Record<'_>> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            offset: i as i64,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(v.as_ref()),
            headers: Vec::new(),
        })
        .collect()
}
