//! OAUTHBEARER (RFC 7628, Kafka's KIP-255 and KIP-768): the client's one message carries a
//! JWT, which is checked against the identity provider's public keys (a JWKS), its issuer and
//! audience, and its times. The principal is the token's subject claim (`sub` unless
//! configured otherwise), as Kafka's `OAuthBearerValidatorCallbackHandler` takes it.
//!
//! What a token must be, as Kafka's validator asks (`ValidatorAccessTokenValidator`):
//! - signed (an unsecured token, `alg: none`, is refused) by a key of the JWKS: the one its
//!   `kid` names, or, without a `kid`, any whose algorithms include the token's;
//! - with `exp` and `iat`; not expired and not before its `nbf`, give or take the clock skew;
//! - from the expected issuer (`iss`) and for one of the expected audiences (`aud`), where set;
//! - with a subject: a non-empty string of at most `SASL_USER_NAME_BYTES_MAX` bytes.
//!
//! Not owned here: reading the JWKS file (its bytes are an argument), the clock (the time is an
//! argument), and what the principal may do.

use crate::{SaslError, malformed};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use sluice_types::limits::{
    JWKS_BYTES_MAX, JWKS_KEYS_MAX, OAUTHBEARER_TOKEN_BYTES_MAX, SASL_USER_NAME_BYTES_MAX,
};

/// What a valid token must show besides its signature (Kafka's `sasl.oauthbearer.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRules {
    /// `sasl.oauthbearer.expected.issuer`: the `iss` a token must carry, if set.
    pub expected_issuer: Option<String>,
    /// `sasl.oauthbearer.expected.audience`: a token's `aud` must name one of them, if any.
    pub expected_audience: Vec<String>,
    /// `sasl.oauthbearer.sub.claim.name`: the claim that names the principal.
    pub sub_claim_name: String,
    /// `sasl.oauthbearer.clock.skew.seconds`: how far `exp`, `nbf` and `iat` may be off.
    pub clock_skew_seconds: u64,
}

impl Default for TokenRules {
    fn default() -> Self {
        TokenRules {
            expected_issuer: None,
            expected_audience: Vec::new(),
            sub_claim_name: "sub".to_string(),
            clock_skew_seconds: 30,
        }
    }
}

/// A token that passed: who it names and until when it is good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidToken {
    pub subject: String,
    pub expires_at_unix_ms: u64,
}

/// One key of the JWKS with the algorithms it may verify.
struct VerificationKey {
    kid: Option<String>,
    algorithms: Vec<Algorithm>,
    key: DecodingKey,
}

/// The identity provider's keys and the rules a token must meet.
pub struct TokenValidator {
    keys: Vec<VerificationKey>,
    rules: TokenRules,
}

impl std::fmt::Debug for TokenValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenValidator")
            .field("keys", &self.keys.len())
            .field("rules", &self.rules)
            .finish()
    }
}

impl TokenValidator {
    /// From a JWKS document (`{"keys": [...]}`). Keys for encryption (`use: enc`) and symmetric
    /// keys (`kty: oct`: a shared secret has no place among public keys) are left out; a JWKS
    /// with no usable key is refused.
    pub fn new(jwks: &[u8], rules: TokenRules) -> Result<TokenValidator, SaslError> {
        if jwks.len() > JWKS_BYTES_MAX {
            return Err(malformed("JWKS", format!("above {JWKS_BYTES_MAX} bytes")));
        }
        // Each key on its own: one of a kind jsonwebtoken does not know is left out, not the
        // whole set.
        #[derive(serde::Deserialize)]
        struct Keys {
            keys: Vec<Value>,
        }
        let set: Keys =
            serde_json::from_slice(jwks).map_err(|e| malformed("JWKS", e.to_string()))?;
        if set.keys.len() > JWKS_KEYS_MAX {
            return Err(malformed("JWKS", format!("above {JWKS_KEYS_MAX} keys")));
        }
        let keys: Vec<VerificationKey> = set
            .keys
            .into_iter()
            .filter_map(|k| serde_json::from_value::<Jwk>(k).ok())
            .filter_map(|k| verification_key(&k))
            .collect();
        if keys.is_empty() {
            return Err(malformed("JWKS", "no signing key Sluice can use"));
        }
        Ok(TokenValidator { keys, rules })
    }

    /// Checks `token` at `now_unix_ms`.
    pub fn validate(&self, token: &str, now_unix_ms: u64) -> Result<ValidToken, SaslError> {
        if token.len() > OAUTHBEARER_TOKEN_BYTES_MAX {
            return Err(malformed("token", "too long"));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| malformed("token header", e.to_string()))?;
        let candidates = self.keys.iter().filter(|k| match &header.kid {
            Some(kid) => k.kid.as_deref() == Some(kid.as_str()),
            None => k.algorithms.contains(&header.alg),
        });
        let mut claims = None;
        for key in candidates {
            if let Ok(data) = jsonwebtoken::decode::<Map<String, Value>>(
                token,
                &key.key,
                &signature_only(&key.algorithms),
            ) {
                claims = Some(data.claims);
                break;
            }
        }
        let claims = claims.ok_or(SaslError::BadCredentials)?;
        self.check_claims(&claims, now_unix_ms)
    }

