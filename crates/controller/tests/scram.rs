//! SCRAM credentials as metadata: AlterUserScramCredentials' answers per user as Kafka gives
//! them, the records replayed into the image and a snapshot of it, and the bootstrap
//! administrator written only where the user has no credential yet.

use sluice_controller::{
    ControllerCommand, ControllerConfig, ControllerError, ControllerReply, MetadataImage,
    QuorumController, ScramDeletion, ScramUpsertion,
};

const SHA_256: i8 = 1;
const SHA_512: i8 = 2;

fn upsert(name: &str, mechanism: i8, iterations: i32) -> ScramUpsertion {
    ScramUpsertion {
        name: name.into(),
        mechanism,
        iterations,
        salt: b"salt".to_vec(),
        stored_key: format!("stored-{name}").into_bytes(),
        server_key: b"server".to_vec(),
    }
}

fn delete(name: &str, mechanism: i8) -> ScramDeletion {
    ScramDeletion {
        name: name.into(),
        mechanism,
    }
}

/// Runs a command and replays its records, as the log would.
fn run(controller: &mut QuorumController, command: ControllerCommand) -> ControllerReply {
    let (records, reply) = controller.execute(command, 0);
    for r in &records {
        controller.replay(r);
    }
    reply
}

fn alter(
    controller: &mut QuorumController,
    deletions: Vec<ScramDeletion>,
    upsertions: Vec<ScramUpsertion>,
) -> Vec<(String, Result<(), ControllerError>)> {
    let command = ControllerCommand::AlterScramCredentials {
        deletions,
        upsertions,
    };
    match run(controller, command) {
        ControllerReply::ScramCredentialsAltered(results) => results,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn credentials_are_created_replaced_and_deleted_per_user() {
    let mut c = QuorumController::new(ControllerConfig::default());
    let results = alter(
        &mut c,
        vec![],
        vec![upsert("alice", SHA_512, 8192), upsert("bob", SHA_256, 4096)],
    );
    assert_eq!(
        results,
        vec![("alice".into(), Ok(())), ("bob".into(), Ok(()))]
    );
    let image = c.image();
    assert_eq!(image.scram_credentials.len(), 2);
    assert_eq!(
        image.scram_credentials[&("alice".to_string(), SHA_512)].iterations,
        8192
    );
    // A snapshot rebuilds the same credentials.
    let mut rebuilt = MetadataImage::default();
    for r in image.to_records() {
        rebuilt.apply(&r);
    }
    assert_eq!(&rebuilt, image);

    let results = alter(
        &mut c,
        vec![delete("bob", SHA_256), delete("carol", SHA_256)],
        vec![upsert("alice", SHA_512, 4096)],
    );
    assert_eq!(results[0], ("bob".into(), Ok(())));
    assert!(matches!(&results[1], (n, Err(ControllerError::ResourceNotFound(_))) if n == "carol"));
    assert_eq!(results[2], ("alice".into(), Ok(())));
    let image = c.image();
    assert_eq!(image.scram_credentials.len(), 1);
    assert_eq!(
        image.scram_credentials[&("alice".to_string(), SHA_512)].iterations,
        4096,
        "replaced"
    );
}

#[test]
fn what_kafka_refuses_is_refused_per_user() {
    let mut c = QuorumController::new(ControllerConfig::default());
    let results = alter(
        &mut c,
        vec![delete("twice", SHA_256), delete("bad-mech", 3)],
        vec![
            upsert("twice", SHA_512, 4096),
            upsert("", SHA_512, 4096),
            upsert("few", SHA_512, 4095),
            upsert("many", SHA_512, 16_385),
            upsert("unknown", 0, 4096),
            upsert("fine", SHA_256, 16_384),
        ],
    );
    let codes: Vec<(&str, &str)> = results
        .iter()
        .map(|(name, r)| {
            let kind = match r {
                Ok(()) => "ok",
                Err(ControllerError::DuplicateResource(_)) => "duplicate",
                Err(ControllerError::UnsupportedSaslMechanism(_)) => "mechanism",
                Err(ControllerError::UnacceptableCredential(_)) => "unacceptable",
                Err(e) => panic!("unexpected {e:?}"),
            };
            (name.as_str(), kind)
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            ("twice", "duplicate"),
            ("bad-mech", "mechanism"),
            ("", "unacceptable"),
            ("few", "unacceptable"),
            ("many", "unacceptable"),
            ("unknown", "mechanism"),
            ("fine", "ok"),
        ]
    );
    assert_eq!(c.image().scram_credentials.len(), 1, "only the valid one");
}

#[test]
fn the_bootstrap_administrator_is_written_once() {
    let mut c = QuorumController::new(ControllerConfig::default());
    let admin = upsert("admin", SHA_512, 4096);
    assert_eq!(
        run(
            &mut c,
            ControllerCommand::BootstrapScram(vec![admin.clone()])
        ),
        ControllerReply::Done
    );
    assert_eq!(c.image().scram_credentials.len(), 1);
    // The password changed through the admin API stays changed at the next start.
    alter(&mut c, vec![], vec![upsert("admin", SHA_512, 9999)]);
    let (records, _) = c.execute(ControllerCommand::BootstrapScram(vec![admin.clone()]), 0);
    assert!(records.is_empty());
    // A bootstrap credential out of bounds is left out.
    let (records, _) = c.execute(
        ControllerCommand::BootstrapScram(vec![upsert("weak", SHA_512, 1)]),
        0,
    );
    assert!(records.is_empty());
}
