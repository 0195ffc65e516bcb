//! Build Pods as the controller caches them.
//!
//! With thousands of builds, cached Pods are most of the operator's memory. k8s-openapi's `Pod`
//! is wide before it holds anything (size_of: Pod 2,248 B, PodSpec 1,440 B, Container 2,144 B,
//! ContainerStatus 752 B), and deserializing one allocates everything the API server sends
//! (managedFields, the spec we wrote, the kubelet's status) only for most of it to be dropped.
//! [`BuildPod`] is a v1 Pod that keeps, straight from the watch's JSON, only what the controller
//! reads (plan, outcome, retention, the indexes); everything else is skipped while parsing.
//! The reconciler turns the Pods of the one SourceBuild it works on back into `Pod`s with
//! [`BuildPod::to_pod`], so the pure code keeps k8s-openapi's types.
//!
//! What is kept: metadata name, namespace, uid, resourceVersion, creation and deletion
//! timestamps, and the controller owner reference (labels, annotations and managedFields are
//! not read); of the spec, the active deadline and per container its name, image, memory limit
//! (an OOM message names it) and Kaniko's `--destination=` argument; of the status, phase,
//! reason, message, the conditions outcome reads (`PodScheduled` when false, `DisruptionTarget`)
//! and per container its name, readiness, restart count and state without the container ID.

use std::borrow::Cow;
use std::sync::Arc;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod, PodCondition, PodSpec, PodStatus,
    ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use serde::{Deserialize, Deserializer};

/// The Kaniko argument outcome reads: where the image is pushed.
const DESTINATION_ARG: &str = "--destination=";

/// A build Pod, narrowed to what the controller reads (see the module's comment).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct BuildPod {
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

impl BuildPod {
    /// The Pod as the controller sees it: the kept fields, in k8s-openapi's types (Kaniko's
    /// args hold only `--destination=`).
    pub fn to_pod(&self) -> Pod {
        pod_of(self.metadata.clone(), &self.spec, &self.status)
    }

    /// What the cache keeps of the Pod (all but its name and namespace, the cache's keys),
    /// the strings many Pods share (images, container names, phases) taken from `strings`.
    pub fn to_cached(&self, strings: &mut Interner) -> CachedPod {
        let meta = &self.metadata;
        let owner = meta
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true));
        let container = |c: &ContainerSpec, strings: &mut Interner| CachedContainer {
            name: strings.get(&c.name),
            image: c.image.as_deref().map(|i| strings.get(i)),
            destination: c.destination.as_deref().map(Box::from),
            memory_limit: c.memory_limit.as_deref().map(|m| strings.get(m)),
        };
        let container_status =
            |c: &ContainerStatusView, strings: &mut Interner| CachedContainerStatus {
                name: strings.get(&c.name),
                ready: c.ready,
                restart_count: c.restart_count,
                state: c.state.as_ref().map(|s| CachedState::of(s, strings)),
            };
        CachedPod {
            uid: meta.uid.as_deref().map(Box::from),
            resource_version: meta.resource_version.as_deref().map(Box::from),
            created: meta.creation_timestamp.clone(),
            deleted: meta.deletion_timestamp.clone(),
            owner: owner.map(|o| {
                Box::new(CachedOwner {
                    api_version: strings.get(&o.api_version),
                    kind: strings.get(&o.kind),
                    name: o.name.as_str().into(),
                    uid: o.uid.as_str().into(),
                    block_owner_deletion: o.block_owner_deletion,
                })
            }),
            spec: self.spec.as_ref().map(|s| {
                Box::new(CachedSpec {
                    active_deadline_seconds: s.active_deadline_seconds,
                    init_containers: s
                        .init_containers
                        .iter()
                        .map(|c| container(c, strings))
                        .collect(),
                    containers: s.containers.iter().map(|c| container(c, strings)).collect(),
                })
            }),
            status: self.status.as_ref().map(|s| {
                Box::new(CachedStatus {
                    phase: s.phase.as_deref().map(|p| strings.get(p)),
                    reason: s.reason.as_deref().map(|r| strings.get(r)),
                    message: s.message.as_deref().map(Box::from),
                    conditions: s.conditions.clone().into_boxed_slice(),
                    init_container_statuses: s
                        .init_container_statuses
                        .iter()
                        .map(|c| container_status(c, strings))
                        .collect(),
                    container_statuses: s
                        .container_statuses
                        .iter()
                        .map(|c| container_status(c, strings))
                        .collect(),
                })
            }),
        }
    }

    /// A Pod narrowed as the watch would have, for Pods that do not come from it (tests).
    pub fn from_pod(pod: &Pod) -> Self {
        serde_json::to_value(pod)
            .and_then(serde_json::from_value)
            .expect("a serialized Pod is a BuildPod")
    }
}

