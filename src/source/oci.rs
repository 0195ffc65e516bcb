//! An OCI artifact as a source: the manifest pulled (a tag resolved once to its digest), its one
//! tar+gzip content layer downloaded with its digest verified, then unpacked under the archive
//! rules of [`super::archive`].
//!
//! Two layouts are accepted: what `flux push artifact` writes (config
//! [`FLUX_CONFIG_MEDIA_TYPE`], one [`FLUX_CONTENT_MEDIA_TYPE`] layer) and a plain OCI or Docker
//! image manifest whose only layer is a tar+gzip (what `crane append` or `oras push` write).
//! [`push_artifact`] writes the first, for `kubectl sourcebuild build` and the tests.

use std::collections::BTreeMap;
use std::io::{self, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use oci_client::Reference;
use oci_client::errors::{DigestError, OciDistributionError};
use oci_client::manifest::{
    IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE, IMAGE_LAYER_GZIP_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageManifest,
};
use oci_client::secrets::RegistryAuth;
use sha2::{Digest, Sha256};
use tracing::info;

use super::archive::{ArchiveError, ArchiveLimits, unpack_archive};
use crate::api::{OciSource, SourceOrigin};
use crate::builder_image::{
    REGISTRY_TIMEOUT, accept_missing_location, auth_kind, describe_registry_error, is_not_found,
    push_client, registry_auth,
};
use crate::reason::FailureReason;

/// The config media type of a Flux artifact.
pub const FLUX_CONFIG_MEDIA_TYPE: &str = "application/vnd.cncf.flux.config.v1+json";
/// The content layer media type of a Flux artifact: a tar+gzip of the files.
pub const FLUX_CONTENT_MEDIA_TYPE: &str = "application/vnd.cncf.flux.content.v1.tar+gzip";
/// The layer media types whose content is a tar+gzip of the source.
pub const CONTENT_MEDIA_TYPES: [&str; 3] = [
    FLUX_CONTENT_MEDIA_TYPE,
    IMAGE_LAYER_GZIP_MEDIA_TYPE,
    IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE,
];
/// Manifest annotation: where the content was made from (a repository URL).
pub const ANNOTATION_SOURCE: &str = "org.opencontainers.image.source";
/// Manifest annotation: which revision of it (a commit).
pub const ANNOTATION_REVISION: &str = "org.opencontainers.image.revision";
/// The longest annotation value kept: the origin travels in prepare's termination message
/// (4096 bytes in all) and into image labels.
pub const MAX_ORIGIN_VALUE: usize = 512;
/// How long downloading the content layer may take.
const BLOB_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// The largest manifest accepted: an artifact's is a few hundred bytes.
const MAX_MANIFEST_BYTES: usize = 1 << 20;

/// How to reach the artifact's registry.
#[derive(Clone, Debug, Default)]
pub struct OciOptions {
    /// Registries (`host[:port]`) reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// A docker `config.json` with credentials; a missing file means anonymous.
    pub docker_config: Option<PathBuf>,
}

/// What was pulled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PulledArtifact {
    /// `sha256:<hex>` of the manifest built: the revision the build records.
    pub digest: String,
    /// The manifest's origin annotations.
    pub origin: SourceOrigin,
}

