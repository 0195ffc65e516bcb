//! The `SourceBuild` custom resource: group `sourcebuild.dev`, version `v1alpha1`.
//!
//! The schema carries every rule the API server can check on its own (patterns, lengths, CEL
//! `x-kubernetes-validations`), so a bad spec is refused at `kubectl apply` time. What only the
//! controller can check lives in the `validation` module.

// kube's derive repeats `type_ = "string"` across printcolumns, which clippy takes for a
// duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// API group of every resource this operator serves.
pub const GROUP: &str = "sourcebuild.dev";
/// Field manager used for every write the operator makes.
pub const FIELD_MANAGER: &str = "sourcebuild-controller";

/// `[A-Za-z_][A-Za-z0-9_]*`: the names a POSIX shell accepts, the same rule `s2i --env` should have.
pub const ENV_NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]*$";

/// The reference grammar of `distribution/reference` (name, optional tag, optional digest),
/// written for RE2 so the API server and the controller (`regex` crate) apply the same rule.
pub const IMAGE_REFERENCE_PATTERN: &str = concat!(
    "^((?:(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])",
    "(?:\\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*",
    "|\\[(?:[a-fA-F0-9:]+)\\])(?::[0-9]+)?/)?",
    "[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*",
    "(?:/[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*)*)",
    "(?::([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?",
    "(?:@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,}))?$"
);

/// Image label keys: reverse-DNS style, as the OCI annotation rules recommend.
pub const LABEL_KEY_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._/-]*$";

/// A Kubernetes object name (RFC 1123 subdomain) for Secrets, ConfigMaps, ServiceAccounts.
pub const OBJECT_NAME_PATTERN: &str =
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// A user for the assemble step: a name or uid, optionally `:group`.
pub const USER_PATTERN: &str = "^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$";

/// A relative path inside the source: no leading `/`, no `..` segment, no empty segment.
pub const RELATIVE_PATH_RULE: &str =
    "!self.startsWith('/') && !self.matches('(^|/)\\\\.\\\\.(/|$)') && !self.matches('//')";

