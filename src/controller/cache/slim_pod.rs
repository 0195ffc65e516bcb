//! Build Pods as the controller caches them.
//!
//! With thousands of builds, cached Pods are most of the operator's memory. k8s-openapi's `Pod`
//! is wide before it holds anything, and deserializing one allocates everything the API server
//! sends (managedFields, the spec we wrote, the kubelet's status) only for most of it to be
//! dropped (sizes in `docs/performance.md`).
//! [`SlimPod`] is a v1 Pod that keeps, straight from the watch's JSON, only what the controller
//! reads (plan, outcome, retention, the indexes); everything else is skipped while parsing.
//! The cache keeps [`SlimPod::to_pod`] of each, packed ([`PackedPod`]), so the pure code
//! keeps k8s-openapi's types.
//!
//! What is kept: metadata name, namespace, uid, resourceVersion, creation and deletion
//! timestamps, and the controller owner reference (labels, annotations and managedFields are
//! not read); of the spec, the active deadline and per container its name, image, memory limit
//! (an OOM message names it) and Kaniko's `--destination=` argument; of the status, phase,
//! reason, message, the conditions outcome reads (`PodScheduled` when false, `DisruptionTarget`)
//! and per container its name, readiness, restart count and state without the container ID.

use std::borrow::Cow;
use std::sync::LazyLock;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStatus, Pod, PodCondition, PodSpec, PodStatus,
    ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use serde::{Deserialize, Deserializer};

use crate::controller::cache::pack::{self, PackError};

/// The Kaniko argument outcome reads: where the image is pushed.
const DESTINATION_ARG: &str = "--destination=";

/// A build Pod, narrowed to what the controller reads (see the module's comment).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct SlimPod {
    #[serde(default, deserialize_with = "narrow_metadata")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<Spec>,
    #[serde(default)]
    status: Option<Status>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    active_deadline_seconds: Option<i64>,
    #[serde(default, deserialize_with = "null_as_empty")]
    init_containers: Vec<ContainerSpec>,
    #[serde(default, deserialize_with = "null_as_empty")]
    containers: Vec<ContainerSpec>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct ContainerSpec {
    name: String,
    #[serde(default)]
    image: Option<String>,
    #[serde(default, rename = "args", deserialize_with = "destination_arg")]
    destination: Option<String>,
    #[serde(default, rename = "resources", deserialize_with = "memory_limit")]
    memory_limit: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct Status {
    #[serde(default)]
    phase: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default, deserialize_with = "read_conditions")]
    conditions: Vec<PodCondition>,
    #[serde(default, deserialize_with = "null_as_empty")]
    init_container_statuses: Vec<ContainerStatusView>,
    #[serde(default, deserialize_with = "null_as_empty")]
    container_statuses: Vec<ContainerStatusView>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct ContainerStatusView {
    name: String,
    #[serde(default)]
    ready: bool,
    #[serde(default)]
    restart_count: i32,
    #[serde(default, deserialize_with = "state_without_container_id")]
    state: Option<ContainerState>,
}

/// The metadata fields the controller reads; the rest of the JSON is skipped unparsed.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetadataView {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    resource_version: Option<String>,
    #[serde(default)]
    creation_timestamp: Option<Time>,
    #[serde(default)]
    deletion_timestamp: Option<Time>,
    #[serde(default, deserialize_with = "null_as_empty")]
    owner_references: Vec<OwnerReference>,
}

fn narrow_metadata<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let view = MetadataView::deserialize(d)?;
    // Only the controller reference links a build Pod to its SourceBuild.
    let owners: Vec<OwnerReference> = view
        .owner_references
        .into_iter()
        .filter(|o| o.controller == Some(true))
        .collect();
    Ok(ObjectMeta {
        name: view.name,
        namespace: view.namespace,
        uid: view.uid,
        resource_version: view.resource_version,
        creation_timestamp: view.creation_timestamp,
        deletion_timestamp: view.deletion_timestamp,
        owner_references: non_empty(owners),
        ..ObjectMeta::default()
    })
}

/// Kubernetes' lists are absent, not empty.
fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

fn destination_arg<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let args: Vec<String> = null_as_empty(d)?;
    Ok(args
        .into_iter()
        .find_map(|a| a.strip_prefix(DESTINATION_ARG).map(str::to_string)))
}