/// Strings many cached Pods share (images, container names, phases, the owner's kind), held
/// once: as `String`s they were a quarter of a cached Pod.
#[derive(Default)]
pub struct Interner {
    strings: std::collections::HashSet<Arc<str>>,
}

impl Interner {
    /// The shared copy of `s`.
    pub fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(shared) = self.strings.get(s) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(s);
        self.strings.insert(shared.clone());
        shared
    }

    /// Forgets the strings no cached Pod holds any more.
    pub fn forget_unused(&mut self) {
        self.strings.retain(|s| Arc::strong_count(s) > 1);
        self.strings.shrink_to_fit();
    }

    /// How many strings are held.
    pub fn len(&self) -> usize {
        self.strings.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }
}

/// A build Pod as [`PodCache`](crate::controller::pod_cache::PodCache) holds it: what a
/// [`BuildPod`] holds but its name and namespace (the cache's keys), without `ObjectMeta`
/// (360 bytes before a single field is set) or k8s-openapi's wide types (a `ContainerState`
/// is 208 bytes), shared strings shared.
#[derive(Clone, Debug, PartialEq)]
pub struct CachedPod {
    uid: Option<Box<str>>,
    resource_version: Option<Box<str>>,
    created: Option<Time>,
    deleted: Option<Time>,
    owner: Option<Box<CachedOwner>>,
    spec: Option<Box<CachedSpec>>,
    status: Option<Box<CachedStatus>>,
}

#[derive(Clone, Debug, PartialEq)]
struct CachedOwner {
    api_version: Arc<str>,
    kind: Arc<str>,
    name: Box<str>,
    uid: Box<str>,
    block_owner_deletion: Option<bool>,
}

#[derive(Clone, Debug, PartialEq)]
struct CachedSpec {
    active_deadline_seconds: Option<i64>,
    init_containers: Box<[CachedContainer]>,
    containers: Box<[CachedContainer]>,
}

#[derive(Clone, Debug, PartialEq)]
struct CachedContainer {
    name: Arc<str>,
    image: Option<Arc<str>>,
    destination: Option<Box<str>>,
    memory_limit: Option<Arc<str>>,
}

#[derive(Clone, Debug, PartialEq)]
struct CachedStatus {
    phase: Option<Arc<str>>,
    reason: Option<Arc<str>>,
    message: Option<Box<str>>,
    conditions: Box<[PodCondition]>,
    init_container_statuses: Box<[CachedContainerStatus]>,
    container_statuses: Box<[CachedContainerStatus]>,
}

#[derive(Clone, Debug, PartialEq)]
struct CachedContainerStatus {
    name: Arc<str>,
    ready: bool,
    restart_count: i32,
    state: Option<CachedState>,
}

/// A `ContainerState` of what outcome reads; a state with no part set stays one.
#[derive(Clone, Debug, PartialEq)]
enum CachedState {
    Waiting {
        reason: Option<Arc<str>>,
        message: Option<Box<str>>,
    },
    Running {
        started_at: Option<Time>,
    },
    Terminated(Box<CachedTerminated>),
    Unknown,
}

#[derive(Clone, Debug, PartialEq)]
struct CachedTerminated {
    exit_code: i32,
    signal: Option<i32>,
    reason: Option<Arc<str>>,
    message: Option<Box<str>>,
    started_at: Option<Time>,
    finished_at: Option<Time>,
}

