//! The contract between the build Pod and its `prepare` step: what the controller hands the step
//! ([`PrepareRequest`], JSON in the [`REQUEST_ENV`] environment variable), where the Pod mounts
//! its inputs, and what the step reports back in its termination message ([`PrepareReport`]).
//!
//! Pure data and encoding: `pod` writes the request, `prepare` reads it and writes the report,
//! `outcome` reads the report back. No I/O here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::api::{EnvVar, Source, SourceOrigin};
use crate::reason::FailureReason;

/// Environment variable that carries the [`PrepareRequest`] JSON into the init container.
pub const REQUEST_ENV: &str = "SOURCEBUILD_PREPARE_REQUEST";
/// The shared `emptyDir`: prepare writes `Dockerfile` and `upload/` here, Kaniko reads it.
pub const WORKSPACE_DIR: &str = "/workspace";
/// Scratch space for the fetched source, outside the build context.
pub const SCRATCH_DIR: &str = "/scratch";
/// Where a `kubernetes.io/basic-auth` git Secret is mounted (keys `username`, `password`).
pub const GIT_SECRET_DIR: &str = "/var/run/secrets/sourcebuild/git";
/// Where the ConfigMap source is mounted (read-only, laid out by the kubelet).
pub const CONFIGMAP_DIR: &str = "/var/run/sourcebuild/configmap";
/// Where the push Secret's `.dockerconfigjson` is mounted as `config.json`, so prepare can read
/// the builder image from a private registry with the same credentials Kaniko gets.
pub const REGISTRY_AUTH_DIR: &str = "/var/run/secrets/sourcebuild/registry";
/// Where `spec.source.oci.secretRef`'s `.dockerconfigjson` is mounted as `config.json`; without
/// that Secret prepare pulls the artifact with [`REGISTRY_AUTH_DIR`]'s credentials.
pub const OCI_AUTH_DIR: &str = "/var/run/secrets/sourcebuild/oci";
/// The docker config file name inside [`REGISTRY_AUTH_DIR`] and [`OCI_AUTH_DIR`].
pub const REGISTRY_AUTH_FILE: &str = "config.json";
/// The `emptyDir` where prepare leaves its [`PrepareResult`] for the publish step. Kaniko does
/// not mount it: the build's own `RUN` steps must not be able to rewrite what the provenance
/// says the image was made from.
pub const RESULTS_DIR: &str = "/var/run/sourcebuild/results";
/// prepare's [`PrepareResult`] as JSON, inside [`RESULTS_DIR`].
pub const PREPARE_RESULT_FILE: &str = "prepare.json";
/// The `emptyDir` Kaniko writes `<repository>@<digest>` to (`--image-name-with-digest-file`)
/// for the publish step.
pub const DIGEST_DIR: &str = "/var/run/sourcebuild/digest";
/// The file inside [`DIGEST_DIR`].
pub const DIGEST_FILE: &str = "image";
/// Where the signing key Secret (`cosign.key`, `cosign.password`) is mounted, in the key check
/// and the publish step only.
pub const SIGNING_KEY_DIR: &str = "/var/run/secrets/sourcebuild/signing";
/// The encrypted private key inside [`SIGNING_KEY_DIR`].
pub const SIGNING_KEY_FILE: &str = crate::provenance::SECRET_PRIVATE_KEY;
/// Its password inside [`SIGNING_KEY_DIR`] (absent or empty: no password).
pub const SIGNING_PASSWORD_FILE: &str = crate::provenance::SECRET_PASSWORD;
/// Environment variable that carries the [`PublishRequest`] JSON into the publish step.
pub const PUBLISH_REQUEST_ENV: &str = "SOURCEBUILD_PUBLISH_REQUEST";
/// Largest termination message the kubelet keeps (bytes).
pub const TERMINATION_MESSAGE_LIMIT: usize = 4096;

/// Everything `prepare` needs, derived by the controller from the SourceBuild spec.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrepareRequest {
    /// The source: exactly one of git, configMap, archive, plus contextDir.
    pub source: Source,
    /// Builder image reference (spec or the operator default), as the user wrote it.
    pub builder_image: String,
    /// `spec.builder.scriptsUrl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scripts_url: Option<String>,
    /// `spec.builder.assembleUser`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assemble_user: Option<String>,
    /// `spec.env`, applied after `.s2i/environment`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// `spec.output.labels`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `spec.output.image`, recorded in the image's labels.
    pub output_image: String,
    /// Registries (`host[:port]`) reached over plain HTTP (the operator's `--insecure-registry`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub insecure_registries: Vec<String>,
}

/// What prepare reports in its termination message.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub enum PrepareReport {
    /// The build context is ready.
    Prepared(PrepareResult),
    /// The step failed; the build must not go on.
    Failed(PrepareFailure),
}

