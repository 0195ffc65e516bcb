//! What the reconciler should do for one SourceBuild, decided without I/O.
//!
//! Input: the SourceBuild, its build Pods as the cache (or a confirming GET) sees them, the
//! operator settings and the time. Output: Pods to create and delete, the new status (only when it
//! differs), Events, and when to look again. The reconciler carries the plan out.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::api::{Phase, SourceBuild, SourceBuildStatus};
use crate::controller::status;
use crate::outcome::{BuildFailure, BuildOutcome, FailureReason, observe};
use crate::pod::{BuildSettings, build_pod, pod_name};
use crate::validation::validate_spec;

/// Severity of an Event, as Kubernetes names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// A step of a healthy build.
    Normal,
    /// Something the user should look at.
    Warning,
}

/// One Kubernetes Event to publish on the SourceBuild.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Normal or Warning.
    pub severity: Severity,
    /// CamelCase reason, for example `BuildStarted` or `AssembleFailed`.
    pub reason: String,
    /// Human-readable detail.
    pub message: String,
}

/// What to do for one SourceBuild.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// A build Pod to create (its name is deterministic, so a retry cannot make a second one).
    pub create: Option<Pod>,
    /// Build Pods to delete: superseded or timed out.
    pub delete: Vec<String>,
    /// The new status, only when it differs from the old one.
    pub status: Option<SourceBuildStatus>,
    /// Events for the transitions in this plan.
    pub events: Vec<Note>,
    /// Look again after this long even if nothing changes (the build deadline).
    pub requeue_after: Option<Duration>,
}

/// Pod names that may hold an unfinished build of an older generation: the one status recorded,
/// plus those of the generations in between (a spec can change twice before status catches up).
pub fn earlier_pod_names(sb: &SourceBuild) -> Vec<String> {
    let name = sb.name_any();
    let generation = sb.metadata.generation.unwrap_or(1);
    let status = sb.status.clone().unwrap_or_default();
    let first = status
        .observed_generation
        .unwrap_or(1)
        .max(generation - 32)
        .max(1);
    let mut names: Vec<String> = (first..generation).map(|g| pod_name(&name, g)).collect();
    if let Some(recorded) = status.pod_name
        && !names.contains(&recorded)
        && recorded != pod_name(&name, generation)
    {
        names.push(recorded);
    }
    names
}

/// Decides what to do. `current` is the Pod of the current generation if it exists;
/// `earlier` are Pods found under [`earlier_pod_names`].
pub fn plan(
    sb: &SourceBuild,
    current: Option<&Pod>,
    earlier: &[&Pod],
    settings: &BuildSettings,
    now: Timestamp,
) -> Plan {
    let generation = sb.metadata.generation.unwrap_or(1);
    let old = sb.status.clone().unwrap_or_default();
    let name = pod_name(&sb.name_any(), generation);
    let mut plan = Plan::default();

    // Only the latest spec matters: an unfinished build of an older generation is stopped.
    for pod in earlier {
        if is_active(pod) {
            plan.delete.push(pod.name_any());
            plan.events.push(Note {
                severity: Severity::Normal,
                reason: "Superseded".into(),
                message: format!(
                    "stopped build Pod {} because the spec changed (generation {generation})",
                    pod.name_any()
                ),
            });
        }
    }

    if old.observed_generation == Some(generation) && old.phase.is_some_and(Phase::is_final) {
        return plan;
    }

    let new = match validate_spec(&sb.spec) {
        Err(invalid) => {
            let failure = controller_failure(FailureReason::InvalidSpec, invalid.to_string());
            status::failed(&old, generation, None, &failure, None, now)
        }
        Ok(()) => match current {
            None => observe_missing_pod(sb, &old, generation, &name, settings, now, &mut plan),
            Some(pod) => observe_pod(sb, &old, generation, &name, pod, now, &mut plan),
        },
    };
    record(&mut plan, &old, new);
    plan
}

fn observe_missing_pod(
    sb: &SourceBuild,
    old: &SourceBuildStatus,
    generation: i64,
    name: &str,
    settings: &BuildSettings,
    now: Timestamp,
    plan: &mut Plan,
) -> SourceBuildStatus {
    if old.observed_generation == Some(generation) && old.pod_name.as_deref() == Some(name) {
        // We created it and the reconciler confirmed with the API server that it is gone.
        let failure = controller_failure(
            FailureReason::PodDeleted,
            format!("build Pod {name} was deleted before the build finished"),
        );
        return status::failed(
            old,
            generation,
            Some(name),
            &failure,
            old.start_time.clone(),
            now,
        );
    }
    match build_pod(sb, settings) {
        Ok(pod) => {
            plan.create = Some(pod);
            plan.requeue_after = Some(sb.spec.timeout());
            status::started(old, generation, name, now)
        }
        Err(error) => {
            let failure = controller_failure(FailureReason::InvalidSpec, error.to_string());
            status::failed(old, generation, None, &failure, None, now)
        }
    }
}

