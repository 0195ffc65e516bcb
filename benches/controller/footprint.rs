//! `footprint`: the live heap each cached object costs the controller, without a cluster.
//!
//! RSS says how much the process holds; this says why. N SourceBuilds and N build Pods, as
//! the API server sends them after a finished build (metadata with managedFields, the spec the
//! controller wrote, the status the kubelet and the controller wrote), go through the same
//! deserialization, pruning and caches as in the operator (a kube-runtime reflector store for
//! SourceBuilds, `PodCache` for build Pods), and a
//! counting allocator (this binary's global allocator) measures what stays allocated. The
//! same Pods as k8s-openapi `Pod`s show what a cache of full objects would cost.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{Store, store::Writer};
use kube::runtime::{reflector, watcher};
use serde_json::{Value, json};
use sourcebuild::api::SourceBuild;
use sourcebuild::contract::{PrepareReport, PrepareResult, PublishReport, PublishResult};
use sourcebuild::controller::cache::pod_cache::PodCache;
use sourcebuild::controller::cache::slim_pod::SlimPod;
use sourcebuild::controller::cache::source_build::CachedSourceBuild;
use sourcebuild::pod::{BuildSettings, build_pod};

use crate::report::Footprint;

/// Counts live heap bytes as glibc would hand them out (16-byte chunks with an 8-byte header,
/// 32 bytes at least), so the figure is what the allocator really holds, not what was asked.
pub struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

fn chunk(size: usize) -> isize {
    ((size + 8 + 15) & !15).max(32) as isize
}

// SAFETY: defers to the system allocator; the counter is only arithmetic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(chunk(layout.size()), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(chunk(layout.size()), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(chunk(new_size) - chunk(layout.size()), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Live bytes per object that `fill` leaves allocated (what it returns is kept until then).
fn per_object<T>(n: usize, fill: impl FnOnce() -> T) -> (u64, T) {
    let before = live();
    let kept = fill();
    let bytes = (live() - before).max(0) as u64 / n as u64;
    (bytes, kept)
}

pub fn measure(n: usize) -> Footprint {
    let builds: Vec<String> = (0..n).map(|i| finished_build(i).to_string()).collect();
    let pods: Vec<String> = (0..n).map(|i| finished_pod(i).to_string()).collect();

    let (sourcebuild_bytes, kept) = per_object(n, || {
        cached(&builds, |text| -> CachedSourceBuild {
            serde_json::from_str(text).expect("a SourceBuild")
        })
    });
    drop(kept);
    let (build_pod_bytes, kept) = per_object(n, || {
        PodCache::listed(
            pods.iter()
                .map(|text| -> SlimPod { serde_json::from_str(text).expect("a build Pod") }),
        )
    });
    drop(kept);
    let (full_pod_bytes, kept) = per_object(n, || {
        cached(&pods, |text| -> Pod {
            serde_json::from_str(text).expect("a Pod")
        })
    });
    drop(kept);

    // The least a kube-runtime store can hold per object: what a metadata-only watch caches,
    // cut down further to the four fields every reconcile needs to address and write it.
    let (floor_bytes, kept) = per_object(n, || {
        cached(&pods, |text| -> PartialObjectMeta<Pod> {
            let full: PartialObjectMeta<Pod> =
                serde_json::from_str(text).expect("a Pod's metadata");
            PartialObjectMeta {
                types: None,
                metadata: ObjectMeta {
                    name: full.metadata.name,
                    namespace: full.metadata.namespace,
                    uid: full.metadata.uid,
                    resource_version: full.metadata.resource_version,
                    ..ObjectMeta::default()
                },
                _phantom: Default::default(),
            }
        })
    });
    drop(kept);

    Footprint {
        objects: n,
        floor_bytes,
        sourcebuild_json_bytes: builds[0].len(),
        pod_json_bytes: pods[0].len(),
        sourcebuild_bytes,
        build_pod_bytes,
        full_pod_bytes,
    }
}

