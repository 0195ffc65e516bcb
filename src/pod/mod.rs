//! SourceBuild + operator settings -> the build Pod for one spec generation.
//!
//! The Pod's steps run one after the other: with a signing key, the `signing-key` init
//! container (our image) first checks that the key loads, so a bad key fails before anything is
//! pushed; the `prepare` init container (our image) fetches the source and writes the build
//! context and Dockerfile into an `emptyDir` workspace; the `build` init container (Kaniko)
//! builds, pushes and writes the digest to its termination message, where `outcome` reads it
//! back; the `publish` container (our image) pushes the image's SLSA provenance next to it, signed
//! when a key is mounted. Everything here is pure: same input, same Pod, byte for byte.

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar, KeyToPath, Pod,
    PodSecurityContext, PodSpec, ResourceRequirements, SeccompProfile, SecretVolumeSource,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use sha2::{Digest, Sha256};

use crate::api::SourceBuild;
use crate::contract::{
    CONFIGMAP_DIR, DIGEST_DIR, DIGEST_FILE, GIT_SECRET_DIR, OCI_AUTH_DIR, PUBLISH_REQUEST_ENV,
    PrepareRequest, PublishRequest, REGISTRY_AUTH_DIR, REGISTRY_AUTH_FILE, REQUEST_ENV,
    RESULTS_DIR, SCRATCH_DIR, SIGNING_KEY_DIR, WORKSPACE_DIR,
};

/// Label selecting every build Pod of one SourceBuild (value: [`name_label_value`]).
pub const LABEL_NAME: &str = "sourcebuild.dev/name";
/// Label carrying the spec generation a build Pod was made for.
pub const LABEL_GENERATION: &str = "sourcebuild.dev/generation";
/// The recommended `managed-by` label.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`LABEL_MANAGED_BY`] on every Pod this operator creates.
pub const MANAGED_BY: &str = "sourcebuild-operator";
/// Label selector matching every build Pod this operator manages, for the controller's watch.
pub const MANAGED_BY_SELECTOR: &str = "app.kubernetes.io/managed-by=sourcebuild-operator";
/// Annotation with the SourceBuild's full name: the label value may be a truncated hash.
pub const ANNOTATION_NAME: &str = "sourcebuild.dev/name";

/// Name of the init container that fetches the source and writes the build context.
pub const PREPARE_CONTAINER: &str = "prepare";
/// Name of the Kaniko init container that builds and pushes the image.
pub const BUILD_CONTAINER: &str = "build";
/// Name of the init container that checks the signing key before anything is built.
pub const SIGNING_KEY_CONTAINER: &str = "signing-key";
/// Name of the container that publishes the image's provenance (and signature).
pub const PUBLISH_CONTAINER: &str = "publish";
/// The build Pod's containers whose logs tell the build's story, in the order they run.
pub const LOG_CONTAINERS: [&str; 3] = [PREPARE_CONTAINER, BUILD_CONTAINER, PUBLISH_CONTAINER];
/// kubectl's annotation naming the container `kubectl logs POD` shows without `-c`.
const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";
/// The operator's version, recorded in the provenance of every image it builds.
pub const OPERATOR_VERSION: &str = env!("CARGO_PKG_VERSION");
/// Where the kubelet reads the termination message from (the Kubernetes default, spelled out
/// because Kaniko's `--digest-file` points at it).
pub const TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
/// Kaniko's image sets `DOCKER_CONFIG` to this directory.
pub const KANIKO_DOCKER_CONFIG_DIR: &str = "/kaniko/.docker";
/// The non-root uid/gid the prepare step runs as (distroless `nonroot`).
pub const PREPARE_UID: i64 = 65532;

const WORKSPACE_VOLUME: &str = "workspace";
const SCRATCH_VOLUME: &str = "scratch";
const GIT_SECRET_VOLUME: &str = "git-secret";
const CONFIGMAP_VOLUME: &str = "source-configmap";
const PUSH_SECRET_VOLUME: &str = "push-secret";
const OCI_SECRET_VOLUME: &str = "oci-secret";
const RESULTS_VOLUME: &str = "results";
const DIGEST_VOLUME: &str = "digest";
const SIGNING_KEY_VOLUME: &str = "signing-key";