/// Why an OCI artifact could not be had. Messages name the artifact as the spec wrote it.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// Not a reference a registry can be asked about.
    #[error("OCI artifact {image:?} is not a valid reference: {reason}")]
    InvalidReference { image: String, reason: String },
    /// The mounted docker `config.json` cannot be read or parsed.
    #[error("registry credentials {}: {reason}", path.display())]
    DockerConfig { path: PathBuf, reason: String },
    /// The registry does not have this artifact (tag or digest).
    #[error("OCI artifact {image} not found in {registry}: {answer}")]
    NotFound {
        image: String,
        registry: String,
        answer: String,
    },
    /// The registry refused, failed or was not reachable.
    #[error("pulling OCI artifact {image} from {registry}: {answer}")]
    Registry {
        image: String,
        registry: String,
        answer: String,
    },
    /// The registry did not finish answering in time.
    #[error("pulling OCI artifact {image} from {registry}: no answer within {}s", timeout.as_secs())]
    Timeout {
        image: String,
        registry: String,
        timeout: Duration,
    },
    /// The manifest served is not the one the reference's digest names.
    #[error(
        "OCI artifact {image}: the registry served a manifest whose digest is {actual}, not {expected}"
    )]
    ManifestDigestMismatch {
        image: String,
        expected: String,
        actual: String,
    },
    /// The manifest is an index, or not an image manifest at all.
    #[error("OCI artifact {image}: not a single artifact manifest: {reason}")]
    NotAnArtifact { image: String, reason: String },
    /// No layer holds a tar+gzip.
    #[error("OCI artifact {image}: no tar+gzip content layer (media type {}) among its layers [{}]", CONTENT_MEDIA_TYPES.join(" or "), found.join(", "))]
    NoContentLayer { image: String, found: Vec<String> },
    /// More than one layer could be the content: which one is meant is unknown.
    #[error("OCI artifact {image}: {count} tar+gzip layers, expected exactly one")]
    SeveralContentLayers { image: String, count: usize },
    /// The content layer's digest is not `sha256:` and 64 lowercase hex digits.
    #[error("OCI artifact {image}: content layer digest {digest:?} is not a sha256 digest")]
    UnsupportedDigest { image: String, digest: String },
    /// The content layer is larger than a source may be.
    #[error("OCI artifact {image}: content layer {digest} is larger than {limit} bytes")]
    TooLarge {
        image: String,
        digest: String,
        limit: u64,
    },
    /// The bytes served are not the ones the manifest names.
    #[error(
        "OCI artifact {image}: content layer digest mismatch: the manifest names {expected}, the registry served {actual}"
    )]
    BlobDigestMismatch {
        image: String,
        expected: String,
        actual: String,
    },
    /// Writing the download to local disk failed.
    #[error("OCI artifact {image}: spooling the content layer: {source}")]
    Spool {
        image: String,
        #[source]
        source: io::Error,
    },
    /// The content is not an acceptable archive.
    #[error(transparent)]
    Unpack(#[from] ArchiveError),
    /// The runtime for the registry client could not be started.
    #[error("starting the registry client: {0}")]
    Runtime(#[source] io::Error),
}

impl OciError {
    /// `InvalidSource` when the spec or the artifact can never be built as they are,
    /// `SourceFetchFailed` when getting them failed.
    pub fn reason(&self) -> FailureReason {
        match self {
            OciError::InvalidReference { .. }
            | OciError::NotAnArtifact { .. }
            | OciError::NoContentLayer { .. }
            | OciError::SeveralContentLayers { .. }
            | OciError::UnsupportedDigest { .. }
            | OciError::TooLarge { .. } => FailureReason::InvalidSource,
            OciError::Unpack(ArchiveError::InvalidUrl { .. }) => FailureReason::InvalidSource,
            _ => FailureReason::SourceFetchFailed,
        }
    }
}

/// `oci://<image>`: where the source came from, for the image's source-location label.
pub fn location(source: &OciSource) -> String {
    format!("oci://{}", source.image)
}

/// Parses `image` as registries do.
pub fn parse_reference(image: &str) -> Result<Reference, OciError> {
    image
        .parse::<Reference>()
        .map_err(|e| OciError::InvalidReference {
            image: image.to_string(),
            reason: e.to_string(),
        })
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn is_sha256_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Reads the manifest bytes the registry served for `image`: checks them against the digest the
/// reference names, if any, and returns the manifest with its digest.
pub fn parse_manifest(
    image: &str,
    pinned: Option<&str>,
    bytes: &[u8],
) -> Result<(OciImageManifest, String), OciError> {
    let digest = sha256_digest(bytes);
    if let Some(expected) = pinned
        && expected != digest
    {
        return Err(OciError::ManifestDigestMismatch {
            image: image.to_string(),
            expected: expected.to_string(),
            actual: digest,
        });
    }
    let not_artifact = |reason: String| OciError::NotAnArtifact {
        image: image.to_string(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| not_artifact(e.to_string()))?;
    if value.get("manifests").is_some() {
        return Err(not_artifact(
            "it is an image index; name one of its manifests by digest".into(),
        ));
    }
    let manifest: OciImageManifest =
        serde_json::from_value(value).map_err(|e| not_artifact(e.to_string()))?;
    Ok((manifest, digest))
}

/// The one layer holding the source: the only layer of a content media type.
pub fn content_layer<'a>(
    image: &str,
    manifest: &'a OciImageManifest,
) -> Result<&'a OciDescriptor, OciError> {
    let candidates: Vec<&OciDescriptor> = manifest
        .layers
        .iter()
        .filter(|layer| CONTENT_MEDIA_TYPES.contains(&layer.media_type.as_str()))
        .collect();
    match candidates.as_slice() {
        [one] if is_sha256_digest(&one.digest) => Ok(one),
        [one] => Err(OciError::UnsupportedDigest {
            image: image.to_string(),
            digest: one.digest.clone(),
        }),
        [] => Err(OciError::NoContentLayer {
            image: image.to_string(),
            found: manifest
                .layers
                .iter()
                .map(|l| l.media_type.clone())
                .collect(),
        }),
        several => Err(OciError::SeveralContentLayers {
            image: image.to_string(),
            count: several.len(),
        }),
    }
}

/// The origin annotations of `manifest`, each cut to [`MAX_ORIGIN_VALUE`] bytes; a value with a
/// control character is dropped, as no label or status line should carry one.
pub fn origin(manifest: &OciImageManifest) -> SourceOrigin {
    let get = |key: &str| {
        let value = manifest.annotations.as_ref()?.get(key)?;
        if value.is_empty() || value.chars().any(char::is_control) {
            return None;
        }
        let mut end = value.len().min(MAX_ORIGIN_VALUE);
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        Some(value[..end].to_string())
    };
    SourceOrigin {
        source: get(ANNOTATION_SOURCE),
        revision: get(ANNOTATION_REVISION),
    }
}

/// Pulls `source.image` and unpacks its content into `dest` (an empty directory).
///
/// Blocking: runs the async client on a current-thread runtime of its own, like the builder
/// image look-up, so it is called from the same blocking prepare step.
pub fn fetch(
    source: &OciSource,
    options: &OciOptions,
    dest: &Path,
    limits: &ArchiveLimits,
) -> Result<PulledArtifact, OciError> {
    let image = source.image.as_str();
    let reference = parse_reference(image)?;
    if let Some(digest) = reference.digest()
        && !is_sha256_digest(digest)
    {
        return Err(OciError::InvalidReference {
            image: image.to_string(),
            reason: format!("{digest:?} is not a sha256 digest"),
        });
    }
    let registry = reference.registry().to_string();
    let auth = match &options.docker_config {
        Some(path) => registry_auth(path, &registry).map_err(|reason| OciError::DockerConfig {
            path: path.clone(),
            reason,
        })?,
        None => RegistryAuth::Anonymous,
    };
    info!(image, %registry, auth = auth_kind(&auth), "pulling the OCI artifact's manifest");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(OciError::Runtime)?;
    let client = push_client(&options.insecure_registries, BLOB_TIMEOUT);
    let registry_error = |error: OciDistributionError| {
        let answer = describe_registry_error(&error);
        if is_not_found(&error) {
            OciError::NotFound {
                image: image.to_string(),
                registry: registry.clone(),
                answer,
            }
        } else {
            OciError::Registry {
                image: image.to_string(),
                registry: registry.clone(),
                answer,
            }
        }
    };
    let timeout = |timeout| OciError::Timeout {
        image: image.to_string(),
        registry: registry.clone(),
        timeout,
    };

    let pulled = runtime.block_on(async {
        tokio::time::timeout(
            REGISTRY_TIMEOUT,
            client.pull_manifest_raw(
                &reference,
                &auth,
                &[OCI_IMAGE_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE],
            ),
        )
        .await
    });
    let (bytes, _) = pulled
        .map_err(|_| timeout(REGISTRY_TIMEOUT))?
        .map_err(registry_error)?;
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(OciError::NotAnArtifact {
            image: image.to_string(),
            reason: format!("its manifest is larger than {MAX_MANIFEST_BYTES} bytes"),
        });
    }
    // The digest is computed from the bytes, never taken from a header: that is what makes a
    // tag resolve to exactly the manifest that is then built.
    let (manifest, digest) = parse_manifest(image, reference.digest(), &bytes)?;
    let layer = content_layer(image, &manifest)?;
    let too_large = || OciError::TooLarge {
        image: image.to_string(),
        digest: layer.digest.clone(),
        limit: limits.max_download_bytes,
    };
    if u64::try_from(layer.size).is_ok_and(|size| size > limits.max_download_bytes) {
        return Err(too_large());
    }
    info!(image, %digest, layer = %layer.digest, media_type = %layer.media_type, size = layer.size, "downloading the content layer");

    let spool = |source| OciError::Spool {
        image: image.to_string(),
        source,
    };
    // Spooled in `dest` itself, unnamed, as the archive source does: in the build Pod it is the
    // writable volume.
    let mut file = tempfile::tempfile_in(dest).map_err(spool)?;
    let download = async {
        let mut stream = client
            .pull_blob_stream(&reference, layer)
            .await
            .map_err(registry_error)?;
        let mut hasher = Sha256::new();
        let mut total: u64 = 0;
        let mut writer = io::BufWriter::new(&mut file);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|error| stream_error(image, &registry, error))?;
            total += chunk.len() as u64;
            if total > limits.max_download_bytes {
                return Err(too_large());
            }
            hasher.update(&chunk);
            writer.write_all(&chunk).map_err(spool)?;
        }
        writer.flush().map_err(spool)?;
        Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
    };
    let written = runtime.block_on(async { tokio::time::timeout(BLOB_TIMEOUT, download).await });
    let actual = written.map_err(|_| timeout(BLOB_TIMEOUT))??;
    if actual != layer.digest {
        return Err(OciError::BlobDigestMismatch {
            image: image.to_string(),
            expected: layer.digest.clone(),
            actual,
        });
    }
    file.seek(SeekFrom::Start(0)).map_err(spool)?;
    let stats = unpack_archive(BufReader::new(file), dest, limits, &location(source))?;
    info!(image, %digest, entries = stats.entries, bytes = stats.bytes, "OCI artifact unpacked");
    Ok(PulledArtifact {
        digest,
        origin: origin(&manifest),
    })
}