fn observe_pod(
    sb: &SourceBuild,
    old: &SourceBuildStatus,
    generation: i64,
    name: &str,
    pod: &Pod,
    now: Timestamp,
    plan: &mut Plan,
) -> SourceBuildStatus {
    // After a controller restart that lost the status write, the Pod's age is the next best start.
    let start = old
        .start_time
        .clone()
        .filter(|_| old.observed_generation == Some(generation))
        .or_else(|| pod.metadata.creation_timestamp.clone())
        .unwrap_or(Time(now));
    let outcome = observe(pod);
    let timeout = sb.spec.timeout();
    let elapsed = now.duration_since(start.0).unsigned_abs();
    match outcome {
        BuildOutcome::Succeeded(result) => {
            status::succeeded(old, generation, name, &result, start, now)
        }
        BuildOutcome::Failed(failure) => {
            status::failed(old, generation, Some(name), &failure, Some(start), now)
        }
        BuildOutcome::Pending { message } if elapsed >= timeout => {
            plan.delete.push(name.to_string());
            let waiting = message.map(|m| format!(": {m}")).unwrap_or_default();
            let failure = controller_failure(
                FailureReason::Timeout,
                format!(
                    "build did not finish within {} (still Pending{waiting})",
                    humantime::format_duration(timeout)
                ),
            );
            status::failed(old, generation, Some(name), &failure, Some(start), now)
        }
        BuildOutcome::Running if elapsed >= timeout => {
            plan.delete.push(name.to_string());
            let failure = controller_failure(
                FailureReason::Timeout,
                format!(
                    "build did not finish within {}",
                    humantime::format_duration(timeout)
                ),
            );
            status::failed(old, generation, Some(name), &failure, Some(start), now)
        }
        BuildOutcome::Pending { message } => {
            plan.requeue_after = Some(timeout.saturating_sub(elapsed));
            status::in_progress(
                old,
                generation,
                name,
                Phase::Pending,
                message.as_deref(),
                start,
                now,
            )
        }
        BuildOutcome::Running => {
            plan.requeue_after = Some(timeout.saturating_sub(elapsed));
            status::in_progress(old, generation, name, Phase::Running, None, start, now)
        }
    }
}

/// Keeps the status only if it changed, with an Event for each phase transition.
fn record(plan: &mut Plan, old: &SourceBuildStatus, new: SourceBuildStatus) {
    if &new == old {
        return;
    }
    let transition = new.phase != old.phase || new.observed_generation != old.observed_generation;
    if transition && let Some(phase) = new.phase {
        let succeeded = new.condition(status::SUCCEEDED);
        let note = match phase {
            Phase::Pending => Note {
                severity: Severity::Normal,
                reason: "BuildStarted".into(),
                message: succeeded.map(|c| c.message.clone()).unwrap_or_default(),
            },
            Phase::Running => Note {
                severity: Severity::Normal,
                reason: "BuildRunning".into(),
                message: succeeded.map(|c| c.message.clone()).unwrap_or_default(),
            },
            Phase::Succeeded => Note {
                severity: Severity::Normal,
                reason: "BuildSucceeded".into(),
                message: succeeded.map(|c| c.message.clone()).unwrap_or_default(),
            },
            Phase::Failed => Note {
                severity: Severity::Warning,
                reason: succeeded
                    .map(|c| c.reason.clone())
                    .unwrap_or_else(|| "BuildFailed".into()),
                message: succeeded.map(|c| c.message.clone()).unwrap_or_default(),
            },
        };
        plan.events.push(note);
    }
    if new.phase.is_some_and(Phase::is_final) {
        plan.requeue_after = None;
    }
    plan.status = Some(new);
}

fn controller_failure(reason: FailureReason, message: String) -> BuildFailure {
    BuildFailure {
        reason,
        message,
        log_snippet: None,
        provenance: None,
    }
}

/// A Pod that may still be building: not finished and not already being deleted.
fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}