/// Longest DNS label (Pod hostnames) and longest label value.
const MAX_LABEL_LEN: usize = 63;
/// Hex digits of the name hash used when a name has to be shortened: 40 bits keep collisions
/// between long names that share a prefix out of practical reach.
const HASH_LEN: usize = 10;

/// The operator's flags that shape build Pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildSettings {
    /// Builder image used when `spec.builder.image` is not set.
    pub default_builder_image: String,
    /// The Kaniko executor image (pinned by tag or digest).
    pub kaniko_image: String,
    /// The operator's own image, which runs `sourcebuild prepare`.
    pub prepare_image: String,
    /// Registries (`host[:port]`) reached over plain HTTP, for a cluster-local registry.
    pub insecure_registries: Vec<String>,
    /// Build Pods get their own user namespace (`hostUsers: false`) unless their spec asks for
    /// the node's users: root in the build is then an unprivileged user on the node.
    pub user_namespaces: bool,
    /// The signing key Secret used when `spec.output.signing` is unset; none: unsigned.
    pub signing_key_secret: Option<String>,
    /// The provenance's `builder.id`: who built the image (the operator, in its cluster).
    pub builder_id: String,
}

/// Why no Pod could be built: the SourceBuild lacks metadata the API server always sets.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    /// `metadata.name` is missing.
    #[error("the SourceBuild has no metadata.name")]
    MissingName,
    /// `metadata.namespace` is missing.
    #[error("SourceBuild {name} has no metadata.namespace")]
    MissingNamespace {
        /// The SourceBuild's name.
        name: String,
    },
    /// `metadata.uid` is missing, so no ownerReference can point at it.
    #[error("SourceBuild {name} has no metadata.uid")]
    MissingUid {
        /// The SourceBuild's name.
        name: String,
    },
    /// `metadata.generation` is missing, so the Pod cannot be tied to a spec generation.
    #[error("SourceBuild {name} has no metadata.generation")]
    MissingGeneration {
        /// The SourceBuild's name.
        name: String,
    },
    /// The prepare request could not be encoded as JSON.
    #[error("SourceBuild {name}: spec could not be encoded into {REQUEST_ENV}: {source}")]
    RequestEncoding {
        /// The SourceBuild's name.
        name: String,
        /// The encoder's error.
        #[source]
        source: serde_json::Error,
    },
}

/// `HASH_LEN` hex digits of the sha256 of `name`: stable across releases and processes.
fn short_hash(name: &str) -> String {
    let digest = Sha256::digest(name.as_bytes());
    hex::encode(digest)[..HASH_LEN].to_string()
}

/// The first `max` bytes of `s` (always ASCII here), without trailing separators, so that what
/// follows starts a fresh segment and the result stays a valid DNS label or label value.
fn truncated_prefix(s: &str, max: usize) -> &str {
    let end = s.len().min(max);
    s[..end].trim_end_matches(['-', '.', '_'])
}

/// The name of build Pod number `build` (1 for the first, more for rebuilds and retries) of a
/// spec generation: `<name>-build-<generation>` for the first, `<name>-build-<generation>-<build>`
/// after it, a valid DNS label of at most 63 characters.
///
/// SourceBuild names are DNS subdomains (up to 253 characters, dots allowed), so a name that is
/// too long or has dots becomes a truncated, dot-free prefix plus a hash of the full name: two
/// different SourceBuilds never share a Pod name through truncation or `.`/`-` mapping.
pub fn build_pod_name(source_build_name: &str, generation: i64, build: i64) -> String {
    let suffix = if build <= 1 {
        format!("-build-{generation}")
    } else {
        format!("-build-{generation}-{build}")
    };
    let plain = format!("{source_build_name}{suffix}");
    if plain.len() <= MAX_LABEL_LEN && !source_build_name.contains('.') {
        return plain;
    }
    let label_safe = source_build_name.replace('.', "-");
    let hash = short_hash(source_build_name);
    let room = MAX_LABEL_LEN - suffix.len() - 1 - HASH_LEN;
    let prefix = truncated_prefix(&label_safe, room);
    if prefix.is_empty() {
        format!("{hash}{suffix}")
    } else {
        format!("{prefix}-{hash}{suffix}")
    }
}

