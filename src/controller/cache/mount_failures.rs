//! The kubelet reports a build Pod's missing Secret or ConfigMap volume only as a `FailedMount`
//! Warning Event on the Pod; the Pod itself just stays Pending. One watch on those Events (the
//! API server filters them by field selector) tells the controller at once, where reading a
//! Pending Pod's Events on a timer cost a LIST per Pending Pod every few seconds: with a
//! thousand Pods waiting for a node, that was hundreds of LISTs a second for nothing.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::{Event, Pod};

use crate::controller::cache::pod_cache::PodCache;
use crate::controller::cache::slim_pod::SlimPod;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use crate::api::SourceBuild;

/// The Events worth watching: the kubelet's mount failures on Pods.
pub const FIELD_SELECTOR: &str = "involvedObject.kind=Pod,type=Warning,reason=FailedMount";

/// At most this many distinct messages are kept per Pod (one per failing volume is typical).
const MESSAGES_PER_POD: usize = 8;

/// Pod uid -> the distinct messages of its `FailedMount` Events. Only Pods in the build Pod
/// cache are recorded, and a Pod's entry goes with the Pod.
#[derive(Clone, Default)]
pub struct MountFailures {
    by_pod: Arc<RwLock<HashMap<String, Vec<String>>>>,
}

impl MountFailures {
    /// Records `event` if it is about one of our build Pods (one that `pods` holds, with the
    /// same uid) and returns the SourceBuild that owns the Pod, to be reconciled.
    pub fn record(&self, event: &Event, pods: &PodCache) -> Option<ObjectRef<SourceBuild>> {
        let about = &event.involved_object;
        let message = event.message.as_deref()?;
        let (namespace, name) = (about.namespace.as_deref()?, about.name.as_deref()?);
        let (uid, owner) = pods.controller_of(namespace, name)?;
        if about.uid.as_deref().is_some_and(|u| u != uid) {
            // An Event of an earlier Pod of the same name.
            return None;
        }
        let mut map = self.by_pod.write().unwrap_or_else(|e| e.into_inner());
        let messages = map.entry(uid).or_default();
        if !messages.iter().any(|m| m == message) && messages.len() < MESSAGES_PER_POD {
            messages.push(message.to_string());
        }
        Some(owner)
    }

    /// The mount failures recorded for `pod`.
    pub fn messages(&self, pod: &Pod) -> Vec<String> {
        let Some(uid) = pod.metadata.uid.as_deref() else {
            return Vec::new();
        };
        self.by_pod
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(uid)
            .cloned()
            .unwrap_or_default()
    }

    /// Follows the build Pod watch: a deleted Pod's entry goes; a re-list's end keeps only the
    /// Pods `pods` still holds.
    pub fn apply(&self, event: &watcher::Event<SlimPod>, pods: &PodCache) {
        match event {
            watcher::Event::Delete(pod) => {
                if let Some(uid) = pod.metadata.uid.as_deref() {
                    self.by_pod
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(uid);
                }
            }
            watcher::Event::InitDone => {
                let live = pods.uids();
                self.by_pod
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .retain(|uid, _| live.contains(uid));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, uid: &str, owner: Option<&str>) -> SlimPod {
        let owners = owner
            .map(|o| {
                json!([{"apiVersion": "sourcebuild.dev/v1alpha1", "kind": "SourceBuild",
                        "name": o, "uid": format!("{o}-uid"), "controller": true}])
            })
            .unwrap_or(json!([]));
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "team", "uid": uid, "ownerReferences": owners}
        }))
        .unwrap()
    }

    fn failed_mount(pod: &str, uid: Option<&str>, message: &str) -> Event {
        serde_json::from_value(json!({
            "metadata": {"name": format!("{pod}.1"), "namespace": "team"},
            "involvedObject": {"kind": "Pod", "namespace": "team", "name": pod, "uid": uid},
            "reason": "FailedMount", "type": "Warning", "message": message
        }))
        .unwrap()
    }

    fn store_of(pods: &[SlimPod]) -> PodCache {
        PodCache::listed(pods.iter().cloned())
    }

    const MISSING: &str =
        "MountVolume.SetUp failed for volume \"push-secret\" : secret \"regcred\" not found";

    #[test]
    fn an_event_about_a_build_pod_is_kept_once_and_names_its_source_build() {
        let build = pod("app-build-1", "p1", Some("app"));
        let store = store_of(std::slice::from_ref(&build));
        let failures = MountFailures::default();
        let owner = failures.record(&failed_mount("app-build-1", Some("p1"), MISSING), &store);
        assert_eq!(owner, Some(ObjectRef::new("app").within("team")));
        // The kubelet repeats the Event (its count goes up): still one message.
        failures.record(&failed_mount("app-build-1", None, MISSING), &store);
        assert_eq!(failures.messages(&build.to_pod()), [MISSING]);
    }

    #[test]
    fn events_about_other_pods_are_ignored() {
        let stale = pod("app-build-1", "p2", Some("app"));
        let unowned = pod("web", "p3", None);
        let store = store_of(&[stale.clone(), unowned.clone()]);
        let failures = MountFailures::default();
        // Not in the cache (not a build Pod), an earlier Pod of the same name, no owner.
        for event in [
            failed_mount("db", Some("p9"), MISSING),
            failed_mount("app-build-1", Some("p1"), MISSING),
            failed_mount("web", Some("p3"), MISSING),
        ] {
            assert_eq!(failures.record(&event, &store), None);
        }
        assert!(failures.by_pod.read().unwrap().is_empty());
        assert!(failures.messages(&stale.to_pod()).is_empty());
    }

    #[test]
    fn a_deleted_pod_takes_its_failures_with_it() {
        let (a, b) = (
            pod("a-build-1", "pa", Some("a")),
            pod("b-build-1", "pb", Some("b")),
        );
        let store = store_of(&[a.clone(), b.clone()]);
        let failures = MountFailures::default();
        failures.record(&failed_mount("a-build-1", Some("pa"), MISSING), &store);
        failures.record(&failed_mount("b-build-1", Some("pb"), MISSING), &store);
        failures.apply(&watcher::Event::Delete(a.clone()), &store);
        assert!(failures.messages(&a.to_pod()).is_empty());
        assert_eq!(failures.by_pod.read().unwrap().len(), 1);
        // A re-list that no longer holds b.
        let empty = store_of(&[]);
        failures.apply(&watcher::Event::InitDone, &empty);
        assert!(failures.by_pod.read().unwrap().is_empty());
    }
}
