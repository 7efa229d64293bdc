//! The crate graph is the architecture: this test reads `cargo metadata` and fails on an edge
//! that ARCHITECTURE.md forbids, and on a source file without its `//!` module doc.

use std::collections::BTreeMap;
use std::path::Path;

/// For each crate, the crates (ours or not) it must never depend on.
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "sluice-types",
        &[
            "sluice-record",
            "sluice-storage",
            "sluice-protocol",
            "sluice-broker",
            "sluice",
            "tokio",
        ],
    ),
    (
        "sluice-record",
        &[
            "sluice-storage",
            "sluice-protocol",
            "sluice-broker",
            "sluice",
            "kafka-protocol",
            "tokio",
        ],
    ),
    (
        "sluice-protocol",
        &["sluice-storage", "sluice-broker", "sluice", "tokio"],
    ),
    (
        "sluice-storage",
        &[
            "sluice-protocol",
            "sluice-broker",
            "sluice",
            "kafka-protocol",
        ],
    ),
    (
        "sluice-group",
        &[
            "sluice-storage",
            "sluice-record",
            "sluice-protocol",
            "sluice-broker",
            "sluice",
            "kafka-protocol",
            "tokio",
        ],
    ),
    // The transaction coordinator is a pure state machine too.
    (
        "sluice-txn",
        &[
            "sluice-storage",
            "sluice-record",
            "sluice-protocol",
            "sluice-group",
            "sluice-broker",
            "sluice",
            "kafka-protocol",
            "tokio",
        ],
    ),
    ("sluice-broker", &["sluice"]),
    // The HTTP API is a gateway: a Kafka client of the broker, never a second broker.
    (
        "sluice-http",
        &[
            "sluice-storage",
            "sluice-group",
            "sluice-txn",
            "sluice-broker",
            "sluice",
        ],
    ),
    // A client knows nothing of the server side: it would work against any Kafka cluster.
    (
        "sluice-client",
        &[
            "sluice-storage",
            "sluice-group",
            "sluice-txn",
            "sluice-broker",
            "sluice",
        ],
    ),
];

fn dependencies() -> BTreeMap<String, Vec<String>> {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .filter(|d| d["kind"].is_null()) // normal dependencies, not dev or build
                .map(|d| d["name"].as_str().expect("name").to_string())
                .collect();
            (p["name"].as_str().expect("name").to_string(), deps)
        })
        .collect()
}

#[test]
fn no_crate_depends_on_what_the_architecture_forbids() {
    let deps = dependencies();
    assert!(
        deps.contains_key("sluice-storage"),
        "workspace crates are visible"
    );
    let mut violations = Vec::new();
    for (krate, forbidden) in FORBIDDEN {
        let actual = deps
            .get(*krate)
            .unwrap_or_else(|| panic!("{krate} is a workspace member"));
        for f in *forbidden {
            if actual.iter().any(|d| d == f) {
                violations.push(format!("{krate} -> {f}"));
            }
        }
    }
    for (krate, actual) in &deps {
        if actual.iter().any(|d| d == "sluice") {
            violations.push(format!("{krate} -> sluice (nothing depends on the binary)"));
        }
    }
    assert!(
        violations.is_empty(),
        "forbidden dependency edges: {violations:?}"
    );
}

#[test]
fn every_source_file_opens_with_a_module_doc() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crates/");
    let mut missing = Vec::new();
    let mut seen = 0;
    let mut stack = vec![crates.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                seen += 1;
                let text = std::fs::read_to_string(&path).expect("utf-8 source");
                if !text.trim_start().starts_with("//!") {
                    missing.push(path.display().to_string());
                }
            }
        }
    }
    assert!(seen > 20, "found the sources");
    assert!(
        missing.is_empty(),
        "files without a //! module doc: {missing:?}"
    );
}