/// The value of [`LABEL_NAME`] for a SourceBuild: the name itself when it fits the 63-character
/// label limit, else a truncated prefix plus a hash of the full name.
pub fn name_label_value(source_build_name: &str) -> String {
    if source_build_name.len() <= MAX_LABEL_LEN {
        return source_build_name.to_string();
    }
    let prefix = truncated_prefix(source_build_name, MAX_LABEL_LEN - 1 - HASH_LEN);
    format!("{prefix}-{}", short_hash(source_build_name))
}

/// Label selector matching every build Pod of the named SourceBuild.
pub fn pod_selector(source_build_name: &str) -> String {
    format!("{LABEL_NAME}={}", name_label_value(source_build_name))
}

/// The repository part of an image reference: without `:tag` and `@digest`.
///
/// A `:` only starts a tag after the last `/`, so a registry port (`host:5000/app`) is kept.
pub fn image_repository(image: &str) -> &str {
    let without_digest = image.split_once('@').map_or(image, |(name, _)| name);
    let last_segment_start = without_digest.rfind('/').map_or(0, |i| i + 1);
    match without_digest[last_segment_start..].find(':') {
        Some(colon) => &without_digest[..last_segment_start + colon],
        None => without_digest,
    }
}

/// The Kaniko arguments for a SourceBuild: separate strings, never a shell line.
fn kaniko_args(sb: &SourceBuild, settings: &BuildSettings) -> Vec<String> {
    let output = &sb.spec.output.image;
    let mut args = vec![
        format!("--context=dir://{WORKSPACE_DIR}"),
        format!("--dockerfile={WORKSPACE_DIR}/Dockerfile"),
        format!("--destination={output}"),
        format!("--digest-file={TERMINATION_MESSAGE_PATH}"),
        format!("--image-name-with-digest-file={DIGEST_DIR}/{DIGEST_FILE}"),
        "--snapshot-mode=redo".to_string(),
    ];
    if let Some(cache) = sb.spec.cache.as_ref().filter(|c| c.enabled) {
        let repo = cache
            .repo
            .clone()
            .unwrap_or_else(|| format!("{}/cache", image_repository(output)));
        args.push("--cache=true".to_string());
        args.push(format!("--cache-repo={repo}"));
    }
    for registry in &settings.insecure_registries {
        args.push(format!("--insecure-registry={registry}"));
    }
    args
}

/// `Some(false)` (a user namespace) when the operator runs builds in one and the spec does not
/// ask for the node's users; unset otherwise (the node's users, the Kubernetes default).
fn host_users(spec: &crate::api::SourceBuildSpec, settings: &BuildSettings) -> Option<bool> {
    (settings.user_namespaces && spec.host_users != Some(true)).then_some(false)
}

/// The signing key Secret of a build: the spec's, else the operator's default.
pub fn signing_key_secret<'a>(
    spec: &'a crate::api::SourceBuildSpec,
    settings: &'a BuildSettings,
) -> Option<&'a str> {
    spec.output
        .signing
        .as_ref()
        .map(|s| s.key_secret_ref.name.as_str())
        .or(settings.signing_key_secret.as_deref())
}

