//! The build Pods the watch has shown, by namespace and name and by the SourceBuild that owns
//! them.
//!
//! A reconcile needs the Pods of one SourceBuild. kube-runtime's reflector store can only
//! find them by a scan (a scan per reconcile makes a restart quadratic) or through an index
//! kept beside it, and it holds every object whole with `ObjectMeta` under a key that copies
//! name, namespace, uid and resourceVersion once more. This cache holds each Pod once, as a
//! [`PackedPod`], under its
//! namespace (one string for all the Pods in it) and name, and indexes it by owner uid.
//!
//! It follows the watch as a reflector store does: a (re-)list is gathered aside and replaces
//! the whole cache when it is complete, so a Pod deleted while the watch was down goes, and
//! readers see the old cache until then.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use crate::api::SourceBuild;
use crate::controller::cache::slim_pod::{PackedPod, SlimPod};

/// Namespace -> name -> Pod.
type Pods = HashMap<Arc<str>, HashMap<Box<str>, PackedPod>>;

#[derive(Clone, Default)]
pub struct PodCache {
    state: Arc<RwLock<State>>,
}

#[derive(Default)]
struct State {
    pods: Pods,
    /// Owner uid -> names of the Pods it controls (a Pod lives in its owner's namespace). An
    /// owner has one Pod per build kept, so a Vec.
    by_owner: HashMap<Box<str>, Vec<Box<str>>>,
    /// A list in progress: what it has shown so far.
    listing: Option<Pods>,
}

impl PodCache {
    /// A cache filled by one complete list of `pods` (tests, benchmarks).
    pub fn listed(pods: impl IntoIterator<Item = SlimPod>) -> Self {
        let cache = Self::default();
        cache.apply(&watcher::Event::Init);
        for pod in pods {
            cache.apply(&watcher::Event::InitApply(pod));
        }
        cache.apply(&watcher::Event::InitDone);
        cache
    }

    /// Follows one event of the build Pod watch.
    pub fn apply(&self, event: &watcher::Event<SlimPod>) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        match event {
            watcher::Event::Apply(pod) => state.insert(pod),
            watcher::Event::Delete(pod) => state.remove(pod),
            watcher::Event::Init => state.listing = Some(Pods::new()),
            watcher::Event::InitApply(pod) => {
                if let (Some(listing), Some((namespace, name)), Some(cached)) =
                    (state.listing.as_mut(), key(pod), packed(pod))
                {
                    put(listing, namespace, name, cached);
                }
            }
            watcher::Event::InitDone => {
                if let Some(listed) = state.listing.take() {
                    state.pods = listed;
                    state.reindex();
                }
            }
        }
    }

    /// The cached Pods in `namespace` that the object with `owner_uid` controls.
    pub fn owned(&self, owner_uid: &str, namespace: &str) -> Vec<Pod> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let (Some(names), Some(pods)) = (state.by_owner.get(owner_uid), state.pods.get(namespace))
        else {
            return Vec::new();
        };
        names
            .iter()
            .filter_map(|name| Some((name, pods.get(name)?)))
            .filter(|(_, pod)| pod.owner_uid() == Some(owner_uid))
            .filter_map(|(name, pod)| unpacked(pod, namespace, name))
            .collect()
    }

    /// The uid of the cached Pod `namespace/name` and the SourceBuild that controls it.
    pub fn controller_of(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<(String, ObjectRef<SourceBuild>)> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let pod = unpacked(state.pods.get(namespace)?.get(name)?, namespace, name)?;
        // The same owner lookup as the Controller's own `owns` mapping.
        let owner = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .filter(|o| o.controller == Some(true))
            .find_map(|o| ObjectRef::from_owner_ref(Some(namespace), o, ()))?;
        Some((pod.metadata.uid?, owner))
    }

    /// The uids of every cached Pod.
    pub fn uids(&self) -> HashSet<String> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state
            .pods
            .values()
            .flat_map(HashMap::values)
            .filter_map(|pod| pod.uid().map(str::to_string))
            .collect()
    }

    /// How many Pods are cached.
    pub fn len(&self) -> usize {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state.pods.values().map(HashMap::len).sum()
    }

    /// Whether no Pod is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `pod` as the cache holds it; never fails but for a bug, which is logged and costs the Pod.
