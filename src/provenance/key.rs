//! Cosign private keys as `cosign generate-key-pair` writes them (no I/O).
//!
//! The PEM block (`ENCRYPTED SIGSTORE PRIVATE KEY`, or `ENCRYPTED COSIGN PRIVATE KEY` from older
//! cosign) holds JSON: an scrypt KDF over the password, a nacl/secretbox (XSalsa20-Poly1305)
//! ciphertext, inside it a PKCS#8 DER private key. We sign with ECDSA P-256 keys, what
//! `generate-key-pair` makes.

use base64::Engine;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Nonce, XSalsa20Poly1305};
use p256::ecdsa::signature::{Signer, Verifier};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey, LineEnding};
use serde::Deserialize;
use sha2::Digest;

/// The key in a cosign key Secret (`cosign generate-key-pair k8s://NS/NAME`).
pub const SECRET_PRIVATE_KEY: &str = "cosign.key";
/// The public key in that Secret.
pub const SECRET_PUBLIC_KEY: &str = "cosign.pub";
/// The password in that Secret (may be empty).
pub const SECRET_PASSWORD: &str = "cosign.password";

const PEM_LABELS: [&str; 2] = [
    "ENCRYPTED SIGSTORE PRIVATE KEY",
    "ENCRYPTED COSIGN PRIVATE KEY",
];
/// id-ecPublicKey and prime256v1 (RFC 5480).
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";

/// Why a key cannot be used. The text never contains key material or the password.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// Not a cosign private key at all, or damaged; says what is wrong.
    #[error("the signing key is malformed: {0}")]
    Malformed(String),
    /// Encrypted with a password, and none was given.
    #[error("the signing key is encrypted with a password and no password was given")]
    PasswordRequired,
    /// The password given does not decrypt the key.
    #[error("the password does not decrypt the signing key")]
    WrongPassword,
    /// A well-formed key of a kind we do not sign with.
    #[error(
        "unsupported signing key type: {0} (only ECDSA P-256, as cosign generate-key-pair makes)"
    )]
    UnsupportedKeyType(String),
    /// A KDF or cipher other than cosign's scrypt + nacl/secretbox.
    #[error("unsupported key encryption: {0}")]
    UnsupportedEncryption(String),
}

/// A loaded ECDSA P-256 signing key. `Debug` shows only the public half's fingerprint.
#[derive(Clone)]
pub struct SigningKey {
    key: p256::ecdsa::SigningKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey(ECDSA P-256, public {})", self.key_id())
    }
}

impl SigningKey {
    /// An ECDSA-P256-SHA256 signature over `message`, ASN.1 DER as cosign writes it.
    /// Deterministic (RFC 6979): no randomness needed.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let signature: p256::ecdsa::Signature = self.key.sign(message);
        signature.to_der().as_bytes().to_vec()
    }

    /// The public key as PEM (`PUBLIC KEY`, what `cosign.pub` holds).
    pub fn public_key_pem(&self) -> String {
        self.key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("a P-256 public key always encodes")
    }

    /// `sha256:<hex>` of the public key's DER: names the key in logs without showing it.
    pub fn key_id(&self) -> String {
        let der = self
            .key
            .verifying_key()
            .to_public_key_der()
            .expect("a P-256 public key always encodes");
        format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(der.as_bytes()))
        )
    }
}

#[derive(Deserialize)]
struct EncryptedKey {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Deserialize)]
struct Kdf {
    name: String,
    params: KdfParams,
    salt: String,
}

#[derive(Deserialize)]
struct KdfParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

fn base64_field(name: &str, value: &str) -> Result<Vec<u8>, KeyError> {
    base64::engine::general_purpose::STANDARD
        .decode(value)
        .map_err(|_| KeyError::Malformed(format!("{name} is not base64")))
}