/// The request the publish step gets: the spec as applied and who builds it.
pub fn publish_request(
    sb: &SourceBuild,
    settings: &BuildSettings,
    build: i64,
) -> Result<PublishRequest, PodError> {
    let meta = sb.meta();
    let name = meta.name.clone().ok_or(PodError::MissingName)?;
    let spec = serde_json::to_value(&sb.spec).map_err(|source| PodError::RequestEncoding {
        name: name.clone(),
        source,
    })?;
    Ok(PublishRequest {
        output_image: sb.spec.output.image.clone(),
        spec,
        namespace: meta.namespace.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        generation: meta.generation.unwrap_or_default(),
        build,
        name,
        builder_id: settings.builder_id.clone(),
        operator_version: OPERATOR_VERSION.to_string(),
        kaniko_image: settings.kaniko_image.clone(),
        signing_key_secret: signing_key_secret(&sb.spec, settings).map(str::to_string),
        insecure_registries: settings.insecure_registries.clone(),
    })
}

/// The request the init container gets: the spec's source and S2I settings, the builder image
/// resolved against the operator default.
pub fn prepare_request(sb: &SourceBuild, settings: &BuildSettings) -> PrepareRequest {
    let spec = &sb.spec;
    PrepareRequest {
        source: spec.source.clone(),
        builder_image: spec
            .builder
            .image
            .clone()
            .unwrap_or_else(|| settings.default_builder_image.clone()),
        scripts_url: spec.builder.scripts_url.clone(),
        assemble_user: spec.builder.assemble_user.clone(),
        env: spec.env.clone(),
        labels: spec.output.labels.clone(),
        output_image: spec.output.image.clone(),
        insecure_registries: settings.insecure_registries.clone(),
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

/// A `kubernetes.io/dockerconfigjson` Secret as a volume whose only file is `config.json`.
fn docker_config_volume(name: &str, secret: &str) -> Volume {
    Volume {
        name: name.to_string(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.to_string()),
            items: Some(vec![KeyToPath {
                key: ".dockerconfigjson".to_string(),
                path: REGISTRY_AUTH_FILE.to_string(),
                mode: None,
            }]),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.to_string(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect()
}

/// Meets the `restricted` Pod Security Standard on its own: prepare handles untrusted input
/// (remote archives, git servers) and needs no privilege at all.
fn prepare_security_context() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(PREPARE_UID),
        run_as_group: Some(PREPARE_UID),
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            add: None,
        }),
        ..SecurityContext::default()
    }
}

/// Kaniko unpacks the builder image over its own root filesystem and switches to the assemble
/// user, so it runs as uid 0 with the few capabilities that needs: all within the `baseline`
/// Pod Security Standard, never privileged. No privilege escalation: setuid binaries inside an
/// untrusted builder image must not regain what was dropped.
fn build_security_context() -> SecurityContext {
    SecurityContext {
        run_as_user: Some(0),
        run_as_group: Some(0),
        run_as_non_root: Some(false),
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        read_only_root_filesystem: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            add: Some(
                ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID"]
                    .map(String::from)
                    .to_vec(),
            ),
        }),
        ..SecurityContext::default()
    }
}