/// Default for `spec.timeout`.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// A build of a container image from source, the Source-to-Image way.
///
/// For each generation of the spec (and each requested rebuild or transient-failure retry) the
/// controller runs one build Pod: it fetches the source,
/// generates a Dockerfile that applies the S2I builder image and scripts, builds it with Kaniko
/// and pushes the result. `status` records the image digest and where it came from.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "sourcebuild.dev",
    version = "v1alpha1",
    kind = "SourceBuild",
    namespaced,
    status = "SourceBuildStatus",
    shortname = "sb",
    category = "all",
    derive = "PartialEq",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    // Shown by default (it was `-o wide` only) and before the long image, so a failure's
    // reason is what `kubectl get sb` says first.
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Succeeded\")].reason"
    ),
    printcolumn(name = "Image", type_ = "string", json_path = ".status.latestImage"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
// Optional parts most SourceBuilds leave unset are boxed here and in `Source` and the status:
// the controller caches every SourceBuild, and an unset box costs 8 bytes where the inline
// struct cost up to 88 (320 bytes a SourceBuild in all).
pub struct SourceBuildSpec {
    /// Where the source comes from.
    pub source: Source,
    /// The S2I builder image and how to apply it.
    #[serde(default, skip_serializing_if = "Builder::is_empty")]
    pub builder: Builder,
    /// Where the built image is pushed.
    pub output: Output,
    /// Environment for the assemble step and the running image, like `s2i build --env`.
    /// Applied after `.s2i/environment`, so these win.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["name".into()]))]
    pub env: Vec<EnvVar>,
    /// Deadline for the whole build, Pending included (Go duration, for example `30m`).
    /// Default 30m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("duration(self) > duration('0s')").message("timeout must be a positive duration"))]
    #[x_kube(validation = kube::core::Rule::new("duration(self) <= duration('168h')").message("timeout must be at most 168h"))]
    pub timeout: Option<kube::core::Duration>,
    /// Layer cache kept in a registry repository, so unchanged layers are not rebuilt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<Box<Cache>>,
    /// CPU and memory for the build (the Kaniko container).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Box<ResourceRequirements>>,
    /// ServiceAccount the build Pod runs as (for image pull secrets). Its token is never mounted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253), pattern(OBJECT_NAME_PATTERN))]
    pub service_account_name: Option<String>,
    /// While true no build runs: a running build is stopped (phase `Cancelled`) and none starts.
    /// Setting it back to false builds the current spec.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
    /// `true`: run this build with the node's user IDs even when the operator puts build Pods
    /// in a user namespace (`--user-namespaces`). For a builder image with files owned by user
    /// IDs beyond the 65,536 a Pod's namespace maps, or a build that needs device nodes. Unset:
    /// the operator's choice. `false`: a user namespace, as far as the operator allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_users: Option<bool>,
    /// How many finished builds `status.history` keeps, newest first. Default 10, at most 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub history_limit: Option<i32>,
    /// Which finished build Pods are kept (for their logs) and which are deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Box<Retention>>,
    /// Automatic retries of builds that failed for a transient reason (eviction, a node
    /// deleting the Pod, a registry or network error while pushing). Default: no retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Box<Retry>>,
}

/// Annotation whose new value asks for a rebuild of the current spec.
pub const REBUILD_ANNOTATION: &str = "sourcebuild.dev/rebuild";

/// Default for `spec.historyLimit`.
pub const DEFAULT_HISTORY_LIMIT: usize = 10;
/// Default for `spec.retention.succeededLimit`.
pub const DEFAULT_SUCCEEDED_LIMIT: usize = 3;
/// Default for `spec.retention.failedLimit`.
pub const DEFAULT_FAILED_LIMIT: usize = 3;
/// Default for `spec.retry.limit` when `spec.retry` is set.
pub const DEFAULT_RETRY_LIMIT: i32 = 2;
/// Default for `spec.retry.backoff`.
pub const DEFAULT_RETRY_BACKOFF: std::time::Duration = std::time::Duration::from_secs(10);
/// The longest wait between two attempts, however often the backoff doubled.
pub const MAX_RETRY_BACKOFF: std::time::Duration = std::time::Duration::from_secs(3600);

/// Which finished build Pods are kept. A Pod is deleted when it is beyond its limit or older
/// than `ttlAfterFinished`; Pods of unfinished builds are never touched.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    /// Succeeded build Pods kept, newest first. Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub succeeded_limit: Option<i32>,
    /// Failed build Pods kept, newest first. Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub failed_limit: Option<i32>,
    /// Finished build Pods older than this are deleted (Go duration). Default: kept by count only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("duration(self) >= duration('0s')").message("ttlAfterFinished must not be negative"))]
    pub ttl_after_finished: Option<kube::core::Duration>,
}

/// Retries of builds that failed for a transient reason.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Retry {
    /// Retries after the first attempt. Default 2, at most 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10))]
    pub limit: Option<i32>,
    /// Wait before the first retry, doubled for each further one, at most 1h. Default 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("duration(self) > duration('0s') && duration(self) <= duration('1h')").message("backoff must be a positive duration of at most 1h"))]
    pub backoff: Option<kube::core::Duration>,
}

/// Where the source comes from: exactly one of `git`, `configMap`, `archive`, `oci`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "(has(self.git) ? 1 : 0) + (has(self.configMap) ? 1 : 0) + (has(self.archive) ? 1 : 0) + (has(self.oci) ? 1 : 0) == 1"
).message("exactly one of git, configMap, archive or oci must be set"))]
pub struct Source {
    /// A git repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitSource>,
    /// Files of a ConfigMap in this namespace: enough for a small app and its `.s2i` hooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<Box<ConfigMapSource>>,
    /// A `.tar`, `.tar.gz` or `.tgz` archive over http(s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<Box<ArchiveSource>>,
    /// An OCI artifact holding the source as one tar+gzip layer (what `flux push artifact` and
    /// `kubectl sourcebuild build` push).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<Box<OciSource>>,
    /// Sub-directory of the source to build (relative, no `..`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = kube::core::Rule::new(RELATIVE_PATH_RULE).message("contextDir must be a relative path without '..' segments"))]
    pub context_dir: Option<String>,
}

