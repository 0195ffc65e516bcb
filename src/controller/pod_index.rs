//! Build Pods by the SourceBuild that owns them, so a reconcile finds its Pods without
//! scanning the whole cache (with 10,000 build Pods a scan per reconcile made a restart
//! quadratic).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::controller::build_pod::BuildPod;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

/// Owner uid -> names of the Pods it controls (a Pod lives in its owner's namespace). Kept
/// beside the reflector's store and fed by the same watch events; a name the store no longer
/// holds is simply skipped. Names only, in a Vec: an owner has one Pod per build, and with
/// 10,000 owners a set of full object references per owner cost half a KiB each.
#[derive(Clone, Default)]
pub struct PodIndex {
    by_owner: Arc<RwLock<HashMap<String, Vec<String>>>>,
}

fn controller_uid(pod: &BuildPod) -> Option<&str> {
    pod.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str())
}

impl PodIndex {
    /// Records what one watch event says (after the store applied it). A re-list's end
    /// rebuilds the index from the store, which drops Pods deleted while the watch was down.
    pub fn apply(&self, event: &watcher::Event<BuildPod>, store: &Store<BuildPod>) {
        match event {
            watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => self.insert(pod),
            watcher::Event::Delete(pod) => {
                if let (Some(uid), Some(name)) = (controller_uid(pod), pod.metadata.name.as_deref())
                {
                    let mut map = self.by_owner.write().unwrap_or_else(|e| e.into_inner());
                    if let Some(names) = map.get_mut(uid) {
                        names.retain(|n| n != name);
                        if names.is_empty() {
                            map.remove(uid);
                        }
                    }
                }
            }
            watcher::Event::Init => {}
            watcher::Event::InitDone => self.rebuild(store),
        }
    }

    /// An index of what `store` holds now.
    pub fn from_store(store: &Store<BuildPod>) -> Self {
        let index = Self::default();
        index.rebuild(store);
        index
    }

    fn rebuild(&self, store: &Store<BuildPod>) {
        let mut fresh: HashMap<String, Vec<String>> = HashMap::new();
        for pod in store.state() {
            add(&mut fresh, &pod);
        }
        fresh.values_mut().for_each(|names| names.shrink_to_fit());
        *self.by_owner.write().unwrap_or_else(|e| e.into_inner()) = fresh;
    }

    fn insert(&self, pod: &BuildPod) {
        add(
            &mut self.by_owner.write().unwrap_or_else(|e| e.into_inner()),
            pod,
        );
    }

    /// The cached Pods in `namespace` the object with `owner_uid` controls.
    pub fn owned(
        &self,
        owner_uid: &str,
        namespace: &str,
        store: &Store<BuildPod>,
    ) -> Vec<Arc<BuildPod>> {
        let names: Vec<String> = self
            .by_owner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(owner_uid)
            .cloned()
            .unwrap_or_default();
        names
            .into_iter()
            .filter_map(|name| store.get(&ObjectRef::new(&name).within(namespace)))
            .filter(|pod| controller_uid(pod) == Some(owner_uid))
            .collect()
    }
}

fn add(map: &mut HashMap<String, Vec<String>>, pod: &BuildPod) {
    let (Some(uid), Some(name)) = (controller_uid(pod), pod.metadata.name.as_deref()) else {
        return;
    };
    let names = match map.get_mut(uid) {
        Some(names) => names,
        None => map
            .entry(uid.to_string())
            .or_insert_with(|| Vec::with_capacity(1)),
    };
    if !names.iter().any(|n| n == name) {
        names.push(name.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use kube::runtime::reflector;

    fn pod(name: &str, owner: &str) -> BuildPod {
        let mut pod = BuildPod::default();
        pod.metadata.name = Some(name.into());
        pod.metadata.namespace = Some("ns".into());
        pod.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "sourcebuild.dev/v1alpha1".into(),
            kind: "SourceBuild".into(),
            name: "sb".into(),
            uid: owner.into(),
            controller: Some(true),
            ..Default::default()
        }]);
        pod
    }

    #[test]
    fn follows_the_watch_and_the_store() {
        let (store, mut writer) = reflector::store::<BuildPod>();
        let index = PodIndex::default();
        let mut feed = |event: watcher::Event<BuildPod>| {
            writer.apply_watcher_event(&event);
            index.apply(&event, &store);
        };
        feed(watcher::Event::Apply(pod("a-1", "uid-a")));
        feed(watcher::Event::Apply(pod("a-2", "uid-a")));
        feed(watcher::Event::Apply(pod("b-1", "uid-b")));
        let names = |uid: &str| {
            let mut v: Vec<String> = index
                .owned(uid, "ns", &store)
                .iter()
                .map(|p| p.metadata.name.clone().unwrap())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names("uid-a"), ["a-1", "a-2"]);
        assert_eq!(names("uid-b"), ["b-1"]);
        feed(watcher::Event::Delete(pod("a-1", "uid-a")));
        assert_eq!(names("uid-a"), ["a-2"]);
        // A re-list that no longer has b-1 (deleted while the watch was down).
        feed(watcher::Event::Init);
        feed(watcher::Event::InitApply(pod("a-2", "uid-a")));
        feed(watcher::Event::InitDone);
        assert_eq!(names("uid-a"), ["a-2"]);
        assert!(names("uid-b").is_empty());
        assert!(names("uid-none").is_empty());
    }
}
