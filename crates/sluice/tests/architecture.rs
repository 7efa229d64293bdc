//! The crate graph is the architecture: this test reads `cargo metadata` and fails on an edge
//! between our crates that ARCHITECTURE.md does not name (an allow-list), on an outside crate a
//! core must not use, and on a source file without its `//!` module doc.

use std::collections::BTreeMap;
use std::path::Path;

/// Every dependency edge between workspace crates, as ARCHITECTURE.md ("Crate edges") draws
/// them. An edge not named here fails the test until the map names it; a name here that is no
/// longer an edge fails too, so the map stays true.
const ALLOWED_EDGES: &[(&str, &[&str])] = &[
    ("sluice-types", &[]),
    ("sluice-alloc-guard", &[]),
    ("sluice-record", &["sluice-types"]),
    ("sluice-protocol", &["sluice-types"]),
    ("sluice-storage", &["sluice-record", "sluice-types"]),
    ("sluice-group", &["sluice-types"]),
    ("sluice-txn", &["sluice-types"]),
    // The coordinator runtime: shards of internal-topic coordinators, knowing no storage.
    ("sluice-coordinator", &["sluice-record", "sluice-types"]),
    ("sluice-replication", &[]),
    // Share groups' share-partitions, configs and state records: pure (issue 18).
    ("sluice-share", &["sluice-types"]),
    // Kafka's authorization model and decision: pure (issue 15).
    ("sluice-acl", &[]),
    // SASL's mechanisms and SCRAM credentials: pure (issue 15).
    ("sluice-sasl", &["sluice-types"]),
    // ACL records are checked and matched with the acl crate's model.
    (
        "sluice-controller",
        &["sluice-acl", "sluice-replication", "sluice-types"],
    ),
    // The one crate that knows openraft; it does I/O (the metadata log on disk).
    ("sluice-consensus", &["sluice-controller", "sluice-types"]),
    // A node's place in the cluster: runs the metadata log and the broker's session.
    (
        "sluice-cluster",
        &["sluice-consensus", "sluice-controller", "sluice-types"],
    ),
    // The replica manager: replication's rules on this broker's logs; followers fetch from
    // their leaders as Kafka clients.
    (
        "sluice-replica",
        &[
            "sluice-client",
            "sluice-record",
            "sluice-replication",
            "sluice-storage",
            "sluice-types",
        ],
    ),
    (
        "sluice-broker",
        &[
            // The compiled ACLs every request is checked against.
            "sluice-acl",
            // Brokers talk to each other as Kafka clients (transaction markers).
            "sluice-client",
            "sluice-controller",
            "sluice-coordinator",
            "sluice-group",
            "sluice-protocol",
            "sluice-record",
            "sluice-replica",
            "sluice-replication",
            // SASL exchanges on SASL listeners; SCRAM keys from salted passwords.
            "sluice-sasl",
            // Share-partitions and share groups' configs.
            "sluice-share",
            "sluice-storage",
            "sluice-txn",
            "sluice-types",
        ],
    ),
    // The client logs in with SASL (SCRAM's client side) and salts new users' passwords; ACLs
    // by name take the acl crate's names and codes.
    (
        "sluice-client",
        &[
            "sluice-acl",
            "sluice-protocol",
            "sluice-record",
            "sluice-sasl",
            "sluice-types",
        ],
    ),
    (
        "sluice-http",
        &["sluice-client", "sluice-record", "sluice-types"],
    ),
    // The view engine: a Kafka client like `http`.
    (
        "sluice-view",
        &["sluice-client", "sluice-record", "sluice-types"],
    ),
    (
        "sluice",
        &[
            // `super_users` checked as principals.
            "sluice-acl",
            "sluice-alloc-guard",
            "sluice-broker",
            "sluice-client",
            "sluice-cluster",
            "sluice-controller",
            "sluice-http",
            "sluice-record",
            // The bootstrap administrator's SCRAM keys.
            "sluice-sasl",
            "sluice-types",
            "sluice-view",
        ],
    ),
    // The benchmark is a client of the binary, through librdkafka.
    ("sluice-bench", &[]),
];

/// Outside crates that cores must not use: the pure state machines and formats do no I/O and
/// run on no runtime; only the protocol layer, the broker and the client know Kafka's API types.
const FORBIDDEN_EXTERNAL: &[(&str, &[&str])] = &[
    ("sluice-types", &["tokio", "kafka-protocol"]),
    ("sluice-record", &["tokio", "kafka-protocol"]),
    ("sluice-protocol", &["tokio"]),
    ("sluice-storage", &["kafka-protocol"]),
    ("sluice-group", &["tokio", "kafka-protocol"]),
    ("sluice-txn", &["tokio", "kafka-protocol"]),
    ("sluice-coordinator", &["kafka-protocol"]),
    ("sluice-replication", &["tokio", "kafka-protocol"]),
    ("sluice-share", &["tokio", "kafka-protocol"]),
    ("sluice-acl", &["tokio", "kafka-protocol"]),
    ("sluice-sasl", &["tokio", "kafka-protocol"]),
    ("sluice-controller", &["tokio", "kafka-protocol"]),
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
fn every_edge_between_our_crates_is_one_the_map_names() {
    let deps = dependencies();
    assert!(
        deps.contains_key("sluice-storage"),
        "workspace crates are visible"
    );
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED_EDGES.iter().copied().collect();
    let mut unnamed = Vec::new();
    let mut stale = Vec::new();
    for (krate, actual) in &deps {
        let Some(named) = allowed.get(krate.as_str()) else {
            unnamed.push(format!("{krate} (a crate the map does not list)"));
            continue;
        };
        for dep in actual.iter().filter(|d| deps.contains_key(*d)) {
            if !named.contains(&dep.as_str()) {
                unnamed.push(format!("{krate} -> {dep}"));
            }
        }
        for dep in named.iter().filter(|d| !actual.iter().any(|a| a == *d)) {
            stale.push(format!("{krate} -> {dep}"));
        }
    }
    for krate in allowed.keys().filter(|k| !deps.contains_key(**k)) {
        stale.push(format!("{krate} (no such crate)"));
    }
    assert!(
        unnamed.is_empty(),
        "edges ARCHITECTURE.md and ALLOWED_EDGES do not name: {unnamed:?}"
    );
    assert!(
        stale.is_empty(),
        "ALLOWED_EDGES names edges that no longer exist: {stale:?}"
    );
}

#[test]
fn no_core_uses_an_outside_crate_the_architecture_forbids() {
    let deps = dependencies();
    let mut violations = Vec::new();
    for (krate, forbidden) in FORBIDDEN_EXTERNAL {
        let actual = deps
            .get(*krate)
            .unwrap_or_else(|| panic!("{krate} is a workspace member"));
        for f in *forbidden {
            if actual.iter().any(|d| d == f) {
                violations.push(format!("{krate} -> {f}"));
            }
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