/// A git repository to clone.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.pollInterval) || !has(self.secretRef)"
).message(POLL_WITH_SECRET_MESSAGE).field_path(".pollInterval"))]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.pollInterval) || !has(self.revision) || !self.revision.matches('^([0-9a-fA-F]{40}|[0-9a-fA-F]{64})$')"
).message(POLL_WITH_COMMIT_MESSAGE).field_path(".pollInterval"))]
pub struct GitSource {
    /// Clone URL: `https://`, `http://` or `git://`.
    #[schemars(length(min = 1, max = 2048), pattern("^(https?|git)://[^\\s]+$"))]
    pub url: String,
    /// Branch, tag or full commit SHA. Default: the remote's HEAD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255), pattern("^[^\\s~^:?*\\[\\\\]+$"))]
    pub revision: Option<String>,
    /// A `kubernetes.io/basic-auth` Secret (keys `username`, `password`) mounted into the
    /// fetch step. The controller never reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,
    /// How often the controller asks the remote for the head of `revision` (a branch or tag;
    /// the remote's HEAD when unset), building it when it moves (trigger `SourceChange`).
    /// Go duration, at least 1m. Off when unset. Not allowed with `secretRef`: the controller
    /// never reads Secrets, so it cannot authenticate to a private remote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("duration(self) >= duration('1m')").message("pollInterval must be at least 1m"))]
    pub poll_interval: Option<kube::core::Duration>,
}

/// The shortest `spec.source.git.pollInterval`: a remote is not asked more often than this.
pub const MIN_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Why `pollInterval` and `secretRef` exclude each other (the CRD and the controller say the same).
pub const POLL_WITH_SECRET_MESSAGE: &str = "pollInterval cannot be combined with secretRef: the controller never reads Secrets, so it cannot ask a private remote for its head; use the sourcebuild.dev/rebuild annotation (for example from a webhook) instead";

/// Why `pollInterval` and a commit `revision` exclude each other.
pub const POLL_WITH_COMMIT_MESSAGE: &str =
    "pollInterval needs a branch or tag revision: a commit never moves";

/// Files of a ConfigMap, laid out as a ConfigMap volume would.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapSource {
    /// Name of the ConfigMap in the SourceBuild's namespace.
    #[schemars(length(min = 1, max = 253), pattern(OBJECT_NAME_PATTERN))]
    pub name: String,
    /// Which keys go where. Empty: every key becomes a file of its own name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub items: Vec<KeyToPath>,
}

/// A ConfigMap key and the path of the file it becomes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KeyToPath {
    /// The ConfigMap key.
    #[schemars(length(min = 1, max = 253), pattern("^[-._a-zA-Z0-9]+$"))]
    pub key: String,
    /// Relative path of the file in the source tree, for example `.s2i/bin/assemble`.
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = kube::core::Rule::new(RELATIVE_PATH_RULE).message("path must be a relative path without '..' segments"))]
    pub path: String,
}

/// An archive downloaded over http(s).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveSource {
    /// `http(s)://` URL of a `.tar`, `.tar.gz` or `.tgz`.
    #[schemars(length(min = 1, max = 2048), pattern("^https?://[^\\s]+$"))]
    pub url: String,
    /// Expected sha256 of the downloaded bytes (64 hex digits). Verified when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern("^[0-9a-f]{64}$"))]
    pub sha256: Option<String>,
}

/// An OCI artifact in a registry whose content is one tar+gzip layer.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OciSource {
    /// `repository@sha256:<digest>` or `repository:<tag>`. A tag is resolved once, when the
    /// build fetches it; `status.sourceRevision` records the manifest digest that was built.
    #[schemars(length(min = 1, max = 512), pattern(IMAGE_REFERENCE_PATTERN))]
    pub image: String,
    /// A `kubernetes.io/dockerconfigjson` Secret for the artifact's registry, mounted into the
    /// fetch step. Default: the push Secret's credentials, as for the builder image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,
}

/// A reference to a Secret in the SourceBuild's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253), pattern(OBJECT_NAME_PATTERN))]
    pub name: String,
}

/// The S2I builder image and how to apply it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Builder {
    /// Builder image. Default: the operator's `--default-builder-image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512), pattern(IMAGE_REFERENCE_PATTERN))]
    pub image: Option<String>,
    /// Where the stock S2I scripts are: `image:///path` inside the builder image, or an
    /// `http(s)://` URL the fetch step downloads `assemble`, `run` and `save-artifacts` from.
    /// Overrides the builder's `io.openshift.s2i.scripts-url` label and the source's hooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 2048),
        pattern("^(image://(/?[A-Za-z0-9._/-]+)|https?://[^\\s]+)$")
    )]
    pub scripts_url: Option<String>,
    /// User that runs assemble and the image (name or uid, optionally `:group`).
    /// Default: the builder's `io.openshift.s2i.assemble-user` label, else its `USER`, else 1001.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), pattern(USER_PATTERN))]
    pub assemble_user: Option<String>,
}

