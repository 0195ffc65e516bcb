//! What the reconciler should do for one SourceBuild, decided without I/O.
//!
//! Input: the SourceBuild, its build Pods as the cache (or a confirming GET) sees them, the
//! operator settings and the time. Output: Pods to create and delete, the new status (only when it
//! differs), Events, and when to look again. The reconciler carries the plan out.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;

use crate::api::{
    DEFAULT_FAILED_LIMIT, DEFAULT_SUCCEEDED_LIMIT, Phase, REBUILD_ANNOTATION, SourceBuild,
    SourceBuildStatus, Trigger,
};
use crate::controller::poll;
use crate::controller::status::{self, NewBuild};
use crate::outcome::{BuildFailure, BuildOutcome, is_transient, missing_reference};
use crate::pod::{BuildSettings, build_pod, build_pod_name};
use crate::reason::FailureReason;
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

/// The Event of a build that starts.
pub const BUILD_STARTED: &str = "BuildStarted";
/// The Event of a build that pushed its image.
pub const BUILD_SUCCEEDED: &str = "BuildSucceeded";
/// The Warning of a build Pod that cannot start (no node fits, an image cannot be pulled).
pub const POD_PENDING: &str = "PodPending";

impl Note {
    /// `BuildStarted` and `BuildSucceeded`: every build has them, and its status (with
    /// `status.history`) records the same, so they are published only when the operator is
    /// asked to (`--routine-events`). Each is an API write on every build's path.
    pub fn is_routine(&self) -> bool {
        self.severity == Severity::Normal
            && (self.reason == BUILD_STARTED || self.reason == BUILD_SUCCEEDED)
    }
}

/// What to do for one SourceBuild.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// A build Pod to create (its name is deterministic, so a retry cannot make a second one).
    pub create: Option<Pod>,
    /// Build Pods to delete: superseded, timed out, cancelled or beyond retention.
    pub delete: Vec<String>,
    /// The new status, only when it differs from the old one.
    pub status: Option<SourceBuildStatus>,
    /// Events for the transitions in this plan.
    pub events: Vec<Note>,
    /// Look again after this long even if nothing changes (the build deadline).
    pub requeue_after: Option<Duration>,
}

/// The build this reconcile is about: the one status records, or a new one that must start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The spec generation.
    pub generation: i64,
    /// The build's number within the generation.
    pub build: i64,
    /// Its Pod's name, deterministic so that a retried create can never make a second Pod.
    pub pod_name: String,
    /// Set when the build starts in this reconcile.
    pub start: Option<NewBuild>,
}

/// Which build is current, and whether a new one starts: a new generation (also after a
/// failure), a new value of the rebuild annotation, a new head of a polled branch, or a due
/// retry. Nothing starts while
/// `spec.suspend` is true.
pub fn target(sb: &SourceBuild, now: Timestamp) -> Target {
    let name = sb.name_any();
    let generation = sb.metadata.generation.unwrap_or(1);
    let old = sb.status.clone().unwrap_or_default();
    let rebuild = sb.annotations().get(REBUILD_ANNOTATION).cloned();
    let same_generation = old.observed_generation == Some(generation);
    let current = if same_generation {
        old.build.unwrap_or(1)
    } else {
        1
    };
    let existing = |build: i64| Target {
        generation,
        build,
        pod_name: build_pod_name(&name, generation, build),
        start: None,
    };
    let starting = |build: i64, trigger: Trigger, attempt: i32, revision: Option<String>| {
        let pod_name = build_pod_name(&name, generation, build);
        Target {
            generation,
            build,
            pod_name: pod_name.clone(),
            start: Some(NewBuild {
                generation,
                build,
                pod_name,
                trigger,
                attempt,
                rebuild: rebuild.clone(),
                revision,
            }),
        }
    };
    if sb.spec.suspend {
        return existing(current);
    }
    if !same_generation {
        return starting(1, Trigger::ConfigChange, 1, None);
    }
    if rebuild.is_some() && rebuild != old.rebuild {
        return starting(current + 1, Trigger::Manual, 1, None);
    }
    if let Some(head) = poll::new_head(sb) {
        return starting(current + 1, Trigger::SourceChange, 1, Some(head));
    }
    let retry_due = old.phase == Some(Phase::Failed)
        && old.next_attempt_time.as_ref().is_some_and(|t| t.0 <= now);
    if retry_due {
        let trigger = old.trigger.unwrap_or(Trigger::ConfigChange);
        // A retried SourceChange build builds the same commit again.
        let revision = old
            .source
            .as_ref()
            .and_then(|s| s.built_revision.clone())
            .filter(|_| trigger == Trigger::SourceChange);
        return starting(current + 1, trigger, old.attempt.unwrap_or(1) + 1, revision);
    }
    existing(current)
}

/// The API server refused to create the build Pod (`message`). A missing ServiceAccount fails
/// the build at once (the ServiceAccount admission plugin will refuse every retry); `None` for
/// any other refusal, which the reconcile retries.
pub fn creation_refused(
    sb: &SourceBuild,
    planned: &Plan,
    message: &str,
    now: Timestamp,
) -> Option<Plan> {
    let missing =
        missing_reference(message).filter(|m| m.reason == FailureReason::ServiceAccountNotFound)?;
    let started = planned.status.as_ref()?;
    let generation = started.observed_generation?;
    let failure = controller_failure(missing.reason, missing.describe(message));
    let failed = status::failed(started, generation, None, &failure, None, now);
    let old = sb.status.clone().unwrap_or_default();
    let mut plan = Plan {
        delete: planned.delete.clone(),
        events: planned
            .events
            .iter()
            .filter(|n| n.reason != BUILD_STARTED)
            .cloned()
            .collect(),
        ..Plan::default()
    };
    record(&mut plan, &old, settle(sb, failed, None, now));
    Some(plan)
}