/// A failure while the content layer streams in: the client's own digest check at its end (the
/// bytes served are not the ones the digest names), or the transfer breaking off.
fn stream_error(image: &str, registry: &str, error: io::Error) -> OciError {
    if let Some(DigestError::VerificationError { expected, actual }) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<DigestError>())
    {
        return OciError::BlobDigestMismatch {
            image: image.to_string(),
            expected: expected.clone(),
            actual: actual.to_string(),
        };
    }
    OciError::Registry {
        image: image.to_string(),
        registry: registry.to_string(),
        answer: format!("reading the content layer: {error}"),
    }
}

/// An artifact to push: one tar+gzip layer in the Flux format.
#[derive(Clone, Debug)]
pub struct Artifact {
    /// The tar+gzip bytes.
    pub content: Vec<u8>,
    /// Manifest annotations (for example [`ANNOTATION_SOURCE`]). No time is added, so the same
    /// content and annotations always give the same manifest digest.
    pub annotations: BTreeMap<String, String>,
}

/// The manifest bytes of `artifact`, as [`push_artifact`] pushes them: fixed field order, so
/// the digest depends on the content and annotations alone.
pub fn artifact_manifest(artifact: &Artifact) -> Vec<u8> {
    let config = b"{}";
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_IMAGE_MEDIA_TYPE,
        "config": {
            "mediaType": FLUX_CONFIG_MEDIA_TYPE,
            "digest": sha256_digest(config),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": FLUX_CONTENT_MEDIA_TYPE,
            "digest": sha256_digest(&artifact.content),
            "size": artifact.content.len(),
        }],
        "annotations": artifact.annotations,
    });
    serde_json::to_vec(&manifest).expect("a JSON value always serializes")
}