impl Builder {
    fn is_empty(&self) -> bool {
        self == &Builder::default()
    }
}

/// Where the built image goes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    /// Image reference to push, for example `registry.example.com/team/app:1.0`.
    #[schemars(length(min = 1, max = 512), pattern(IMAGE_REFERENCE_PATTERN))]
    pub image: String,
    /// A `kubernetes.io/dockerconfigjson` Secret with push credentials, mounted into the build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_secret_ref: Option<SecretReference>,
    /// Labels added to the image config.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = kube::core::Rule::new("self.all(k, k.size() <= 255 && k.matches('^[A-Za-z0-9][A-Za-z0-9._/-]*$'))").message("label keys must match [A-Za-z0-9][A-Za-z0-9._/-]* and be at most 255 characters"))]
    pub labels: BTreeMap<String, String>,
    /// Sign the image and its provenance attestation with a cosign key pair. Unset: the
    /// operator's default key (`--signing-key-secret`), else the provenance is published
    /// unsigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing: Option<Signing>,
}

/// A cosign key pair to sign with.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Signing {
    /// A Secret in the SourceBuild's namespace as `cosign generate-key-pair
    /// k8s://NAMESPACE/NAME` writes it: `cosign.key` (the encrypted private key) and
    /// `cosign.password`. Mounted into the build Pod's signing steps only; the operator never
    /// reads it.
    pub key_secret_ref: SecretReference,
}

/// One environment variable.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    /// Variable name: `[A-Za-z_][A-Za-z0-9_]*`.
    #[schemars(length(min = 1, max = 256), pattern(ENV_NAME_PATTERN))]
    pub name: String,
    /// Value, used as is: no variable is expanded.
    #[serde(default)]
    #[schemars(length(max = 32768))]
    pub value: String,
}

/// Registry layer cache.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Cache {
    /// Turns the cache on.
    #[serde(default)]
    pub enabled: bool,
    /// Repository for cached layers. Default: `<output repository>/cache`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512), pattern(IMAGE_REFERENCE_PATTERN))]
    pub repo: Option<String>,
}

/// Where a build stands.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// The build Pod cannot start: no node fits, or an image cannot be pulled (the
    /// `Succeeded` condition's message says why). Back to Running once it moves.
    Pending,
    /// The build Pod was created and the build is under way: the Pod starting, the source
    /// being fetched, Kaniko building.
    Running,
    /// The image was pushed; `status.digest` says which.
    Succeeded,
    /// The build ended without an image; the `Succeeded` condition says why.
    Failed,
    /// The build was stopped (or never started) because `spec.suspend` is true.
    Cancelled,
}

impl Phase {
    /// Succeeded, Failed or Cancelled: this build will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed | Phase::Cancelled)
    }
}

/// Why a build started.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// A new spec generation (including the first).
    ConfigChange,
    /// A new value of the `sourcebuild.dev/rebuild` annotation.
    Manual,
    /// `spec.source.git.pollInterval` saw the branch's head move; the build pins that commit.
    SourceChange,
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Trigger::ConfigChange => "ConfigChange",
            Trigger::Manual => "Manual",
            Trigger::SourceChange => "SourceChange",
        })
    }
}

/// One finished build, as `status.history` keeps it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BuildRecord {
    /// The spec generation built.
    pub generation: i64,
    /// The build's number within its generation (1 for the first).
    pub build: i64,
    /// The attempt (1 unless retried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<i32>,
    /// Why it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// The build Pod, when one was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    /// Succeeded, Failed or Cancelled.
    pub phase: Phase,
    /// The `Succeeded` condition's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The commit the source resolved to, the archive's sha256, or the OCI artifact's
    /// manifest digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_revision: Option<String>,
    /// The pushed image's digest: on success, and on a failure after the push
    /// (`ProvenancePushFailed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The digest of the image's provenance attestation (an OCI referrer of the image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<String>,
    /// When the build started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Cancelled => "Cancelled",
        })
    }
}

