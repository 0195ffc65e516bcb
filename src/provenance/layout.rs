//! What goes into the registry, as bytes (no I/O).
//!
//! - **The attestation** is one OCI 1.1 artifact manifest: `artifactType`
//!   `application/vnd.in-toto+json`, the empty config, `subject` the image's descriptor, one
//!   layer. Signed, the layer is the DSSE envelope (`application/vnd.dsse.envelope.v1+json`)
//!   with cosign's annotations (`dev.cosignproject.cosign/signature` empty, `predicateType`);
//!   the same manifest is tagged `sha256-<hex>.att`, where `cosign verify-attestation` looks.
//!   Unsigned, the layer is the bare statement (`application/vnd.in-toto+json`, annotation
//!   `predicateType`) and there is no `.att` tag: cosign verifies nothing unsigned.
//! - **The image signature** (signed only) is cosign's layout: tag `sha256-<hex>.sig`, one
//!   layer `application/vnd.dev.cosign.simplesigning.v1+json` (the simple-signing payload) with
//!   the signature in `dev.cosignproject.cosign/signature`.
//! - **The referrers tag-scheme fallback** (registries without the referrers API): an image
//!   index under tag `sha256-<hex>` listing the referrers' descriptors, merged with what is
//!   already there.
//!
//! Where a `.sig` or `.att` tag already exists (another signature of the same digest), our
//! layer is appended to its layers, as `cosign sign`/`attest` do, rather than replacing them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Digest;

use super::signing::IN_TOTO_PAYLOAD_TYPE;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Cosign's signature annotation on `.sig` and `.att` layers.
pub const COSIGN_SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Cosign's predicate type annotation on `.att` layers.
pub const PREDICATE_TYPE_ANNOTATION: &str = "predicateType";
pub const CREATED_ANNOTATION: &str = "org.opencontainers.image.created";

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// An OCI descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// The descriptor of `bytes` as `media_type`.
    pub fn of(media_type: &str, bytes: &[u8]) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest: sha256_digest(bytes),
            size: bytes.len() as u64,
            artifact_type: None,
            annotations: BTreeMap::new(),
        }
    }
}

/// A blob to upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// A manifest to push, with the blobs it needs first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestToPush {
    pub media_type: String,
    pub bytes: Vec<u8>,
    pub blobs: Vec<Blob>,
}

impl ManifestToPush {
    pub fn digest(&self) -> String {
        sha256_digest(&self.bytes)
    }

    /// This manifest's descriptor, as a referrers index lists it.
    pub fn descriptor(&self) -> Descriptor {
        let parsed: Value = serde_json::from_slice(&self.bytes).unwrap_or(Value::Null);
        let mut descriptor = Descriptor::of(&self.media_type, &self.bytes);
        descriptor.artifact_type = parsed["artifactType"].as_str().map(str::to_string);
        if let Some(annotations) = parsed["annotations"].as_object() {
            descriptor.annotations = annotations
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect();
        }
        descriptor
    }
}

/// Why existing registry content could not be merged with ours.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    #[error("the existing {what} is not an OCI manifest or index: {reason}")]
    Unreadable { what: String, reason: String },
}

/// The tag cosign (`suffix` `sig`/`att`) or the referrers fallback (`suffix` empty) uses for
/// `digest`: `sha256-<hex>[.suffix]`.
pub fn digest_tag(digest: &str, suffix: &str) -> String {
    let base = digest.replacen(':', "-", 1);
    if suffix.is_empty() {
        base
    } else {
        format!("{base}.{suffix}")
    }
}

#[derive(Serialize)]
struct Manifest<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    #[serde(rename = "artifactType", skip_serializing_if = "Option::is_none")]
    artifact_type: Option<&'a str>,
    config: Descriptor,
    layers: Vec<Descriptor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a Descriptor>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("manifests always serialize")
}