fn memory_limit<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    struct Resources {
        #[serde(default)]
        limits: Option<Limits>,
    }
    #[derive(Deserialize)]
    struct Limits {
        #[serde(default)]
        memory: Option<Quantity>,
    }
    Ok(Option::<Resources>::deserialize(d)?
        .and_then(|r| r.limits)
        .and_then(|l| l.memory)
        .map(|q| q.0))
}

/// Keeps the conditions outcome reads: why a Pod cannot be scheduled, and why it was disrupted.
fn read_conditions<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PodCondition>, D::Error> {
    let all: Vec<PodCondition> = null_as_empty(d)?;
    Ok(all
        .into_iter()
        .filter(|c| {
            (c.type_ == "PodScheduled" && c.status == "False") || c.type_ == "DisruptionTarget"
        })
        .map(|c| PodCondition {
            last_probe_time: None,
            last_transition_time: None,
            ..c
        })
        .collect())
}

fn state_without_container_id<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<ContainerState>, D::Error> {
    let mut state = Option::<ContainerState>::deserialize(d)?;
    if let Some(terminated) = state.as_mut().and_then(|s| s.terminated.as_mut()) {
        terminated.container_id = None;
    }
    Ok(state)
}

impl SlimPod {
    /// The Pod as the controller sees it: the kept fields, in k8s-openapi's types (Kaniko's
    /// args hold only `--destination=`).
    pub fn to_pod(&self) -> Pod {
        let container = |c: &ContainerSpec| Container {
            name: c.name.clone(),
            image: c.image.clone(),
            args: c
                .destination
                .as_ref()
                .map(|d| vec![format!("{DESTINATION_ARG}{d}")]),
            resources: c.memory_limit.as_ref().map(|m| ResourceRequirements {
                limits: Some([("memory".to_string(), Quantity(m.clone()))].into()),
                ..ResourceRequirements::default()
            }),
            ..Container::default()
        };
        let container_status = |c: &ContainerStatusView| ContainerStatus {
            name: c.name.clone(),
            ready: c.ready,
            restart_count: c.restart_count,
            state: c.state.clone(),
            ..ContainerStatus::default()
        };
        Pod {
            metadata: self.metadata.clone(),
            spec: self.spec.as_ref().map(|s| PodSpec {
                active_deadline_seconds: s.active_deadline_seconds,
                init_containers: non_empty(s.init_containers.iter().map(container).collect()),
                containers: s.containers.iter().map(container).collect(),
                ..PodSpec::default()
            }),
            status: self.status.as_ref().map(|s| PodStatus {
                phase: s.phase.clone(),
                reason: s.reason.clone(),
                message: s.message.clone(),
                conditions: non_empty(s.conditions.clone()),
                init_container_statuses: non_empty(
                    s.init_container_statuses
                        .iter()
                        .map(container_status)
                        .collect(),
                ),
                container_statuses: non_empty(
                    s.container_statuses.iter().map(container_status).collect(),
                ),
                ..PodStatus::default()
            }),
        }
    }

    /// What the cache keeps of the Pod: [`SlimPod::to_pod`], packed.
    pub fn to_cached(&self) -> Result<PackedPod, PackError> {
        let meta = &self.metadata;
        Ok(PackedPod {
            uid: meta.uid.as_deref().map(Box::from),
            owner_uid: meta
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))
                .map(|o| Box::from(o.uid.as_str())),
            packed: pack::pack(&self.to_pod(), &DICTIONARY)?,
        })
    }

    /// A Pod narrowed as the watch would have, for Pods that do not come from it (tests).
    pub fn from_pod(pod: &Pod) -> Self {
        serde_json::to_value(pod)
            .and_then(serde_json::from_value)
            .expect("a serialized Pod is a SlimPod")
    }
}

/// A build Pod as [`PodCache`](crate::controller::cache::pod_cache::PodCache) holds it: what
/// [`SlimPod::to_pod`] reads, [packed](crate::controller::cache::pack) against a typical build Pod's
/// (as `SlimPod`s of k8s-openapi's and our narrow types they were 1.8 KiB each, most of it
/// empty options and strings every Pod has), beside the two keys the cache indexes it by.
#[derive(Clone, Debug, PartialEq)]
pub struct PackedPod {
    uid: Option<Box<str>>,
    owner_uid: Option<Box<str>>,
    packed: Box<[u8]>,
}

impl PackedPod {
    /// The Pod, as [`SlimPod::to_pod`] read it.
    pub fn to_pod(&self) -> Result<Pod, PackError> {
        pack::unpack(&self.packed, &DICTIONARY)
    }