/// Build Pod number `build` (1 for the first) for the SourceBuild's current generation.
pub fn build_pod(
    sb: &SourceBuild,
    settings: &BuildSettings,
    build_number: i64,
) -> Result<Pod, PodError> {
    let meta = sb.meta();
    let name = meta.name.clone().ok_or(PodError::MissingName)?;
    let namespace = meta
        .namespace
        .clone()
        .ok_or_else(|| PodError::MissingNamespace { name: name.clone() })?;
    let uid = meta
        .uid
        .clone()
        .ok_or_else(|| PodError::MissingUid { name: name.clone() })?;
    let generation = meta
        .generation
        .ok_or_else(|| PodError::MissingGeneration { name: name.clone() })?;

    let request = serde_json::to_string(&prepare_request(sb, settings)).map_err(|source| {
        PodError::RequestEncoding {
            name: name.clone(),
            source,
        }
    })?;

    let publish_request = serde_json::to_string(&publish_request(sb, settings, build_number)?)
        .map_err(|source| PodError::RequestEncoding {
            name: name.clone(),
            source,
        })?;

    let spec = &sb.spec;
    let mut volumes = vec![
        empty_dir(WORKSPACE_VOLUME),
        empty_dir(SCRATCH_VOLUME),
        empty_dir(RESULTS_VOLUME),
        empty_dir(DIGEST_VOLUME),
    ];
    let mut prepare_mounts = vec![
        mount(WORKSPACE_VOLUME, WORKSPACE_DIR, false),
        mount(SCRATCH_VOLUME, SCRATCH_DIR, false),
        mount(RESULTS_VOLUME, RESULTS_DIR, false),
    ];
    let mut publish_mounts = vec![
        mount(RESULTS_VOLUME, RESULTS_DIR, true),
        mount(DIGEST_VOLUME, DIGEST_DIR, true),
    ];
    if let Some(secret) = spec.source.git.as_ref().and_then(|g| g.secret_ref.as_ref()) {
        volumes.push(Volume {
            name: GIT_SECRET_VOLUME.to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.name.clone()),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        prepare_mounts.push(mount(GIT_SECRET_VOLUME, GIT_SECRET_DIR, true));
    }
    if let Some(config_map) = &spec.source.config_map {
        let items = config_map
            .items
            .iter()
            .map(|item| KeyToPath {
                key: item.key.clone(),
                path: item.path.clone(),
                mode: None,
            })
            .collect::<Vec<_>>();
        volumes.push(Volume {
            name: CONFIGMAP_VOLUME.to_string(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map.name.clone(),
                items: (!items.is_empty()).then_some(items),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        });
        prepare_mounts.push(mount(CONFIGMAP_VOLUME, CONFIGMAP_DIR, true));
    }

    // The artifact's own credentials; without them prepare falls back to the push Secret's,
    // mounted below, as it does for the builder image.
    if let Some(secret) = spec.source.oci.as_ref().and_then(|o| o.secret_ref.as_ref()) {
        volumes.push(docker_config_volume(OCI_SECRET_VOLUME, &secret.name));
        prepare_mounts.push(mount(OCI_SECRET_VOLUME, OCI_AUTH_DIR, true));
    }

    let mut build_mounts = vec![
        mount(WORKSPACE_VOLUME, WORKSPACE_DIR, false),
        mount(DIGEST_VOLUME, DIGEST_DIR, false),
    ];
    if let Some(secret) = &spec.output.push_secret_ref {
        volumes.push(docker_config_volume(PUSH_SECRET_VOLUME, &secret.name));
        build_mounts.push(mount(PUSH_SECRET_VOLUME, KANIKO_DOCKER_CONFIG_DIR, true));
        // prepare reads the builder image's config with the same credentials Kaniko pulls it
        // with (the Secret's only item is config.json); publish pushes the provenance with them.
        prepare_mounts.push(mount(PUSH_SECRET_VOLUME, REGISTRY_AUTH_DIR, true));
        publish_mounts.push(mount(PUSH_SECRET_VOLUME, REGISTRY_AUTH_DIR, true));
    }
    let signing_key = signing_key_secret(spec, settings);
    if let Some(secret) = signing_key {
        volumes.push(Volume {
            name: SIGNING_KEY_VOLUME.to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.to_string()),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        publish_mounts.push(mount(SIGNING_KEY_VOLUME, SIGNING_KEY_DIR, true));
    }

    let prepare = Container {
        name: PREPARE_CONTAINER.to_string(),
        image: Some(settings.prepare_image.clone()),
        args: Some(vec!["prepare".to_string()]),
        env: Some(vec![EnvVar {
            name: REQUEST_ENV.to_string(),
            value: Some(request),
            value_from: None,
        }]),
        volume_mounts: Some(prepare_mounts),
        security_context: Some(prepare_security_context()),
        resources: Some(ResourceRequirements {
            requests: Some(quantities(&[("cpu", "100m"), ("memory", "128Mi")])),
            limits: Some(quantities(&[("memory", "1Gi")])),
            ..ResourceRequirements::default()
        }),
        termination_message_path: Some(TERMINATION_MESSAGE_PATH.to_string()),
        // prepare always writes its PrepareReport, success or failure; its logs are not the
        // contract, so they must never stand in for a missing report.
        termination_message_policy: Some("File".to_string()),
        ..Container::default()
    };

    let build = Container {
        name: BUILD_CONTAINER.to_string(),
        image: Some(settings.kaniko_image.clone()),
        args: Some(kaniko_args(sb, settings)),
        volume_mounts: Some(build_mounts),
        security_context: Some(build_security_context()),
        resources: spec.resources.as_deref().cloned(),
        termination_message_path: Some(TERMINATION_MESSAGE_PATH.to_string()),
        // On failure Kaniko has usually not written the digest file, and its log tail is the
        // only failure summary the controller can read without log access.
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        ..Container::default()
    };

    let publish_step = |name: &str, args: &[&str], mounts: Vec<VolumeMount>| Container {
        name: name.to_string(),
        image: Some(settings.prepare_image.clone()),
        args: Some(args.iter().map(|a| a.to_string()).collect()),
        env: Some(vec![EnvVar {
            name: PUBLISH_REQUEST_ENV.to_string(),
            value: Some(publish_request.clone()),
            value_from: None,
        }]),
        volume_mounts: Some(mounts),
        security_context: Some(prepare_security_context()),
        resources: Some(ResourceRequirements {
            requests: Some(quantities(&[("cpu", "50m"), ("memory", "64Mi")])),
            // The key's scrypt derivation takes 32 MiB.
            limits: Some(quantities(&[("memory", "256Mi")])),
            ..ResourceRequirements::default()
        }),
        termination_message_path: Some(TERMINATION_MESSAGE_PATH.to_string()),
        termination_message_policy: Some("File".to_string()),
        ..Container::default()
    };
    let mut init_containers = Vec::new();
    if signing_key.is_some() {
        // Only the key: this step runs before anything is fetched or pushed.
        init_containers.push(publish_step(
            SIGNING_KEY_CONTAINER,
            &["publish", "--check-key"],
            vec![mount(SIGNING_KEY_VOLUME, SIGNING_KEY_DIR, true)],
        ));
    }
    let publish = publish_step(PUBLISH_CONTAINER, &["publish"], publish_mounts);
    init_containers.extend([prepare, build]);

    let labels = BTreeMap::from([
        (LABEL_NAME.to_string(), name_label_value(&name)),
        (LABEL_GENERATION.to_string(), generation.to_string()),
        (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
    ]);
    let annotations = BTreeMap::from([
        (ANNOTATION_NAME.to_string(), name.clone()),
        // `kubectl logs POD` shows Kaniko's build, as it did when Kaniko was the main container.
        (
            DEFAULT_CONTAINER_ANNOTATION.to_string(),
            BUILD_CONTAINER.to_string(),
        ),
    ]);

    let timeout = spec.timeout();
    // Round up: a sub-second remainder must not end the build early, and 0 is not allowed.
    let deadline = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
    let deadline = i64::try_from(deadline.max(1)).unwrap_or(i64::MAX);

    Ok(Pod {
        metadata: ObjectMeta {
            name: Some(build_pod_name(&name, generation, build_number)),
            namespace: Some(namespace),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: SourceBuild::api_version(&()).into_owned(),
                kind: SourceBuild::kind(&()).into_owned(),
                name: name.clone(),
                uid,
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some("Never".to_string()),
            // The build needs no API access; a token would only be something to steal.
            automount_service_account_token: Some(false),
            host_users: host_users(spec, settings),
            // Service environment variables would leak the namespace's Services into the
            // assemble environment and make builds depend on what else runs there.
            enable_service_links: Some(false),
            service_account_name: spec.service_account_name.clone(),
            active_deadline_seconds: Some(deadline),
            security_context: Some(PodSecurityContext {
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_string(),
                    localhost_profile: None,
                }),
                ..PodSecurityContext::default()
            }),
            init_containers: Some(init_containers),
            containers: vec![publish],
            volumes: Some(volumes),
            ..PodSpec::default()
        }),
        status: None,
    })
}