impl CachedState {
    /// Which part of `state` is set: the kubelet sets one (terminated before running before
    /// waiting, as outcome reads them, should it ever send more).
    fn of(state: &ContainerState, strings: &mut Interner) -> Self {
        if let Some(t) = &state.terminated {
            return CachedState::Terminated(Box::new(CachedTerminated {
                exit_code: t.exit_code,
                signal: t.signal,
                reason: t.reason.as_deref().map(|r| strings.get(r)),
                message: t.message.as_deref().map(Box::from),
                started_at: t.started_at.clone(),
                finished_at: t.finished_at.clone(),
            }));
        }
        if let Some(r) = &state.running {
            return CachedState::Running {
                started_at: r.started_at.clone(),
            };
        }
        if let Some(w) = &state.waiting {
            return CachedState::Waiting {
                reason: w.reason.as_deref().map(|r| strings.get(r)),
                message: w.message.as_deref().map(Box::from),
            };
        }
        CachedState::Unknown
    }

    fn to_state(&self) -> ContainerState {
        match self {
            CachedState::Waiting { reason, message } => ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: reason.as_deref().map(str::to_string),
                    message: message.as_deref().map(str::to_string),
                }),
                ..ContainerState::default()
            },
            CachedState::Running { started_at } => ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: started_at.clone(),
                }),
                ..ContainerState::default()
            },
            CachedState::Terminated(t) => ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: t.exit_code,
                    signal: t.signal,
                    reason: t.reason.as_deref().map(str::to_string),
                    message: t.message.as_deref().map(str::to_string),
                    started_at: t.started_at.clone(),
                    finished_at: t.finished_at.clone(),
                    container_id: None,
                }),
                ..ContainerState::default()
            },
            CachedState::Unknown => ContainerState::default(),
        }
    }
}

fn text(s: &Option<impl AsRef<str>>) -> Option<String> {
    s.as_ref().map(|s| s.as_ref().to_string())
}

impl CachedPod {
    /// The Pod named `name` in `namespace`, as [`BuildPod::to_pod`] reads it.
    pub fn to_pod(&self, namespace: &str, name: &str) -> Pod {
        let metadata = ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            uid: text(&self.uid),
            resource_version: text(&self.resource_version),
            creation_timestamp: self.created.clone(),
            deletion_timestamp: self.deleted.clone(),
            owner_references: self.owner().map(|o| vec![o]),
            ..ObjectMeta::default()
        };
        let container = |c: &CachedContainer| ContainerSpec {
            name: c.name.to_string(),
            image: text(&c.image),
            destination: text(&c.destination),
            memory_limit: text(&c.memory_limit),
        };
        let container_status = |c: &CachedContainerStatus| ContainerStatusView {
            name: c.name.to_string(),
            ready: c.ready,
            restart_count: c.restart_count,
            state: c.state.as_ref().map(CachedState::to_state),
        };
        let spec = self.spec.as_deref().map(|s| Spec {
            active_deadline_seconds: s.active_deadline_seconds,
            init_containers: s.init_containers.iter().map(container).collect(),
            containers: s.containers.iter().map(container).collect(),
        });
        let status = self.status.as_deref().map(|s| Status {
            phase: text(&s.phase),
            reason: text(&s.reason),
            message: text(&s.message),
            conditions: s.conditions.to_vec(),
            init_container_statuses: s
                .init_container_statuses
                .iter()
                .map(container_status)
                .collect(),
            container_statuses: s.container_statuses.iter().map(container_status).collect(),
        });
        pod_of(metadata, &spec, &status)
    }

    /// The Pod's uid.
    pub fn uid(&self) -> Option<&str> {
        self.uid.as_deref()
    }

    /// The uid of the SourceBuild that owns the Pod (its controller reference).
    pub fn owner_uid(&self) -> Option<&str> {
        self.owner.as_deref().map(|o| &*o.uid)
    }

    /// The controller reference, as the Pod carries it.
    pub fn owner(&self) -> Option<OwnerReference> {
        self.owner.as_deref().map(|o| OwnerReference {
            api_version: o.api_version.to_string(),
            kind: o.kind.to_string(),
            name: o.name.to_string(),
            uid: o.uid.to_string(),
            controller: Some(true),
            block_owner_deletion: o.block_owner_deletion,
        })
    }
}