/// Decides what to do for `target` (from [`target`]). `current` is the target's Pod if it
/// exists; `others` are the SourceBuild's other build Pods; `pod_events` the messages of the
/// current Pod's Warning Events (the kubelet's mount errors).
pub fn plan(
    sb: &SourceBuild,
    target: &Target,
    current: Option<&Pod>,
    others: &[&Pod],
    pod_events: &[String],
    settings: &BuildSettings,
    now: Timestamp,
) -> Plan {
    let generation = target.generation;
    let old = sb.status.clone().unwrap_or_default();
    let name = target.pod_name.as_str();
    let mut plan = Plan::default();

    // Only the latest build matters: an unfinished build of an older generation or an earlier
    // build of this one is stopped.
    for pod in others {
        if is_active(pod) {
            plan.delete.push(pod.name_any());
            let why = if sb.spec.suspend {
                "spec.suspend is true".to_string()
            } else {
                format!("a newer build ({name}) replaces it")
            };
            plan.events.push(Note {
                severity: Severity::Normal,
                reason: "Superseded".into(),
                message: format!("stopped build Pod {} because {why}", pod.name_any()),
            });
        }
    }

    // A running build that is replaced or suspended goes into history as Cancelled.
    let closed = if sb.spec.suspend {
        status::close_unfinished(&old, "Cancelled", sb.spec.history_limit(), now)
    } else if target.start.is_some() {
        status::close_unfinished(&old, "Superseded", sb.spec.history_limit(), now)
    } else {
        old.clone()
    };
    let new = if sb.spec.suspend {
        let running = current.filter(|pod| is_active(pod));
        if let Some(pod) = running {
            plan.delete.push(pod.name_any());
        }
        let stopped = running
            .map(|pod| pod.name_any())
            .or_else(|| plan.delete.first().cloned());
        let settled = old.observed_generation == Some(generation)
            && old.phase.is_some_and(Phase::is_final)
            && stopped.is_none();
        (!settled).then(|| status::cancelled(&closed, generation, stopped.as_deref(), now))
    } else if let Some(start) = &target.start {
        Some(start_build(
            sb, &closed, start, current, settings, now, &mut plan,
        ))
    } else if old.observed_generation == Some(generation) && old.phase.is_some_and(Phase::is_final)
    {
        None
    } else {
        Some(match validate_spec(&sb.spec) {
            Err(invalid) => {
                let failure = controller_failure(FailureReason::InvalidSpec, invalid.to_string());
                status::failed(&old, generation, None, &failure, None, now)
            }
            Ok(()) => match current {
                None => observe_missing_pod(&old, generation, name, now),
                Some(pod) => observe_pod(sb, &old, pod, pod_events, now, &mut plan),
            },
        })
    };
    let new = new.map(|status| settle(sb, status, current, now));
    if let Some(new) = new {
        record(&mut plan, &old, new);
    }
    let status_now = plan.status.clone().unwrap_or(old);
    if let Some(at) = status_now
        .next_attempt_time
        .as_ref()
        .filter(|_| !sb.spec.suspend && status_now.phase == Some(Phase::Failed))
    {
        let wait = Duration::try_from(at.0.duration_since(now)).unwrap_or_default();
        plan.requeue_after = Some(plan.requeue_after.map_or(wait, |r| r.min(wait)));
    }
    // Retention judges the current Pod by the status already stored, not the one planned.
    retention(sb, sb.status.as_ref(), current, others, now, &mut plan);
    if let Some(wait) = poll::next_check(sb, now) {
        plan.requeue_after = Some(plan.requeue_after.map_or(wait, |r| r.min(wait)));
    }
    plan
}

/// The SourceBuild with its git source pinned to `commit`, so the build Pod checks out exactly
/// what polling saw (and the prepare step is not told to poll).
fn pinned(sb: &SourceBuild, commit: &str) -> SourceBuild {
    let mut pinned = sb.clone();
    if let Some(git) = pinned.spec.source.git.as_mut() {
        git.revision = Some(commit.to_string());
        git.poll_interval = None;
    }
    pinned
}

/// A build starts: create its Pod, unless it exists already (a status write was lost), in
/// which case it is observed like any other.
fn start_build(
    sb: &SourceBuild,
    old: &SourceBuildStatus,
    start: &NewBuild,
    current: Option<&Pod>,
    settings: &BuildSettings,
    now: Timestamp,
    plan: &mut Plan,
) -> SourceBuildStatus {
    let begun = status::started(old, start, now);
    let pinned_sb;
    let sb = match &start.revision {
        Some(commit) => {
            if start.attempt == 1 {
                plan.events.push(Note {
                    severity: Severity::Normal,
                    reason: "SourceChanged".into(),
                    message: format!("{} moved to {commit}", poll::describe(sb)),
                });
            }
            pinned_sb = pinned(sb, commit);
            &pinned_sb
        }
        None => sb,
    };
    if start.attempt > 1 {
        plan.events.push(Note {
            severity: Severity::Normal,
            reason: "Retrying".into(),
            message: format!(
                "attempt {} of generation {} after {}",
                start.attempt,
                start.generation,
                old.condition(status::SUCCEEDED)
                    .map_or("a transient failure", |c| c.reason.as_str())
            ),
        });
    }
    if let Err(invalid) = validate_spec(&sb.spec) {
        let failure = controller_failure(FailureReason::InvalidSpec, invalid.to_string());
        let mut status = status::failed(&begun, start.generation, None, &failure, None, now);
        status.start_time = None;
        return status;
    }
    if let Some(pod) = current {
        let mut begun = begun;
        begun.start_time = pod.metadata.creation_timestamp.clone().or(begun.start_time);
        return observe_pod(sb, &begun, pod, &[], now, plan);
    }
    match build_pod(sb, settings) {
        Ok(mut pod) => {
            pod.metadata.name = Some(start.pod_name.clone());
            plan.create = Some(pod);
            plan.requeue_after = Some(sb.spec.timeout());
            begun
        }
        Err(error) => {
            let failure = controller_failure(FailureReason::InvalidSpec, error.to_string());
            status::failed(&begun, start.generation, None, &failure, None, now)
        }
    }
}

