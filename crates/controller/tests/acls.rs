//! ACLs as metadata: CreateAcls' answers per binding (invalid ones refused, repeats kept once),
//! DeleteAcls' matches per filter, and the image and its snapshot holding what remains.

use sluice_controller::{
    AclEntry, AclFilterEntry, ControllerCommand, ControllerConfig, ControllerError,
    ControllerReply, MetadataImage, QuorumController,
};

const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const ANY: i8 = 1;
const MATCH: i8 = 2;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const READ: i8 = 3;
const WRITE: i8 = 4;
const ALLOW: i8 = 3;
const DENY: i8 = 2;

fn acl(
    resource_type: i8,
    name: &str,
    pattern: i8,
    principal: &str,
    operation: i8,
    permission: i8,
) -> AclEntry {
    AclEntry {
        resource_type,
        resource_name: name.into(),
        pattern_type: pattern,
        principal: principal.into(),
        host: "*".into(),
        operation,
        permission,
    }
}

fn run(c: &mut QuorumController, command: ControllerCommand) -> ControllerReply {
    let (records, reply) = c.execute(command, 0);
    for r in &records {
        c.replay(r);
    }
    reply
}

fn create(c: &mut QuorumController, entries: Vec<AclEntry>) -> Vec<Result<(), ControllerError>> {
    match run(c, ControllerCommand::CreateAcls(entries)) {
        ControllerReply::AclsCreated(results) => results,
        other => panic!("unexpected {other:?}"),
    }
}

fn filter(
    resource_type: i8,
    name: Option<&str>,
    pattern: i8,
    principal: Option<&str>,
) -> AclFilterEntry {
    AclFilterEntry {
        resource_type,
        resource_name: name.map(String::from),
        pattern_type: pattern,
        principal: principal.map(String::from),
        host: None,
        operation: ANY,
        permission: ANY,
    }
}

#[test]
fn acls_are_created_once_refused_when_invalid_and_deleted_by_filter() {
    let mut c = QuorumController::new(ControllerConfig::default());
    let orders = acl(TOPIC, "orders-", PREFIXED, "User:alice", WRITE, ALLOW);
    let results = create(
        &mut c,
        vec![
            orders.clone(),
            orders.clone(),
            acl(TOPIC, "payments", LITERAL, "User:alice", WRITE, DENY),
            acl(GROUP, "g", LITERAL, "User:bob", READ, ALLOW),
            acl(TOPIC, "t", MATCH, "User:bob", READ, ALLOW),
            acl(TOPIC, "t", LITERAL, "bob", READ, ALLOW),
            acl(ANY, "t", LITERAL, "User:bob", READ, ALLOW),
            acl(TOPIC, "*", PREFIXED, "User:bob", READ, ALLOW),
        ],
    );
    let ok: Vec<bool> = results.iter().map(Result::is_ok).collect();
    assert_eq!(ok, vec![true, true, true, true, false, false, false, false]);
    assert!(matches!(
        results[4],
        Err(ControllerError::InvalidRequest(_))
    ));
    assert_eq!(c.image().acls.len(), 3, "the repeat is kept once");
    assert!(create(&mut c, vec![orders.clone()])[0].is_ok());
    assert_eq!(c.image().acls.len(), 3, "and again across requests");

    let mut rebuilt = MetadataImage::default();
    for r in c.image().to_records() {
        rebuilt.apply(&r);
    }
    assert_eq!(&rebuilt, c.image());

    // A MATCH filter for orders-eu selects the prefixed ACL; a principal filter selects by it.
    let reply = run(
        &mut c,
        ControllerCommand::DeleteAcls(vec![
            filter(TOPIC, Some("orders-eu"), MATCH, None),
            filter(ANY, None, ANY, Some("User:bob")),
            filter(ANY, None, ANY, Some("User:bob")),
            filter(0, None, ANY, None),
        ]),
    );
    let ControllerReply::AclsDeleted(results) = reply else {
        panic!("unexpected {reply:?}")
    };
    assert_eq!(results[0].as_ref().unwrap(), &vec![orders]);
    assert_eq!(results[1].as_ref().unwrap().len(), 1);
    assert_eq!(
        results[2].as_ref().unwrap().len(),
        1,
        "each filter lists what it matched"
    );
    assert!(matches!(
        results[3],
        Err(ControllerError::InvalidRequest(_))
    ));
    let left: Vec<&str> = c
        .image()
        .acls
        .values()
        .map(|a| a.resource_name.as_str())
        .collect();
    assert_eq!(left, vec!["payments"]);
}
