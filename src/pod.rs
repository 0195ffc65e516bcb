//! SourceBuild + operator settings -> the build Pod for one spec generation.
//!
//! The Pod has two steps sharing an `emptyDir` workspace: the `prepare` init container (our own
//! image) fetches the source and writes the build context and Dockerfile, then the `build`
//! container (Kaniko) builds, pushes and writes the digest to its termination message, where
//! [`crate::outcome`] reads it back. Everything here is pure: same input, same Pod, byte for byte.

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
use crate::prepare::{
    CONFIGMAP_DIR, GIT_SECRET_DIR, PrepareRequest, REGISTRY_AUTH_DIR, REQUEST_ENV, SCRATCH_DIR,
    WORKSPACE_DIR,
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
/// Name of the Kaniko container that builds and pushes the image.
pub const BUILD_CONTAINER: &str = "build";
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

/// The build Pod's name: `<name>-build-<generation>`, a valid DNS label of at most 63 characters.
///
/// SourceBuild names are DNS subdomains (up to 253 characters, dots allowed), so a name that is
/// too long or has dots becomes a truncated, dot-free prefix plus a hash of the full name: two
/// different SourceBuilds never share a Pod name through truncation or `.`/`-` mapping.
pub fn pod_name(source_build_name: &str, generation: i64) -> String {
    build_pod_name(source_build_name, generation, 1)
}

/// The Pod name of build number `build` of `generation`: [`pod_name`] for the first build,
/// `<name>-build-<generation>-<build>` for rebuilds and retries, shortened the same way.
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

/// The build Pod for the SourceBuild's current generation.
pub fn build_pod(sb: &SourceBuild, settings: &BuildSettings) -> Result<Pod, PodError> {
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

    let spec = &sb.spec;
    let mut volumes = vec![empty_dir(WORKSPACE_VOLUME), empty_dir(SCRATCH_VOLUME)];
    let mut prepare_mounts = vec![
        mount(WORKSPACE_VOLUME, WORKSPACE_DIR, false),
        mount(SCRATCH_VOLUME, SCRATCH_DIR, false),
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

    let mut build_mounts = vec![mount(WORKSPACE_VOLUME, WORKSPACE_DIR, false)];
    if let Some(secret) = &spec.output.push_secret_ref {
        volumes.push(Volume {
            name: PUSH_SECRET_VOLUME.to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.name.clone()),
                items: Some(vec![KeyToPath {
                    key: ".dockerconfigjson".to_string(),
                    path: "config.json".to_string(),
                    mode: None,
                }]),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        build_mounts.push(mount(PUSH_SECRET_VOLUME, KANIKO_DOCKER_CONFIG_DIR, true));
        // prepare reads the builder image's config with the same credentials Kaniko pulls it
        // with (the Secret's only item is config.json).
        prepare_mounts.push(mount(PUSH_SECRET_VOLUME, REGISTRY_AUTH_DIR, true));
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

    let labels = BTreeMap::from([
        (LABEL_NAME.to_string(), name_label_value(&name)),
        (LABEL_GENERATION.to_string(), generation.to_string()),
        (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
    ]);
    let annotations = BTreeMap::from([(ANNOTATION_NAME.to_string(), name.clone())]);

    let timeout = spec.timeout();
    // Round up: a sub-second remainder must not end the build early, and 0 is not allowed.
    let deadline = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
    let deadline = i64::try_from(deadline.max(1)).unwrap_or(i64::MAX);

    Ok(Pod {
        metadata: ObjectMeta {
            name: Some(pod_name(&name, generation)),
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
            init_containers: Some(vec![prepare]),
            containers: vec![build],
            volumes: Some(volumes),
            ..PodSpec::default()
        }),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        ArchiveSource, Cache, ConfigMapSource, GitSource, KeyToPath as SpecKeyToPath, Output,
        SecretReference, Source, SourceBuildSpec,
    };

    fn settings() -> BuildSettings {
        BuildSettings {
            default_builder_image: "registry.example.com/s2i/default-builder:1".to_string(),
            kaniko_image: "registry.example.com/kaniko/executor:v1.24.0".to_string(),
            prepare_image: "registry.example.com/sourcebuild/operator:0.1.0".to_string(),
            insecure_registries: vec![],
        }
    }

    fn source_build(name: &str, spec: SourceBuildSpec) -> SourceBuild {
        let mut sb = SourceBuild::new(name, spec);
        sb.metadata.namespace = Some("team-a".to_string());
        sb.metadata.uid = Some("6d1e2f40-0000-4000-8000-000000000001".to_string());
        sb.metadata.generation = Some(3);
        sb
    }

    fn git_spec() -> SourceBuildSpec {
        SourceBuildSpec {
            source: Source {
                git: Some(GitSource {
                    url: "https://git.example.com/team/app.git".to_string(),
                    revision: Some("main".to_string()),
                    secret_ref: Some(SecretReference {
                        name: "git-creds".to_string(),
                    }),
                    poll_interval: None,
                }),
                ..Source::default()
            },
            builder: Default::default(),
            output: Output {
                image: "registry.example.com:5000/team/app:1.0".to_string(),
                push_secret_ref: Some(SecretReference {
                    name: "push-creds".to_string(),
                }),
                labels: BTreeMap::new(),
            },
            env: vec![],
            timeout: None,
            cache: None,
            resources: None,
            service_account_name: Some("builder".to_string()),
            ..SourceBuildSpec::default()
        }
    }

    fn container<'a>(pod: &'a Pod, name: &str) -> &'a Container {
        let spec = pod.spec.as_ref().unwrap();
        spec.init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
            .find(|c| c.name == name)
            .unwrap()
    }

    fn is_dns_label(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    }

    fn is_label_value(s: &str) -> bool {
        s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && s.bytes().next().is_none_or(|b| b.is_ascii_alphanumeric())
            && s.bytes().last().is_none_or(|b| b.is_ascii_alphanumeric())
    }

    #[test]
    fn pod_name_is_plain_when_it_fits() {
        assert_eq!(pod_name("app", 7), "app-build-7");
        assert_eq!(build_pod_name("app", 7, 1), "app-build-7");
        assert_eq!(build_pod_name("app", 7, 2), "app-build-7-2");
        let long = "a".repeat(60);
        let second = build_pod_name(&long, 7, 2);
        assert!(
            second.len() <= 63 && second.ends_with("-build-7-2"),
            "{second}"
        );
    }

    #[test]
    fn pod_name_is_a_short_stable_dns_label_for_long_and_dotted_names() {
        let long = "a".repeat(60);
        let long_other = format!("{}b", "a".repeat(59));
        let names = [
            long.clone(),
            long_other.clone(),
            "x".repeat(253),
            "my.app.v2".to_string(),
            "my-app-v2".to_string(),
            format!("{}.{}", "a".repeat(40), "b".repeat(40)),
        ];
        for name in &names {
            for generation in [1, 42, i64::MAX] {
                let pod = pod_name(name, generation);
                assert!(is_dns_label(&pod), "{pod:?} from {name:?}");
                assert!(pod.ends_with(&format!("-build-{generation}")), "{pod}");
                assert_eq!(pod, pod_name(name, generation), "deterministic");
            }
        }
        assert_ne!(pod_name(&long, 1), pod_name(&long_other, 1));
        assert_ne!(pod_name("my.app.v2", 1), pod_name("my-app-v2", 1));
        assert!(pod_name(&long, 1).starts_with(&"a".repeat(20)));
    }

    #[test]
    fn name_label_value_fits_the_label_limit_and_tells_long_names_apart() {
        assert_eq!(name_label_value("my.app"), "my.app");
        let a = format!("{}-x", "a".repeat(70));
        let b = format!("{}-y", "a".repeat(70));
        for name in [&a, &b] {
            let v = name_label_value(name);
            assert!(is_label_value(&v), "{v}");
            assert_eq!(v.len(), 63);
        }
        assert_ne!(name_label_value(&a), name_label_value(&b));
        assert_eq!(
            pod_selector(&a),
            format!("sourcebuild.dev/name={}", name_label_value(&a))
        );
    }

    #[test]
    fn image_repository_strips_tag_and_digest_but_keeps_the_port() {
        assert_eq!(
            image_repository("registry.example.com:5000/team/app:1.0"),
            "registry.example.com:5000/team/app"
        );
        assert_eq!(image_repository("app"), "app");
        assert_eq!(image_repository("host:5000/app"), "host:5000/app");
        assert_eq!(
            image_repository(&format!("r.example.com/app:1@sha256:{}", "a".repeat(64))),
            "r.example.com/app"
        );
    }

    #[test]
    fn missing_metadata_is_named() {
        let base = source_build("app", git_spec());
        type Breaker = fn(&mut SourceBuild);
        let cases: [(Breaker, &str); 4] = [
            (|sb| sb.metadata.name = None, "metadata.name"),
            (|sb| sb.metadata.namespace = None, "metadata.namespace"),
            (|sb| sb.metadata.uid = None, "metadata.uid"),
            (|sb| sb.metadata.generation = None, "metadata.generation"),
        ];
        for (break_it, field) in cases {
            let mut sb = base.clone();
            break_it(&mut sb);
            let err = build_pod(&sb, &settings()).unwrap_err();
            assert!(err.to_string().contains(field), "{err} should name {field}");
        }
    }

    #[test]
    fn owner_reference_makes_the_source_build_the_controller() {
        let pod = build_pod(&source_build("app", git_spec()), &settings()).unwrap();
        let owners = pod.metadata.owner_references.unwrap();
        assert_eq!(owners.len(), 1);
        let owner = &owners[0];
        assert_eq!(owner.api_version, "sourcebuild.dev/v1alpha1");
        assert_eq!(owner.kind, "SourceBuild");
        assert_eq!(owner.name, "app");
        assert_eq!(owner.uid, "6d1e2f40-0000-4000-8000-000000000001");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(owner.block_owner_deletion, Some(true));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("team-a"));
        assert_eq!(pod.metadata.name.as_deref(), Some("app-build-3"));
    }

    #[test]
    fn labels_select_the_pods_of_one_source_build() {
        let name = format!("{}.svc", "n".repeat(80));
        let pod = build_pod(&source_build(&name, git_spec()), &settings()).unwrap();
        let labels = pod.metadata.labels.unwrap();
        assert_eq!(labels[LABEL_NAME], name_label_value(&name));
        assert!(is_label_value(&labels[LABEL_NAME]));
        assert_eq!(labels[LABEL_GENERATION], "3");
        assert_eq!(labels[LABEL_MANAGED_BY], "sourcebuild-operator");
        assert_eq!(
            MANAGED_BY_SELECTOR,
            format!("{LABEL_MANAGED_BY}={}", labels[LABEL_MANAGED_BY])
        );
        assert_eq!(pod.metadata.annotations.unwrap()[ANNOTATION_NAME], name);
        assert!(is_dns_label(pod.metadata.name.as_deref().unwrap()));
    }

    #[test]
    fn pod_spec_is_locked_down() {
        let pod = build_pod(&source_build("app", git_spec()), &settings()).unwrap();
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.automount_service_account_token, Some(false));
        assert_eq!(spec.service_account_name.as_deref(), Some("builder"));
        assert_eq!(spec.active_deadline_seconds, Some(1800));
        let seccomp = spec
            .security_context
            .as_ref()
            .unwrap()
            .seccomp_profile
            .as_ref();
        assert_eq!(seccomp.unwrap().type_, "RuntimeDefault");
        assert!(spec.host_network.is_none() && spec.host_pid.is_none());
    }

    #[test]
    fn prepare_meets_the_restricted_standard() {
        let pod = build_pod(&source_build("app", git_spec()), &settings()).unwrap();
        let sc = container(&pod, PREPARE_CONTAINER)
            .security_context
            .clone()
            .unwrap();
        assert_eq!(sc.run_as_non_root, Some(true));
        assert!(sc.run_as_user.unwrap() > 0);
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.privileged, Some(false));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        let caps = sc.capabilities.unwrap();
        assert_eq!(caps.drop, Some(vec!["ALL".to_string()]));
        assert!(caps.add.is_none_or(|a| a.is_empty()));
        let prepare = container(&pod, PREPARE_CONTAINER);
        let limits = prepare.resources.as_ref().unwrap().limits.as_ref().unwrap();
        assert!(limits.contains_key("memory"));
        assert_eq!(prepare.termination_message_policy.as_deref(), Some("File"));
    }

    #[test]
    fn build_meets_the_baseline_standard() {
        // The capabilities `baseline` allows a container to add.
        const BASELINE_CAPS: [&str; 13] = [
            "AUDIT_WRITE",
            "CHOWN",
            "DAC_OVERRIDE",
            "FOWNER",
            "FSETID",
            "KILL",
            "MKNOD",
            "NET_BIND_SERVICE",
            "SETFCAP",
            "SETGID",
            "SETPCAP",
            "SETUID",
            "SYS_CHROOT",
        ];
        let pod = build_pod(&source_build("app", git_spec()), &settings()).unwrap();
        let build = container(&pod, BUILD_CONTAINER);
        let sc = build.security_context.clone().unwrap();
        assert_eq!(sc.run_as_user, Some(0));
        assert_ne!(sc.privileged, Some(true));
        let caps = sc.capabilities.unwrap();
        assert_eq!(caps.drop, Some(vec!["ALL".to_string()]));
        let added = caps.add.unwrap();
        assert_eq!(
            added,
            ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID"]
        );
        assert!(added.iter().all(|c| BASELINE_CAPS.contains(&c.as_str())));
        assert_eq!(
            build.termination_message_policy.as_deref(),
            Some("FallbackToLogsOnError")
        );
        let spec = pod.spec.as_ref().unwrap();
        assert!(spec.volumes.iter().flatten().all(|v| v.host_path.is_none()));
    }

    #[test]
    fn no_shell_anywhere() {
        let mut spec = git_spec();
        spec.cache = Some(Box::new(Cache {
            enabled: true,
            repo: None,
        }));
        let pod = build_pod(&source_build("app", spec), &settings()).unwrap();
        let pod_spec = pod.spec.unwrap();
        for c in pod_spec
            .init_containers
            .iter()
            .flatten()
            .chain(&pod_spec.containers)
        {
            assert!(c.command.is_none(), "{} overrides the entrypoint", c.name);
            for arg in c.args.iter().flatten() {
                assert!(
                    !arg.contains(' '),
                    "{}: {arg:?} looks like a shell line",
                    c.name
                );
                let names_a_shell = ["sh", "bash", "-c"].contains(&arg.as_str())
                    || arg.ends_with("/sh")
                    || arg.ends_with("/bash");
                assert!(!names_a_shell, "{}: {arg:?} names a shell", c.name);
            }
        }
    }

    #[test]
    fn insecure_registries_reach_kaniko_and_prepare() {
        let mut settings = settings();
        settings.insecure_registries = vec!["127.0.0.1:5000".into()];
        let pod = build_pod(&source_build("app", git_spec()), &settings).unwrap();
        let build = container(&pod, BUILD_CONTAINER);
        assert!(
            build
                .args
                .as_deref()
                .unwrap()
                .contains(&"--insecure-registry=127.0.0.1:5000".to_string())
        );
        let request = prepare_request(&source_build("app", git_spec()), &settings);
        assert_eq!(request.insecure_registries, ["127.0.0.1:5000"]);
    }

    #[test]
    fn kaniko_args_name_the_workspace_destination_and_digest_file() {
        let pod = build_pod(&source_build("app", git_spec()), &settings()).unwrap();
        let build = container(&pod, BUILD_CONTAINER);
        assert_eq!(
            build.args.as_deref().unwrap(),
            [
                "--context=dir:///workspace",
                "--dockerfile=/workspace/Dockerfile",
                "--destination=registry.example.com:5000/team/app:1.0",
                "--digest-file=/dev/termination-log",
                "--snapshot-mode=redo",
            ]
        );
        let mounts = build.volume_mounts.as_ref().unwrap();
        let docker = mounts
            .iter()
            .find(|m| m.mount_path == "/kaniko/.docker")
            .unwrap();
        assert_eq!(docker.read_only, Some(true));
        let volume = pod
            .spec
            .as_ref()
            .unwrap()
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == docker.name)
            .unwrap();
        let secret = volume.secret.as_ref().unwrap();
        assert_eq!(secret.secret_name.as_deref(), Some("push-creds"));
        let items = secret.items.as_ref().unwrap();
        assert_eq!(
            (items[0].key.as_str(), items[0].path.as_str()),
            (".dockerconfigjson", "config.json")
        );
        // The same Secret, read-only, lets prepare read the builder image's config.
        let prepare = container(&pod, PREPARE_CONTAINER);
        let registry = prepare
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.mount_path == REGISTRY_AUTH_DIR)
            .expect("prepare mounts the push Secret");
        assert_eq!(registry.name, docker.name);
        assert_eq!(registry.read_only, Some(true));
    }

    #[test]
    fn cache_repo_defaults_to_the_output_repository() {
        let mut spec = git_spec();
        spec.cache = Some(Box::new(Cache {
            enabled: true,
            repo: None,
        }));
        let pod = build_pod(&source_build("app", spec.clone()), &settings()).unwrap();
        let args = container(&pod, BUILD_CONTAINER).args.clone().unwrap();
        assert!(args.contains(&"--cache=true".to_string()));
        assert!(
            args.contains(&"--cache-repo=registry.example.com:5000/team/app/cache".to_string())
        );

        spec.cache = Some(Box::new(Cache {
            enabled: false,
            repo: Some("registry.example.com/c".to_string()),
        }));
        let pod = build_pod(&source_build("app", spec), &settings()).unwrap();
        let args = container(&pod, BUILD_CONTAINER).args.clone().unwrap();
        assert!(!args.iter().any(|a| a.starts_with("--cache")), "{args:?}");
    }

    #[test]
    fn prepare_gets_the_request_and_the_source_mounts() {
        let pod = build_pod(&source_build("app", git_spec()), &settings()).unwrap();
        let prepare = container(&pod, PREPARE_CONTAINER);
        assert_eq!(prepare.args.as_deref().unwrap(), ["prepare"]);
        let env = prepare.env.as_ref().unwrap();
        assert_eq!(env[0].name, REQUEST_ENV);
        let request: PrepareRequest =
            serde_json::from_str(env[0].value.as_deref().unwrap()).unwrap();
        assert_eq!(request.builder_image, settings().default_builder_image);
        assert_eq!(
            request.output_image,
            "registry.example.com:5000/team/app:1.0"
        );
        assert_eq!(request.source, git_spec().source);
        let mounts = prepare.volume_mounts.as_ref().unwrap();
        let paths: Vec<_> = mounts.iter().map(|m| m.mount_path.as_str()).collect();
        assert_eq!(
            paths,
            [
                WORKSPACE_DIR,
                SCRATCH_DIR,
                GIT_SECRET_DIR,
                REGISTRY_AUTH_DIR
            ]
        );
        assert_eq!(mounts[2].read_only, Some(true));

        let mut spec = git_spec();
        spec.builder.image = Some("registry.example.com/s2i/python:3.12".to_string());
        spec.source = Source {
            config_map: Some(Box::new(ConfigMapSource {
                name: "app-src".to_string(),
                items: vec![SpecKeyToPath {
                    key: "assemble".to_string(),
                    path: ".s2i/bin/assemble".to_string(),
                }],
            })),
            ..Source::default()
        };
        let pod = build_pod(&source_build("app", spec), &settings()).unwrap();
        let prepare = container(&pod, PREPARE_CONTAINER);
        let request: PrepareRequest =
            serde_json::from_str(prepare.env.as_ref().unwrap()[0].value.as_deref().unwrap())
                .unwrap();
        assert_eq!(
            request.builder_image,
            "registry.example.com/s2i/python:3.12"
        );
        let mounts = prepare.volume_mounts.as_ref().unwrap();
        let cm_mount = mounts
            .iter()
            .find(|m| m.mount_path == CONFIGMAP_DIR)
            .unwrap();
        assert_eq!(cm_mount.read_only, Some(true));
        assert!(!mounts.iter().any(|m| m.mount_path == GIT_SECRET_DIR));
        let volume = pod
            .spec
            .as_ref()
            .unwrap()
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == cm_mount.name)
            .unwrap();
        let cm = volume.config_map.as_ref().unwrap();
        assert_eq!(cm.name, "app-src");
        assert_eq!(cm.items.as_ref().unwrap()[0].path, ".s2i/bin/assemble");
    }

    #[test]
    fn archive_source_mounts_neither_secret_nor_config_map() {
        let mut spec = git_spec();
        spec.source = Source {
            archive: Some(Box::new(ArchiveSource {
                url: "https://files.example.com/app.tgz".to_string(),
                sha256: None,
            })),
            ..Source::default()
        };
        spec.output.push_secret_ref = None;
        let pod = build_pod(&source_build("app", spec), &settings()).unwrap();
        let volumes: Vec<_> = pod
            .spec
            .unwrap()
            .volumes
            .unwrap()
            .into_iter()
            .map(|v| v.name)
            .collect();
        assert_eq!(volumes, [WORKSPACE_VOLUME, SCRATCH_VOLUME]);
    }

    #[test]
    fn deadline_follows_the_spec_timeout_rounding_up() {
        let mut spec = git_spec();
        spec.timeout = Some("90m500ms".parse().unwrap());
        let pod = build_pod(&source_build("app", spec), &settings()).unwrap();
        assert_eq!(pod.spec.unwrap().active_deadline_seconds, Some(5401));
    }
}