/// Provenance of a prepared build context.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrepareResult {
    /// Resolved git commit, `sha256:<hex>` of the archive or of the OCI artifact's manifest;
    /// none for a ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// What an OCI artifact's annotations say it was made from (each value bounded, so the
    /// report fits the termination message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<SourceOrigin>,
    /// `sha256:<hex>` of the generated Dockerfile bytes.
    pub dockerfile_sha256: String,
    /// The builder image the Dockerfile's FROM names: `repo@sha256:...`, pinned to the manifest
    /// whose config prepare read.
    pub builder_image: String,
    /// When prepare started (RFC 3339): the provenance's start time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
}

/// Everything the publish step needs besides what prepare and Kaniko leave it: what the
/// provenance says about the build request and who ran it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PublishRequest {
    /// `spec.output.image`: the image's repository is where the provenance goes.
    pub output_image: String,
    /// The SourceBuild's spec as applied: the provenance's external parameters. Secrets appear
    /// by name only; the operator never has their contents.
    pub spec: serde_json::Value,
    /// The SourceBuild's namespace, name and uid, generation and build number: the invocation.
    pub namespace: String,
    /// The SourceBuild's name.
    pub name: String,
    /// The SourceBuild's uid.
    pub uid: String,
    /// The spec generation built.
    pub generation: i64,
    /// The build's number within its generation.
    pub build: i64,
    /// The provenance's `builder.id` (the operator's `--builder-id`).
    pub builder_id: String,
    /// The operator's version.
    pub operator_version: String,
    /// The Kaniko image that built the image.
    pub kaniko_image: String,
    /// Sign with the key mounted at [`SIGNING_KEY_DIR`] (the Secret's name, for messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key_secret: Option<String>,
    /// Registries (`host[:port]`) reached over plain HTTP.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub insecure_registries: Vec<String>,
}

/// What the publish step (and the signing key check before the build) reports in its
/// termination message.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub enum PublishReport {
    /// The provenance (and signature) are in the registry; for the key check, the key loads.
    Published(PublishResult),
    /// The step failed.
    Failed(PrepareFailure),
}

/// What was published with the image.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PublishResult {
    /// `sha256:<hex>` of the image the provenance describes: Kaniko's digest, as read back.
    pub subject: String,
    /// `sha256:<hex>` of the attestation manifest; empty for the key check.
    pub attestation: String,
    /// `sha256:<hex>` of the cosign signature manifest, when signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// `ReferrersAPI` or `TagSchema`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrers: Option<String>,
}

/// Why a step (prepare, the key check, publish) failed, in status terms.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrepareFailure {
    /// `SourceFetchFailed`, `InvalidSource` or `BuilderImagePullFailed`.
    pub reason: FailureReason,
    /// What went wrong, naming the file, line or field.
    pub message: String,
}

/// The report as JSON of at most `limit` bytes: a failure's message is cut (at a character
/// boundary, marked with `...`) until it fits, since the kubelet truncates the termination
/// message and a truncated JSON document cannot be parsed.
pub fn report_json(report: &PrepareReport, limit: usize) -> String {
    let json = serde_json::to_string(report).expect("the report always serializes");
    let PrepareReport::Failed(failure) = report else {
        return json;
    };
    if json.len() <= limit {
        return json;
    }
    let mut keep = failure.message.len();
    loop {
        let excess = serde_json::to_string(&PrepareReport::Failed(PrepareFailure {
            reason: failure.reason,
            message: truncated(&failure.message, keep),
        }))
        .expect("the report always serializes");
        if excess.len() <= limit || keep == 0 {
            return excess;
        }
        // Escaping can make a byte of message cost up to six bytes of JSON, so shrink in
        // proportion to the overshoot rather than by it; a few rounds converge.
        keep = (keep * limit / excess.len()).min(keep - 1);
    }
}

fn truncated(message: &str, keep: usize) -> String {
    let mut end = keep.min(message.len());
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &message[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_failure_messages_are_cut_to_fit() {
        for message in ["x".repeat(10_000), "\"\u{1}é".repeat(3_000)] {
            let report = PrepareReport::Failed(PrepareFailure {
                reason: FailureReason::InvalidSource,
                message: message.clone(),
            });
            let json = report_json(&report, TERMINATION_MESSAGE_LIMIT);
            assert!(json.len() <= TERMINATION_MESSAGE_LIMIT, "{}", json.len());
            assert!(
                json.len() > TERMINATION_MESSAGE_LIMIT - 16,
                "{}",
                json.len()
            );
            let PrepareReport::Failed(back) = serde_json::from_str(&json).unwrap() else {
                panic!("not a failure: {json}");
            };
            assert!(back.message.ends_with("..."));
            assert!(message.starts_with(back.message.trim_end_matches("...")));
        }
        let short = PrepareReport::Failed(PrepareFailure {
            reason: FailureReason::InvalidSource,
            message: "short".into(),
        });
        assert_eq!(
            report_json(&short, TERMINATION_MESSAGE_LIMIT),
            serde_json::to_string(&short).unwrap()
        );
        assert_eq!(
            serde_json::to_string(&short).unwrap(),
            r#"{"failed":{"reason":"InvalidSource","message":"short"}}"#
        );
    }
}
