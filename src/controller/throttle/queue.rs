//! The queue depth metric. kube-runtime keeps its scheduler's queue private, so the controller
//! counts at the edges instead: a SourceBuild is pending from the moment a watch event (of the
//! SourceBuild itself or of one of its build Pods) asks for its reconcile until a reconcile of
//! it starts, or it is deleted. Scheduled requeues (a deadline, a retry, the next poll) are not
//! counted: they are timers, not work waiting.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::controller::cache::slim_pod::SlimPod;
use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::api::SourceBuild;
use crate::controller::cache::source_build::{CachedSourceBuild, source_build_ref};
use crate::metrics::Metrics;

/// The SourceBuilds waiting for a reconcile. Cheap to clone: clones share the set.
#[derive(Clone)]
pub struct Pending {
    keys: Arc<Mutex<HashSet<ObjectRef<SourceBuild>>>>,
    metrics: Metrics,
}

impl Pending {
    /// An empty set that reports its size to `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        Self {
            keys: Arc::default(),
            metrics,
        }
    }

    fn update(&self, change: impl FnOnce(&mut HashSet<ObjectRef<SourceBuild>>)) {
        // A poisoned lock only means another thread panicked mid-update; the set is still a set.
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut keys);
        self.metrics.set_queue_depth(keys.len());
    }

    /// A watch event asks for a reconcile of `key`. Several before it starts count once, as the
    /// scheduler runs one reconcile for them.
    pub fn triggered(&self, key: ObjectRef<SourceBuild>) {
        self.update(|keys| {
            keys.insert(key);
        });
    }

    /// A build Pod changed: its owning SourceBuild is triggered, if it still exists (the
    /// controller does not reconcile a SourceBuild that is gone, so it would never leave).
    pub fn pod_changed(&self, pod: &SlimPod, builds: &Store<CachedSourceBuild>) {
        let namespace = pod.meta().namespace.as_deref();
        for owner in pod.meta().owner_references.iter().flatten() {
            if let Some(key) = ObjectRef::<CachedSourceBuild>::from_owner_ref(namespace, owner, ())
                && builds.get(&key).is_some()
            {
                self.triggered(source_build_ref(&key));
            }
        }
    }

    /// A reconcile of `key` starts, or the SourceBuild was deleted: it waits no more.
    pub fn picked_up(&self, key: &ObjectRef<SourceBuild>) {
        self.update(|keys| {
            keys.remove(key);
        });
    }

    /// How many SourceBuilds wait.
    pub fn waiting(&self) -> usize {
        self.keys.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    fn sb(name: &str) -> SourceBuild {
        serde_json::from_value(json!({
            "apiVersion": "sourcebuild.dev/v1alpha1", "kind": "SourceBuild",
            "metadata": {"name": name, "namespace": "team", "uid": format!("uid-{name}")},
            "spec": {"source": {"git": {"url": "https://example.com/a.git"}},
                     "output": {"image": "registry.example.com/a:1"}}
        }))
        .unwrap()
    }

    fn pod_of(owner: &str) -> SlimPod {
        serde_json::from_value(json!({
            "metadata": {"name": format!("{owner}-build-1"), "namespace": "team",
                "ownerReferences": [{"apiVersion": "sourcebuild.dev/v1alpha1", "kind": "SourceBuild",
                    "name": owner, "uid": format!("uid-{owner}"), "controller": true}]}
        }))
        .unwrap()
    }

    fn depth(metrics: &Metrics) -> String {
        metrics
            .encode()
            .lines()
            .find(|l| l.starts_with("sourcebuild_queue_depth "))
            .unwrap()
            .to_string()
    }

    #[test]
    fn each_waiting_source_build_counts_once_until_its_reconcile_starts() {
        let metrics = Metrics::new();
        let pending = Pending::new(metrics.clone());
        let (store, mut writer) = reflector::store::<CachedSourceBuild>();
        writer.apply_watcher_event(&Event::Apply(CachedSourceBuild::pack(sb("a")).unwrap()));
        let a = ObjectRef::from_obj(&sb("a"));

        pending.triggered(a.clone());
        pending.triggered(a.clone());
        pending.pod_changed(&pod_of("a"), &store);
        assert_eq!(pending.waiting(), 1);
        assert_eq!(depth(&metrics), "sourcebuild_queue_depth 1");

        // A Pod whose SourceBuild is gone would never be reconciled: not counted.
        pending.pod_changed(&pod_of("gone"), &store);
        pending.triggered(ObjectRef::from_obj(&sb("b")));
        assert_eq!(pending.waiting(), 2);

        pending.picked_up(&a);
        pending.picked_up(&a);
        assert_eq!(depth(&metrics), "sourcebuild_queue_depth 1");
        pending.picked_up(&ObjectRef::from_obj(&sb("b")));
        assert_eq!(pending.waiting(), 0);
        assert_eq!(depth(&metrics), "sourcebuild_queue_depth 0");
    }
}
