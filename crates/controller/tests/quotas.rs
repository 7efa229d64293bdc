//! Client quotas as metadata: AlterClientQuotas' answers per entity (Kafka's refusals), set and
//! removed keys in the image and its snapshot, validate-only, and DescribeClientQuotas' filter.

use sluice_controller::{
    ControllerCommand, ControllerConfig, ControllerError, ControllerReply, MetadataImage,
    QuorumController, QuotaAlteration, QuotaEntity, QuotaFilter, QuotaMatch, QuotaValue,
};

fn entity(parts: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
    parts
        .iter()
        .map(|(t, n)| (t.to_string(), n.map(str::to_string)))
        .collect()
}

fn set(parts: &[(&str, Option<&str>)], ops: &[(&str, Option<f64>)]) -> QuotaAlteration {
    QuotaAlteration {
        entity: entity(parts),
        ops: ops
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(QuotaValue)))
            .collect(),
    }
}

fn alter(
    c: &mut QuorumController,
    alterations: Vec<QuotaAlteration>,
    validate_only: bool,
) -> Vec<Result<(), ControllerError>> {
    let command = ControllerCommand::AlterClientQuotas {
        alterations,
        validate_only,
    };
    let (records, reply) = c.execute(command, 0);
    for r in &records {
        c.replay(r);
    }
    match reply {
        ControllerReply::QuotasAltered(results) => results,
        other => panic!("unexpected {other:?}"),
    }
}

fn quotas_of(c: &QuorumController, parts: &[(&str, Option<&str>)]) -> Vec<(String, f64)> {
    let entity = QuotaEntity::from_parts(&entity(parts)).unwrap();
    c.image()
        .client_quotas
        .get(&entity)
        .map(|q| q.iter().map(|(k, v)| (k.clone(), v.0)).collect())
        .unwrap_or_default()
}

const ALICE: &[(&str, Option<&str>)] = &[("user", Some("alice"))];
const ALICE_APP: &[(&str, Option<&str>)] = &[("user", Some("alice")), ("client-id", Some("app"))];
const DEFAULT_CLIENT: &[(&str, Option<&str>)] = &[("client-id", None)];

#[test]
fn quotas_are_set_replaced_and_removed_and_survive_a_snapshot() {
    let mut c = QuorumController::new(ControllerConfig::default());
    let results = alter(
        &mut c,
        vec![
            set(ALICE, &[("producer_byte_rate", Some(1024.0))]),
            set(
                ALICE_APP,
                &[
                    ("consumer_byte_rate", Some(2048.0)),
                    ("request_percentage", Some(12.5)),
                ],
            ),
            set(DEFAULT_CLIENT, &[("producer_byte_rate", Some(10.0))]),
        ],
        false,
    );
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(
        quotas_of(&c, ALICE),
        vec![("producer_byte_rate".into(), 1024.0)]
    );
    alter(
        &mut c,
        vec![set(
            ALICE_APP,
            &[
                ("request_percentage", None),
                ("consumer_byte_rate", Some(4096.0)),
            ],
        )],
        false,
    );
    assert_eq!(
        quotas_of(&c, ALICE_APP),
        vec![("consumer_byte_rate".into(), 4096.0)]
    );
    // Removing the last key forgets the entity; removing what is not there changes nothing.
    let results = alter(
        &mut c,
        vec![set(
            DEFAULT_CLIENT,
            &[("producer_byte_rate", None), ("consumer_byte_rate", None)],
        )],
        false,
    );
    assert_eq!(results, vec![Ok(())]);
    assert_eq!(c.image().client_quotas.len(), 2);

    let mut rebuilt = MetadataImage::default();
    for r in c.image().to_records() {
        rebuilt.apply(&r);
    }
    assert_eq!(rebuilt.client_quotas, c.image().client_quotas);
}