    fn check_claims(
        &self,
        claims: &Map<String, Value>,
        now_unix_ms: u64,
    ) -> Result<ValidToken, SaslError> {
        let rules = &self.rules;
        let skew_ms = rules.clock_skew_seconds.saturating_mul(1000);
        let time_ms = |name: &'static str| -> Result<Option<u64>, SaslError> {
            match claims.get(name) {
                None => Ok(None),
                Some(v) => v
                    .as_f64()
                    .filter(|t| t.is_finite() && *t >= 0.0)
                    .map(|t| Some((t * 1000.0) as u64))
                    .ok_or_else(|| malformed("token claim", format!("{name} is not a time"))),
            }
        };
        let expires_at_unix_ms =
            time_ms("exp")?.ok_or_else(|| malformed("token claim", "no exp"))?;
        let issued_at_ms = time_ms("iat")?.ok_or_else(|| malformed("token claim", "no iat"))?;
        if expires_at_unix_ms.saturating_add(skew_ms) <= now_unix_ms {
            return Err(SaslError::BadCredentials);
        }
        if issued_at_ms > now_unix_ms.saturating_add(skew_ms) {
            return Err(SaslError::BadCredentials);
        }
        if time_ms("nbf")?.is_some_and(|nbf| nbf > now_unix_ms.saturating_add(skew_ms)) {
            return Err(SaslError::BadCredentials);
        }
        if let Some(issuer) = &rules.expected_issuer
            && claims.get("iss").and_then(Value::as_str) != Some(issuer.as_str())
        {
            return Err(SaslError::BadCredentials);
        }
        if !rules.expected_audience.is_empty() && !audience_matches(claims, rules) {
            return Err(SaslError::BadCredentials);
        }
        let subject = claims
            .get(&rules.sub_claim_name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= SASL_USER_NAME_BYTES_MAX)
            .ok_or_else(|| malformed("token claim", "no subject"))?;
        Ok(ValidToken {
            subject: subject.to_string(),
            expires_at_unix_ms,
        })
    }
}

/// Whether the token's `aud` (one string or a list) names an expected audience.
fn audience_matches(claims: &Map<String, Value>, rules: &TokenRules) -> bool {
    let expected = |a: &Value| {
        a.as_str()
            .is_some_and(|a| rules.expected_audience.iter().any(|e| e == a))
    };
    match claims.get("aud") {
        Some(Value::Array(list)) => list.iter().any(expected),
        Some(one) => expected(one),
        None => false,
    }
}

/// jsonwebtoken checks the signature and algorithm only; every claim is checked here, at the
/// time given (jsonwebtoken would read the system clock).
fn signature_only(algorithms: &[Algorithm]) -> Validation {
    let mut validation = Validation::new(algorithms[0]);
    validation.algorithms = algorithms.to_vec();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    validation
}

fn verification_key(jwk: &Jwk) -> Option<VerificationKey> {
    if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
        return None;
    }
    let by_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(_) => vec![Algorithm::EdDSA],
        AlgorithmParameters::OctetKey(_) => return None,
    };
    // A key that names its algorithm verifies that one only.
    let algorithms = match jwk.common.key_algorithm {
        Some(named) => {
            let named = named.to_string().parse::<Algorithm>().ok()?;
            by_type.into_iter().filter(|a| *a == named).collect()
        }
        None => by_type,
    };
    if algorithms.is_empty() {
        return None;
    }
    Some(VerificationKey {
        kid: jwk.common.key_id.clone(),
        algorithms,
        key: DecodingKey::from_jwk(jwk).ok()?,
    })
}

/// The token of the client's message: `gs2-header %x01 *(key=value %x01) %x01`, with the
/// token in `auth=Bearer <token>`, and the authorization id the GS2 header names, if any.
pub(crate) fn parse_client_message(message: &[u8]) -> Result<(String, Option<String>), SaslError> {
    let bad = |reason: &str| malformed("OAUTHBEARER message", reason);
    let text = std::str::from_utf8(message).map_err(|_| bad("not UTF-8"))?;
    let (gs2, rest) = text
        .split_once('\u{1}')
        .ok_or_else(|| bad("no separator"))?;
    let authzid = parse_gs2_header(gs2).ok_or_else(|| bad("GS2 header"))?;
    let body = rest
        .strip_suffix("\u{1}\u{1}")
        .or_else(|| rest.strip_suffix('\u{1}'))
        .ok_or_else(|| bad("not terminated"))?;
    let auth = body
        .split('\u{1}')
        .find_map(|pair| pair.strip_prefix("auth="))
        .ok_or_else(|| bad("no auth"))?;
    let (scheme, token) = auth.split_once(' ').ok_or_else(|| bad("auth"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(bad("not a bearer token"));
    }
    Ok((token.trim_start_matches(' ').to_string(), authzid))
}

/// `n,,` or `n,a=<authzid>,` (`y` for a client without channel binding is accepted too).
fn parse_gs2_header(gs2: &str) -> Option<Option<String>> {
    let rest = gs2.strip_prefix("n,").or_else(|| gs2.strip_prefix("y,"))?;
    let authzid = rest.strip_suffix(',')?;
    if authzid.is_empty() {
        return Some(None);
    }
    let name = authzid.strip_prefix("a=")?;
    Some(Some(name.replace("=2C", ",").replace("=3D", "=")))
}

/// The client's message for `token` (Sluice's CLI sends it).
pub fn client_message(token: &str) -> Vec<u8> {
    format!("n,,\u{1}auth=Bearer {token}\u{1}\u{1}").into_bytes()
}