/// The attestation referrer of the image `subject`. `envelope` is the signed DSSE envelope's
/// JSON; `None` publishes the bare `statement`. `created` (RFC 3339) becomes
/// `org.opencontainers.image.created`, which clients use to order referrers.
pub fn attestation_manifest(
    subject: &Descriptor,
    statement: &[u8],
    predicate_type: &str,
    envelope: Option<&[u8]>,
    created: &str,
) -> ManifestToPush {
    let empty = b"{}".to_vec();
    let (layer_type, layer_bytes) = match envelope {
        Some(envelope) => (DSSE_ENVELOPE, envelope.to_vec()),
        None => (IN_TOTO_PAYLOAD_TYPE, statement.to_vec()),
    };
    let mut layer = Descriptor::of(layer_type, &layer_bytes);
    layer
        .annotations
        .insert(PREDICATE_TYPE_ANNOTATION.into(), predicate_type.into());
    if envelope.is_some() {
        // cosign reads every layer of a `.att` manifest as a signature; for DSSE the signature
        // lives in the envelope and this annotation stays empty.
        layer
            .annotations
            .insert(COSIGN_SIGNATURE_ANNOTATION.into(), String::new());
    }
    let subject = Descriptor {
        artifact_type: None,
        annotations: BTreeMap::new(),
        ..subject.clone()
    };
    let manifest = Manifest {
        schema_version: 2,
        media_type: OCI_MANIFEST,
        artifact_type: Some(IN_TOTO_PAYLOAD_TYPE),
        config: Descriptor::of(OCI_EMPTY, &empty),
        layers: vec![layer],
        subject: Some(&subject),
        annotations: BTreeMap::from([(CREATED_ANNOTATION.to_string(), created.to_string())]),
    };
    ManifestToPush {
        media_type: OCI_MANIFEST.into(),
        bytes: to_json(&manifest),
        blobs: vec![
            Blob {
                media_type: OCI_EMPTY.into(),
                bytes: empty,
            },
            Blob {
                media_type: layer_type.into(),
                bytes: layer_bytes,
            },
        ],
    }
}

/// The image signature manifest (cosign's `.sig` layout) for a simple-signing `payload` and
/// its base64 `signature`.
pub fn signature_manifest(payload: &[u8], signature: &str) -> ManifestToPush {
    let mut layer = Descriptor::of(SIMPLE_SIGNING, payload);
    layer
        .annotations
        .insert(COSIGN_SIGNATURE_ANNOTATION.into(), signature.into());
    let config = signature_config(std::slice::from_ref(&layer.digest));
    let manifest = Manifest {
        schema_version: 2,
        media_type: OCI_MANIFEST,
        artifact_type: None,
        config: Descriptor::of(OCI_CONFIG, &config),
        layers: vec![layer],
        subject: None,
        annotations: BTreeMap::new(),
    };
    ManifestToPush {
        media_type: OCI_MANIFEST.into(),
        bytes: to_json(&manifest),
        blobs: vec![
            Blob {
                media_type: OCI_CONFIG.into(),
                bytes: config,
            },
            Blob {
                media_type: SIMPLE_SIGNING.into(),
                bytes: payload.to_vec(),
            },
        ],
    }
}

/// The image config cosign writes for its signature images: layers as diff_ids, nothing else.
fn signature_config(layer_digests: &[String]) -> Vec<u8> {
    to_json(&serde_json::json!({
        "architecture": "",
        "config": {},
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": layer_digests},
    }))
}