/// The final touches every new status gets: a retry time for a transient failure, and the
/// history entry of a finished build.
fn settle(
    sb: &SourceBuild,
    mut status: SourceBuildStatus,
    pod: Option<&Pod>,
    now: Timestamp,
) -> SourceBuildStatus {
    if status.phase == Some(Phase::Failed) && status.next_attempt_time.is_none() {
        let attempt = status.attempt.unwrap_or(1);
        let limit = sb.spec.retry_limit();
        let transient = status.condition(status::SUCCEEDED).is_some_and(|c| {
            is_transient(&c.reason, &c.message, status.log_snippet.as_deref(), pod)
        });
        if transient && attempt <= limit {
            let wait = sb.spec.retry_backoff(attempt);
            let at = now
                .checked_add(SignedDuration::try_from(wait).unwrap_or(SignedDuration::MAX))
                .unwrap_or(now);
            status = status::retry_at(status, at, attempt, limit);
        }
    }
    status::record_history(&mut status, sb.spec.history_limit());
    status
}

fn observe_missing_pod(
    old: &SourceBuildStatus,
    generation: i64,
    name: &str,
    now: Timestamp,
) -> SourceBuildStatus {
    // The reconciler confirmed with the API server that the Pod we created is gone.
    let failure = controller_failure(
        FailureReason::PodDeleted,
        format!("build Pod {name} was deleted before the build finished"),
    );
    status::failed(
        old,
        generation,
        Some(name),
        &failure,
        old.start_time.clone(),
        now,
    )
}

/// The build in `pod` (of the SourceBuild's current generation) as status.
fn observe_pod(
    sb: &SourceBuild,
    old: &SourceBuildStatus,
    pod: &Pod,
    pod_events: &[String],
    now: Timestamp,
    plan: &mut Plan,
) -> SourceBuildStatus {
    let generation = sb.metadata.generation.unwrap_or(1);
    let pod_name = pod.name_any();
    let name = pod_name.as_str();
    // After a controller restart that lost the status write, the Pod's age is the next best start.
    let start = old
        .start_time
        .clone()
        .filter(|_| old.observed_generation == Some(generation))
        .or_else(|| pod.metadata.creation_timestamp.clone())
        .unwrap_or(Time(now));
    let outcome = BuildOutcome::from_pod(pod);
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
        BuildOutcome::Pending { .. }
            if let Some((missing, event)) = pod_events
                .iter()
                .find_map(|m| missing_reference(m).map(|r| (r, m))) =>
        {
            // The kubelet retries the mount until the deadline; nothing in the build can fix
            // a missing object, so the build fails now and its stuck Pod goes.
            plan.delete.push(name.to_string());
            let failure = controller_failure(
                missing.reason,
                format!("build Pod {name} cannot start: {}", missing.describe(event)),
            );
            status::failed(old, generation, Some(name), &failure, Some(start), now)
        }
        BuildOutcome::Pending {
            message: Some(stuck),
        } => {
            // A mount failure wakes the controller through the kubelet's Event (see
            // `mount_failures`); otherwise only the timeout needs a look.
            plan.requeue_after = Some(timeout.saturating_sub(elapsed));
            status::in_progress(
                old,
                generation,
                name,
                Phase::Pending,
                Some(&stuck),
                start,
                now,
            )
        }
        BuildOutcome::Pending { message: None } | BuildOutcome::Running => {
            plan.requeue_after = Some(timeout.saturating_sub(elapsed));
            // A Pod on its way (scheduled, pulling, fetching, building) is all one Running:
            // the status written when the build started stays as it is, with no write.
            let under_way = old.observed_generation == Some(generation)
                && old.pod_name.as_deref() == Some(name)
                && old.phase == Some(Phase::Running);
            if under_way {
                old.clone()
            } else {
                status::in_progress(old, generation, name, Phase::Running, None, start, now)
            }
        }
    }
}

/// Keeps the status only if it changed, with an Event when a build starts and when it ends.
fn record(plan: &mut Plan, old: &SourceBuildStatus, new: SourceBuildStatus) {
    if &new == old {
        return;
    }
    let new_build = new.observed_generation != old.observed_generation || new.build != old.build;
    let transition = new_build || new.phase != old.phase;
    if transition {
        plan.events.extend(transition_notes(new_build, &new));
    }
    if new.phase.is_some_and(Phase::is_final) {
        plan.requeue_after = None;
    }
    plan.status = Some(new);
}

/// The Events of entering `new`'s phase (`new_build`: in a build status did not record yet). A
/// build that starts gets `BuildStarted` (a routine Event, see [`Note::is_routine`]); back to
/// Running from a stuck Pending gets none (the phase shows it); a Pod that is stuck gets a
/// Warning, also when it is the first thing status records of its build.
fn transition_notes(new_build: bool, new: &SourceBuildStatus) -> Vec<Note> {
    let started = new_build && matches!(new.phase, Some(Phase::Pending | Phase::Running));
    let message = new
        .condition(status::SUCCEEDED)
        .map(|c| c.message.clone())
        .unwrap_or_default();
    let start = started.then(|| Note {
        severity: Severity::Normal,
        reason: BUILD_STARTED.into(),
        message: message.clone(),
    });
    let phase = new.phase.and_then(|phase| phase_note(phase, new));
    start.into_iter().chain(phase).collect()
}