fn pod_of(metadata: ObjectMeta, spec: &Option<Spec>, status: &Option<Status>) -> Pod {
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
        metadata,
        spec: spec.as_ref().map(|s| PodSpec {
            active_deadline_seconds: s.active_deadline_seconds,
            init_containers: non_empty(s.init_containers.iter().map(container).collect()),
            containers: s.containers.iter().map(container).collect(),
            ..PodSpec::default()
        }),
        status: status.as_ref().map(|s| PodStatus {
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

impl kube::Resource for BuildPod {
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
    use crate::outcome::{BuildOutcome, observe};
    use crate::pod::{BuildSettings, build_pod};
    use crate::prepare::{PrepareReport, PrepareResult};
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
        };
        let mut pod = serde_json::to_value(build_pod(&sb, &settings).unwrap()).unwrap();
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
            dockerfile_sha256: format!("sha256:{}", "d".repeat(64)),
            builder_image: format!("registry.example.com/s2i/python@sha256:{}", "b".repeat(64)),
        }))
        .unwrap();
        let prepared = json!({"name": "prepare", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed", "message": report,
                "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:05Z"}}});
        vec![
            json!({"phase": "Succeeded", "initContainerStatuses": [prepared],
                "containerStatuses": [{"name": "build", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "message": digest,
                    "finishedAt": "2026-01-01T00:01:00Z"}}}]}),
            json!({"phase": "Failed", "initContainerStatuses": [prepared],
                "containerStatuses": [{"name": "build", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}),
            json!({"phase": "Running", "initContainerStatuses": [prepared],
                "containerStatuses": [{"name": "build", "ready": true, "restartCount": 0,
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
            let cached: BuildPod = serde_json::from_value(listed).unwrap();
            let seen = observe(&cached.to_pod());
            assert_eq!(seen, observe(&full), "{status}");
            // What the Pod cache holds reads back as the very same Pod.
            let held = cached.to_cached(&mut Interner::default());
            assert_eq!(
                held.to_pod("team", "app-build-1"),
                cached.to_pod(),
                "{status}"
            );
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
        let cached: BuildPod = serde_json::from_value(as_listed(status)).unwrap();
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
        let build = &spec.containers[0];
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
    fn cached_pods_share_the_strings_they_have_in_common() {
        let mut strings = Interner::default();
        let listed = || as_listed(with_kubelet_fields(statuses().remove(0)));
        let a: BuildPod = serde_json::from_value(listed()).unwrap();
        let b: BuildPod = serde_json::from_value(listed()).unwrap();
        let (a, b) = (a.to_cached(&mut strings), b.to_cached(&mut strings));
        let image = |p: &CachedPod| {
            p.spec.as_ref().unwrap().containers[0]
                .image
                .clone()
                .unwrap()
        };
        assert!(Arc::ptr_eq(&image(&a), &image(&b)));
        let held = strings.len();
        assert!(
            held >= 5,
            "images, container names, phase, reason, owner kind: {held}"
        );
        strings.forget_unused();
        assert_eq!(strings.len(), held, "all still held by the Pods");
        drop((a, b));
        strings.forget_unused();
        assert!(strings.is_empty());
    }

    #[test]
    fn the_api_path_is_the_pods_one() {
        use kube::Resource;
        for namespace in [Some("team"), None] {
            assert_eq!(
                BuildPod::url_path(&(), namespace),
                Pod::url_path(&(), namespace)
            );
        }
        assert_eq!(BuildPod::api_version(&()), "v1");
        assert_eq!(BuildPod::kind(&()), "Pod");
    }

    #[test]
    fn null_and_missing_lists_read_as_empty() {
        let cached: BuildPod = serde_json::from_value(json!({
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
        assert_eq!(BuildPod::from_pod(&pod), cached);
        let empty: BuildPod = serde_json::from_value(json!({"metadata": {"name": "p"}})).unwrap();
        assert_eq!((empty.to_pod().spec, empty.to_pod().status), (None, None));
    }
}
