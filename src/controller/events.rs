//! Kubernetes Events on SourceBuilds, behind a small trait so tests can see what was published.

use async_trait::async_trait;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tracing::warn;

use crate::api::SourceBuild;
use crate::controller::plan::{Note, Severity};

/// Where the controller publishes Events.
#[async_trait]
pub trait EventSink: Send + Sync {
    /// Publishes one Event about `sb`. Failing to publish never fails a reconcile.
    async fn publish(&self, sb: &SourceBuild, note: &Note);
}

/// Publishes through the `events.k8s.io` API.
pub struct KubeEvents {
    recorder: Recorder,
}

impl KubeEvents {
    /// `instance` tells replicas apart (the Pod name); the controller name is fixed.
    pub fn new(client: kube::Client, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: crate::api::FIELD_MANAGER.to_string(),
            instance,
        };
        Self {
            recorder: Recorder::new(client, reporter),
        }
    }
}

#[async_trait]
impl EventSink for KubeEvents {
    async fn publish(&self, sb: &SourceBuild, note: &Note) {
        let event = Event {
            type_: match note.severity {
                Severity::Normal => EventType::Normal,
                Severity::Warning => EventType::Warning,
            },
            reason: note.reason.clone(),
            note: Some(truncate(&note.message, 1024)),
            action: "Build".into(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, &sb.object_ref(&())).await {
            warn!(%error, reason = note.reason, "could not publish Event");
        }
    }
}

/// Cuts `text` to at most `limit` bytes on a character boundary (the Events API limit is 1 kB).
fn truncate(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("abc", 10), "abc");
        assert_eq!(truncate("ééé", 3), "é");
        assert_eq!(truncate(&"x".repeat(2000), 1024).len(), 1024);
    }
}
