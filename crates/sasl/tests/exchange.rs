//! The server's side of PLAIN and SCRAM against RFC 7677's example and a client written here
//! from RFC 5802.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::{digest, hmac};
use sluice_sasl::{
    Credentials, Exchange, Mechanism, SaslError, ScramCredential, Step, salted_password,
};
use std::collections::BTreeMap;

#[derive(Default)]
struct Users(BTreeMap<(String, Mechanism), ScramCredential>);

impl Users {
    fn with(mut self, user: &str, mechanism: Mechanism, password: &str) -> Users {
        let credential = ScramCredential::from_password(
            mechanism,
            password.as_bytes(),
            b"salt-of-a-user".to_vec(),
            4096,
        );
        self.0.insert((user.to_string(), mechanism), credential);
        self
    }
}

impl Credentials for Users {
    fn scram(&self, user: &str, mechanism: Mechanism) -> Option<ScramCredential> {
        self.0.get(&(user.to_string(), mechanism)).cloned()
    }
}

const SECRET: &[u8] = b"the broker's secret";

#[test]
fn rfc_7677_example_exchange() {
    let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    let credential = ScramCredential::from_password(Mechanism::ScramSha256, b"pencil", salt, 4096);
    let mut users = Users::default();
    users
        .0
        .insert(("user".into(), Mechanism::ScramSha256), credential);
    let mut exchange = Exchange::new(
        Mechanism::ScramSha256,
        "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into(),
        SECRET.to_vec(),
    );
    let first = exchange
        .step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", &users, 0)
        .unwrap();
    assert_eq!(
        first,
        Step::Challenge(
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
                .to_vec()
        )
    );
    let last = exchange
        .step(
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            &users,
            0,
        )
        .unwrap();
    assert_eq!(
        last,
        Step::Done {
            user: "user".into(),
            token: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec(),
            expires_at_unix_ms: None,
        }
    );
    assert_eq!(exchange.step(b"more", &users, 0), Err(SaslError::Finished));
}

/// RFC 5802's client: the final message for `password`, given the server-first.
fn client_final(
    mechanism: Mechanism,
    password: &str,
    client_first_bare: &str,
    server_first: &str,
) -> (String, Vec<u8>) {
    let nonce = server_first
        .split(',')
        .find_map(|f| f.strip_prefix("r="))
        .unwrap()
        .to_string();
    client_final_with_nonce(mechanism, password, client_first_bare, server_first, &nonce)
}

/// The same, sending `nonce` in client-final.
fn client_final_with_nonce(
    mechanism: Mechanism,
    password: &str,
    client_first_bare: &str,
    server_first: &str,
    nonce: &str,
) -> (String, Vec<u8>) {
    let field = |name: &str| {
        server_first
            .split(',')
            .find_map(|f| f.strip_prefix(name))
            .unwrap()
            .to_string()
    };
    let salt = BASE64.decode(field("s=")).unwrap();
    let iterations: u32 = field("i=").parse().unwrap();
    let (hmac_alg, digest_alg) = match mechanism {
        Mechanism::ScramSha512 => (hmac::HMAC_SHA512, &digest::SHA512),
        _ => (hmac::HMAC_SHA256, &digest::SHA256),
    };
    let salted = salted_password(mechanism, password.as_bytes(), &salt, iterations);
    let mac = |key: &[u8], data: &[u8]| {
        hmac::sign(&hmac::Key::new(hmac_alg, key), data)
            .as_ref()
            .to_vec()
    };
    let client_key = mac(&salted, b"Client Key");
    let stored_key = digest::digest(digest_alg, &client_key).as_ref().to_vec();
    let without_proof = format!("c=biws,r={nonce}");
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let signature = mac(&stored_key, auth_message.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(k, s)| k ^ s)
        .collect();
    let server_key = mac(&salted, b"Server Key");
    let expected_server_final = format!(
        "v={}",
        BASE64.encode(mac(&server_key, auth_message.as_bytes()))
    );
    (
        format!("{without_proof},p={}", BASE64.encode(proof)),
        expected_server_final.into_bytes(),
    )
}