/// What to push under a cosign tag (`.sig`/`.att`) that may already hold `existing` (the
/// manifest's bytes): `ours` alone when there is none; else `existing` with our layers appended
/// (those it lacks), its config's diff_ids extended to match, and no subject (only `ours` is
/// the referrer). `existing_config` is the existing manifest's config blob, when readable.
pub fn merge_cosign_tag(
    existing: Option<&[u8]>,
    existing_config: Option<&[u8]>,
    ours: &ManifestToPush,
) -> Result<ManifestToPush, LayoutError> {
    let Some(existing) = existing else {
        return Ok(ours.clone());
    };
    let unreadable = |reason: String| LayoutError::Unreadable {
        what: "cosign signature manifest".into(),
        reason,
    };
    let mut manifest: Value =
        serde_json::from_slice(existing).map_err(|e| unreadable(e.to_string()))?;
    let ours_parsed: Value = serde_json::from_slice(&ours.bytes).expect("our manifests are JSON");
    let layers = manifest["layers"]
        .as_array_mut()
        .ok_or_else(|| unreadable("no layers".into()))?;
    let mut added = false;
    for layer in ours_parsed["layers"].as_array().into_iter().flatten() {
        if !layers.iter().any(|l| l["digest"] == layer["digest"]) {
            layers.push(layer.clone());
            added = true;
        }
    }
    if !added {
        return Ok(ManifestToPush {
            media_type: OCI_MANIFEST.into(),
            bytes: existing.to_vec(),
            blobs: Vec::new(),
        });
    }
    let digests: Vec<String> = layers
        .iter()
        .filter_map(|l| l["digest"].as_str().map(str::to_string))
        .collect();
    let media_type = manifest["mediaType"]
        .as_str()
        .unwrap_or(OCI_MANIFEST)
        .to_string();
    let object = manifest.as_object_mut().expect("checked above");
    object.remove("subject");
    object.remove("artifactType");
    // A config with diff_ids (cosign's) keeps matching the layers; any other stays as it was.
    let mut blobs: Vec<Blob> = ours
        .blobs
        .iter()
        .filter(|b| b.media_type != OCI_CONFIG && b.media_type != OCI_EMPTY)
        .cloned()
        .collect();
    let config: Option<Value> = existing_config.and_then(|c| serde_json::from_slice(c).ok());
    if let Some(mut config) = config.filter(|c| c["rootfs"]["diff_ids"].is_array()) {
        config["rootfs"]["diff_ids"] = serde_json::json!(digests);
        let config_bytes = to_json(&config);
        let config_type = object["config"]["mediaType"]
            .as_str()
            .unwrap_or(OCI_CONFIG)
            .to_string();
        object.insert(
            "config".into(),
            serde_json::to_value(Descriptor::of(&config_type, &config_bytes)).unwrap(),
        );
        blobs.push(Blob {
            media_type: config_type,
            bytes: config_bytes,
        });
    }
    Ok(ManifestToPush {
        media_type,
        bytes: to_json(&manifest),
        blobs,
    })
}