fn packed(pod: &SlimPod) -> Option<PackedPod> {
    pod.to_cached()
        .inspect_err(|error| {
            tracing::error!(pod = ?pod.metadata.name, %error, "packing a build Pod for the cache")
        })
        .ok()
}

fn unpacked(pod: &PackedPod, namespace: &str, name: &str) -> Option<Pod> {
    pod.to_pod()
        .inspect_err(
            |error| tracing::error!(namespace, pod = name, %error, "unpacking a cached build Pod"),
        )
        .ok()
}

fn key(pod: &SlimPod) -> Option<(&str, &str)> {
    Some((
        pod.metadata.namespace.as_deref()?,
        pod.metadata.name.as_deref()?,
    ))
}

/// Stores `pod` as `namespace/name`, returning what it replaced.
fn put(pods: &mut Pods, namespace: &str, name: &str, pod: PackedPod) -> Option<PackedPod> {
    let names = match pods.get_mut(namespace) {
        Some(names) => names,
        None => pods.entry(Arc::from(namespace)).or_default(),
    };
    names.insert(Box::from(name), pod)
}

impl State {
    fn insert(&mut self, pod: &SlimPod) {
        let (Some((namespace, name)), Some(cached)) = (key(pod), packed(pod)) else {
            return;
        };
        let owner = cached.owner_uid().map(Box::from);
        let replaced = put(&mut self.pods, namespace, name, cached);
        let old_owner = replaced.as_ref().and_then(PackedPod::owner_uid);
        if old_owner != owner.as_deref()
            && let Some(old_owner) = old_owner
        {
            unindex(&mut self.by_owner, old_owner, name);
        }
        if let Some(owner) = owner {
            index(&mut self.by_owner, owner, name);
        }
    }

    fn remove(&mut self, pod: &SlimPod) {
        let Some((namespace, name)) = key(pod) else {
            return;
        };
        let Some(names) = self.pods.get_mut(namespace) else {
            return;
        };
        let removed = names.remove(name);
        if names.is_empty() {
            self.pods.remove(namespace);
        }
        if let Some(owner) = removed.as_ref().and_then(PackedPod::owner_uid) {
            unindex(&mut self.by_owner, owner, name);
        }
    }

    fn reindex(&mut self) {
        let mut by_owner = HashMap::new();
        for pod_names in self.pods.values() {
            for (name, pod) in pod_names {
                if let Some(owner) = pod.owner_uid() {
                    index(&mut by_owner, owner.into(), name);
                }
            }
        }
        by_owner.values_mut().for_each(Vec::shrink_to_fit);
        self.by_owner = by_owner;
    }
}

fn index(by_owner: &mut HashMap<Box<str>, Vec<Box<str>>>, owner: Box<str>, name: &str) {
    let names = by_owner
        .entry(owner)
        .or_insert_with(|| Vec::with_capacity(1));
    if !names.iter().any(|n| &**n == name) {
        names.push(name.into());
    }
}

