//! Pushing the attestation (and the signatures) next to the image (I/O, async).

use std::time::Duration;

use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::Value;

use super::key::SigningKey;
use super::layout::{
    self, Descriptor, LayoutError, ManifestToPush, OCI_INDEX, OCI_MANIFEST, digest_tag,
};
use super::signing;
use super::statement::SLSA_PROVENANCE_V1;
use crate::builder_image::{
    Credential, accept_missing_location, auth_for, describe_registry_error, is_not_found,
    push_client,
};

/// What to publish for one built image.
#[derive(Clone, Debug)]
pub struct PublishRequest {
    /// The output image as written in the spec (`registry/repo[:tag]`).
    pub image: String,
    /// The manifest digest Kaniko pushed, `sha256:<hex>`.
    pub digest: String,
    /// The statement's bytes ([`super::statement_bytes`]).
    pub statement: Vec<u8>,
    /// Sign with this key; `None` publishes the statement unsigned.
    pub key: Option<SigningKey>,
    /// The push credential for the image's registry, if any.
    pub credential: Option<Credential>,
    /// Registries (`host[:port]`) reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// RFC 3339 time for the attestation's `org.opencontainers.image.created` (the build's end).
    pub created: String,
    /// Bound on the whole publication.
    pub timeout: Duration,
}

/// How the attestation was made findable as a referrer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReferrersMode {
    /// The registry lists it through its OCI 1.1 referrers API.
    Api,
    /// The registry has no referrers API: an index under tag `sha256-<hex>` lists it.
    TagSchema,
}

/// What was published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// The attestation manifest's digest (the referrer).
    pub attestation_digest: String,
    /// The image signature manifest's digest (what the `.sig` tag points at), when signed.
    pub signature_digest: Option<String>,
    pub signed: bool,
    pub referrers: ReferrersMode,
}

/// Why publishing failed. Every variant names the image; none carries key material.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{image:?} is not a valid image reference: {reason}")]
    InvalidReference { image: String, reason: String },
    /// The image Kaniko reported is not in the registry.
    #[error("{image}@{digest} is not in the registry: {answer}")]
    ImageNotFound {
        image: String,
        digest: String,
        answer: String,
    },
    /// The registry could not be reached (connection refused, DNS, TLS, reset).
    #[error("{registry} is unreachable while publishing provenance for {image}: {answer}")]
    Unreachable {
        image: String,
        registry: String,
        answer: String,
    },
    /// The registry refused the credentials (401/403, token refused).
    #[error("{registry} refused the credentials while publishing {what} for {image}: {answer}")]
    Unauthorized {
        image: String,
        registry: String,
        what: &'static str,
        answer: String,
    },
    /// The registry answered but refused a push or read.
    #[error("{registry} refused {what} for {image}: {answer}")]
    Refused {
        image: String,
        registry: String,
        what: &'static str,
        answer: String,
    },
    /// Existing content under a tag we add to is not readable as OCI.
    #[error("publishing provenance for {image}: {source}")]
    Existing {
        image: String,
        #[source]
        source: LayoutError,
    },
    #[error("publishing provenance for {image} to {registry}: no answer within {}s", timeout.as_secs())]
    Timeout {
        image: String,
        registry: String,
        timeout: Duration,
    },
    /// The statement is not JSON of an in-toto statement.
    #[error("the provenance statement for {image} is not valid JSON: {reason}")]
    InvalidStatement { image: String, reason: String },
}

/// What a step was doing, for error messages.
#[derive(Clone, Copy)]
enum Step {
    ReadImage,
    Attestation,
    Signature,
    Referrers,
}

impl Step {
    fn what(self) -> &'static str {
        match self {
            Step::ReadImage => "reading the image manifest",
            Step::Attestation => "the provenance attestation",
            Step::Signature => "the image signature",
            Step::Referrers => "the referrers fallback index",
        }
    }
}

const MANIFEST_TYPES: [&str; 4] = [
    OCI_MANIFEST,
    OCI_INDEX,
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

struct Target<'a> {
    client: Client,
    auth: RegistryAuth,
    registry: String,
    repository: String,
    request: &'a PublishRequest,
}

/// Publishes the statement as a referrer of `request.digest`, signed (DSSE attestation and
/// cosign image signature) when a key is given. See [`super::layout`] for what lands where.
pub async fn publish(request: &PublishRequest) -> Result<Published, PublishError> {
    let image = request.image.clone();
    let reference: Reference =
        image
            .parse()
            .map_err(|e: oci_client::ParseError| PublishError::InvalidReference {
                image: image.clone(),
                reason: e.to_string(),
            })?;
    if serde_json::from_slice::<Value>(&request.statement).is_err() {
        return Err(PublishError::InvalidStatement {
            image,
            reason: "not JSON".into(),
        });
    }
    let registry = reference.registry().to_string();
    let target = Target {
        client: push_client(&request.insecure_registries, request.timeout),
        auth: auth_for(request.credential.as_ref()),
        registry: reference.resolve_registry().to_string(),
        repository: reference.repository().to_string(),
        request,
    };
    match tokio::time::timeout(request.timeout, target.run()).await {
        Err(_) => Err(PublishError::Timeout {
            image,
            registry,
            timeout: request.timeout,
        }),
        Ok(result) => result.map_err(|(step, error)| target.error(step, &registry, error)),
    }
}

