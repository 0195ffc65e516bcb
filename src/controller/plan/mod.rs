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
use crate::controller::events::{BUILD_STARTED, BUILD_SUCCEEDED, Event, POD_PENDING, Severity};
use crate::controller::poll;
use crate::controller::status::{self, NewBuild};
use crate::outcome::{
    BuildFailure, BuildOutcome, StuckPull, is_transient, missing_reference, stuck_pull,
};
use crate::pod::{BuildSettings, build_pod, build_pod_name};
use crate::reason::FailureReason;
use crate::validation::validate_spec;

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
    pub events: Vec<Event>,
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

/// The API server refused to create the build Pod (`message`) of a build whose start status
/// is `started` and start Events `events`. A missing ServiceAccount fails the build at once
/// (the ServiceAccount admission plugin will refuse every retry); `None` for any other
/// refusal, which the reconcile retries.
pub fn creation_refused(
    sb: &SourceBuild,
    started: Option<&SourceBuildStatus>,
    events: &[Event],
    message: &str,
    now: Timestamp,
) -> Option<Plan> {
    let missing =
        missing_reference(message).filter(|m| m.reason == FailureReason::ServiceAccountNotFound)?;
    let started = started?;
    let generation = started.observed_generation?;
    let failure = controller_failure(missing.reason, missing.describe(message));
    let failed = status::failed(started, generation, None, &failure, None, now);
    let old = sb.status.clone().unwrap_or_default();
    let mut plan = Plan {
        events: events
            .iter()
            .filter(|e| e.reason != BUILD_STARTED)
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
            plan.events.push(Event {
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
        if settled {
            caught_up(&old, now)
        } else {
            Some(status::cancelled(
                &closed,
                generation,
                stopped.as_deref(),
                now,
            ))
        }
    } else if let Some(start) = &target.start {
        Some(start_build(
            sb, &closed, start, current, settings, now, &mut plan,
        ))
    } else if old.observed_generation == Some(generation) && old.phase.is_some_and(Phase::is_final)
    {
        caught_up(&old, now)
    } else {
        Some(match validate_spec(&sb.spec) {
            Err(invalid) => {
                let failure = controller_failure(FailureReason::InvalidSpec, invalid.to_string());
                status::failed(&old, generation, None, &failure, None, now)
            }
            Ok(()) => match current {
                None => status_of_deleted_pod(&old, generation, name, now),
                Some(pod) => status_from_pod(sb, &old, pod, pod_events, now, &mut plan),
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

/// A settled build needs no write, unless its status predates `Reconciling` and `Stalled`: a
/// failure recorded by an older operator gains `Stalled` once (and a cancellation loses its
/// `Ready=False`), or kstatus would read it as in progress for ever.
fn caught_up(old: &SourceBuildStatus, now: Timestamp) -> Option<SourceBuildStatus> {
    let summarized = status::summarized(old, now);
    (&summarized != old).then_some(summarized)
}

/// Adds to `plan` what polling changed that the plan did not write anyway (the status of a
/// look that started nothing), and a Warning Event when the remote could not be asked.
pub fn with_poll_answer(
    mut plan: Plan,
    stored: &SourceBuild,
    observed: &SourceBuild,
    answer: Option<&poll::Answer>,
) -> Plan {
    if plan.status.is_none() && observed.status != stored.status {
        plan.status = observed.status.clone();
    }
    if let Some(poll::Answer::Failed(message)) = answer {
        plan.events.push(Event {
            severity: Severity::Warning,
            reason: "SourcePollFailed".into(),
            message: format!("{message}; the last build is unaffected"),
        });
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
                plan.events.push(Event {
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
        plan.events.push(Event {
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
        return status_from_pod(sb, &begun, pod, &[], now, plan);
    }
    match build_pod(sb, settings, start.build) {
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
            status = status::retry_at(status, at, attempt, limit, now);
        }
    }
    status::record_history(&mut status, sb.spec.history_limit());
    status
}

fn status_of_deleted_pod(
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
fn status_from_pod(
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
        BuildOutcome::Pending { .. }
            if elapsed >= timeout
                && let Some(pull) = stuck_pull(pod) =>
        {
            // Out of time waiting for one of the Pod's own images: that is the cause to name.
            plan.delete.push(name.to_string());
            let failure = controller_failure(
                FailureReason::ImagePullFailed,
                format!(
                    "build did not start within {}: {}",
                    humantime::format_duration(timeout),
                    pull.describe()
                ),
            );
            status::failed(old, generation, Some(name), &failure, Some(start), now)
        }
        BuildOutcome::Pending { .. } | BuildOutcome::Running if elapsed >= timeout => {
            plan.delete.push(name.to_string());
            let still = match outcome {
                BuildOutcome::Pending { message } => format!(
                    " (still Pending{})",
                    message.map(|m| format!(": {m}")).unwrap_or_default()
                ),
                _ => String::new(),
            };
            let failure = controller_failure(
                FailureReason::Timeout,
                format!(
                    "build did not finish within {}{still}",
                    humantime::format_duration(timeout)
                ),
            );
            status::failed(old, generation, Some(name), &failure, Some(start), now)
        }
        BuildOutcome::Pending { .. }
            if let Some(pull) = stuck_pull(pod).filter(StuckPull::is_permanent) =>
        {
            // The image does not exist (or its name is invalid): the kubelet would retry the
            // pull until the timeout for nothing, so the build fails now.
            plan.delete.push(name.to_string());
            let failure = controller_failure(
                FailureReason::ImagePullFailed,
                format!("build Pod {name} cannot start: {}", pull.describe()),
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
        plan.events.extend(transition_events(new_build, &new));
    }
    if new.phase.is_some_and(Phase::is_final) {
        plan.requeue_after = None;
    }
    plan.status = Some(new);
}

/// The Events of entering `new`'s phase (`new_build`: in a build status did not record yet). A
/// build that starts gets `BuildStarted` (a routine Event, see [`Event::is_routine`]); back to
/// Running from a stuck Pending gets none (the phase shows it); a Pod that is stuck gets a
/// Warning, also when it is the first thing status records of its build.
fn transition_events(new_build: bool, new: &SourceBuildStatus) -> Vec<Event> {
    let started = new_build && matches!(new.phase, Some(Phase::Pending | Phase::Running));
    let message = new
        .condition(status::SUCCEEDED)
        .map(|c| c.message.clone())
        .unwrap_or_default();
    let start = started.then(|| Event {
        severity: Severity::Normal,
        reason: BUILD_STARTED.into(),
        message: message.clone(),
    });
    let phase = new.phase.and_then(|phase| phase_event(phase, new));
    start.into_iter().chain(phase).collect()
}

/// The Event of a build entering `phase`, but for its start.
fn phase_event(phase: Phase, new: &SourceBuildStatus) -> Option<Event> {
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
                .unwrap_or_else(|| FailureReason::BuildFailed.as_str().into()),
        ),
    };
    Some(Event {
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
        pushed_image: None,
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
            plan.events.push(Event {
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
mod tests;