fn scram_login(
    users: &Users,
    mechanism: Mechanism,
    user: &str,
    password: &str,
) -> Result<(String, bool), SaslError> {
    let mut exchange = Exchange::new(mechanism, "server-nonce".into(), SECRET.to_vec());
    let bare = format!("n={user},r=client-nonce");
    let Step::Challenge(server_first) = exchange.step(format!("n,,{bare}").as_bytes(), users, 0)?
    else {
        panic!("a challenge first")
    };
    let server_first = String::from_utf8(server_first).unwrap();
    let (last, expected) = client_final(mechanism, password, &bare, &server_first);
    match exchange.step(last.as_bytes(), users, 0)? {
        Step::Done { user, token, .. } => Ok((user, token == expected)),
        Step::Challenge(_) => panic!("done after client-final"),
    }
}

#[test]
fn scram_sha_512_and_256_admit_the_right_password_only() {
    let users = Users::default()
        .with("alice", Mechanism::ScramSha512, "alice-secret")
        .with("bob", Mechanism::ScramSha256, "bob-secret");
    assert_eq!(
        scram_login(&users, Mechanism::ScramSha512, "alice", "alice-secret"),
        Ok(("alice".into(), true)),
        "the server proves itself with the right signature"
    );
    assert_eq!(
        scram_login(&users, Mechanism::ScramSha256, "bob", "bob-secret"),
        Ok(("bob".into(), true))
    );
    for (mechanism, user, password) in [
        (Mechanism::ScramSha512, "alice", "wrong"),
        (Mechanism::ScramSha256, "alice", "alice-secret"), // no SHA-256 credential
        (Mechanism::ScramSha512, "nobody", "x"),
    ] {
        assert_eq!(
            scram_login(&users, mechanism, user, password),
            Err(SaslError::BadCredentials)
        );
    }
}

#[test]
fn an_unknown_user_looks_like_a_known_one_until_the_proof() {
    let users = Users::default();
    let server_first = |user: &str| {
        let mut exchange = Exchange::new(Mechanism::ScramSha256, "n".into(), SECRET.to_vec());
        match exchange
            .step(format!("n,,n={user},r=c").as_bytes(), &users, 0)
            .unwrap()
        {
            Step::Challenge(bytes) => String::from_utf8(bytes).unwrap(),
            Step::Done { .. } => panic!("a challenge"),
        }
    };
    assert_eq!(
        server_first("ghost"),
        server_first("ghost"),
        "the same stand-in salt each time"
    );
    assert_ne!(server_first("ghost"), server_first("spirit"));
    assert!(server_first("ghost").ends_with(",i=4096"));
}

#[test]
fn malformed_and_refused_scram_messages() {
    let users = Users::default().with("alice", Mechanism::ScramSha256, "pw");
    for first in [
        &b"n,,r=nonce"[..],               // no user
        b"n,,n=alice",                    // no nonce
        b"p=tls-unique,,n=alice,r=x",     // channel binding
        b"x,,n=alice,r=x",                // unknown flag
        b"n,,m=ext,n=alice,r=x",          // mandatory extension
        b"n,,n=al=ice,r=x",               // bad escape
        b"n,a=bob,n=alice,r=x",           // authzid differs
        b"n,,n=alice,r=x,tokenauth=true", // delegation token
        b"\xff\xfe",
    ] {
        let mut exchange = Exchange::new(Mechanism::ScramSha256, "s".into(), SECRET.to_vec());
        assert!(
            exchange.step(first, &users, 0).is_err(),
            "{:?}",
            String::from_utf8_lossy(first)
        );
    }
    let mut exchange = Exchange::new(Mechanism::ScramSha256, "s".into(), SECRET.to_vec());
    exchange.step(b"n,,n=alice,r=c", &users, 0).unwrap();
    assert!(
        matches!(
            exchange.step(b"c=biws,r=OTHER,p=AAAA", &users, 0),
            Err(SaslError::Malformed { .. })
        ),
        "a nonce the server did not make is refused"
    );
    assert_eq!(
        exchange.step(b"c=biws,r=cs,p=AAAA", &users, 0),
        Err(SaslError::Finished),
        "one try only"
    );
}

#[test]
fn old_librdkafka_s_doubled_client_nonce_is_accepted() {
    // librdkafka before 2.6.1 sends its own nonce once more before the combined one, and
    // Kafka accepts it (`endsWith` since 3.8.1); a nonce without the server's part is not.
    let users = Users::default().with("alice", Mechanism::ScramSha512, "pw");
    for (sent, accepted) in [("clicli", true), ("cli", false)] {
        let mut exchange = Exchange::new(Mechanism::ScramSha512, "srv".into(), SECRET.to_vec());
        let bare = "n=alice,r=cli";
        let Step::Challenge(server_first) = exchange
            .step(format!("n,,{bare}").as_bytes(), &users, 0)
            .unwrap()
        else {
            panic!("a challenge first")
        };
        let server_first = String::from_utf8(server_first).unwrap();
        let nonce = if accepted {
            format!("cli{}", &server_first[2..8])
        } else {
            sent.to_string()
        };
        let (last, _) =
            client_final_with_nonce(Mechanism::ScramSha512, "pw", bare, &server_first, &nonce);
        assert_eq!(
            exchange.step(last.as_bytes(), &users, 0).is_ok(),
            accepted,
            "{sent}"
        );
    }
}