/// Loads a cosign private key (the PEM text of `cosign.key`) with its password.
///
/// `password` `None` means none was given: a key encrypted with the empty password (cosign's
/// `COSIGN_PASSWORD=""`) still loads; any other gives [`KeyError::PasswordRequired`].
pub fn load_private_key(pem: &[u8], password: Option<&[u8]>) -> Result<SigningKey, KeyError> {
    let block =
        pem::parse(pem).map_err(|e| KeyError::Malformed(format!("not a PEM block ({e})")))?;
    if !PEM_LABELS.contains(&block.tag()) {
        // Unencrypted keys are not what cosign writes; say what the label is.
        return Err(KeyError::Malformed(format!(
            "PEM label {:?} is not a cosign private key (expected {:?})",
            block.tag(),
            PEM_LABELS[0]
        )));
    }
    let encrypted: EncryptedKey = serde_json::from_slice(block.contents())
        .map_err(|e| KeyError::Malformed(format!("not cosign's encrypted-key JSON ({e})")))?;
    if encrypted.kdf.name != "scrypt" {
        return Err(KeyError::UnsupportedEncryption(format!(
            "kdf {:?}",
            encrypted.kdf.name
        )));
    }
    if encrypted.cipher.name != "nacl/secretbox" {
        return Err(KeyError::UnsupportedEncryption(format!(
            "cipher {:?}",
            encrypted.cipher.name
        )));
    }
    let salt = base64_field("kdf.salt", &encrypted.kdf.salt)?;
    let nonce = base64_field("cipher.nonce", &encrypted.cipher.nonce)?;
    let ciphertext = base64_field("ciphertext", &encrypted.ciphertext)?;
    if nonce.len() != 24 {
        return Err(KeyError::Malformed(format!(
            "cipher.nonce has {} bytes, not 24",
            nonce.len()
        )));
    }
    let KdfParams { n, r, p } = encrypted.kdf.params;
    if !n.is_power_of_two() || n < 2 {
        return Err(KeyError::Malformed(format!(
            "kdf.params.N {n} is not a power of two"
        )));
    }
    let params = scrypt::Params::new(n.trailing_zeros() as u8, r, p, 32)
        .map_err(|e| KeyError::Malformed(format!("kdf.params out of range ({e})")))?;

    let decrypt = |password: &[u8]| -> Option<Vec<u8>> {
        let mut box_key = [0u8; 32];
        scrypt::scrypt(password, &salt, &params, &mut box_key).ok()?;
        XSalsa20Poly1305::new((&box_key).into())
            .decrypt(Nonce::from_slice(&nonce), ciphertext.as_slice())
            .ok()
    };
    let der = match password {
        Some(password) => decrypt(password).ok_or(KeyError::WrongPassword)?,
        None => decrypt(b"").ok_or(KeyError::PasswordRequired)?,
    };
    private_key_from_pkcs8(&der)
}

fn private_key_from_pkcs8(der: &[u8]) -> Result<SigningKey, KeyError> {
    let info = p256::pkcs8::PrivateKeyInfo::try_from(der)
        .map_err(|e| KeyError::Malformed(format!("the decrypted key is not PKCS#8 ({e})")))?;
    let algorithm = info.algorithm.oid.to_string();
    if algorithm != OID_EC_PUBLIC_KEY {
        return Err(KeyError::UnsupportedKeyType(algorithm_name(&algorithm)));
    }
    let curve = info
        .algorithm
        .parameters_oid()
        .map(|oid| oid.to_string())
        .unwrap_or_default();
    if curve != OID_P256 {
        return Err(KeyError::UnsupportedKeyType(format!(
            "ECDSA on curve {curve}"
        )));
    }
    let key = p256::ecdsa::SigningKey::from_pkcs8_der(der)
        .map_err(|e| KeyError::Malformed(format!("the P-256 key does not decode ({e})")))?;
    Ok(SigningKey { key })
}

fn algorithm_name(oid: &str) -> String {
    match oid {
        "1.2.840.113549.1.1.1" => "RSA".to_string(),
        "1.3.101.112" => "Ed25519".to_string(),
        other => format!("algorithm {other}"),
    }
}

/// Checks `signature` (DER, or raw r||s) over `message` with a PEM public key (`cosign.pub`).
pub fn verify_signature(
    public_key_pem: &str,
    message: &[u8],
    signature: &[u8],
) -> Result<(), KeyError> {
    let key = p256::ecdsa::VerifyingKey::from_public_key_pem(public_key_pem)
        .map_err(|e| KeyError::Malformed(format!("not a P-256 public key PEM ({e})")))?;
    let signature = p256::ecdsa::Signature::from_der(signature)
        .or_else(|_| p256::ecdsa::Signature::from_slice(signature))
        .map_err(|_| KeyError::Malformed("not an ECDSA signature".to_string()))?;
    key.verify(message, &signature)
        .map_err(|_| KeyError::Malformed("the signature does not verify".to_string()))
}