#[test]
fn kafkas_refusals_are_per_entity_and_change_nothing() {
    let mut c = QuorumController::new(ControllerConfig::default());
    let refused = |results: Vec<Result<(), ControllerError>>| {
        results
            .into_iter()
            .map(|r| matches!(r, Err(ControllerError::InvalidRequest(_))))
            .collect::<Vec<bool>>()
    };
    let results = alter(
        &mut c,
        vec![
            set(ALICE, &[("producer_byte_rate", Some(1.5))]),
            set(ALICE_APP, &[("no_such_quota", Some(1.0))]),
            set(
                &[("group", Some("g"))],
                &[("producer_byte_rate", Some(1.0))],
            ),
            set(&[], &[("producer_byte_rate", Some(1.0))]),
            set(&[("user", Some(""))], &[("producer_byte_rate", Some(1.0))]),
            set(
                &[("ip", Some("10.0.0.1"))],
                &[("connection_creation_rate", Some(1.0))],
            ),
            set(DEFAULT_CLIENT, &[("controller_mutation_rate", Some(1.0))]),
            set(DEFAULT_CLIENT, &[("producer_byte_rate", Some(-5.0))]),
            set(
                &[("user", Some("bob"))],
                &[
                    ("producer_byte_rate", Some(1.0)),
                    ("producer_byte_rate", Some(2.0)),
                ],
            ),
            set(
                &[("user", Some("bob")), ("user", Some("carol"))],
                &[("producer_byte_rate", Some(1.0))],
            ),
        ],
        false,
    );
    assert_eq!(refused(results), vec![true; 10]);
    // One bad key refuses the entity's good ones too.
    let results = alter(
        &mut c,
        vec![set(
            ALICE,
            &[("producer_byte_rate", Some(100.0)), ("bogus", Some(1.0))],
        )],
        false,
    );
    assert_eq!(refused(results), vec![true]);
    // An entity named twice: the second is refused.
    let results = alter(
        &mut c,
        vec![
            set(ALICE, &[("producer_byte_rate", Some(100.0))]),
            set(ALICE, &[("consumer_byte_rate", Some(100.0))]),
        ],
        false,
    );
    assert_eq!(refused(results), vec![false, true]);
    assert_eq!(
        quotas_of(&c, ALICE),
        vec![("producer_byte_rate".into(), 100.0)]
    );
}

#[test]
fn validate_only_answers_without_changing_anything() {
    let mut c = QuorumController::new(ControllerConfig::default());
    let results = alter(
        &mut c,
        vec![
            set(ALICE, &[("producer_byte_rate", Some(100.0))]),
            set(ALICE_APP, &[("bogus", Some(1.0))]),
        ],
        true,
    );
    assert!(results[0].is_ok() && results[1].is_err());
    assert!(c.image().client_quotas.is_empty());
}

#[test]
fn the_describe_filter_matches_as_kafkas() {
    let entities: Vec<QuotaEntity> = [ALICE, ALICE_APP, DEFAULT_CLIENT]
        .iter()
        .map(|p| QuotaEntity::from_parts(&entity(p)).unwrap())
        .collect();
    let matching = |components: Vec<(&str, QuotaMatch)>, strict: bool| {
        let filter = QuotaFilter {
            components: components
                .into_iter()
                .map(|(t, m)| (t.to_string(), m))
                .collect(),
            strict,
        };
        filter.check().unwrap();
        entities
            .iter()
            .map(|e| filter.matches(e))
            .collect::<Vec<bool>>()
    };
    let alice = || ("user", QuotaMatch::Exact("alice".into()));
    assert_eq!(matching(vec![alice()], false), vec![true, true, false]);
    assert_eq!(matching(vec![alice()], true), vec![true, false, false]);
    assert_eq!(
        matching(vec![("client-id", QuotaMatch::Default)], false),
        vec![false, false, true]
    );
    assert_eq!(
        matching(vec![("client-id", QuotaMatch::Any)], false),
        vec![false, true, true]
    );
    assert_eq!(matching(vec![], false), vec![true, true, true]);
    assert_eq!(matching(vec![], true), vec![false, false, false]);
    let twice = QuotaFilter {
        components: vec![
            ("user".into(), QuotaMatch::Any),
            ("user".into(), QuotaMatch::Default),
        ],
        strict: false,
    };
    assert!(twice.check().is_err());
}