/// What the controller observed of the latest build.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SourceBuildStatus {
    /// Where the build of `observedGeneration` stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The build Pod of `observedGeneration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    /// The number of the current build within `observedGeneration`: 1 for the first, one more
    /// for each rebuild or retry. Names its Pod (`<name>-build-<generation>-<build>` from 2 on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<i64>,
    /// Why the current build started: `ConfigChange`, `Manual` or `SourceChange`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// The value of the `sourcebuild.dev/rebuild` annotation already acted on: a rebuild starts
    /// only when the annotation holds a different value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebuild: Option<String>,
    /// The attempt of the current build: 1, plus one for each automatic retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<i32>,
    /// When a failed build will be retried (`spec.retry`); unset when it will not be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_time: Option<Time>,
    /// When the build started (the Pod was created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the build ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// `repository@sha256:...` of the last successful build. Kept while a newer build runs or
    /// fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_image: Option<String>,
    /// `sha256:...` digest of the last successful build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The commit the source resolved to, or the archive's sha256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_revision: Option<String>,
    /// Where an `oci` source says it was made from (its manifest's
    /// `org.opencontainers.image.source` and `.revision` annotations); unset for other sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_origin: Option<Box<SourceOrigin>>,
    /// The builder image the build used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builder_image: Option<String>,
    /// sha256 of the generated Dockerfile: `sourcebuild render` shows the same bytes offline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile_sha256: Option<String>,
    /// What was published with the image of the latest finished build: its SLSA provenance
    /// attestation and, when signed, its signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Box<ProvenanceStatus>>,
    /// Tail of the build log when a build fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_snippet: Option<String>,
    /// `Ready` (an image for the current spec is available), `Succeeded` (the outcome of the
    /// latest build: Unknown while it runs), and kstatus's `Reconciling` (a build or its retry is
    /// on its way) and `Stalled` (the build failed for good), each present only while true.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The last `spec.historyLimit` finished builds, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<BuildRecord>,
    /// What polling (`spec.source.git.pollInterval`) saw of the remote; unset without polling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Box<SourcePollStatus>>,
}

/// The provenance published for a pushed image.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ProvenanceStatus {
    /// `repository@sha256:...`: the image the provenance describes.
    pub image: String,
    /// Digest of the attestation manifest, an OCI 1.1 referrer of the image (artifactType
    /// `application/vnd.in-toto+json`); unset when it could not be published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<String>,
    /// Whether the attestation and the image are signed (`spec.output.signing` or the
    /// operator's default key).
    pub signed: bool,
    /// Digest of the image's cosign signature manifest, when signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// How the registry links the attestation to the image: `ReferrersAPI`, or `TagSchema`
    /// (the OCI fallback tag `sha256-<digest>`) for a registry without the referrers API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrers: Option<String>,
}

/// What an OCI artifact's annotations say about where its content came from.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SourceOrigin {
    /// `org.opencontainers.image.source`: for example the git repository's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `org.opencontainers.image.revision`: for example the commit, or `branch@sha1:<commit>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

impl SourceOrigin {
    /// Neither annotation was set.
    pub fn is_empty(&self) -> bool {
        self.source.is_none() && self.revision.is_none()
    }
}

/// What the controller last saw of a polled git remote.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SourcePollStatus {
    /// The commit the branch (or tag, or the remote's HEAD) pointed at when last resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_revision: Option<String>,
    /// When the remote was last asked, whether or not it answered (the `SourceReachable`
    /// condition says how that went).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checked: Option<Time>,
    /// The spec generation whose remote `latestRevision` belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_generation: Option<i64>,
    /// The head seen when the latest build started (the pinned commit of a `SourceChange`
    /// build): a `SourceChange` build starts only for a head other than this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_revision: Option<String>,
}