/// The referrers fallback index: `existing` (the index under the fallback tag, if any) with
/// `add` put in (a descriptor of the same digest replaced).
pub fn fallback_index(
    existing: Option<&[u8]>,
    add: &[Descriptor],
) -> Result<ManifestToPush, LayoutError> {
    let mut manifests: Vec<Value> = match existing {
        None => Vec::new(),
        Some(bytes) => {
            let index: Value =
                serde_json::from_slice(bytes).map_err(|e| LayoutError::Unreadable {
                    what: "referrers fallback index".into(),
                    reason: e.to_string(),
                })?;
            index["manifests"]
                .as_array()
                .cloned()
                .ok_or_else(|| LayoutError::Unreadable {
                    what: "referrers fallback index".into(),
                    reason: "no manifests list".into(),
                })?
        }
    };
    for descriptor in add {
        manifests.retain(|m| m["digest"].as_str() != Some(descriptor.digest.as_str()));
        manifests.push(serde_json::to_value(descriptor).expect("descriptors serialize"));
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    });
    Ok(ManifestToPush {
        media_type: OCI_INDEX.into(),
        bytes: to_json(&index),
        blobs: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject() -> Descriptor {
        Descriptor::of(OCI_MANIFEST, b"{\"image\":true}")
    }

    #[test]
    fn the_signed_attestation_is_a_referrer_in_cosigns_layout() {
        let m = attestation_manifest(
            &subject(),
            b"{}",
            "https://slsa.dev/provenance/v1",
            Some(b"{\"payloadType\":\"x\"}"),
            "2026-12-07T06:01:30Z",
        );
        let v: Value = serde_json::from_slice(&m.bytes).unwrap();
        assert_eq!(v["artifactType"], IN_TOTO_PAYLOAD_TYPE);
        assert_eq!(v["config"]["mediaType"], OCI_EMPTY);
        assert_eq!(v["config"]["digest"], sha256_digest(b"{}"));
        assert_eq!(v["subject"]["digest"], subject().digest);
        assert_eq!(v["layers"][0]["mediaType"], DSSE_ENVELOPE);
        assert_eq!(
            v["layers"][0]["annotations"]["predicateType"],
            "https://slsa.dev/provenance/v1"
        );
        assert_eq!(
            v["layers"][0]["annotations"][COSIGN_SIGNATURE_ANNOTATION],
            ""
        );
        assert_eq!(m.blobs.len(), 2);
        assert_eq!(
            m.descriptor().artifact_type.as_deref(),
            Some(IN_TOTO_PAYLOAD_TYPE)
        );
        assert_eq!(m.descriptor().digest, m.digest());
    }

    #[test]
    fn the_unsigned_attestation_carries_the_bare_statement() {
        let m = attestation_manifest(&subject(), b"{\"s\":1}", "p", None, "t");
        let v: Value = serde_json::from_slice(&m.bytes).unwrap();
        assert_eq!(v["layers"][0]["mediaType"], IN_TOTO_PAYLOAD_TYPE);
        assert_eq!(v["layers"][0]["digest"], sha256_digest(b"{\"s\":1}"));
        assert!(v["layers"][0]["annotations"][COSIGN_SIGNATURE_ANNOTATION].is_null());
    }

    #[test]
    fn the_signature_manifest_is_cosigns() {
        let m = signature_manifest(b"payload", "c2ln");
        let v: Value = serde_json::from_slice(&m.bytes).unwrap();
        assert_eq!(v["layers"][0]["mediaType"], SIMPLE_SIGNING);
        assert_eq!(
            v["layers"][0]["annotations"][COSIGN_SIGNATURE_ANNOTATION],
            "c2ln"
        );
        let config: Value = serde_json::from_slice(&m.blobs[0].bytes).unwrap();
        assert_eq!(config["rootfs"]["diff_ids"][0], sha256_digest(b"payload"));
        assert!(v.get("subject").is_none());
    }

    #[test]
    fn cosign_tags_are_merged_not_replaced() {
        let theirs = signature_manifest(b"theirs", "dGhlaXJz");
        let ours = signature_manifest(b"ours", "b3Vycw==");
        assert_eq!(merge_cosign_tag(None, None, &ours).unwrap(), ours);
        let merged =
            merge_cosign_tag(Some(&theirs.bytes), Some(&theirs.blobs[0].bytes), &ours).unwrap();
        let v: Value = serde_json::from_slice(&merged.bytes).unwrap();
        assert_eq!(v["layers"].as_array().unwrap().len(), 2);
        let config = merged
            .blobs
            .iter()
            .find(|b| b.media_type == OCI_CONFIG)
            .unwrap();
        assert_eq!(v["config"]["digest"], sha256_digest(&config.bytes));
        // Merging again adds nothing.
        let again = merge_cosign_tag(Some(&merged.bytes), Some(&config.bytes), &ours).unwrap();
        assert_eq!(again.bytes, merged.bytes);
        assert!(again.blobs.is_empty());
        assert!(merge_cosign_tag(Some(b"nope"), None, &ours).is_err());
    }

    #[test]
    fn the_fallback_index_merges() {
        let a = Descriptor::of(OCI_MANIFEST, b"a");
        let mut b = Descriptor::of(OCI_MANIFEST, b"b");
        b.artifact_type = Some(IN_TOTO_PAYLOAD_TYPE.into());
        let first = fallback_index(None, std::slice::from_ref(&a)).unwrap();
        let second = fallback_index(Some(&first.bytes), &[b.clone(), a.clone()]).unwrap();
        let v: Value = serde_json::from_slice(&second.bytes).unwrap();
        assert_eq!(v["mediaType"], OCI_INDEX);
        let digests: Vec<_> = v["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["digest"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(digests, vec![b.digest.clone(), a.digest.clone()]);
        assert_eq!(v["manifests"][0]["artifactType"], IN_TOTO_PAYLOAD_TYPE);
        assert_eq!(digest_tag("sha256:ab", ""), "sha256-ab");
        assert_eq!(digest_tag("sha256:ab", "att"), "sha256-ab.att");
    }
}
