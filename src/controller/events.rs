//! Kubernetes Events on SourceBuilds, behind a small trait so tests can see what was published.

use async_trait::async_trait;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Resource};
use tracing::warn;

use crate::api::SourceBuild;

/// Severity of an Event, as Kubernetes names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// A step of a healthy build.
    Normal,
    /// Something the user should look at.
    Warning,
}

/// One Kubernetes Event to publish on the SourceBuild, as a plan decides it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Normal or Warning.
    pub severity: Severity,
    /// CamelCase reason, for example `BuildStarted` or `AssembleFailed`.
    pub reason: String,
    /// Human-readable detail.
    pub message: String,
}

/// The Event of a build that starts.
pub const BUILD_STARTED: &str = "BuildStarted";
/// The Event of a build that pushed its image.
pub const BUILD_SUCCEEDED: &str = "BuildSucceeded";
/// The Warning of a build Pod that cannot start (no node fits, an image cannot be pulled).
pub const POD_PENDING: &str = "PodPending";

impl Event {
    /// `BuildStarted` and `BuildSucceeded`: every build has them, and its status (with
    /// `status.history`) records the same, so they are published only when the operator is
    /// asked to (`--routine-events`). Each is an API write on every build's path.
    pub fn is_routine(&self) -> bool {
        self.severity == Severity::Normal
            && (self.reason == BUILD_STARTED || self.reason == BUILD_SUCCEEDED)
    }
}

/// Where the controller publishes Events.
#[async_trait]
pub trait EventSink: Send + Sync {
    /// Publishes one Event about `sb`. Failing to publish never fails a reconcile.
    async fn publish(&self, sb: &SourceBuild, event: &Event);
}

/// Publishes through the `events.k8s.io` API, one create per Event.
///
/// Not kube-runtime's `Recorder`: it keeps every Event it published for six minutes (to count
/// repeats as a series) and scans them all on each publish, which at thousands of builds a
/// minute is tens of MiB and most of the operator's CPU. Our Events are one per phase
/// transition of one build, so they never repeat and there is nothing to count.
pub struct KubeEvents {
    client: kube::Client,
    instance: Option<String>,
}

impl KubeEvents {
    /// `instance` tells replicas apart (the Pod name); the controller name is fixed.
    pub fn new(client: kube::Client, instance: Option<String>) -> Self {
        Self { client, instance }
    }
}

/// The Event for `event` about the object `regarding`, as the Events API wants it (the same
/// fields kube-runtime's `Recorder` fills).
pub fn event_for(
    event: &Event,
    regarding: ObjectReference,
    instance: Option<&str>,
    now: Timestamp,
) -> K8sEvent {
    let controller = crate::api::FIELD_MANAGER;
    K8sEvent {
        action: Some("Build".into()),
        reason: Some(event.reason.clone()),
        note: Some(truncate(&event.message, 1024)),
        event_time: Some(MicroTime(now)),
        type_: Some(
            match event.severity {
                Severity::Normal => "Normal",
                Severity::Warning => "Warning",
            }
            .into(),
        ),
        reporting_controller: Some(controller.into()),
        reporting_instance: Some(instance.unwrap_or(controller).into()),
        metadata: ObjectMeta {
            namespace: regarding.namespace.clone(),
            name: Some(format!(
                "{}.{:x}",
                regarding.name.as_deref().unwrap_or(controller),
                now.as_nanosecond()
            )),
            ..Default::default()
        },
        regarding: Some(regarding),
        ..Default::default()
    }
}

#[async_trait]
impl EventSink for KubeEvents {
    async fn publish(&self, sb: &SourceBuild, event: &Event) {
        let object = event_for(
            event,
            sb.object_ref(&()),
            self.instance.as_deref(),
            Timestamp::now(),
        );
        let namespace = object.metadata.namespace.clone().unwrap_or_default();
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &namespace);
        if let Err(error) = api.create(&PostParams::default(), &object).await {
            warn!(%error, reason = event.reason, "could not publish Event");
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
    use super::*;

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("abc", 10), "abc");
        assert_eq!(truncate("ééé", 3), "é");
        assert_eq!(truncate(&"x".repeat(2000), 1024).len(), 1024);
    }

    #[test]
    fn event_names_the_object_reason_and_reporter() {
        let regarding = ObjectReference {
            api_version: Some("sourcebuild.dev/v1alpha1".into()),
            kind: Some("SourceBuild".into()),
            name: Some("app".into()),
            namespace: Some("team".into()),
            uid: Some("u-1".into()),
            ..Default::default()
        };
        let event = Event {
            severity: Severity::Warning,
            reason: "AssembleFailed".into(),
            message: "x".repeat(3000),
        };
        let now: Timestamp = "2026-12-02T03:00:00Z".parse().unwrap();
        let e = event_for(&event, regarding.clone(), Some("op-0"), now);
        assert_eq!(e.metadata.namespace.as_deref(), Some("team"));
        assert_eq!(
            e.metadata.name.as_deref(),
            Some(format!("app.{:x}", now.as_nanosecond()).as_str())
        );
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        assert_eq!(e.reason.as_deref(), Some("AssembleFailed"));
        assert_eq!(e.note.as_ref().map(String::len), Some(1024));
        assert_eq!(e.regarding, Some(regarding.clone()));
        assert_eq!(
            e.reporting_controller.as_deref(),
            Some(crate::api::FIELD_MANAGER)
        );
        assert_eq!(e.reporting_instance.as_deref(), Some("op-0"));
        let e = event_for(&event, regarding, None, now);
        assert_eq!(
            e.reporting_instance.as_deref(),
            Some(crate::api::FIELD_MANAGER)
        );
    }
}