type StepResult<T> = Result<T, (Step, StepError)>;

enum StepError {
    Registry(OciDistributionError),
    Layout(LayoutError),
}

impl<'a> Target<'a> {
    fn at_digest(&self, digest: &str) -> Reference {
        Reference::with_digest(
            self.registry.clone(),
            self.repository.clone(),
            digest.to_string(),
        )
    }

    /// A reference to push a manifest by digest. oci-client 0.18 rebuilds the manifest's URL
    /// from the tag when a registry answers without `Location` (crane's does) and panics when
    /// there is no tag: the digest as the tag too keeps the URL `/manifests/<digest>`.
    fn for_push_by_digest(&self, digest: &str) -> Reference {
        Reference::with_tag_and_digest(
            self.registry.clone(),
            self.repository.clone(),
            digest.to_string(),
            digest.to_string(),
        )
    }

    fn at_tag(&self, tag: &str) -> Reference {
        Reference::with_tag(
            self.registry.clone(),
            self.repository.clone(),
            tag.to_string(),
        )
    }

    /// The repository as cosign names it in simple-signing payloads.
    fn cosign_repository(&self) -> String {
        let registry = match self.registry.as_str() {
            "docker.io" | "registry-1.docker.io" => "index.docker.io",
            other => other,
        };
        format!("{registry}/{}", self.repository)
    }

    async fn run(&self) -> StepResult<Published> {
        let request = self.request;
        let registry_error = |step: Step| move |e| (step, StepError::Registry(e));
        self.client
            .store_auth_if_needed(&self.registry, &self.auth)
            .await;
        let (subject_bytes, _) = self
            .client
            .pull_manifest_raw(
                &self.at_digest(&request.digest),
                &self.auth,
                &MANIFEST_TYPES,
            )
            .await
            .map_err(registry_error(Step::ReadImage))?;
        let subject_type = serde_json::from_slice::<Value>(&subject_bytes)
            .ok()
            .and_then(|v| v["mediaType"].as_str().map(str::to_string))
            .unwrap_or_else(|| OCI_MANIFEST.to_string());
        let subject = Descriptor {
            digest: request.digest.clone(),
            ..Descriptor::of(&subject_type, &subject_bytes)
        };

        let envelope = request
            .key
            .as_ref()
            .map(|key| signing::sign_statement(&request.statement, key).to_json());
        let attestation = layout::attestation_manifest(
            &subject,
            &request.statement,
            SLSA_PROVENANCE_V1,
            envelope.as_deref(),
            &request.created,
        );
        let attestation_digest = attestation.digest();
        self.push(&attestation, &self.for_push_by_digest(&attestation_digest))
            .await
            .map_err(registry_error(Step::Attestation))?;

        let mut signature_digest = None;
        if let Some(key) = &request.key {
            self.push_cosign_tag(&request.digest, "att", &attestation, Step::Attestation)
                .await?;
            let payload =
                signing::simple_signing_payload(&self.cosign_repository(), &request.digest);
            let signature =
                layout::signature_manifest(&payload, &signing::sign_payload(&payload, key));
            signature_digest = Some(
                self.push_cosign_tag(&request.digest, "sig", &signature, Step::Signature)
                    .await?,
            );
        }

        let referrers = self.ensure_referrer(&request.digest, &attestation).await?;
        Ok(Published {
            attestation_digest,
            signature_digest,
            signed: request.key.is_some(),
            referrers,
        })
    }

    /// Uploads the manifest's blobs (those missing) and the manifest under `reference`, then
    /// checks the registry serves exactly it.
    async fn push(
        &self,
        manifest: &ManifestToPush,
        reference: &Reference,
    ) -> Result<(), OciDistributionError> {
        for blob in &manifest.blobs {
            let digest = layout::sha256_digest(&blob.bytes);
            if self.client.blob_exists(reference, &digest).await? {
                continue;
            }
            accept_missing_location(
                self.client
                    .push_blob(reference, blob.bytes.clone(), &digest)
                    .await,
            )?;
        }
        let content_type = reqwest::header::HeaderValue::from_str(&manifest.media_type)
            .map_err(|e| OciDistributionError::GenericError(Some(e.to_string())))?;
        accept_missing_location(
            self.client
                .push_manifest_raw(reference, manifest.bytes.clone(), content_type)
                .await,
        )?;
        let served = self
            .client
            .fetch_manifest_digest(reference, &self.auth)
            .await?;
        if served != manifest.digest() {
            return Err(OciDistributionError::SpecViolationError(format!(
                "the registry serves {served} for {reference}, not the manifest pushed ({})",
                manifest.digest()
            )));
        }
        Ok(())
    }

