//! A `sluice serve` of this build for the integration tests, on a free loopback port.

#![allow(dead_code)] // Each test file uses what it needs.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `sluice serve` on a temporary directory, killed when dropped.
pub struct Server {
    child: Child,
    pub address: String,
    _dir: tempfile::TempDir,
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
    let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "serve",
            "--listen",
            &address,
            "--http-listen",
            "off",
            "--data-dir",
        ])
        .arg(dir.path())
        .args(flags)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sluice starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&address).is_err() {
        assert!(
            Instant::now() < deadline,
            "no broker on {address} after 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Server {
        child,
        address,
        _dir: dir,
    }
}