/// The SourceBuild CRD as served: the derived one, with `status` defaulting to
/// `{observedGeneration: 0}`.
///
/// The API server drops `status` on create, so a SourceBuild the operator has not yet seen has
/// none, and kstatus reads an object without `observedGeneration` or conditions as Current: a
/// GitOps tool waiting on a SourceBuild it just applied would be done before the build began.
/// Defaults apply whenever the API server reads the object, so every read, watch event and the
/// create's own answer carry generation 0 observed until the operator's first status write.
pub fn crd()
-> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    use kube::CustomResourceExt;
    let mut crd = SourceBuild::crd();
    for version in &mut crd.spec.versions {
        let status = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
            .and_then(|s| s.properties.as_mut())
            .and_then(|p| p.get_mut("status"));
        if let Some(status) = status {
            let unobserved = serde_json::json!({ "observedGeneration": 0 });
            status.default = Some(
                k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSON(
                    unobserved,
                ),
            );
        }
    }
    crd
}

impl SourceBuildStatus {
    /// The condition of the given type, if set.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

impl SourceBuildSpec {
    /// The build deadline: `spec.timeout` or the 30-minute default.
    pub fn timeout(&self) -> std::time::Duration {
        self.timeout
            .map(std::time::Duration::from)
            .unwrap_or(DEFAULT_TIMEOUT)
    }

    /// How often the git remote is polled: `None` when polling is off (or the source is not git).
    pub fn poll_interval(&self) -> Option<std::time::Duration> {
        self.source
            .git
            .as_ref()?
            .poll_interval
            .map(std::time::Duration::from)
    }

    /// How many finished builds `status.history` keeps.
    pub fn history_limit(&self) -> usize {
        self.history_limit
            .map_or(DEFAULT_HISTORY_LIMIT, |n| usize::try_from(n).unwrap_or(0))
    }

    /// Retries allowed after the first attempt: 0 without `spec.retry`.
    pub fn retry_limit(&self) -> i32 {
        self.retry
            .as_ref()
            .map_or(0, |r| r.limit.unwrap_or(DEFAULT_RETRY_LIMIT).max(0))
    }

    /// The wait before retry number `retry` (1 for the first): the backoff doubled for each
    /// earlier retry, at most [`MAX_RETRY_BACKOFF`].
    pub fn retry_backoff(&self, retry: i32) -> std::time::Duration {
        let base = self
            .retry
            .as_ref()
            .and_then(|r| r.backoff)
            .map_or(DEFAULT_RETRY_BACKOFF, std::time::Duration::from);
        let doublings = u32::try_from(retry.saturating_sub(1)).unwrap_or(0).min(20);
        base.saturating_mul(1 << doublings).min(MAX_RETRY_BACKOFF)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_names_and_columns() {
        let crd = crd();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("sourcebuilds.sourcebuild.dev")
        );
        assert_eq!(crd.spec.names.short_names, Some(vec!["sb".to_string()]));
        let columns: Vec<_> = crd.spec.versions[0]
            .additional_printer_columns
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| (c.name.as_str(), c.priority.unwrap_or(0)))
            .collect();
        // Priority 0: every column, the failure's reason included, shows without `-o wide`.
        assert_eq!(
            columns,
            [("Phase", 0), ("Reason", 0), ("Image", 0), ("Age", 0)]
        );
    }

    #[test]
    fn an_unobserved_source_build_says_so_in_its_default_status() {
        let crd = crd();
        let schema = crd.spec.versions[0].schema.as_ref().unwrap();
        let status = &schema
            .open_api_v3_schema
            .as_ref()
            .unwrap()
            .properties
            .as_ref()
            .unwrap()["status"];
        let default = &status.default.as_ref().unwrap().0;
        assert_eq!(default, &serde_json::json!({"observedGeneration": 0}));
        // The default is a status the operator reads as "no build yet".
        let parsed: SourceBuildStatus = serde_json::from_value(default.clone()).unwrap();
        assert_eq!((parsed.observed_generation, parsed.phase), (Some(0), None));
    }

    #[test]
    fn timeout_defaults_to_thirty_minutes() {
        let spec: SourceBuildSpec = serde_json::from_value(serde_json::json!({
            "source": {"git": {"url": "https://example.com/a.git"}},
            "output": {"image": "registry.example.com/a:1"}
        }))
        .unwrap();
        assert_eq!(spec.timeout(), DEFAULT_TIMEOUT);
        let spec: SourceBuildSpec = serde_json::from_value(serde_json::json!({
            "source": {"git": {"url": "https://example.com/a.git"}},
            "output": {"image": "registry.example.com/a:1"},
            "timeout": "1h30m"
        }))
        .unwrap();
        assert_eq!(spec.timeout(), std::time::Duration::from_secs(5400));
    }
}
