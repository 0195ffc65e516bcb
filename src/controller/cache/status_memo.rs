//! Our own status writes, until the SourceBuild watch shows them (read-your-writes).
//!
//! A reconcile can start from a cached SourceBuild older than our own last status write (a Pod
//! event arrives before the SourceBuild's). Planned from it, the reconcile would write the same
//! status and publish its Event again, or, for the next transition, send a write whose
//! resourceVersion precondition the API server refuses (409), costing a request and a requeue
//! on every quick transition. Keeping the object the API server answered our write with, and
//! the resourceVersions that write replaced, lets such a reconcile start from what is really
//! stored. Nothing is guessed: the answer is used only while the cache shows exactly a version
//! our writes replaced; any other version (a user's change, another replica's write) is newer
//! information, and the cache wins.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::ResourceExt;

use crate::api::SourceBuild;

/// How many replaced versions one entry remembers (writes in a row before the watch catches up).
const SUPERSEDED_KEPT: usize = 8;

#[derive(Clone, Default)]
pub struct StatusMemo {
    by_uid: Arc<Mutex<HashMap<String, Entry>>>,
}

struct Entry {
    /// The resourceVersions our writes replaced, oldest first.
    superseded: Vec<String>,
    /// The API server's answer to our last write.
    written: Arc<SourceBuild>,
}

impl StatusMemo {
    /// The SourceBuild to plan from: our last write's answer while `cached` is a version that
    /// write replaced, otherwise `cached` (and the entry goes).
    pub fn freshest(&self, cached: Arc<SourceBuild>) -> Arc<SourceBuild> {
        // Runs at the start of every reconcile: borrow, never clone, uid and version.
        let Some(uid) = cached.metadata.uid.as_deref() else {
            return cached;
        };
        let mut map = self.by_uid.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = map.get(uid) else {
            return cached;
        };
        let version = cached.metadata.resource_version.as_deref();
        if version.is_some_and(|v| entry.superseded.iter().any(|s| s == v)) {
            return entry.written.clone();
        }
        // Caught up, or changed by someone else since: the cache knows best.
        map.remove(uid);
        cached
    }

    /// Records a successful status write: `based_on` is the resourceVersion the write was
    /// conditioned on, `written` the object the API server answered with.
    pub fn wrote(&self, based_on: Option<&str>, mut written: SourceBuild) {
        let (Some(uid), Some(based_on)) = (written.uid(), based_on) else {
            return;
        };
        super::source_build::prune_source_build(&mut written);
        let mut map = self.by_uid.lock().unwrap_or_else(|e| e.into_inner());
        let mut superseded = match map.remove(&uid) {
            // A write planned from our previous answer: the cache may still show any version
            // before it.
            Some(previous) if previous.written.resource_version().as_deref() == Some(based_on) => {
                previous.superseded
            }
            _ => Vec::new(),
        };
        superseded.push(based_on.to_string());
        if superseded.len() > SUPERSEDED_KEPT {
            superseded.remove(0);
        }
        map.insert(
            uid,
            Entry {
                superseded,
                written: Arc::new(written),
            },
        );
    }

    /// Forgets a deleted SourceBuild.
    pub fn forget(&self, uid: &str) {
        self.by_uid
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
    }

    /// Objects whose last write the cache has not shown yet.
    pub fn unconfirmed(&self) -> usize {
        self.by_uid.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Phase;
    use serde_json::json;

    fn object(version: &str, phase: Option<&str>) -> SourceBuild {
        let mut value = json!({
            "apiVersion": "sourcebuild.dev/v1alpha1", "kind": "SourceBuild",
            "metadata": {"name": "app", "namespace": "team", "uid": "u", "resourceVersion": version,
                         "managedFields": [{"manager": "sourcebuild-operator"}]},
            "spec": {"source": {"git": {"url": "https://example.com/acme/app.git"}},
                     "output": {"image": "registry.example.com/team/app:1.0"}}
        });
        if let Some(phase) = phase {
            value["status"] = json!({"phase": phase});
        }
        serde_json::from_value(value).unwrap()
    }

    fn phase(sb: &SourceBuild) -> Option<Phase> {
        sb.status.as_ref().and_then(|s| s.phase)
    }

    #[test]
    fn a_stale_cache_is_overlaid_by_our_writes_until_it_catches_up() {
        let memo = StatusMemo::default();
        let stale = Arc::new(object("10", None));
        assert_eq!(
            phase(&memo.freshest(stale.clone())),
            None,
            "nothing written"
        );
        memo.wrote(Some("10"), object("11", Some("Pending")));
        // The cache still shows 10: plan from our answer, without its managed fields.
        let fresh = memo.freshest(stale.clone());
        assert_eq!(phase(&fresh), Some(Phase::Pending));
        assert!(fresh.managed_fields().is_empty());
        // A second write planned from that answer, before the watch showed the first.
        memo.wrote(Some("11"), object("12", Some("Running")));
        for cached in ["10", "11"] {
            let shown = memo.freshest(Arc::new(object(cached, None)));
            assert_eq!(
                shown.resource_version().as_deref(),
                Some("12"),
                "cache at {cached}"
            );
        }
        // The watch delivers our last write: the entry goes.
        let caught_up = memo.freshest(Arc::new(object("12", Some("Running"))));
        assert_eq!(phase(&caught_up), Some(Phase::Running));
        assert!(memo.unconfirmed() == 0);
    }

    #[test]
    fn any_version_our_writes_did_not_replace_wins() {
        let memo = StatusMemo::default();
        memo.wrote(Some("10"), object("11", Some("Pending")));
        // A user's spec change (or another replica's write) after ours.
        let theirs = memo.freshest(Arc::new(object("13", None)));
        assert_eq!(theirs.resource_version().as_deref(), Some("13"));
        assert!(memo.unconfirmed() == 0);
        // A write planned from the cache, not from our answer, starts a new chain.
        memo.wrote(Some("10"), object("11", Some("Pending")));
        memo.wrote(Some("20"), object("21", Some("Running")));
        let shown = memo.freshest(Arc::new(object("10", None)));
        assert_eq!(shown.resource_version().as_deref(), Some("10"));
    }

    #[test]
    fn a_deleted_source_build_is_forgotten() {
        let memo = StatusMemo::default();
        memo.wrote(Some("10"), object("11", Some("Pending")));
        memo.wrote(None, object("12", Some("Running")));
        assert_eq!(
            memo.unconfirmed(),
            1,
            "a write without a precondition is not recorded"
        );
        memo.forget("u");
        assert!(memo.unconfirmed() == 0);
    }
}