/// The Event of a build entering `phase`, but for its start.
fn phase_note(phase: Phase, new: &SourceBuildStatus) -> Option<Note> {
    let succeeded = new.condition(status::SUCCEEDED).cloned();
    let (severity, reason) = match phase {
        Phase::Running => return None,
        Phase::Pending => (Severity::Warning, POD_PENDING.into()),
        Phase::Succeeded => (Severity::Normal, BUILD_SUCCEEDED.into()),
        Phase::Cancelled => (Severity::Normal, "Cancelled".to_string()),
        Phase::Failed => (
            Severity::Warning,
            succeeded
                .as_ref()
                .map(|c| c.reason.clone())
                .unwrap_or_else(|| "BuildFailed".into()),
        ),
    };
    Some(Note {
        severity,
        reason,
        message: succeeded.map(|c| c.message).unwrap_or_default(),
    })
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

/// Finished build Pods beyond `spec.retention`'s limits or older than its TTL are deleted. The
/// current build's Pod is spared until status records its outcome: deleting it first would
/// turn a lost status write into `PodDeleted`.
fn retention(
    sb: &SourceBuild,
    stored: Option<&SourceBuildStatus>,
    current: Option<&Pod>,
    others: &[&Pod],
    now: Timestamp,
    plan: &mut Plan,
) {
    let retention = sb.spec.retention.clone().unwrap_or_default();
    let limit =
        |n: Option<i32>, default: usize| n.map_or(default, |n| usize::try_from(n).unwrap_or(0));
    let succeeded_limit = limit(retention.succeeded_limit, DEFAULT_SUCCEEDED_LIMIT);
    let failed_limit = limit(retention.failed_limit, DEFAULT_FAILED_LIMIT);
    let ttl = retention.ttl_after_finished.map(Duration::from);
    let current_recorded = current.filter(|pod| {
        stored.is_some_and(|status| {
            status.phase.is_some_and(Phase::is_final)
                && status.pod_name.as_deref() == Some(pod.name_any().as_str())
        })
    });
    let mut finished: Vec<(Timestamp, bool, String)> = others
        .iter()
        .copied()
        .chain(current_recorded)
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .filter(|pod| !plan.delete.contains(&pod.name_any()))
        .filter_map(|pod| {
            let succeeded = match BuildOutcome::from_pod(pod) {
                BuildOutcome::Succeeded(_) => true,
                BuildOutcome::Failed(_) => false,
                _ => return None,
            };
            Some((finished_at(pod).unwrap_or(now), succeeded, pod.name_any()))
        })
        .collect();
    // Newest first; the name breaks ties so the choice is stable.
    finished.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.2.cmp(&a.2)));
    let (mut kept_succeeded, mut kept_failed) = (0, 0);
    let mut next_expiry: Option<Duration> = None;
    for (at, succeeded, name) in finished {
        let kept = if succeeded {
            &mut kept_succeeded
        } else {
            &mut kept_failed
        };
        let age = Duration::try_from(now.duration_since(at)).unwrap_or_default();
        let expired = ttl.is_some_and(|ttl| age >= ttl);
        if *kept
            >= if succeeded {
                succeeded_limit
            } else {
                failed_limit
            }
            || expired
        {
            plan.events.push(Note {
                severity: Severity::Normal,
                reason: "PodCleanedUp".into(),
                message: format!("deleted finished build Pod {name} (spec.retention)"),
            });
            plan.delete.push(name);
        } else {
            *kept += 1;
            if let Some(ttl) = ttl {
                let left = ttl.saturating_sub(age);
                next_expiry = Some(next_expiry.map_or(left, |n| n.min(left)));
            }
        }
    }
    if let Some(left) = next_expiry {
        plan.requeue_after = Some(plan.requeue_after.map_or(left, |r| r.min(left)));
    }
}

