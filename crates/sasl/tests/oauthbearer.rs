//! OAUTHBEARER's server side against tokens signed here (ES256 keys made with ring): what a
//! valid token needs, and each way one is refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::json;
use sluice_sasl::{
    Credentials, Exchange, Mechanism, SaslError, ScramCredential, Step, TokenRules, TokenValidator,
    oauthbearer_message,
};

const NOW_MS: u64 = 1_800_000_000_000;
const NOW_S: u64 = NOW_MS / 1000;

struct Issuer {
    key: EcdsaKeyPair,
    kid: &'static str,
}

impl Issuer {
    fn new(kid: &'static str) -> Issuer {
        let random = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &random).unwrap();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &random)
                .unwrap();
        Issuer { key, kid }
    }

    fn jwk(&self) -> serde_json::Value {
        let point = self.key.public_key().as_ref();
        assert_eq!(point[0], 4, "an uncompressed point");
        json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "kid": self.kid,
            "x": B64URL.encode(&point[1..33]), "y": B64URL.encode(&point[33..65]),
        })
    }

    fn sign(&self, header: serde_json::Value, claims: serde_json::Value) -> String {
        let message = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let signature = self
            .key
            .sign(&SystemRandom::new(), message.as_bytes())
            .unwrap();
        format!("{message}.{}", B64URL.encode(signature.as_ref()))
    }

    fn token(&self, claims: serde_json::Value) -> String {
        self.sign(
            json!({"alg": "ES256", "typ": "JWT", "kid": self.kid}),
            claims,
        )
    }
}

fn claims(subject: &str) -> serde_json::Value {
    json!({
        "sub": subject, "iss": "https://idp.example", "aud": ["sluice", "other"],
        "iat": NOW_S - 10, "exp": NOW_S + 3600,
    })
}

fn rules() -> TokenRules {
    TokenRules {
        expected_issuer: Some("https://idp.example".into()),
        expected_audience: vec!["sluice".into()],
        ..TokenRules::default()
    }
}

struct Keys(Option<TokenValidator>);

impl Credentials for Keys {
    fn scram(&self, _: &str, _: Mechanism) -> Option<ScramCredential> {
        None
    }
    fn token_validator(&self) -> Option<&TokenValidator> {
        self.0.as_ref()
    }
}

fn keys(issuers: &[&Issuer], rules: TokenRules) -> Keys {
    let jwks = json!({"keys": issuers.iter().map(|i| i.jwk()).collect::<Vec<_>>()});
    Keys(Some(
        TokenValidator::new(jwks.to_string().as_bytes(), rules).unwrap(),
    ))
}

fn login(keys: &Keys, message: &[u8]) -> Result<Step, SaslError> {
    Exchange::new(Mechanism::OAuthBearer, String::new(), Vec::new()).step(message, keys, NOW_MS)
}

fn login_with(keys: &Keys, token: &str) -> Result<Step, SaslError> {
    login(keys, &oauthbearer_message(token))
}

#[test]
fn a_signed_token_names_its_subject_until_it_expires() {
    let issuer = Issuer::new("k1");
    let keys = keys(&[&issuer], rules());
    assert_eq!(
        login_with(&keys, &issuer.token(claims("orders-service"))),
        Ok(Step::Done {
            user: "orders-service".into(),
            token: Vec::new(),
            expires_at_unix_ms: Some((NOW_S + 3600) * 1000),
        })
    );
}

#[test]
fn the_key_is_chosen_by_kid_or_by_algorithm() {
    let (first, second) = (Issuer::new("k1"), Issuer::new("k2"));
    let keys = keys(&[&first, &second], rules());
    assert!(login_with(&keys, &second.token(claims("a"))).is_ok());
    let without_kid = second.sign(json!({"alg": "ES256"}), claims("a"));
    assert!(login_with(&keys, &without_kid).is_ok());
    let stranger = Issuer::new("k1");
    assert_eq!(
        login_with(&keys, &stranger.token(claims("a"))),
        Err(SaslError::BadCredentials),
        "signed by a key of the same kid that is not in the JWKS"
    );
}

/// A change made to a token's claims.
type Change = dyn Fn(&mut serde_json::Value);