/// A reflector store filled by one initial list of `texts`, each parsed as the operator does.
fn cached<K>(texts: &[String], parse: impl Fn(&str) -> K) -> (Store<K>, Writer<K>)
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    let (store, mut writer) = reflector::store::<K>();
    writer.apply_watcher_event(&watcher::Event::Init);
    for text in texts {
        writer.apply_watcher_event(&watcher::Event::InitApply(parse(text)));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    (store, writer)
}

const AT: &str = "2026-12-02T10:00:00Z";

/// `n` hex digits as random as a real digest or commit id (which do not compress), the same
/// for the same build `i` and `what`; `i` 0 for what all builds share (the builder's digest).
fn hex(i: usize, what: char, n: usize) -> String {
    let mut rng = fastrand::Rng::with_seed(i as u64 * 31 + what as u64);
    (0..n)
        .map(|_| char::from_digit(rng.u32(0..16), 16).expect("a hex digit"))
        .collect()
}

fn name(i: usize) -> String {
    format!("app-{i:05}")
}

/// A SourceBuild after one successful build, as the controller's status writes leave it.
fn finished_build(i: usize) -> Value {
    let name = name(i);
    let digest = format!("sha256:{}", hex(i, 'a', 64));
    let image = format!("registry.example.com/bench/{name}:1.0");
    let record = json!({"generation": 1, "build": 1, "attempt": 1, "trigger": "ConfigChange",
        "podName": format!("{name}-build-1"), "phase": "Succeeded", "reason": "Succeeded",
        "sourceRevision": hex(i, 'b', 40), "digest": digest, "startTime": AT, "completionTime": AT});
    json!({
        "apiVersion": "sourcebuild.dev/v1alpha1", "kind": "SourceBuild",
        "metadata": {"name": name, "namespace": "bench-scale-1",
            "uid": format!("6d1e2f40-0000-4000-8000-{i:012}"), "resourceVersion": format!("{}", 100_000 + i),
            "generation": 1, "creationTimestamp": AT,
            "managedFields": [
                {"manager": "kubectl", "operation": "Update", "apiVersion": "sourcebuild.dev/v1alpha1",
                 "time": AT, "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:source": {"f:git": {"f:url": {}}}, "f:output": {"f:image": {}}}}},
                {"manager": "sourcebuild-operator", "operation": "Apply", "apiVersion": "sourcebuild.dev/v1alpha1",
                 "time": AT, "fieldsType": "FieldsV1", "subresource": "status", "fieldsV1": {"f:status": {"f:phase": {}, "f:conditions": {}}}}]},
        "spec": {"source": {"git": {"url": "https://example.com/acme/app.git"}}, "output": {"image": image}},
        "status": {"phase": "Succeeded", "observedGeneration": 1, "podName": format!("{name}-build-1"),
            "build": 1, "trigger": "ConfigChange", "attempt": 1, "startTime": AT, "completionTime": AT,
            "latestImage": format!("{image}@{digest}"), "digest": digest, "sourceRevision": hex(i, 'b', 40),
            "builderImage": format!("registry.example.com/s2i/python@sha256:{}", hex(0, 'c', 64)),
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "Succeeded", "message": format!("built {image}@{digest}"),
                 "lastTransitionTime": AT, "observedGeneration": 1},
                {"type": "Succeeded", "status": "True", "reason": "Succeeded", "message": "the build pushed the image",
                 "lastTransitionTime": AT, "observedGeneration": 1}],
            "history": [record]}
    })
}

