//! Ed25519 signing keys, their key ids, and the JWKS that publishes their public halves.

use std::fmt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm,
    OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse,
};
use jsonwebtoken::{DecodingKey, EncodingKey};
use ring::signature::{Ed25519KeyPair, KeyPair};

/// A key could not be read, parsed or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Not a PKCS#8 Ed25519 private key in PEM.
    #[error("not an Ed25519 private key in PKCS#8 PEM ({0})")]
    Invalid(String),
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

const PEM_LABEL: &str = "PRIVATE KEY";

/// An Ed25519 private key with its key id (the RFC 7638 thumbprint of its public JWK, so the
/// same key always has the same `kid`). `Debug` shows the `kid` only.
#[derive(Clone)]
pub struct SigningKey {
    pkcs8: Vec<u8>,
    public: Vec<u8>,
    kid: String,
}

impl SigningKey {
    /// A new random key.
    pub fn generate() -> Self {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("the system RNG works");
        Self::from_pkcs8(pkcs8.as_ref().to_vec()).expect("a generated key parses")
    }

    /// Parses a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`, as `openssl genpkey -algorithm
    /// ed25519` writes it).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let begin = format!("-----BEGIN {PEM_LABEL}-----");
        let end = format!("-----END {PEM_LABEL}-----");
        let body = pem
            .trim()
            .strip_prefix(&begin)
            .and_then(|rest| rest.strip_suffix(&end))
            .ok_or_else(|| KeyError::Invalid(format!("expected {begin} … {end}")))?;
        let der: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let der = STANDARD
            .decode(der)
            .map_err(|e| KeyError::Invalid(e.to_string()))?;
        Self::from_pkcs8(der)
    }

    /// Reads [`SigningKey::from_pem`] from a file.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let pem = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_pem(&pem)
    }

    fn from_pkcs8(pkcs8: Vec<u8>) -> Result<Self, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8)
            .map_err(|e| KeyError::Invalid(e.to_string()))?;
        let public = pair.public_key().as_ref().to_vec();
        let kid = thumbprint(&public);
        Ok(Self { pkcs8, public, kid })
    }

    /// The key as PKCS#8 PEM.
    pub fn to_pem(&self) -> String {
        let b64 = STANDARD.encode(&self.pkcs8);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
            .collect();
        format!(
            "-----BEGIN {PEM_LABEL}-----\n{}\n-----END {PEM_LABEL}-----\n",
            lines.join("\n")
        )
    }

    /// Its key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half as a JWK.
    pub fn jwk(&self) -> Jwk {
        public_jwk(&self.kid, &self.public)
    }

    pub(crate) fn encoding_key(&self) -> EncodingKey {
        EncodingKey::from_ed_der(&self.pkcs8)
    }

    pub(crate) fn decoding_key(&self) -> DecodingKey {
        DecodingKey::from_ed_der(&self.public)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The key that signs new tokens and the retired keys whose tokens are still honoured: a new
/// signing key does not invalidate tokens already issued, as long as the old one stays here
/// for at least the access-token lifetime.
#[derive(Debug)]
pub struct KeyRing {
    signing: SigningKey,
    retired: Vec<SigningKey>,
}

impl KeyRing {
    /// A ring signing with `signing` and publishing `retired` too.
    pub fn new(signing: SigningKey, retired: Vec<SigningKey>) -> Self {
        Self { signing, retired }
    }

    /// The development ring: `dir/signing.pem`, created on first use. Never for production,
    /// where the key comes from a secret.
    pub fn load_or_generate(dir: &Path) -> Result<Self, KeyError> {
        let path = dir.join("signing.pem");
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        if !path.exists() {
            std::fs::create_dir_all(dir).map_err(io)?;
            let key = SigningKey::generate();
            write_private(&path, &key.to_pem()).map_err(io)?;
            tracing::info!(path = %path.display(), kid = key.kid(), "generated a development signing key");
        }
        Ok(Self::new(SigningKey::from_file(&path)?, Vec::new()))
    }

    /// The key new tokens are signed with.
    pub fn signing(&self) -> &SigningKey {
        &self.signing
    }

    /// Every key whose tokens verify, signing key first.
    pub fn keys(&self) -> impl Iterator<Item = &SigningKey> {
        std::iter::once(&self.signing).chain(&self.retired)
    }

    /// The public keys as a JWK set (`/.well-known/jwks.json`).
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self.keys().map(SigningKey::jwk).collect(),
        }
    }
}

fn write_private(path: &Path, pem: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(pem.as_bytes())
}

fn public_jwk(kid: &str, public: &[u8]) -> Jwk {
    Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::EdDSA),
            key_id: Some(kid.to_owned()),
            ..CommonParameters::default()
        },
        algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
            key_type: OctetKeyPairType::OctetKeyPair,
            curve: EllipticCurve::Ed25519,
            x: URL_SAFE_NO_PAD.encode(public),
        }),
    }
}

/// RFC 7638: SHA-256 over the required members in lexicographic order.
fn thumbprint(public: &[u8]) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(public)
    );
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        canonical.as_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_survives_pem_and_keeps_its_kid() {
        let key = SigningKey::generate();
        let again = SigningKey::from_pem(&key.to_pem()).unwrap();
        assert_eq!(again.kid(), key.kid());
        assert_eq!(key.kid().len(), 43, "a base64url SHA-256");
        assert!(
            SigningKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")
                .is_err()
        );
    }

    #[test]
    fn the_jwks_publishes_every_key_and_no_private_part() {
        let ring = KeyRing::new(SigningKey::generate(), vec![SigningKey::generate()]);
        let json = serde_json::to_value(ring.jwks()).unwrap();
        let keys = json["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2);
        for k in keys {
            assert_eq!(k["kty"], "OKP");
            assert_eq!(k["crv"], "Ed25519");
            assert_eq!(k["alg"], "EdDSA");
            assert!(k.get("d").is_none(), "no private key material: {k}");
        }
        assert_eq!(keys[0]["kid"], ring.signing().kid());
    }
}