/// Why an artifact could not be pushed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// Not a reference a registry can be asked about.
    #[error("{image:?} is not a valid image reference: {reason}")]
    InvalidReference { image: String, reason: String },
    /// The registry refused or could not be reached.
    #[error("pushing {image} to {registry}: {answer}")]
    Registry {
        image: String,
        registry: String,
        answer: String,
    },
    /// The registry did not finish in time.
    #[error("pushing {image} to {registry}: no answer within {}s", timeout.as_secs())]
    Timeout {
        image: String,
        registry: String,
        timeout: Duration,
    },
}

/// Pushes `artifact` to `image` (a repository with an optional tag) and returns the manifest
/// digest. Async: the plugin runs in a tokio runtime.
pub async fn push_artifact(
    image: &str,
    artifact: &Artifact,
    auth: &RegistryAuth,
    insecure_registries: &[String],
    timeout: Duration,
) -> Result<String, PushError> {
    let reference: Reference =
        image
            .parse()
            .map_err(|e: oci_client::ParseError| PushError::InvalidReference {
                image: image.to_string(),
                reason: e.to_string(),
            })?;
    let registry = reference.registry().to_string();
    let client = push_client(insecure_registries, timeout);
    let manifest = artifact_manifest(artifact);
    let digest = sha256_digest(&manifest);
    let push = async {
        client
            .store_auth_if_needed(reference.resolve_registry(), auth)
            .await;
        let config = b"{}".to_vec();
        for blob in [config, artifact.content.clone()] {
            let blob_digest = sha256_digest(&blob);
            if client.blob_exists(&reference, &blob_digest).await? {
                continue;
            }
            accept_missing_location(client.push_blob(&reference, blob, &blob_digest).await)?;
            if !client.blob_exists(&reference, &blob_digest).await? {
                return Err(OciDistributionError::SpecViolationError(format!(
                    "the registry accepted blob {blob_digest} but does not have it"
                )));
            }
        }
        accept_missing_location(
            client
                .push_manifest_raw(&reference, manifest, http_header(OCI_IMAGE_MEDIA_TYPE))
                .await,
        )?;
        let served = client.fetch_manifest_digest(&reference, auth).await?;
        if served != digest {
            return Err(OciDistributionError::SpecViolationError(format!(
                "the registry serves {served} for {image}, not the manifest pushed ({digest})"
            )));
        }
        Ok(())
    };
    match tokio::time::timeout(timeout, push).await {
        Err(_) => Err(PushError::Timeout {
            image: image.to_string(),
            registry,
            timeout,
        }),
        Ok(Err(error)) => Err(PushError::Registry {
            image: image.to_string(),
            registry,
            answer: describe_registry_error(&error),
        }),
        Ok(Ok(_)) => Ok(digest),
    }
}

