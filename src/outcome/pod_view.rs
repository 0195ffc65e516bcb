//! Read access to the build Pod's spec and status, by container.

use k8s_openapi::api::core::v1::{Container, ContainerStateTerminated, ContainerStatus, Pod};

use crate::contract::{PrepareReport, PrepareResult};
use crate::pod::{BUILD_CONTAINER, PREPARE_CONTAINER};

/// Waiting reasons that mean a container cannot start without outside help. The Pod stays
/// Pending (the kubelet keeps retrying), but the user should see why.
const STUCK_WAITING_REASONS: [&str; 5] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// Read access to the parts of the Pod `BuildOutcome::from_pod` needs.
pub(super) struct PodView<'a> {
    pod: &'a Pod,
}

impl<'a> PodView<'a> {
    pub(super) fn new(pod: &'a Pod) -> Self {
        PodView { pod }
    }

    pub(super) fn phase(&self) -> Option<&'a str> {
        self.pod.status.as_ref()?.phase.as_deref()
    }

    pub(super) fn pod_reason(&self) -> Option<&'a str> {
        self.pod.status.as_ref()?.reason.as_deref()
    }

    pub(super) fn pod_message(&self) -> Option<&'a str> {
        self.pod.status.as_ref()?.message.as_deref()
    }

    pub(super) fn is_being_deleted(&self) -> bool {
        self.pod.metadata.deletion_timestamp.is_some()
    }

    pub(super) fn active_deadline_seconds(&self) -> Option<i64> {
        self.pod.spec.as_ref()?.active_deadline_seconds
    }

    pub(super) fn statuses(&self) -> impl Iterator<Item = &'a ContainerStatus> {
        let status = self.pod.status.as_ref();
        status
            .and_then(|s| s.init_container_statuses.as_ref())
            .into_iter()
            .flatten()
            .chain(
                status
                    .and_then(|s| s.container_statuses.as_ref())
                    .into_iter()
                    .flatten(),
            )
    }

    pub(super) fn status(&self, name: &str) -> Option<&'a ContainerStatus> {
        self.statuses().find(|s| s.name == name)
    }

    pub(super) fn terminated(&self, name: &str) -> Option<&'a ContainerStateTerminated> {
        self.status(name)?.state.as_ref()?.terminated.as_ref()
    }

    pub(super) fn prepare_terminated(&self) -> Option<&'a ContainerStateTerminated> {
        self.terminated(PREPARE_CONTAINER)
    }

    pub(super) fn build_terminated(&self) -> Option<&'a ContainerStateTerminated> {
        self.terminated(BUILD_CONTAINER)
    }

    pub(super) fn terminated_containers(
        &self,
    ) -> impl Iterator<Item = (&'a str, &'a ContainerStateTerminated)> {
        self.statuses().filter_map(|s| {
            let t = s.state.as_ref()?.terminated.as_ref()?;
            Some((s.name.as_str(), t))
        })
    }

    pub(super) fn started(&self, name: &str) -> bool {
        self.status(name)
            .and_then(|s| s.state.as_ref())
            .is_some_and(|st| st.running.is_some() || st.terminated.is_some())
    }

    pub(super) fn prepare_started(&self) -> bool {
        self.started(PREPARE_CONTAINER)
    }

    pub(super) fn build_started(&self) -> bool {
        self.started(BUILD_CONTAINER)
    }

    pub(super) fn build_running(&self) -> bool {
        self.running(BUILD_CONTAINER)
    }

    pub(super) fn running(&self, name: &str) -> bool {
        self.status(name)
            .and_then(|s| s.state.as_ref())
            .is_some_and(|st| st.running.is_some())
    }

    /// The provenance prepare reported, when it finished successfully.
    pub(super) fn provenance(&self) -> Option<PrepareResult> {
        let t = self.prepare_terminated().filter(|t| t.exit_code == 0)?;
        match serde_json::from_str(t.message.as_deref()?.trim()).ok()? {
            PrepareReport::Prepared(result) => Some(result),
            PrepareReport::Failed(_) => None,
        }
    }

    /// Containers waiting for a reason that needs outside help: (name, reason, message).
    pub(super) fn stuck_waiting(
        &self,
    ) -> impl Iterator<Item = (&'a str, &'a str, Option<&'a str>)> {
        self.statuses().filter_map(|s| {
            let waiting = s.state.as_ref()?.waiting.as_ref()?;
            let reason = waiting.reason.as_deref()?;
            STUCK_WAITING_REASONS.contains(&reason).then_some((
                s.name.as_str(),
                reason,
                waiting.message.as_deref(),
            ))
        })
    }

    pub(super) fn waiting_message(&self) -> Option<String> {
        if let Some((container, reason, message)) = self.stuck_waiting().next() {
            let image = self
                .image_of(container)
                .map_or(String::new(), |i| format!(" ({i})"));
            let detail = message.map_or(String::new(), |m| format!(": {m}"));
            return Some(format!(
                "container {container}{image} is waiting: {reason}{detail}"
            ));
        }
        let unschedulable = self
            .pod
            .status
            .as_ref()?
            .conditions
            .iter()
            .flatten()
            .find(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("Unschedulable")
            });
        if let Some(condition) = unschedulable {
            let detail = condition.message.as_deref().unwrap_or("no node fits");
            return Some(format!("the build Pod cannot be scheduled: {detail}"));
        }
        None
    }

    pub(super) fn container_spec(&self, name: &str) -> Option<&'a Container> {
        let spec = self.pod.spec.as_ref()?;
        spec.init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
            .find(|c| c.name == name)
    }

    pub(super) fn image_of(&self, name: &str) -> Option<&'a str> {
        self.container_spec(name)?.image.as_deref()
    }

    pub(super) fn memory_limit(&self, name: &str) -> Option<&'a str> {
        let limits = self
            .container_spec(name)?
            .resources
            .as_ref()?
            .limits
            .as_ref()?;
        limits.get("memory").map(|q| q.0.as_str())
    }

    /// The image Kaniko pushes to, from its `--destination=` argument.
    pub(super) fn destination(&self) -> Option<&'a str> {
        self.container_spec(BUILD_CONTAINER)?
            .args
            .iter()
            .flatten()
            .find_map(|a| a.strip_prefix("--destination="))
    }
}