/// A key encrypted as cosign does, for tests (no randomness: the caller gives salt and nonce).
#[cfg(test)]
pub(crate) fn encrypt_for_test(
    der: &[u8],
    password: &[u8],
    salt: &[u8; 32],
    nonce: &[u8; 24],
    label: &str,
) -> String {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    // N = 2^10 keeps the tests quick; the format is the same.
    let params = scrypt::Params::new(10, 8, 1, 32).unwrap();
    let mut box_key = [0u8; 32];
    scrypt::scrypt(password, salt, &params, &mut box_key).unwrap();
    let ciphertext = XSalsa20Poly1305::new((&box_key).into())
        .encrypt(Nonce::from_slice(nonce), der)
        .unwrap();
    let json = serde_json::json!({
        "kdf": {"name": "scrypt", "params": {"N": 1024, "r": 8, "p": 1}, "salt": b64(salt)},
        "cipher": {"name": "nacl/secretbox", "nonce": b64(nonce)},
        "ciphertext": b64(&ciphertext),
    });
    pem::encode(&pem::Pem::new(label, serde_json::to_vec(&json).unwrap()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use p256::pkcs8::EncodePrivateKey;

    pub(crate) fn test_key_der() -> Vec<u8> {
        let secret = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        secret.to_pkcs8_der().unwrap().as_bytes().to_vec()
    }

    pub(crate) fn test_key(password: &[u8]) -> String {
        encrypt_for_test(&test_key_der(), password, &[1; 32], &[2; 24], PEM_LABELS[0])
    }

    #[test]
    fn loads_with_the_right_password_and_signs_verifiably() {
        let key = load_private_key(test_key(b"s3cret").as_bytes(), Some(b"s3cret")).unwrap();
        let signature = key.sign(b"hello");
        verify_signature(&key.public_key_pem(), b"hello", &signature).unwrap();
        assert!(verify_signature(&key.public_key_pem(), b"hellO", &signature).is_err());
        assert!(!format!("{key:?}").contains("0707"));
    }

    #[test]
    fn the_older_label_and_the_empty_password_load() {
        let pem = encrypt_for_test(&test_key_der(), b"", &[1; 32], &[2; 24], PEM_LABELS[1]);
        load_private_key(pem.as_bytes(), None).unwrap();
        load_private_key(pem.as_bytes(), Some(b"")).unwrap();
    }

    #[test]
    fn each_failure_is_its_own_error() {
        let pem = test_key(b"s3cret");
        assert_eq!(
            load_private_key(pem.as_bytes(), None).unwrap_err(),
            KeyError::PasswordRequired
        );
        assert_eq!(
            load_private_key(pem.as_bytes(), Some(b"wrong")).unwrap_err(),
            KeyError::WrongPassword
        );
        assert!(matches!(
            load_private_key(b"not a key", None).unwrap_err(),
            KeyError::Malformed(m) if m.contains("PEM")
        ));
        let public = load_private_key(pem.as_bytes(), Some(b"s3cret"))
            .unwrap()
            .public_key_pem();
        assert!(matches!(
            load_private_key(public.as_bytes(), None).unwrap_err(),
            KeyError::Malformed(m) if m.contains("\"PUBLIC KEY\"")
        ));
        let garbage = pem::encode(&pem::Pem::new(PEM_LABELS[0], b"{\"kdf\":1}".to_vec()));
        assert!(matches!(
            load_private_key(garbage.as_bytes(), None).unwrap_err(),
            KeyError::Malformed(m) if m.contains("JSON")
        ));
        // A PKCS#8 Ed25519 key (RFC 8410's example), encrypted as cosign would.
        let ed25519 = base64::engine::general_purpose::STANDARD
            .decode("MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC")
            .unwrap();
        let pem = encrypt_for_test(&ed25519, b"", &[1; 32], &[2; 24], PEM_LABELS[0]);
        assert_eq!(
            load_private_key(pem.as_bytes(), None).unwrap_err(),
            KeyError::UnsupportedKeyType("Ed25519".into())
        );
    }
}
