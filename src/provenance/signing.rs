//! DSSE envelopes over statements and cosign's simple-signing payload for image signatures
//! (no I/O).

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::key::SigningKey;

/// The DSSE payload type of an in-toto statement (also the referrer's artifactType).
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// DSSE's pre-authentication encoding: what is actually signed.
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// A DSSE envelope as cosign writes and reads it (base64 fields, standard alphabet).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// base64 of the payload.
    pub payload: String,
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature of an envelope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    /// Empty, as cosign writes it for key pairs.
    pub keyid: String,
    /// base64 of the DER signature over [`pae`].
    pub sig: String,
}

impl Envelope {
    /// The envelope's JSON bytes (the attestation layer).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an envelope always serializes")
    }

    /// The decoded payload.
    pub fn payload_bytes(&self) -> Option<Vec<u8>> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.payload)
            .ok()
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `statement` (its JSON bytes) in a DSSE envelope signed with `key`.
pub fn sign_statement(statement: &[u8], key: &SigningKey) -> Envelope {
    Envelope {
        payload_type: IN_TOTO_PAYLOAD_TYPE.to_string(),
        payload: b64(statement),
        signatures: vec![EnvelopeSignature {
            keyid: String::new(),
            sig: b64(&key.sign(&pae(IN_TOTO_PAYLOAD_TYPE, statement))),
        }],
    }
}

/// Cosign's simple-signing payload for `repository` (no tag) at `digest` (`sha256:<hex>`):
/// the bytes `cosign sign` signs and `cosign verify` checks the digest in.
pub fn simple_signing_payload(repository: &str, digest: &str) -> Vec<u8> {
    // Field order as cosign marshals it; cosign parses, so order only keeps our bytes stable.
    let payload = serde_json::json!({
        "critical": {
            "identity": {"docker-reference": repository},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": null,
    });
    serde_json::to_vec(&payload).expect("a JSON value always serializes")
}

/// The image signature: base64 of `key`'s signature over `payload`, the value of cosign's
/// `dev.cosignproject.cosign/signature` annotation.
pub fn sign_payload(payload: &[u8], key: &SigningKey) -> String {
    b64(&key.sign(payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provenance::key::{load_private_key, tests::test_key, verify_signature};

    #[test]
    fn pae_is_dsse_v1() {
        assert_eq!(
            pae("application/vnd.in-toto+json", b"{\"a\":1}"),
            b"DSSEv1 28 application/vnd.in-toto+json 7 {\"a\":1}".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    #[test]
    fn the_envelope_verifies_with_the_public_key() {
        let key = load_private_key(test_key(b"").as_bytes(), None).unwrap();
        let envelope = sign_statement(b"{\"_type\":\"x\"}", &key);
        assert_eq!(envelope.payload_type, IN_TOTO_PAYLOAD_TYPE);
        assert_eq!(envelope.payload_bytes().unwrap(), b"{\"_type\":\"x\"}");
        let sig = base64::engine::general_purpose::STANDARD
            .decode(&envelope.signatures[0].sig)
            .unwrap();
        verify_signature(
            &key.public_key_pem(),
            &pae(IN_TOTO_PAYLOAD_TYPE, b"{\"_type\":\"x\"}"),
            &sig,
        )
        .unwrap();
        let parsed: Envelope = serde_json::from_slice(&envelope.to_json()).unwrap();
        assert_eq!(parsed, envelope);
    }

    #[test]
    fn simple_signing_payload_is_cosigns() {
        let payload = simple_signing_payload("r.test/team/app", "sha256:abc");
        assert_eq!(
            String::from_utf8(payload.clone()).unwrap(),
            r#"{"critical":{"identity":{"docker-reference":"r.test/team/app"},"image":{"docker-manifest-digest":"sha256:abc"},"type":"cosign container image signature"},"optional":null}"#
        );
        let key = load_private_key(test_key(b"").as_bytes(), None).unwrap();
        let sig = base64::engine::general_purpose::STANDARD
            .decode(sign_payload(&payload, &key))
            .unwrap();
        verify_signature(&key.public_key_pem(), &payload, &sig).unwrap();
    }
}