#[test]
fn times_issuer_and_audience_are_checked() {
    let issuer = Issuer::new("k1");
    let keys = keys(&[&issuer], rules());
    let with = |change: &Change| {
        let mut c = claims("a");
        change(&mut c);
        login_with(&keys, &issuer.token(c))
    };
    assert!(
        with(&|c| c["exp"] = json!(NOW_S - 10)).is_ok(),
        "within skew"
    );
    let refused: [(&str, &Change); 8] = [
        ("expired", &|c| c["exp"] = json!(NOW_S - 31)),
        ("no exp", &|c| {
            c.as_object_mut().unwrap().remove("exp");
        }),
        ("no iat", &|c| {
            c.as_object_mut().unwrap().remove("iat");
        }),
        ("issued in the future", &|c| c["iat"] = json!(NOW_S + 600)),
        ("not yet valid", &|c| c["nbf"] = json!(NOW_S + 600)),
        ("another issuer", &|c| {
            c["iss"] = json!("https://evil.example")
        }),
        ("another audience", &|c| c["aud"] = json!("payments")),
        ("no subject", &|c| c["sub"] = json!("")),
    ];
    for (why, change) in refused {
        assert!(with(change).is_err(), "{why}");
    }
}

#[test]
fn unsecured_tampered_and_malformed_tokens_are_refused() {
    let issuer = Issuer::new("k1");
    let keys = keys(&[&issuer], rules());
    let body = B64URL.encode(claims("admin").to_string());
    let unsecured = format!("{}.{body}.", B64URL.encode(r#"{"alg":"none"}"#));
    assert!(login_with(&keys, &unsecured).is_err(), "alg none");
    let good = issuer.token(claims("a"));
    let mut parts: Vec<&str> = good.split('.').collect();
    parts[1] = &body;
    assert_eq!(
        login_with(&keys, &parts.join(".")),
        Err(SaslError::BadCredentials),
        "claims swapped under a signature"
    );
    assert!(login_with(&keys, &"a".repeat(70_000)).is_err(), "oversized");
    for message in [
        &b""[..],
        b"n,,auth=Bearer x",
        b"p=tls,,\x01auth=Bearer x\x01\x01",
        b"n,,\x01auth=Basic x\x01\x01",
        b"n,,\x01host=x\x01\x01",
    ] {
        assert!(login(&keys, message).is_err(), "{message:?}");
    }
}

#[test]
fn the_authorization_id_must_be_the_subject() {
    let issuer = Issuer::new("k1");
    let keys = keys(&[&issuer], rules());
    let token = issuer.token(claims("alice"));
    let as_alice = format!("n,a=alice,\x01auth=Bearer {token}\x01\x01");
    assert!(login(&keys, as_alice.as_bytes()).is_ok());
    let as_bob = format!("n,a=bob,\x01auth=Bearer {token}\x01\x01");
    assert_eq!(
        login(&keys, as_bob.as_bytes()),
        Err(SaslError::BadCredentials)
    );
}

#[test]
fn without_keys_every_token_is_refused_and_a_second_message_too() {
    let issuer = Issuer::new("k1");
    let token = issuer.token(claims("a"));
    assert!(login_with(&Keys(None), &token).is_err());
    let keys = keys(&[&issuer], rules());
    let mut exchange = Exchange::new(Mechanism::OAuthBearer, String::new(), Vec::new());
    assert!(
        exchange
            .step(&oauthbearer_message(&token), &keys, NOW_MS)
            .is_ok()
    );
    assert_eq!(
        exchange.step(b"\x01", &keys, NOW_MS),
        Err(SaslError::Finished)
    );
}

#[test]
fn a_jwks_without_a_usable_signing_key_is_refused() {
    let issuer = Issuer::new("k1");
    let mut encryption = issuer.jwk();
    encryption["use"] = json!("enc");
    for jwks in [
        json!({"keys": []}),
        json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}),
        json!({"keys": [encryption]}),
        json!({"keys": [{"kty": "unknown"}]}),
        json!({"nokeys": 1}),
    ] {
        assert!(
            TokenValidator::new(jwks.to_string().as_bytes(), TokenRules::default()).is_err(),
            "{jwks}"
        );
    }
    let mixed = json!({"keys": [{"kty": "unknown"}, issuer.jwk()]});
    assert!(TokenValidator::new(mixed.to_string().as_bytes(), TokenRules::default()).is_ok());
}