fn http_header(value: &'static str) -> reqwest::header::HeaderValue {
    reqwest::header::HeaderValue::from_static(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(layers: &[(&str, &str)], annotations: &[(&str, &str)]) -> Vec<u8> {
        let layers: Vec<_> = layers
            .iter()
            .map(|(media_type, digest)| {
                serde_json::json!({"mediaType": media_type, "digest": digest, "size": 10})
            })
            .collect();
        let annotations: BTreeMap<_, _> = annotations.iter().copied().collect();
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_IMAGE_MEDIA_TYPE,
            "config": {"mediaType": FLUX_CONFIG_MEDIA_TYPE, "digest": sha256_digest(b"{}"), "size": 2},
            "layers": layers,
            "annotations": annotations,
        }))
        .unwrap()
    }

    const BLOB: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn flux_and_plain_layers_are_content() {
        for media_type in CONTENT_MEDIA_TYPES {
            let bytes = manifest(&[(media_type, BLOB)], &[]);
            let (parsed, digest) = parse_manifest("r/a:1", None, &bytes).unwrap();
            assert_eq!(digest, sha256_digest(&bytes));
            assert_eq!(content_layer("r/a:1", &parsed).unwrap().digest, BLOB);
        }
        // A plain tar (uncompressed) layer is not what the issue's formats write.
        let bytes = manifest(
            &[
                ("application/vnd.oci.image.layer.v1.tar", BLOB),
                ("application/json", BLOB),
            ],
            &[],
        );
        let (parsed, _) = parse_manifest("r/a:1", None, &bytes).unwrap();
        let error = content_layer("r/a:1", &parsed).unwrap_err();
        assert!(matches!(error, OciError::NoContentLayer { .. }));
        assert_eq!(error.reason(), FailureReason::InvalidSource);
        assert!(
            error
                .to_string()
                .contains("[application/vnd.oci.image.layer.v1.tar, application/json]"),
            "{error}"
        );
    }

    #[test]
    fn two_content_layers_or_a_bad_digest_are_refused() {
        let bytes = manifest(
            &[
                (FLUX_CONTENT_MEDIA_TYPE, BLOB),
                (IMAGE_LAYER_GZIP_MEDIA_TYPE, BLOB),
            ],
            &[],
        );
        let (parsed, _) = parse_manifest("r/a:1", None, &bytes).unwrap();
        assert!(matches!(
            content_layer("r/a:1", &parsed),
            Err(OciError::SeveralContentLayers { count: 2, .. })
        ));
        let bytes = manifest(&[(FLUX_CONTENT_MEDIA_TYPE, "sha512:abc")], &[]);
        let (parsed, _) = parse_manifest("r/a:1", None, &bytes).unwrap();
        assert!(matches!(
            content_layer("r/a:1", &parsed),
            Err(OciError::UnsupportedDigest { .. })
        ));
    }

    #[test]
    fn a_pinned_digest_must_match_the_bytes() {
        let bytes = manifest(&[(FLUX_CONTENT_MEDIA_TYPE, BLOB)], &[]);
        let right = sha256_digest(&bytes);
        assert!(parse_manifest("r/a", Some(&right), &bytes).is_ok());
        let error = parse_manifest("r/a", Some(BLOB), &bytes).unwrap_err();
        assert!(matches!(error, OciError::ManifestDigestMismatch { .. }));
        assert_eq!(error.reason(), FailureReason::SourceFetchFailed);
        assert!(error.to_string().contains(&right), "{error}");
    }

    #[test]
    fn an_index_is_not_an_artifact() {
        let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
        let error = parse_manifest("r/a:1", None, index).unwrap_err();
        assert!(error.to_string().contains("image index"), "{error}");
        assert!(matches!(
            parse_manifest("r/a:1", None, b"not json"),
            Err(OciError::NotAnArtifact { .. })
        ));
    }

    #[test]
    fn origin_keeps_bounded_printable_annotations() {
        let long = "x".repeat(2000);
        let bytes = manifest(
            &[(FLUX_CONTENT_MEDIA_TYPE, BLOB)],
            &[
                (ANNOTATION_SOURCE, long.as_str()),
                (ANNOTATION_REVISION, "main@sha1:abc\nLABEL evil=1"),
            ],
        );
        let (parsed, _) = parse_manifest("r/a:1", None, &bytes).unwrap();
        let cut = origin(&parsed);
        assert_eq!(cut.source.as_deref().map(str::len), Some(MAX_ORIGIN_VALUE));
        assert_eq!(cut.revision, None);
        let bytes = manifest(
            &[(FLUX_CONTENT_MEDIA_TYPE, BLOB)],
            &[
                (ANNOTATION_SOURCE, "https://example.com/team/app"),
                (ANNOTATION_REVISION, "main@sha1:0123"),
            ],
        );
        let (parsed, _) = parse_manifest("r/a:1", None, &bytes).unwrap();
        assert_eq!(
            origin(&parsed),
            SourceOrigin {
                source: Some("https://example.com/team/app".into()),
                revision: Some("main@sha1:0123".into()),
            }
        );
    }

    #[test]
    fn artifact_manifests_are_flux_format_and_stable() {
        let artifact = Artifact {
            content: vec![0x1f, 0x8b, 1, 2, 3],
            annotations: BTreeMap::from([(ANNOTATION_SOURCE.to_string(), "dir".to_string())]),
        };
        let bytes = artifact_manifest(&artifact);
        assert_eq!(bytes, artifact_manifest(&artifact.clone()));
        let (parsed, _) = parse_manifest("r/a:1", None, &bytes).unwrap();
        assert_eq!(parsed.config.media_type, FLUX_CONFIG_MEDIA_TYPE);
        let layer = content_layer("r/a:1", &parsed).unwrap();
        assert_eq!(layer.media_type, FLUX_CONTENT_MEDIA_TYPE);
        assert_eq!(layer.digest, sha256_digest(&artifact.content));
        assert_eq!(origin(&parsed).source.as_deref(), Some("dir"));
    }
}