/// Its build Pod after the build: the spec the controller wrote, what the API server and a
/// real kubelet add.
fn finished_pod(i: usize) -> Value {
    let mut sb: SourceBuild = serde_json::from_value(finished_build(i)).expect("a SourceBuild");
    sb.status = None;
    let settings = BuildSettings {
        default_builder_image: "registry.example.com/s2i/python:3.12".into(),
        kaniko_image: "registry.example.com/kaniko/executor:v1.24.0".into(),
        prepare_image: "registry.example.com/sourcebuild/operator:0.1.0".into(),
        insecure_registries: vec![],
        user_namespaces: false,
        signing_key_secret: None,
        builder_id: "https://sourcebuild.dev/tests".to_string(),
    };
    let mut pod =
        serde_json::to_value(build_pod(&sb, &settings, 1).expect("a build Pod")).expect("JSON");
    let meta = &mut pod["metadata"];
    meta["name"] = json!(format!("{}-build-1", name(i)));
    meta["uid"] = json!(format!("0f1e2d3c-0000-4000-8000-{i:012}"));
    meta["resourceVersion"] = json!(format!("{}", 200_000 + i));
    meta["creationTimestamp"] = json!(AT);
    meta["managedFields"] = json!([
        {"manager": "sourcebuild", "operation": "Update", "apiVersion": "v1", "time": AT, "fieldsType": "FieldsV1",
         "fieldsV1": {"f:metadata": {"f:labels": {}, "f:ownerReferences": {}}, "f:spec": {"f:containers": {}, "f:volumes": {}}}},
        {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": AT, "fieldsType": "FieldsV1",
         "subresource": "status", "fieldsV1": {"f:status": {"f:conditions": {}, "f:containerStatuses": {}, "f:phase": {}}}}]);
    let report = serde_json::to_string(&PrepareReport::Prepared(PrepareResult {
        revision: Some(hex(i, 'b', 40)),
        origin: None,
        dockerfile_sha256: format!("sha256:{}", hex(i, 'd', 64)),
        builder_image: format!("registry.example.com/s2i/python@sha256:{}", hex(0, 'c', 64)),
        started: Some(AT.to_string()),
    }))
    .expect("JSON");
    let digest = format!("sha256:{}", hex(i, 'a', 64));
    let published = serde_json::to_string(&PublishReport::Published(PublishResult {
        subject: digest.clone(),
        attestation: format!("sha256:{}", hex(i, '9', 64)),
        signature: None,
        referrers: Some("ReferrersAPI".to_string()),
    }))
    .expect("JSON");
    let container = |name: &str, message: String| {
        json!({"name": name, "ready": false, "restartCount": 0, "started": false,
            "image": "registry.example.com/sourcebuild/operator:0.1.0",
            "imageID": format!("registry.example.com/sourcebuild/operator@sha256:{}", hex(0, 'e', 64)),
            "containerID": format!("containerd://{}", hex(i, 'f', 64)),
            "volumeMounts": [
                {"name": "workspace", "mountPath": "/workspace", "readOnly": false, "recursiveReadOnly": "Disabled"},
                {"name": "scratch", "mountPath": "/scratch", "readOnly": false, "recursiveReadOnly": "Disabled"}],
            "state": {"terminated": {"exitCode": 0, "reason": "Completed", "message": message,
                "startedAt": AT, "finishedAt": AT, "containerID": format!("containerd://{}", hex(i, 'f', 64))}}})
    };
    let condition = |type_: &str, status: &str| json!({"type": type_, "status": status, "lastProbeTime": null, "lastTransitionTime": AT});
    pod["status"] = json!({"phase": "Succeeded", "hostIP": "10.0.0.1", "hostIPs": [{"ip": "10.0.0.1"}],
        "podIP": "10.244.0.1", "podIPs": [{"ip": "10.244.0.1"}], "qosClass": "Burstable", "startTime": AT,
        "conditions": [condition("PodReadyToStartContainers", "False"), condition("Initialized", "True"),
            condition("Ready", "False"), condition("ContainersReady", "False"), condition("PodScheduled", "True")],
        "initContainerStatuses": [container("prepare", report), container("build", digest)],
        "containerStatuses": [container("publish", published)]});
    pod
}