fn unindex(by_owner: &mut HashMap<Box<str>, Vec<Box<str>>>, owner: &str, name: &str) {
    if let Some(names) = by_owner.get_mut(owner) {
        names.retain(|n| &**n != name);
        if names.is_empty() {
            by_owner.remove(owner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::ResourceExt;
    use serde_json::json;

    fn pod(namespace: &str, name: &str, owner: &str) -> SlimPod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": namespace, "uid": format!("{name}-uid"),
                "resourceVersion": "7", "creationTimestamp": "2026-01-01T00:00:00Z",
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "ConfigMap", "name": "other", "uid": "cm-uid"},
                    {"apiVersion": "sourcebuild.dev/v1alpha1", "kind": "SourceBuild",
                     "name": "sb", "uid": owner, "controller": true}]},
            "spec": {"containers": [{"name": "build", "image": "kaniko",
                "args": ["--destination=registry.example.com/app:1"]}]},
            "status": {"phase": "Running"}
        }))
        .unwrap()
    }

    fn names(cache: &PodCache, owner: &str, namespace: &str) -> Vec<String> {
        let mut names: Vec<String> = cache
            .owned(owner, namespace)
            .iter()
            .map(|p| p.name_any())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_cached_pod_reads_as_the_watch_showed_it() {
        let shown = pod("ns", "a-1", "uid-a");
        let cache = PodCache::listed([shown.clone()]);
        assert_eq!(cache.owned("uid-a", "ns"), [shown.to_pod()]);
        assert_eq!(
            cache.controller_of("ns", "a-1"),
            Some(("a-1-uid".to_string(), ObjectRef::new("sb").within("ns")))
        );
        assert_eq!(cache.controller_of("ns", "b-1"), None);
        assert_eq!(cache.controller_of("other", "a-1"), None);
    }

    #[test]
    fn follows_the_watch() {
        let cache = PodCache::default();
        cache.apply(&watcher::Event::Apply(pod("ns", "a-1", "uid-a")));
        cache.apply(&watcher::Event::Apply(pod("ns", "a-2", "uid-a")));
        cache.apply(&watcher::Event::Apply(pod("ns", "b-1", "uid-b")));
        // Same owner uid, another namespace: a different owner's Pods are not mixed in.
        cache.apply(&watcher::Event::Apply(pod("other", "c-1", "uid-a")));
        assert_eq!(names(&cache, "uid-a", "ns"), ["a-1", "a-2"]);
        assert_eq!(names(&cache, "uid-b", "ns"), ["b-1"]);
        assert_eq!(names(&cache, "uid-a", "other"), ["c-1"]);
        assert_eq!(cache.len(), 4);

        // An update replaces the Pod; it is indexed once.
        let mut updated = pod("ns", "a-1", "uid-a");
        updated.metadata.resource_version = Some("8".into());
        cache.apply(&watcher::Event::Apply(updated.clone()));
        assert_eq!(cache.owned("uid-a", "ns").len(), 2);
        assert!(cache.owned("uid-a", "ns").contains(&updated.to_pod()));

        // Its controller reference moved to another owner.
        cache.apply(&watcher::Event::Apply(pod("ns", "a-2", "uid-b")));
        assert_eq!(names(&cache, "uid-a", "ns"), ["a-1"]);
        assert_eq!(names(&cache, "uid-b", "ns"), ["a-2", "b-1"]);

        cache.apply(&watcher::Event::Delete(pod("ns", "a-1", "uid-a")));
        assert!(names(&cache, "uid-a", "ns").is_empty());
        assert_eq!(cache.len(), 3);
        assert_eq!(
            cache.uids(),
            ["a-2-uid", "b-1-uid", "c-1-uid"].map(String::from).into()
        );
    }

    #[test]
    fn a_relist_replaces_the_cache_once_complete() {
        let cache = PodCache::listed([pod("ns", "a-1", "uid-a"), pod("ns", "b-1", "uid-b")]);
        cache.apply(&watcher::Event::Init);
        cache.apply(&watcher::Event::InitApply(pod("ns", "a-1", "uid-a")));
        cache.apply(&watcher::Event::InitApply(pod("ns", "d-1", "uid-d")));
        // Until the list is complete, readers see the old cache.
        assert_eq!(names(&cache, "uid-b", "ns"), ["b-1"]);
        assert!(names(&cache, "uid-d", "ns").is_empty());
        cache.apply(&watcher::Event::InitDone);
        // b-1 was deleted while the watch was down.
        assert!(names(&cache, "uid-b", "ns").is_empty());
        assert_eq!(names(&cache, "uid-a", "ns"), ["a-1"]);
        assert_eq!(names(&cache, "uid-d", "ns"), ["d-1"]);
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn pods_without_a_controller_are_cached_but_owned_by_none() {
        let mut loose = pod("ns", "loose", "uid-a");
        loose.metadata.owner_references = None;
        let mut nameless = pod("ns", "x", "uid-a");
        nameless.metadata.name = None;
        let cache = PodCache::listed([loose, nameless]);
        assert_eq!(cache.len(), 1);
        assert!(cache.owned("uid-a", "ns").is_empty());
        assert_eq!(cache.controller_of("ns", "loose"), None);
    }
}