/// When a finished Pod's last container ended; its creation time when no container says.
fn finished_at(pod: &Pod) -> Option<Timestamp> {
    let status = pod.status.as_ref();
    let statuses = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .chain(status.and_then(|s| s.init_container_statuses.as_ref()))
        .flatten();
    statuses
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max()
        .or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    fn settings() -> BuildSettings {
        BuildSettings {
            default_builder_image: "quay.io/sclorg/python-312-c9s:c9s".into(),
            kaniko_image: "kaniko:test".into(),
            prepare_image: "sourcebuild-operator:test".into(),
            insecure_registries: vec![],
        }
    }

    fn sb(generation: i64, extra: serde_json::Value) -> SourceBuild {
        let mut spec = json!({
            "source": {"git": {"url": "https://example.com/acme/app.git"}},
            "output": {"image": "registry.example.com/team/app:1.0"}
        });
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(json!({
            "apiVersion": "sourcebuild.dev/v1alpha1", "kind": "SourceBuild",
            "metadata": {"name": "app", "namespace": "team", "uid": "uid-1", "generation": generation},
            "spec": spec
        }))
        .unwrap()
    }

    fn pod_in(sb: &SourceBuild, name: &str, status: serde_json::Value) -> Pod {
        let mut pod = build_pod(sb, &settings()).unwrap();
        pod.metadata.name = Some(name.into());
        pod.metadata.creation_timestamp = Some(Time(at(0)));
        pod.status = Some(serde_json::from_value(status).unwrap());
        pod
    }

    fn terminated(name: &str, code: i32, message: &str, finished: &str) -> serde_json::Value {
        json!({"name": name, "ready": false, "restartCount": 0, "image": "x", "imageID": "",
               "state": {"terminated": {"exitCode": code, "message": message, "finishedAt": finished,
                                        "reason": if code == 0 { "Completed" } else { "Error" }}}})
    }

    fn finished(code: i32, message: &str, finished_at: &str) -> serde_json::Value {
        let prepared = json!({"prepared": {"revision": "0123456789abcdef0123456789abcdef01234567",
            "dockerfileSha256": format!("sha256:{}", "d".repeat(64)),
            "builderImage": "quay.io/sclorg/python-312-c9s:c9s"}})
        .to_string();
        json!({"phase": if code == 0 { "Succeeded" } else { "Failed" },
               "initContainerStatuses": [terminated("prepare", 0, &prepared, finished_at)],
               "containerStatuses": [terminated("build", code, message, finished_at)]})
    }

    fn running() -> serde_json::Value {
        json!({"phase": "Running", "containerStatuses": [{"name": "build", "ready": true,
               "restartCount": 0, "image": "x", "imageID": "", "state": {"running": {}}}]})
    }

    const DIGEST: &str = "sha256:6a0e1b6bd2f5fb0f3bc3b1d2c9e0e8f4a7c1d3e5f60718293a4b5c6d7e8f9a0b";
    const ASSEMBLE_FAILED: &str = "error building image: error building stage: failed to execute command: waiting for process to exit: exit status 1";

    /// Runs the plan with the Pods as the cache would hold them, and feeds its status back.
    /// Every plan is also made from the full Pods, and must not differ.
    fn step(sb: &mut SourceBuild, pods: &[Pod], now: Timestamp) -> (Target, Plan) {
        let target = target(sb, now);
        let plan_from = |pods: &[Pod]| {
            let current = pods.iter().find(|p| p.name_any() == target.pod_name);
            let others: Vec<&Pod> = pods
                .iter()
                .filter(|p| p.name_any() != target.pod_name)
                .collect();
            plan(sb, &target, current, &others, &[], &settings(), now)
        };
        let cached: Vec<Pod> = pods
            .iter()
            .map(|p| crate::controller::build_pod::BuildPod::from_pod(p).to_pod())
            .collect();
        let plan = plan_from(&cached);
        assert_eq!(plan, plan_from(pods), "the cached Pods plan differently");
        if let Some(status) = &plan.status {
            sb.status = Some(status.clone());
        }
        (target, plan)
    }

    fn reasons(plan: &Plan) -> Vec<&str> {
        plan.events.iter().map(|n| n.reason.as_str()).collect()
    }

    #[test]
    fn a_pending_pod_is_looked_at_again_only_at_its_timeout() {
        // A mount failure wakes the controller through its Event watch, so a Pending Pod
        // (waiting for a node or an image) needs no timer but the timeout's.
        let mut sb = sb(1, json!({"timeout": "10m"}));
        let (_, p) = step(&mut sb, &[], at(0));
        assert!(p.create.is_some());
        let pending = pod_in(
            &sb,
            "app-build-1",
            json!({"phase": "Pending", "containerStatuses": [{"name": "build", "ready": false,
                   "restartCount": 0, "image": "x", "imageID": "",
                   "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
        );
        let (_, p) = step(&mut sb, &[pending], at(120));
        assert_eq!(p.requeue_after, Some(Duration::from_secs(480)));
    }

    #[test]
    fn a_new_generation_builds_after_a_failed_build() {
        let mut sb = sb(1, json!({}));
        let (_, p) = step(&mut sb, &[], at(0));
        assert_eq!(p.create.unwrap().name_any(), "app-build-1");
        let failed = pod_in(
            &sb,
            "app-build-1",
            finished(1, ASSEMBLE_FAILED, "2023-11-14T22:14:00Z"),
        );
        let (_, p) = step(&mut sb, std::slice::from_ref(&failed), at(10));
        assert_eq!(p.status.unwrap().phase, Some(Phase::Failed));
        // The spec is fixed: generation 2 builds although generation 1 failed.
        sb.metadata.generation = Some(2);
        let (target, p) = step(&mut sb, &[failed], at(20));
        assert_eq!(target.start.unwrap().trigger, Trigger::ConfigChange);
        assert_eq!(p.create.unwrap().name_any(), "app-build-2");
        let status = p.status.unwrap();
        assert_eq!(
            (status.phase, status.build, status.trigger),
            (Some(Phase::Running), Some(1), Some(Trigger::ConfigChange))
        );
    }

    #[test]
    fn a_successful_build_writes_status_twice() {
        // The create's status (Running) and the digest: a Pod on its way changes nothing.
        let mut sb = sb(1, json!({}));
        let (_, p) = step(&mut sb, &[], at(0));
        assert!(p.create.is_some());
        assert_eq!(p.status.as_ref().unwrap().phase, Some(Phase::Running));
        assert_eq!(reasons(&p), [BUILD_STARTED]);
        let on_its_way = [
            json!({"phase": "Pending"}),
            json!({"phase": "Pending", "initContainerStatuses": [{"name": "prepare",
                   "ready": false, "restartCount": 0, "image": "x", "imageID": "",
                   "state": {"running": {}}}]}),
            running(),
        ];
        for (i, status) in on_its_way.into_iter().enumerate() {
            let pod = pod_in(&sb, "app-build-1", status);
            let (_, p) = step(&mut sb, &[pod], at(1 + i as i64));
            assert_eq!(p.status, None, "step {i}");
            assert!(p.events.is_empty(), "step {i}: {:?}", p.events);
            assert!(p.create.is_none() && p.delete.is_empty(), "step {i}");
        }
        let done = pod_in(
            &sb,
            "app-build-1",
            finished(0, DIGEST, "2023-11-14T22:14:00Z"),
        );
        let (_, p) = step(&mut sb, &[done], at(10));
        assert_eq!(p.status.as_ref().unwrap().phase, Some(Phase::Succeeded));
        assert_eq!(reasons(&p), [BUILD_SUCCEEDED]);
        assert!(p.events.iter().all(Note::is_routine));
    }

    #[test]
    fn a_stuck_pod_is_pending_with_a_warning_until_it_moves() {
        let mut sb = sb(1, json!({}));
        step(&mut sb, &[], at(0));
        let stuck = pod_in(
            &sb,
            "app-build-1",
            json!({"phase": "Pending", "containerStatuses": [{"name": "build", "ready": false,
                   "restartCount": 0, "image": "x", "imageID": "",
                   "state": {"waiting": {"reason": "ImagePullBackOff",
                                         "message": "Back-off pulling image"}}}]}),
        );
        let (_, p) = step(&mut sb, std::slice::from_ref(&stuck), at(5));
        let status = p.status.clone().unwrap();
        assert_eq!(status.phase, Some(Phase::Pending));
        let message = &status.condition(status::SUCCEEDED).unwrap().message;
        assert!(message.contains("ImagePullBackOff"), "{message}");
        assert_eq!(reasons(&p), [POD_PENDING]);
        assert_eq!(p.events[0].severity, Severity::Warning);
        assert!(!p.events[0].is_routine());
        // Status lost (a restart before it was written): the build is first seen stuck.
        let mut lost = sb.clone();
        lost.status = None;
        let (_, p) = step(&mut lost, std::slice::from_ref(&stuck), at(5));
        assert_eq!(p.status.as_ref().unwrap().phase, Some(Phase::Pending));
        assert_eq!(reasons(&p), [BUILD_STARTED, POD_PENDING]);
        // Still stuck: nothing new to say.
        let (_, p) = step(&mut sb, std::slice::from_ref(&stuck), at(6));
        assert!(p.status.is_none() && p.events.is_empty());
        // It moves: Running again, without an Event.
        let moving = pod_in(&sb, "app-build-1", running());
        let (_, p) = step(&mut sb, &[moving], at(7));
        assert_eq!(p.status.unwrap().phase, Some(Phase::Running));
        assert!(p.events.is_empty(), "{:?}", p.events);
    }

    #[test]
    fn a_new_rebuild_value_builds_the_same_generation_once() {
        let mut sb = sb(1, json!({}));
        step(&mut sb, &[], at(0));
        let done = pod_in(
            &sb,
            "app-build-1",
            finished(0, DIGEST, "2023-11-14T22:14:00Z"),
        );
        step(&mut sb, std::slice::from_ref(&done), at(10));
        assert_eq!(sb.status.as_ref().unwrap().phase, Some(Phase::Succeeded));

        sb.metadata
            .annotations
            .get_or_insert_default()
            .insert(REBUILD_ANNOTATION.into(), "r1".into());
        let (target, p) = step(&mut sb, std::slice::from_ref(&done), at(20));
        assert_eq!(target.pod_name, "app-build-1-2");
        assert_eq!(p.create.as_ref().unwrap().name_any(), "app-build-1-2");
        let status = sb.status.clone().unwrap();
        assert_eq!(
            (status.build, status.trigger, status.rebuild.as_deref()),
            (Some(2), Some(Trigger::Manual), Some("r1"))
        );
        assert_eq!(status.observed_generation, Some(1));
        assert_eq!(reasons(&p), ["BuildStarted"]);
        // The value was acted on: while it stays, nothing new starts.
        let second = pod_in(
            &sb,
            "app-build-1-2",
            finished(0, DIGEST, "2023-11-14T22:15:00Z"),
        );
        let pods = [done, second];
        let (_, p) = step(&mut sb, &pods, at(30));
        assert_eq!(p.status.unwrap().phase, Some(Phase::Succeeded));
        let (target, p) = step(&mut sb, &pods, at(40));
        assert!(target.start.is_none() && p.create.is_none() && p.status.is_none());
        let history = &sb.status.as_ref().unwrap().history;
        assert_eq!(
            history
                .iter()
                .map(|r| (r.build, r.trigger, r.phase))
                .collect::<Vec<_>>(),
            [
                (2, Some(Trigger::Manual), Phase::Succeeded),
                (1, Some(Trigger::ConfigChange), Phase::Succeeded)
            ]
        );
    }

    #[test]
    fn a_lost_status_write_never_makes_a_second_pod() {
        // The rebuild's Pod was created but its status write was lost: the same name comes
        // out again, and the existing Pod is observed instead of created.
        let mut sb = sb(1, json!({}));
        step(&mut sb, &[], at(0));
        let done = pod_in(
            &sb,
            "app-build-1",
            finished(0, DIGEST, "2023-11-14T22:14:00Z"),
        );
        step(&mut sb, std::slice::from_ref(&done), at(10));
        sb.metadata
            .annotations
            .get_or_insert_default()
            .insert(REBUILD_ANNOTATION.into(), "r1".into());
        let before = sb.clone();
        let (_, p) = step(&mut sb, std::slice::from_ref(&done), at(20));
        let created = p.create.unwrap();
        let mut restarted = before;
        let running_pod = pod_in(&restarted, &created.name_any(), running());
        let (_, p) = step(&mut restarted, &[done, running_pod], at(30));
        assert!(p.create.is_none());
        assert_eq!(p.status.unwrap().phase, Some(Phase::Running));
    }

    #[test]
    fn suspend_stops_the_running_build_and_resume_builds_the_current_spec() {
        let mut sb = sb(1, json!({}));
        step(&mut sb, &[], at(0));
        let pod = pod_in(&sb, "app-build-1", running());
        step(&mut sb, std::slice::from_ref(&pod), at(5));
        sb.spec.suspend = true;
        sb.metadata.generation = Some(2);
        let (target, p) = step(&mut sb, std::slice::from_ref(&pod), at(10));
        assert!(target.start.is_none() && p.create.is_none());
        assert_eq!(p.delete, ["app-build-1"]);
        let status = p.status.clone().unwrap();
        assert_eq!(status.phase, Some(Phase::Cancelled));
        assert_eq!(
            status.condition(status::SUCCEEDED).unwrap().reason,
            "Cancelled"
        );
        assert_eq!(
            (status.history[0].generation, status.history[0].phase),
            (1, Phase::Cancelled)
        );
        assert!(reasons(&p).contains(&"Cancelled"));
        // Still suspended: nothing starts, nothing changes.
        let mut deleted = pod;
        deleted.metadata.deletion_timestamp = Some(Time(at(11)));
        let (_, p) = step(&mut sb, std::slice::from_ref(&deleted), at(20));
        assert!(p.create.is_none() && p.status.is_none() && p.delete.is_empty());
        // Resumed: the new generation builds.
        sb.spec.suspend = false;
        sb.metadata.generation = Some(3);
        let (_, p) = step(&mut sb, &[], at(30));
        assert_eq!(p.create.unwrap().name_any(), "app-build-3");
    }

    #[test]
    fn a_transient_failure_is_retried_with_backoff_and_a_bad_build_is_not() {
        let mut sb = sb(1, json!({"retry": {"limit": 1, "backoff": "10s"}}));
        step(&mut sb, &[], at(0));
        let evicted = pod_in(
            &sb,
            "app-build-1",
            json!({"phase": "Failed", "reason": "Evicted",
            "message": "The node was low on resource: memory."}),
        );
        let (_, p) = step(&mut sb, std::slice::from_ref(&evicted), at(10));
        let status = p.status.unwrap();
        assert_eq!(status.phase, Some(Phase::Failed));
        assert_eq!(status.next_attempt_time, Some(Time(at(20))));
        assert_eq!(p.requeue_after, Some(Duration::from_secs(10)));
        // Not yet due.
        let (target, p) = step(&mut sb, std::slice::from_ref(&evicted), at(15));
        assert!(target.start.is_none() && p.create.is_none());
        // Due: attempt 2, Pod -1-2.
        let (_, p) = step(&mut sb, std::slice::from_ref(&evicted), at(20));
        assert_eq!(p.create.as_ref().unwrap().name_any(), "app-build-1-2");
        assert_eq!(reasons(&p), ["Retrying", "BuildStarted"]);
        assert_eq!(sb.status.as_ref().unwrap().attempt, Some(2));
        // The limit is reached: the second eviction is final.
        let again = pod_in(
            &sb,
            "app-build-1-2",
            json!({"phase": "Failed", "reason": "Evicted"}),
        );
        let (_, p) = step(&mut sb, &[evicted, again], at(30));
        assert_eq!(p.status.unwrap().next_attempt_time, None);

        let mut sb2 = super::tests::sb(1, json!({"retry": {"limit": 3}}));
        step(&mut sb2, &[], at(0));
        let failed = pod_in(
            &sb2,
            "app-build-1",
            finished(1, ASSEMBLE_FAILED, "2023-11-14T22:14:00Z"),
        );
        let (_, p) = step(&mut sb2, &[failed], at(10));
        assert_eq!(p.status.unwrap().next_attempt_time, None);
    }

    #[test]
    fn retention_keeps_the_newest_finished_pods_and_spares_the_unrecorded_one() {
        let mut sb = sb(
            4,
            json!({"retention": {"succeededLimit": 1, "failedLimit": 1}, "historyLimit": 2}),
        );
        let done = |name: &str, code: i32, t: &str| {
            pod_in(
                &sb,
                name,
                finished(code, if code == 0 { DIGEST } else { ASSEMBLE_FAILED }, t),
            )
        };
        let pods = [
            done("app-build-1", 0, "2023-11-14T22:10:00Z"),
            done("app-build-2", 1, "2023-11-14T22:11:00Z"),
            done("app-build-3", 0, "2023-11-14T22:12:00Z"),
            done("app-build-4", 1, "2023-11-14T22:13:00Z"),
        ];
        // Status still describes generation 3's build: generation 4 starts, nothing of its own
        // is finished yet, and the older Pods beyond the limits go.
        sb.status = Some(SourceBuildStatus {
            observed_generation: Some(4),
            build: Some(1),
            phase: Some(Phase::Running),
            pod_name: Some("app-build-4".into()),
            ..Default::default()
        });
        let (_, p) = step(&mut sb, &pods, at(0));
        let mut deleted = p.delete.clone();
        deleted.sort();
        // build-4 failed but its outcome is not recorded yet: spared. build-3 is the newest
        // success, build-2 the newest recorded failure.
        assert_eq!(deleted, ["app-build-1"]);
        // Once recorded, build-4 is the newest failure and build-2 goes.
        let (_, p) = step(&mut sb, &pods[1..], at(1));
        assert_eq!(p.delete, ["app-build-2"]);

        let ttl = super::tests::sb(1, json!({"retention": {"ttlAfterFinished": "1h"}}));
        let mut ttl = ttl;
        ttl.status = Some(SourceBuildStatus {
            observed_generation: Some(1),
            build: Some(1),
            phase: Some(Phase::Succeeded),
            pod_name: Some("app-build-1".into()),
            ..Default::default()
        });
        let old = pod_in(
            &ttl,
            "app-build-1",
            finished(0, DIGEST, "2023-11-14T22:13:20Z"),
        );
        let (_, p) = step(&mut ttl, std::slice::from_ref(&old), at(1800));
        assert!(p.delete.is_empty());
        assert_eq!(p.requeue_after, Some(Duration::from_secs(1800)));
        let (_, p) = step(&mut ttl, &[old], at(3600));
        assert_eq!(p.delete, ["app-build-1"]);
    }

    /// One reconcile with a look at the remote first, as the reconciler does it.
    fn poll_step(
        sb: &mut SourceBuild,
        pods: &[Pod],
        answer: Option<poll::Poll>,
        now: Timestamp,
    ) -> (Target, Plan) {
        let stored = sb.clone();
        let mut observed = poll::observe(&stored, answer.as_ref(), now);
        let (target, planned) = step(&mut observed, pods, now);
        let planned = poll::finish(planned, &stored, &observed, answer.as_ref());
        if let Some(status) = &planned.status {
            sb.status = Some(status.clone());
        }
        (target, planned)
    }

    fn head(commit: char) -> String {
        commit.to_string().repeat(40)
    }

    fn pinned_revision(pod: &Pod) -> Option<String> {
        let env = pod.spec.as_ref()?.init_containers.as_ref()?[0]
            .env
            .as_ref()?;
        let request = env
            .iter()
            .find(|e| e.name == crate::contract::REQUEST_ENV)?
            .value
            .as_ref()?;
        let request: crate::contract::PrepareRequest = serde_json::from_str(request).ok()?;
        request.source.git?.revision
    }

    #[test]
    fn a_moved_head_builds_once_pinned_to_the_commit_seen() {
        let mut sb = sb(
            1,
            json!({"source": {"git": {"url": "https://example.com/acme/app.git",
                                      "revision": "main", "pollInterval": "1m"}}}),
        );
        // The first look and the first build go together; that build covers the head seen.
        assert!(poll::due(&sb, at(0)));
        let (target, p) = poll_step(&mut sb, &[], Some(poll::Poll::Head(head('a'))), at(0));
        assert_eq!(target.start.unwrap().trigger, Trigger::ConfigChange);
        assert_eq!(
            pinned_revision(p.create.as_ref().unwrap()).as_deref(),
            Some("main")
        );
        let source = sb.status.as_ref().unwrap().source.clone().unwrap();
        assert_eq!(source.latest_revision, Some(head('a')));
        assert_eq!(source.built_revision, Some(head('a')));
        assert_eq!(p.requeue_after, Some(Duration::from_secs(60)));
        let first = pod_in(
            &sb,
            "app-build-1",
            finished(0, DIGEST, "2023-11-14T22:14:00Z"),
        );
        poll_step(&mut sb, std::slice::from_ref(&first), None, at(10));
        assert_eq!(sb.status.as_ref().unwrap().phase, Some(Phase::Succeeded));

        // Not due yet; then due, same head: nothing starts, only the check time moves.
        assert!(!poll::due(&sb, at(59)));
        assert!(poll::due(&sb, at(60)));
        let (target, p) = poll_step(
            &mut sb,
            std::slice::from_ref(&first),
            Some(poll::Poll::Head(head('a'))),
            at(60),
        );
        assert!(target.start.is_none() && p.create.is_none());
        assert_eq!(
            p.status.unwrap().source.unwrap().last_checked,
            Some(Time(at(60)))
        );

        // The branch moved: one SourceChange build of exactly that commit.
        let (target, p) = poll_step(
            &mut sb,
            std::slice::from_ref(&first),
            Some(poll::Poll::Head(head('b'))),
            at(120),
        );
        let start = target.start.unwrap();
        assert_eq!(
            (start.trigger, start.build, start.revision.clone()),
            (Trigger::SourceChange, 2, Some(head('b')))
        );
        let created = p.create.clone().unwrap();
        assert_eq!(created.name_any(), "app-build-1-2");
        assert_eq!(pinned_revision(&created), Some(head('b')));
        assert_eq!(reasons(&p), ["SourceChanged", "BuildStarted"]);
        let status = sb.status.clone().unwrap();
        assert_eq!(status.trigger, Some(Trigger::SourceChange));
        assert_eq!(status.source.unwrap().built_revision, Some(head('b')));

        // It fails; the same head, seen again, never builds a second time.
        let second = pod_in(
            &sb,
            "app-build-1-2",
            finished(1, ASSEMBLE_FAILED, "2023-11-14T22:16:00Z"),
        );
        let pods = [first, second];
        poll_step(&mut sb, &pods, None, at(130));
        assert_eq!(sb.status.as_ref().unwrap().phase, Some(Phase::Failed));
        let (target, p) = poll_step(&mut sb, &pods, Some(poll::Poll::Head(head('b'))), at(180));
        assert!(target.start.is_none() && p.create.is_none());
        assert_eq!(
            sb.status.as_ref().unwrap().history[0].trigger,
            Some(Trigger::SourceChange)
        );
    }

    /// A SourceBuild of the remote's HEAD polled every `interval`: the first look saw `a`, and
    /// the first build (its Pod returned) succeeded at 10 s.
    fn polled_and_built(interval: &str) -> (SourceBuild, Pod) {
        let mut sb = sb(
            1,
            json!({"source": {"git": {"url": "https://example.com/acme/app.git",
                                      "pollInterval": interval}}}),
        );
        poll_step(&mut sb, &[], Some(poll::Poll::Head(head('a'))), at(0));
        let done = pod_in(
            &sb,
            "app-build-1",
            finished(0, DIGEST, "2023-11-14T22:14:00Z"),
        );
        poll_step(&mut sb, std::slice::from_ref(&done), None, at(10));
        assert_eq!(sb.status.as_ref().unwrap().phase, Some(Phase::Succeeded));
        (sb, done)
    }

    #[test]
    fn a_head_the_latest_build_already_resolved_does_not_build_again() {
        // A manual rebuild resolved the branch itself after it moved: polling then sees the
        // commit that build already has.
        let prepared_commit = "0123456789abcdef0123456789abcdef01234567";
        let (mut sb, done) = polled_and_built("1m");
        assert_eq!(
            sb.status.as_ref().unwrap().source_revision.as_deref(),
            Some(prepared_commit)
        );
        let (target, _) = poll_step(
            &mut sb,
            std::slice::from_ref(&done),
            Some(poll::Poll::Head(prepared_commit.into())),
            at(60),
        );
        assert!(target.start.is_none());
    }

    #[test]
    fn a_failed_look_is_reported_and_leaves_the_build_alone() {
        let (mut sb, done) = polled_and_built("5m");
        let (target, p) = poll_step(
            &mut sb,
            std::slice::from_ref(&done),
            Some(poll::Poll::Failed("connection refused".into())),
            at(300),
        );
        assert!(target.start.is_none() && p.create.is_none());
        assert_eq!(reasons(&p), ["SourcePollFailed"]);
        assert!(p.events[0].message.contains("connection refused"));
        let status = p.status.unwrap();
        assert_eq!(status.phase, Some(Phase::Succeeded));
        assert_eq!(status.condition(status::SUCCEEDED).unwrap().status, "True");
        let reachable = status.condition(status::SOURCE_REACHABLE).unwrap();
        assert_eq!(
            (reachable.status.as_str(), reachable.reason.as_str()),
            ("False", "PollFailed")
        );
        assert!(
            reachable
                .message
                .contains("HEAD of https://example.com/acme/app.git")
        );
        // The head seen before stays; the next look is one interval away.
        assert_eq!(status.source.unwrap().latest_revision, Some(head('a')));
        assert_eq!(p.requeue_after, Some(Duration::from_secs(300)));

        // Suspended, or a secret the controller cannot use: no look at all. Polling turned
        // off: its traces go.
        assert!(poll::due(&sb, at(10_000)));
        sb.spec.suspend = true;
        assert!(!poll::due(&sb, at(10_000)));
        sb.spec.suspend = false;
        let mut with_secret = sb.clone();
        with_secret.spec.source.git.as_mut().unwrap().secret_ref =
            Some(crate::api::SecretReference {
                name: "git-creds".into(),
            });
        assert!(!poll::due(&with_secret, at(10_000)));
        sb.spec.source.git.as_mut().unwrap().poll_interval = None;
        sb.metadata.generation = Some(2);
        let (_, p) = poll_step(&mut sb, std::slice::from_ref(&done), None, at(10_000));
        let status = p.status.unwrap();
        assert_eq!(status.source, None);
        assert!(status.condition(status::SOURCE_REACHABLE).is_none());
    }

    #[test]
    fn a_new_spec_is_looked_at_at_once_and_a_head_of_the_old_one_means_nothing() {
        let mut sb = sb(
            1,
            json!({"source": {"git": {"url": "https://example.com/acme/app.git",
                                                     "revision": "main", "pollInterval": "1h"}}}),
        );
        poll_step(&mut sb, &[], Some(poll::Poll::Head(head('a'))), at(0));
        sb.spec.source.git.as_mut().unwrap().revision = Some("release".into());
        sb.metadata.generation = Some(2);
        assert!(poll::due(&sb, at(1)));
        // The new branch cannot be resolved: its build starts anyway, unpinned, and the old
        // branch's head is forgotten rather than taken for the new one's.
        let (target, p) = poll_step(
            &mut sb,
            &[],
            Some(poll::Poll::Failed("no branch".into())),
            at(1),
        );
        assert_eq!(target.start.unwrap().trigger, Trigger::ConfigChange);
        assert_eq!(
            pinned_revision(p.create.as_ref().unwrap()).as_deref(),
            Some("release")
        );
        let source = sb.status.unwrap().source.unwrap();
        assert_eq!(
            (source.latest_revision, source.built_revision),
            (None, None)
        );
    }
}