    /// The Pod's uid.
    pub fn uid(&self) -> Option<&str> {
        self.uid.as_deref()
    }

    /// The uid of the SourceBuild that owns the Pod (its controller reference).
    pub fn owner_uid(&self) -> Option<&str> {
        self.owner_uid.as_deref()
    }
}

/// What cached Pods are packed against: a finished build Pod as the watch shows it, narrowed.
static DICTIONARY: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let typical: SlimPod = serde_json::from_value(typical())
        .expect("the typical build Pod is a SlimPod (a test checks it)");
    pack::dictionary(&typical.to_pod())
});

/// A build Pod after a successful build; values where most Pods have the same (or the same
/// start of) one.
fn typical() -> serde_json::Value {
    let at = "2026-01-01T00:00:00Z";
    let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let report = format!(
        "{{\"prepared\":{{\"revision\":\"0123456789abcdef0123456789abcdef01234567\",\
         \"dockerfileSha256\":\"{digest}\",\"builderImage\":\"registry.example.com/s2i/python@{digest}\"}}}}"
    );
    let terminated = |name: &str, message: &str| {
        serde_json::json!({"name": name, "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed", "message": message,
                "startedAt": at, "finishedAt": at}}})
    };
    serde_json::json!({
        "metadata": {"name": "app-build-1", "namespace": "default",
            "uid": "01234567-89ab-cdef-0123-456789abcdef", "resourceVersion": "123456",
            "creationTimestamp": at,
            "ownerReferences": [{"apiVersion": "sourcebuild.dev/v1alpha1", "kind": "SourceBuild",
                "name": "app", "uid": "01234567-89ab-cdef-0123-456789abcdef",
                "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"activeDeadlineSeconds": 3600,
            "initContainers": [{"name": "prepare", "image": "registry.example.com/sourcebuild/operator:latest",
                "resources": {"limits": {"memory": "512Mi"}}}],
            "containers": [{"name": "build", "image": "registry.example.com/kaniko/executor:latest",
                "args": ["--destination=registry.example.com/example/app:latest"],
                "resources": {"limits": {"memory": "2Gi"}}}]},
        "status": {"phase": "Succeeded",
            "initContainerStatuses": [terminated("prepare", &report)],
            "containerStatuses": [terminated("build", digest)]}
    })
}

impl kube::Resource for SlimPod {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Pod".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "pods".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{GitSource, Output, Source, SourceBuild, SourceBuildSpec};
    use crate::contract::{PrepareReport, PrepareResult, PublishReport, PublishResult};
    use crate::outcome::BuildOutcome;
    use crate::pod::{BuildSettings, build_pod};
    use serde_json::{Value, json};

    /// A build Pod as the API server sends it, with what the kubelet and the API server add
    /// beside the fields the controller reads.
    fn as_listed(status: Value) -> Value {
        let mut sb = SourceBuild::new(
            "app",
            SourceBuildSpec {
                source: Source {
                    git: Some(GitSource {
                        url: "https://example.com/acme/app.git".into(),
                        ..GitSource::default()
                    }),
                    ..Source::default()
                },
                output: Output {
                    image: "registry.example.com/team/app:1.0".into(),
                    ..Output::default()
                },
                ..SourceBuildSpec::default()
            },
        );
        sb.metadata.namespace = Some("team".into());
        sb.metadata.uid = Some("6d1e2f40-0000-4000-8000-000000000001".into());
        sb.metadata.generation = Some(1);
        let settings = BuildSettings {
            default_builder_image: "registry.example.com/s2i/python:3.12".into(),
            kaniko_image: "registry.example.com/kaniko/executor:v1.24.0".into(),
            prepare_image: "registry.example.com/sourcebuild/operator:0.1.0".into(),
            insecure_registries: vec![],
            user_namespaces: false,
            signing_key_secret: None,
            builder_id: "https://sourcebuild.dev/tests".to_string(),
        };
        let mut pod = serde_json::to_value(build_pod(&sb, &settings, 1).unwrap()).unwrap();
        let meta = &mut pod["metadata"];
        meta["uid"] = json!("0f1e2d3c-0000-4000-8000-000000000002");
        meta["resourceVersion"] = json!("4711");
        meta["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        meta["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = json!("{}");
        meta["managedFields"] = json!([{"manager": "sourcebuild-operator", "operation": "Update",
            "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]);
        meta["ownerReferences"]
            .as_array_mut()
            .unwrap()
            .push(json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "other", "uid": "u2"}));
        pod["status"] = status;
        pod
    }

    fn with_kubelet_fields(mut status: Value) -> Value {
        status["hostIP"] = json!("10.0.0.7");
        status["podIP"] = json!("10.244.1.9");
        status["qosClass"] = json!("Burstable");
        let mut conditions = vec![
            json!({"type": "Initialized", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}),
            json!({"type": "Ready", "status": "False", "reason": "PodCompleted"}),
        ];
        conditions.extend(status["conditions"].as_array().cloned().unwrap_or_default());
        status["conditions"] = json!(conditions);
        for list in ["initContainerStatuses", "containerStatuses"] {
            for c in status[list].as_array_mut().into_iter().flatten() {
                c["image"] = json!("registry.example.com/kaniko/executor:v1.24.0");
                c["imageID"] = json!(format!(
                    "registry.example.com/kaniko/executor@sha256:{}",
                    "e".repeat(64)
                ));
                c["containerID"] = json!("containerd://0123456789abcdef");
                c["volumeMounts"] = json!([{"name": "workspace", "mountPath": "/workspace"}]);
                if let Some(terminated) = c["state"].get_mut("terminated") {
                    terminated["containerID"] = json!("containerd://0123456789abcdef");
                }
            }
        }
        status
    }

    fn statuses() -> Vec<Value> {
        let digest = format!("sha256:{}", "5f".repeat(32));
        let report = serde_json::to_string(&PrepareReport::Prepared(PrepareResult {
            revision: Some("a".repeat(40)),
            origin: None,
            dockerfile_sha256: format!("sha256:{}", "d".repeat(64)),
            builder_image: format!("registry.example.com/s2i/python@sha256:{}", "b".repeat(64)),
            started: None,
        }))
        .unwrap();
        let prepared = json!({"name": "prepare", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed", "message": report,
                "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:05Z"}}});
        let built = json!({"name": "build", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "message": digest,
                "finishedAt": "2026-01-01T00:01:00Z"}}});
        let published = serde_json::to_string(&PublishReport::Published(PublishResult {
            subject: digest.clone(),
            attestation: format!("sha256:{}", "e".repeat(64)),
            signature: None,
            referrers: Some("ReferrersAPI".into()),
        }))
        .unwrap();
        vec![
            json!({"phase": "Succeeded", "initContainerStatuses": [prepared, built],
                "containerStatuses": [{"name": "publish", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "message": published,
                    "finishedAt": "2026-01-01T00:01:02Z"}}}]}),
            json!({"phase": "Failed", "initContainerStatuses": [prepared,
                {"name": "build", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}),
            json!({"phase": "Pending", "initContainerStatuses": [prepared,
                {"name": "build", "ready": false, "restartCount": 0,
                "state": {"running": {"startedAt": "2026-01-01T00:00:06Z"}}}]}),
            json!({"phase": "Failed", "reason": "DeadlineExceeded", "message": "Pod was active too long"}),
            json!({"phase": "Failed", "conditions": [{"type": "DisruptionTarget", "status": "True",
                "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting"}]}),
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                "reason": "Unschedulable", "message": "0/3 nodes are available"}]}),
            json!({"phase": "Pending", "initContainerStatuses": [{"name": "prepare", "ready": false,
                "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff",
                "message": "pull access denied"}}}]}),
        ]
    }

    #[test]
    fn a_listed_pod_reads_the_same_through_the_cache() {
        let mut outcomes = Vec::new();
        for status in statuses() {
            let listed = as_listed(with_kubelet_fields(status.clone()));
            let full: Pod = serde_json::from_value(listed.clone()).unwrap();
            let cached: SlimPod = serde_json::from_value(listed).unwrap();
            let seen = BuildOutcome::from_pod(&cached.to_pod());
            assert_eq!(seen, BuildOutcome::from_pod(&full), "{status}");
            // What the Pod cache holds reads back as the very same Pod.
            let held = cached.to_cached().unwrap();
            assert_eq!(held.to_pod().unwrap(), cached.to_pod(), "{status}");
            outcomes.push(seen);
        }
        // The cases are not all alike: each is a different outcome.
        assert!(matches!(outcomes[0], BuildOutcome::Succeeded(_)));
        assert!(matches!(outcomes[2], BuildOutcome::Running));
        for (i, a) in outcomes.iter().enumerate() {
            for b in &outcomes[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn only_what_the_controller_reads_is_kept() {
        let status = with_kubelet_fields(statuses().remove(0));
        let cached: SlimPod = serde_json::from_value(as_listed(status)).unwrap();
        let meta = &cached.metadata;
        assert_eq!(meta.name.as_deref(), Some("app-build-1"));
        assert_eq!(meta.namespace.as_deref(), Some("team"));
        assert_eq!(meta.resource_version.as_deref(), Some("4711"));
        assert!(meta.uid.is_some() && meta.creation_timestamp.is_some());
        assert_eq!((&meta.labels, &meta.annotations), (&None, &None));
        assert_eq!(meta.managed_fields, None);
        let owners = meta.owner_references.as_deref().unwrap();
        assert_eq!(owners.len(), 1, "only the controller reference: {owners:?}");
        assert_eq!(
            (owners[0].kind.as_str(), owners[0].name.as_str()),
            ("SourceBuild", "app")
        );

        let pod = cached.to_pod();
        let spec = pod.spec.unwrap();
        assert_eq!(spec.volumes, None);
        let build = spec
            .init_containers
            .iter()
            .flatten()
            .find(|c| c.name == "build")
            .unwrap();
        assert_eq!(
            build.args.as_deref(),
            Some(&["--destination=registry.example.com/team/app:1.0".to_string()][..])
        );
        assert_eq!(
            (&build.env, &build.volume_mounts, &build.security_context),
            (&None, &None, &None)
        );
        let status = pod.status.unwrap();
        assert_eq!((status.host_ip, status.qos_class), (None, None));
        assert_eq!(status.conditions, None, "no condition outcome reads");
        for c in status
            .init_container_statuses
            .into_iter()
            .chain(status.container_statuses)
            .flatten()
        {
            assert_eq!(
                (c.container_id, c.image_id, c.volume_mounts),
                (None, String::new(), None)
            );
            let terminated = c.state.unwrap().terminated.unwrap();
            assert_eq!(terminated.container_id, None);
            assert!(terminated.message.is_some());
        }
    }

    #[test]
    fn a_cached_pod_is_a_fraction_of_its_json() {
        let typical: SlimPod = serde_json::from_value(typical()).unwrap();
        assert_eq!(typical.to_pod().spec.unwrap().containers[0].name, "build");
        for status in statuses() {
            let listed: SlimPod =
                serde_json::from_value(as_listed(with_kubelet_fields(status.clone()))).unwrap();
            let json = serde_json::to_vec(&listed.to_pod()).unwrap();
            let held = listed.to_cached().unwrap();
            assert!(
                held.packed.len() * 2 < json.len(),
                "{} of {} bytes: {status}",
                held.packed.len(),
                json.len()
            );
            assert_eq!(held.uid(), Some("0f1e2d3c-0000-4000-8000-000000000002"));
            assert_eq!(
                held.owner_uid(),
                Some("6d1e2f40-0000-4000-8000-000000000001")
            );
        }
    }

    #[test]
    fn the_api_path_is_the_pods_one() {
        use kube::Resource;
        for namespace in [Some("team"), None] {
            assert_eq!(
                SlimPod::url_path(&(), namespace),
                Pod::url_path(&(), namespace)
            );
        }
        assert_eq!(SlimPod::api_version(&()), "v1");
        assert_eq!(SlimPod::kind(&()), "Pod");
    }

    #[test]
    fn null_and_missing_lists_read_as_empty() {
        let cached: SlimPod = serde_json::from_value(json!({
            "metadata": {"name": "p", "ownerReferences": null, "labels": null},
            "spec": {"containers": null, "initContainers": [{"name": "prepare", "args": null,
                "resources": {"limits": null}}]},
            "status": {"conditions": null, "containerStatuses": null}
        }))
        .unwrap();
        let pod = cached.to_pod();
        assert_eq!(pod.metadata.owner_references, None);
        assert_eq!(
            pod.spec.as_ref().unwrap().init_containers.as_ref().unwrap()[0].args,
            None
        );
        assert_eq!(SlimPod::from_pod(&pod), cached);
        let empty: SlimPod = serde_json::from_value(json!({"metadata": {"name": "p"}})).unwrap();
        assert_eq!((empty.to_pod().spec, empty.to_pod().status), (None, None));
    }
}