#[test]
fn a_user_name_with_escapes_is_decoded() {
    let users = Users::default().with("a,b=c", Mechanism::ScramSha512, "pw");
    let mut exchange = Exchange::new(Mechanism::ScramSha512, "s".into(), SECRET.to_vec());
    let bare = "n=a=2Cb=3Dc,r=c";
    let Step::Challenge(server_first) = exchange
        .step(format!("n,,{bare}").as_bytes(), &users, 0)
        .unwrap()
    else {
        panic!()
    };
    let (last, _) = client_final(
        Mechanism::ScramSha512,
        "pw",
        bare,
        std::str::from_utf8(&server_first).unwrap(),
    );
    assert!(
        matches!(exchange.step(last.as_bytes(), &users, 0), Ok(Step::Done { user, .. }) if user == "a,b=c")
    );
}

#[test]
fn plain_checks_the_password_against_either_scram_credential() {
    let users = Users::default()
        .with("alice", Mechanism::ScramSha512, "alice-secret")
        .with("bob", Mechanism::ScramSha256, "bob-secret");
    let login = |message: &[u8]| {
        Exchange::new(Mechanism::Plain, String::new(), SECRET.to_vec()).step(message, &users, 0)
    };
    assert_eq!(
        login(b"\0alice\0alice-secret"),
        Ok(Step::Done {
            user: "alice".into(),
            token: Vec::new(),
            expires_at_unix_ms: None,
        })
    );
    assert!(matches!(login(b"bob\0bob\0bob-secret"), Ok(Step::Done { user, .. }) if user == "bob"));
    for message in [
        &b"\0alice\0wrong"[..],
        b"\0nobody\0x",
        b"carol\0alice\0alice-secret",
        b"\0alice",
        b"\0alice\0alice-secret\0more",
        b"\0\0x",
    ] {
        assert!(
            login(message).is_err(),
            "{:?}",
            String::from_utf8_lossy(message)
        );
    }
}

#[test]
fn mechanisms_by_name_and_scram_type() {
    for m in Mechanism::ALL {
        assert_eq!(Mechanism::parse(m.name()), Some(m));
    }
    assert_eq!(
        Mechanism::parse("scram-sha-256"),
        None,
        "SASL names are exact"
    );
    assert_eq!(Mechanism::from_scram_type(2), Some(Mechanism::ScramSha512));
    assert_eq!(Mechanism::from_scram_type(0), None);
}

#[test]
fn the_client_logs_in_against_the_server_and_checks_its_signature() {
    use sluice_sasl::ScramClient;
    let users = Users::default().with("alice", Mechanism::ScramSha512, "alice-secret");
    for (password, accepted) in [("alice-secret", true), ("wrong", false)] {
        let mut client =
            ScramClient::new(Mechanism::ScramSha512, "alice", password, "cnonce".into());
        let mut server = Exchange::new(Mechanism::ScramSha512, "snonce".into(), SECRET.to_vec());
        let Ok(Step::Challenge(server_first)) = server.step(&client.first_message(), &users, 0)
        else {
            panic!("a challenge")
        };
        let last = client.final_message(&server_first).unwrap();
        match server.step(&last, &users, 0) {
            Ok(Step::Done { token, .. }) => {
                assert!(accepted);
                client.verify_server_final(&token).unwrap();
                assert!(
                    client.verify_server_final(b"v=AAAA").is_err(),
                    "a wrong signature"
                );
            }
            Err(SaslError::BadCredentials) => assert!(!accepted),
            other => panic!("unexpected {other:?}"),
        }
    }
    let mut client = ScramClient::new(Mechanism::ScramSha256, "a", "b", "cnonce".into());
    assert!(
        client.final_message(b"r=other,s=AAAA,i=4096").is_err(),
        "a nonce not ours"
    );
    assert!(
        client.final_message(b"r=cnonceX,s=AAAA,i=1").is_err(),
        "too few iterations"
    );
}
