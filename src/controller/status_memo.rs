//! The status each SourceBuild was last given by this process, until the watch shows it.
//!
//! A reconcile can start from a cached SourceBuild older than our own last status write (a
//! Pod event arrives before the SourceBuild's): it would write the same status again and
//! publish its Event twice. Remembering a hash of what was written (not the status itself, so
//! memory stays small) lets such a reconcile see that nothing is left to do.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

use crate::api::SourceBuildStatus;

#[derive(Default)]
pub struct StatusMemo {
    written: Mutex<HashMap<String, u64>>,
}

fn fingerprint(status: &SourceBuildStatus) -> u64 {
    let mut hasher = DefaultHasher::new();
    serde_json::to_string(status)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

impl StatusMemo {
    /// Whether writing `planned` for object `uid` (whose cached status is `cached`) would only
    /// repeat our last write. Forgets the entry once the cache shows that write.
    pub fn is_repeat(
        &self,
        uid: &str,
        cached: Option<&SourceBuildStatus>,
        planned: &SourceBuildStatus,
    ) -> bool {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        let Some(&last) = written.get(uid) else {
            return false;
        };
        if cached.is_some_and(|c| fingerprint(c) == last) {
            written.remove(uid);
            return false;
        }
        fingerprint(planned) == last
    }

    /// Records a successful status write.
    pub fn wrote(&self, uid: &str, status: &SourceBuildStatus) {
        self.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(uid.to_string(), fingerprint(status));
    }

    /// Objects whose last write the cache has not shown yet.
    pub fn len(&self) -> usize {
        self.written.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Phase;

    fn status(phase: Phase) -> SourceBuildStatus {
        SourceBuildStatus {
            phase: Some(phase),
            ..Default::default()
        }
    }

    #[test]
    fn a_stale_cache_does_not_write_again() {
        let memo = StatusMemo::default();
        let (pending, running) = (status(Phase::Pending), status(Phase::Running));
        assert!(!memo.is_repeat("u", None, &pending), "nothing written yet");
        memo.wrote("u", &pending);
        // The cache still shows no status: planning Pending again is a repeat, Running is not.
        assert!(memo.is_repeat("u", None, &pending));
        assert!(!memo.is_repeat("u", None, &running));
        assert!(!memo.is_repeat("other", None, &pending));
        // The cache caught up: the entry goes, and a later identical plan is judged normally.
        assert!(!memo.is_repeat("u", Some(&pending), &running));
        assert!(memo.is_empty());
    }
}