    /// The manifest under `tag`, or `None` when there is none.
    async fn existing(&self, tag: &str) -> Result<Option<Vec<u8>>, OciDistributionError> {
        match self
            .client
            .pull_manifest_raw(&self.at_tag(tag), &self.auth, &MANIFEST_TYPES)
            .await
        {
            Ok((bytes, _)) => Ok(Some(bytes.to_vec())),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Pushes `ours` under cosign's `sha256-<hex>.<suffix>` tag, merged with what is there.
    /// Returns the digest the tag then points at.
    async fn push_cosign_tag(
        &self,
        digest: &str,
        suffix: &str,
        ours: &ManifestToPush,
        step: Step,
    ) -> StepResult<String> {
        let registry_error = |e| (step, StepError::Registry(e));
        let tag = digest_tag(digest, suffix);
        let existing = self.existing(&tag).await.map_err(registry_error)?;
        let existing_config = match &existing {
            Some(bytes) => self.config_of(bytes).await,
            None => None,
        };
        let merged =
            layout::merge_cosign_tag(existing.as_deref(), existing_config.as_deref(), ours)
                .map_err(|e| (step, StepError::Layout(e)))?;
        self.push(&merged, &self.at_tag(&tag))
            .await
            .map_err(registry_error)?;
        Ok(merged.digest())
    }

    /// The config blob of a manifest, when it can be read (merging does without it).
    async fn config_of(&self, manifest: &[u8]) -> Option<Vec<u8>> {
        let parsed: Value = serde_json::from_slice(manifest).ok()?;
        let digest = parsed["config"]["digest"].as_str()?;
        let mut out = Vec::new();
        self.client
            .pull_blob(&self.at_tag("config"), digest, &mut out)
            .await
            .ok()?;
        Some(out)
    }

    /// Makes the attestation findable as a referrer of `digest`: when the registry's referrers
    /// API lists it, nothing more; else the tag-scheme fallback index.
    async fn ensure_referrer(
        &self,
        digest: &str,
        attestation: &ManifestToPush,
    ) -> StepResult<ReferrersMode> {
        let ours = attestation.digest();
        let tag = digest_tag(digest, "");
        // The referrers API: the client falls back to reading the tag itself on a 404, so look
        // whether the API answered by asking the fallback tag apart.
        let listed = self
            .client
            .pull_referrers(&self.at_digest(digest), None)
            .await
            .map(|index| index.manifests.iter().any(|m| m.digest == ours))
            .unwrap_or(false);
        let existing = self
            .existing(&tag)
            .await
            .map_err(|e| (Step::Referrers, StepError::Registry(e)))?;
        let in_fallback = existing
            .as_deref()
            .and_then(|b| serde_json::from_slice::<Value>(b).ok())
            .is_some_and(|index| {
                index["manifests"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|d| d["digest"] == ours.as_str()))
            });
        if listed && !in_fallback {
            return Ok(ReferrersMode::Api);
        }
        if in_fallback {
            return Ok(ReferrersMode::TagSchema);
        }
        let index = layout::fallback_index(existing.as_deref(), &[attestation.descriptor()])
            .map_err(|e| (Step::Referrers, StepError::Layout(e)))?;
        self.push(&index, &self.at_tag(&tag))
            .await
            .map_err(|e| (Step::Referrers, StepError::Registry(e)))?;
        Ok(ReferrersMode::TagSchema)
    }

    fn error(&self, step: Step, registry: &str, error: StepError) -> PublishError {
        let image = self.request.image.clone();
        let registry = registry.to_string();
        let error = match error {
            StepError::Layout(source) => return PublishError::Existing { image, source },
            StepError::Registry(error) => error,
        };
        let answer = describe_registry_error(&error);
        if let (Step::ReadImage, true) = (step, is_not_found(&error)) {
            return PublishError::ImageNotFound {
                image,
                digest: self.request.digest.clone(),
                answer,
            };
        }
        match classify(&error) {
            Class::Unreachable => PublishError::Unreachable {
                image,
                registry,
                answer,
            },
            Class::Unauthorized => PublishError::Unauthorized {
                image,
                registry,
                what: step.what(),
                answer,
            },
            Class::Refused => PublishError::Refused {
                image,
                registry,
                what: step.what(),
                answer,
            },
        }
    }
}

enum Class {
    Unreachable,
    Unauthorized,
    Refused,
}

fn classify(error: &OciDistributionError) -> Class {
    match error {
        OciDistributionError::AuthenticationFailure(_)
        | OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::ServerError {
            code: 401 | 403, ..
        } => Class::Unauthorized,
        OciDistributionError::RegistryError { envelope, .. }
            if envelope
                .errors
                .iter()
                .any(|e| matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied)) =>
        {
            Class::Unauthorized
        }
        OciDistributionError::RequestError(e) if e.is_connect() || e.is_timeout() => {
            Class::Unreachable
        }
        OciDistributionError::RequestError(e) if e.status().is_none() && e.is_request() => {
            Class::Unreachable
        }
        _ => Class::Refused,
    }
}
