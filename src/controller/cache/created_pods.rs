//! Build Pods this process created that the Pod watch has not shown yet ("expectations", as
//! the ReplicaSet controller calls them).
//!
//! The reconcile that follows a create often runs before the watch delivers the new Pod. Not
//! finding it in the cache, it would have to GET the Pod to tell "not seen yet" from
//! "deleted". A Pod we are creating is known to exist once the create succeeds; its watch
//! event reconciles the SourceBuild again. As in the ReplicaSet controller, the expectation is
//! recorded before the create is sent: the watch may deliver the Pod before the create's
//! answer, and a record made after that would wait for an event that has already come.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::controller::cache::slim_pod::SlimPod;
use kube::ResourceExt;
use kube::runtime::watcher;

/// How long a created Pod is trusted to be on its way through the watch. Past this the
/// reconcile asks the API server, as it would without the record.
pub const TRUSTED_FOR: Duration = Duration::from_secs(30);

#[derive(Clone, Default)]
pub struct CreatedPods {
    /// (namespace, name) -> when we created it.
    unseen: Arc<Mutex<HashMap<(String, String), Instant>>>,
}

impl CreatedPods {
    /// Records a Pod we are about to create; call before the create is sent.
    pub fn expect(&self, namespace: &str, name: &str) {
        self.unseen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((namespace.to_string(), name.to_string()), Instant::now());
    }

    /// Drops the record of a create that did not create the Pod.
    pub fn cancel(&self, namespace: &str, name: &str) {
        self.unseen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(namespace.to_string(), name.to_string()));
    }

    /// Whether `namespace/name` is a Pod we created less than [`TRUSTED_FOR`] ago that the
    /// watch has not shown yet.
    pub fn awaiting(&self, namespace: &str, name: &str) -> bool {
        let mut unseen = self.unseen.lock().unwrap_or_else(|e| e.into_inner());
        let key = (namespace.to_string(), name.to_string());
        match unseen.get(&key) {
            Some(at) if at.elapsed() < TRUSTED_FOR => true,
            Some(_) => {
                unseen.remove(&key);
                false
            }
            None => false,
        }
    }

    /// Follows the build Pod watch: a Pod it shows (or shows deleted) is no longer awaited; a
    /// re-list's end leaves the cache authoritative. Returns how long the Pod was awaited, when
    /// it was.
    pub fn apply(&self, event: &watcher::Event<SlimPod>) -> Option<Duration> {
        let unseen = || self.unseen.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            watcher::Event::Apply(pod)
            | watcher::Event::InitApply(pod)
            | watcher::Event::Delete(pod) => unseen()
                .remove(&(pod.namespace().unwrap_or_default(), pod.name_any()))
                .map(|created| created.elapsed()),
            watcher::Event::InitDone => {
                unseen().clear();
                None
            }
            watcher::Event::Init => None,
        }
    }

    /// How many Pods we created less than [`TRUSTED_FOR`] ago the watch has not shown yet: a
    /// measure of how far the API server's watches are behind our writes. Older records (a
    /// Pod deleted before its watch event came) are dropped.
    pub fn unseen(&self) -> usize {
        let mut unseen = self.unseen.lock().unwrap_or_else(|e| e.into_inner());
        unseen.retain(|_, at| at.elapsed() < TRUSTED_FOR);
        unseen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(namespace: &str, name: &str) -> SlimPod {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": namespace}})).unwrap()
    }

    #[test]
    fn a_created_pod_is_awaited_until_the_watch_shows_it() {
        let created = CreatedPods::default();
        assert!(!created.awaiting("team", "app-build-1"));
        created.expect("team", "app-build-1");
        assert!(created.awaiting("team", "app-build-1"));
        assert!(!created.awaiting("other", "app-build-1"));
        let awaited = created.apply(&watcher::Event::Apply(pod("team", "app-build-1")));
        assert!(awaited.is_some_and(|d| d < TRUSTED_FOR), "{awaited:?}");
        assert!(!created.awaiting("team", "app-build-1"));
        assert_eq!(created.unseen(), 0);
        // Seen again (its status changed): no longer awaited, so no delay to report.
        assert_eq!(
            created.apply(&watcher::Event::Apply(pod("team", "app-build-1"))),
            None
        );
        // A Pod this replica did not create: nothing awaited it.
        assert_eq!(
            created.apply(&watcher::Event::Apply(pod("team", "other-build-1"))),
            None
        );
    }

    #[test]
    fn a_pod_shown_before_its_create_answered_is_not_awaited() {
        // The order of a create whose watch event wins the race with its answer.
        let created = CreatedPods::default();
        created.expect("team", "app-build-1");
        assert!(
            created
                .apply(&watcher::Event::Apply(pod("team", "app-build-1")))
                .is_some()
        );
        assert_eq!(
            created.unseen(),
            0,
            "nothing is left waiting for that event"
        );
        assert!(!created.awaiting("team", "app-build-1"));
    }

    #[test]
    fn a_create_that_failed_is_not_awaited() {
        let created = CreatedPods::default();
        created.expect("team", "app-build-1");
        created.cancel("team", "app-build-1");
        assert!(!created.awaiting("team", "app-build-1"));
        assert_eq!(created.unseen(), 0);
    }

    #[test]
    fn a_deleted_pod_or_a_relist_ends_the_wait() {
        let created = CreatedPods::default();
        created.expect("team", "a-build-1");
        created.expect("team", "b-build-1");
        created.apply(&watcher::Event::Delete(pod("team", "a-build-1")));
        assert!(!created.awaiting("team", "a-build-1"));
        created.apply(&watcher::Event::InitDone);
        assert!(!created.awaiting("team", "b-build-1"));
    }

    #[test]
    fn an_old_record_is_not_trusted() {
        let Some(long_ago) = Instant::now().checked_sub(TRUSTED_FOR + Duration::from_secs(1))
        else {
            return; // a machine up for less than that cannot hold such a record
        };
        let created = CreatedPods::default();
        created
            .unseen
            .lock()
            .unwrap()
            .insert(("team".into(), "app-build-1".into()), long_ago);
        assert!(!created.awaiting("team", "app-build-1"));
        assert_eq!(created.unseen(), 0);
    }

    #[test]
    fn unseen_counts_only_records_still_trusted() {
        let Some(long_ago) = Instant::now().checked_sub(TRUSTED_FOR + Duration::from_secs(1))
        else {
            return;
        };
        let created = CreatedPods::default();
        created.expect("team", "new-build-1");
        // A Pod deleted before its watch event came: never asked about again.
        created
            .unseen
            .lock()
            .unwrap()
            .insert(("team".into(), "gone-build-1".into()), long_ago);
        assert_eq!(created.unseen(), 1);
        assert_eq!(
            created.unseen.lock().unwrap().len(),
            1,
            "the old record is dropped"
        );
    }
}
