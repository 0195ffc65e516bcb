//! What the controller keeps of the cluster between reconciles, and how it is kept small.
//!
//! The decisions (`plan`, `status`, `writes`) never see this module: a reconcile asks
//! [`Caches`] for a SourceBuild's Pods as k8s-openapi `Pod`s and gets plain answers. Behind it,
//! SourceBuilds and build Pods are held narrowed and packed (see `docs/performance.md` for
//! what each piece saves at 10,000 builds).

pub mod created_pods;
pub mod mount_failures;
pub mod pack;
pub mod pod_cache;
pub mod slim_pod;
pub mod source_build;
pub mod status_memo;

use std::time::Duration;

use kube::runtime::watcher;

use created_pods::CreatedPods;
use mount_failures::MountFailures;
use pod_cache::PodCache;
use slim_pod::SlimPod;
use status_memo::StatusMemo;

/// The caches one watched scope shares between its watches and its reconciles. Cheap to clone.
#[derive(Clone)]
pub struct Caches {
    /// Build Pods, from a label-selected watch.
    pub pods: PodCache,
    /// The kubelet's mount failures on build Pods, from a watch on its Events.
    pub mount_failures: MountFailures,
    /// Build Pods we created that the Pod watch has not shown yet.
    pub created_pods: CreatedPods,
    /// Our last status writes the SourceBuild cache does not show yet (read-your-writes).
    pub status_memo: StatusMemo,
    /// Turns true once `pods` holds a complete list.
    pub pods_ready: tokio::sync::watch::Receiver<bool>,
}

impl Caches {
    /// Empty caches; `pods_ready` is flipped by whoever fills `pods`.
    pub fn new(pods_ready: tokio::sync::watch::Receiver<bool>) -> Self {
        Self {
            pods: PodCache::default(),
            mount_failures: MountFailures::default(),
            created_pods: CreatedPods::default(),
            status_memo: StatusMemo::default(),
            pods_ready,
        }
    }

    /// Waits until the Pod cache holds a complete list: "the Pod is missing" read from a cache
    /// that has not listed yet would be wrong.
    pub async fn pods_listed(&self) {
        let _ = self.pods_ready.clone().wait_for(|filled| *filled).await;
    }

    /// Follows the build Pod watch; returns how long a Pod we created took to show, when it
    /// was one.
    pub fn apply_pod_event(&self, event: &watcher::Event<SlimPod>) -> Option<Duration> {
        self.pods.apply(event);
        self.mount_failures.apply(event, &self.pods);
        self.created_pods.apply(event)
    }
}
