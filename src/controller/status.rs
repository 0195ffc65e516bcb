//! Status transitions: the old status and what happened give the new status. Pure.
//!
//! Conditions follow the Kubernetes API conventions: `Succeeded` is the outcome of the build of
//! `observedGeneration` (Unknown while it runs), `Ready` says whether an image for the current
//! spec exists. `lastTransitionTime` only moves when a condition's status changes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::api::{BuildRecord, Phase, SourceBuildStatus, Trigger};
use crate::contract::PrepareResult;
use crate::outcome::{BuildFailure, BuildResult};

/// Condition type: an image built from the current spec is available.
pub const READY: &str = "Ready";
/// Condition type: outcome of the latest build.
pub const SUCCEEDED: &str = "Succeeded";
/// Condition type: whether the last look at a polled git remote resolved its head.
pub const SOURCE_REACHABLE: &str = "SourceReachable";

/// A build that starts in this reconcile: which one, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBuild {
    /// The spec generation it builds.
    pub generation: i64,
    /// Its number within the generation (1 for the first).
    pub build: i64,
    /// Its Pod's name.
    pub pod_name: String,
    /// Why it starts.
    pub trigger: Trigger,
    /// 1, plus one for each automatic retry.
    pub attempt: i32,
    /// The rebuild annotation's value when it started: acted on from now on.
    pub rebuild: Option<String>,
    /// The commit the build must check out instead of resolving the revision itself: the head
    /// polling saw, for a `SourceChange` build and its retries.
    pub revision: Option<String>,
}

/// A build starts: its Pod was just created, or is about to be refused (`pod` says which).
/// Everything that described the previous build is dropped; `latestImage` and `history` stay.
pub fn started(old: &SourceBuildStatus, new: &NewBuild, now: Timestamp) -> SourceBuildStatus {
    let mut status = for_generation(old, new.generation);
    forget_build(&mut status);
    // Running from the create on: the fetch step is part of the build, and a Pod that cannot
    // start is reported as Pending when it says why (see `plan::status_from_pod`). A separate
    // Pending -> Running write per build would be a third status write on every build's path.
    status.phase = Some(Phase::Running);
    status.pod_name = Some(new.pod_name.clone());
    status.build = Some(new.build);
    status.trigger = Some(new.trigger);
    status.attempt = Some(new.attempt);
    if new.rebuild.is_some() {
        status.rebuild = new.rebuild.clone();
    }
    status.start_time = Some(Time(now));
    if let Some(source) = status.source.as_mut() {
        // What this build covers: the pinned commit, else the head just seen for this spec.
        let seen = source
            .latest_revision
            .clone()
            .filter(|_| source.checked_generation == Some(new.generation));
        source.built_revision = new.revision.clone().or(seen);
    }
    let generation = new.generation;
    let retry = if new.attempt > 1 {
        format!(", attempt {}", new.attempt)
    } else {
        String::new()
    };
    let message = format!(
        "build Pod {} created for generation {generation} ({}{retry})",
        new.pod_name, new.trigger
    );
    set_building(&mut status, "Running", &message, generation, now);
    status
}

/// The polled remote answered (`Ok(commit)`) or not (`Err(why)`) for the spec of `generation`;
/// `what` names the ref and URL. A failure never touches the build's own phase or conditions.
pub fn polled(
    old: &SourceBuildStatus,
    generation: i64,
    head: Result<&str, &str>,
    what: &str,
    now: Timestamp,
) -> SourceBuildStatus {
    let mut status = old.clone();
    let mut source = status.source.clone().unwrap_or_default();
    if source.checked_generation != Some(generation) {
        // A head seen for another spec (another URL or branch) means nothing for this one.
        source.latest_revision = None;
    }
    source.checked_generation = Some(generation);
    source.last_checked = Some(Time(now));
    let (value, reason, message) = match head {
        Ok(commit) => {
            source.latest_revision = Some(commit.to_string());
            ("True", "HeadResolved", format!("{what} is at {commit}"))
        }
        Err(why) => (
            "False",
            "PollFailed",
            format!("could not resolve {what}: {why}"),
        ),
    };
    status.source = Some(source);
    set_condition(
        &mut status,
        SOURCE_REACHABLE,
        value,
        reason,
        &message,
        generation,
        now,
    );
    status
}

/// Polling is off: nothing it recorded stays.
pub fn not_polled(old: &SourceBuildStatus) -> SourceBuildStatus {
    let mut status = old.clone();
    status.source = None;
    status.conditions.retain(|c| c.type_ != SOURCE_REACHABLE);
    status
}

/// `spec.suspend` is true: the build of `generation` was stopped, or never started.
pub fn cancelled(
    old: &SourceBuildStatus,
    generation: i64,
    stopped: Option<&str>,
    now: Timestamp,
) -> SourceBuildStatus {
    let mut status = for_generation(old, generation);
    status.phase = Some(Phase::Cancelled);
    status.next_attempt_time = None;
    status.completion_time = Some(Time(now));
    if old.observed_generation != Some(generation) {
        // No build of this generation ever started: nothing describes one.
        (status.pod_name, status.build, status.trigger) = (None, None, None);
        (status.attempt, status.start_time) = (None, None);
    }
    let message = match stopped {
        Some(pod) => format!("spec.suspend is true: build Pod {pod} was stopped"),
        None => "spec.suspend is true: no build runs".to_string(),
    };
    set_settled(&mut status, "False", "Cancelled", &message, generation, now);
    status
}

/// Records a failed build's retry time, with the plan in the condition message.
pub fn retry_at(
    mut status: SourceBuildStatus,
    at: Timestamp,
    attempt: i32,
    limit: i32,
) -> SourceBuildStatus {
    status.next_attempt_time = Some(Time(at));
    let note = format!(
        " (transient; attempt {} of {} at {at})",
        attempt + 1,
        limit + 1
    );
    for condition in &mut status.conditions {
        if !condition.message.ends_with(&note) {
            condition.message.push_str(&note);
        }
    }
    status
}

/// An unfinished build is being stopped (superseded by a newer build, or suspended): `history`
/// records it as `Cancelled` with `reason`. A finished build is left as it is.
pub fn close_unfinished(
    old: &SourceBuildStatus,
    reason: &str,
    limit: usize,
    now: Timestamp,
) -> SourceBuildStatus {
    let mut status = old.clone();
    if status.phase.is_none_or(Phase::is_final) || status.build.is_none() {
        return status;
    }
    let mut closed = status.clone();
    closed.phase = Some(Phase::Cancelled);
    closed.completion_time = Some(Time(now));
    closed.conditions.retain(|c| c.type_ != SUCCEEDED);
    let generation = closed.observed_generation.unwrap_or(0);
    set_condition(&mut closed, SUCCEEDED, "False", reason, "", generation, now);
    record_history(&mut closed, limit);
    status.history = closed.history;
    status
}

/// Adds the build `status` describes to `history` once it is final (newest first, at most
/// `limit` entries). Idempotent: a build already recorded is not added again.
pub fn record_history(status: &mut SourceBuildStatus, limit: usize) {
    let (Some(phase), Some(generation), Some(build)) =
        (status.phase, status.observed_generation, status.build)
    else {
        status.history.truncate(limit);
        return;
    };
    if phase.is_final() {
        let known = status
            .history
            .iter()
            .any(|r| r.generation == generation && r.build == build);
        if !known {
            let succeeded = phase == Phase::Succeeded;
            let record = BuildRecord {
                generation,
                build,
                attempt: status.attempt,
                trigger: status.trigger,
                pod_name: status.pod_name.clone(),
                phase,
                reason: status.condition(SUCCEEDED).map(|c| c.reason.clone()),
                source_revision: status.source_revision.clone(),
                digest: status.digest.clone().filter(|_| succeeded),
                start_time: status.start_time.clone(),
                completion_time: status.completion_time.clone(),
            };
            status.history.insert(0, record);
        }
    }
    status.history.truncate(limit);
}

/// The build of `generation` is under way (Pending or Running).
pub fn in_progress(
    old: &SourceBuildStatus,
    generation: i64,
    pod_name: &str,
    phase: Phase,
    message: Option<&str>,
    start: Time,
    now: Timestamp,
) -> SourceBuildStatus {
    let mut status = for_generation(old, generation);
    status.phase = Some(phase);
    status.pod_name = Some(pod_name.to_string());
    status.start_time = Some(start);
    let default_message = match phase {
        Phase::Running => format!("building in Pod {pod_name}"),
        _ => format!("waiting for Pod {pod_name} to start"),
    };
    let message = message.map(str::to_string).unwrap_or(default_message);
    let reason = phase.to_string();
    set_building(&mut status, &reason, &message, generation, now);
    status
}

/// The build of `generation` pushed an image.
pub fn succeeded(
    old: &SourceBuildStatus,
    generation: i64,
    pod_name: &str,
    result: &BuildResult,
    start: Time,
    now: Timestamp,
) -> SourceBuildStatus {
    let mut status = for_generation(old, generation);
    status.phase = Some(Phase::Succeeded);
    status.pod_name = Some(pod_name.to_string());
    status.start_time = Some(start);
    status.completion_time = Some(Time(now));
    status.latest_image = Some(result.image.clone());
    status.digest = Some(result.digest.clone());
    set_provenance(&mut status, Some(&result.provenance));
    let message = format!("pushed {}", result.image);
    set_settled(&mut status, "True", "Succeeded", &message, generation, now);
    status
}

/// The build of `generation` ended without an image. `latestImage` keeps the last good one.
pub fn failed(
    old: &SourceBuildStatus,
    generation: i64,
    pod_name: Option<&str>,
    failure: &BuildFailure,
    start: Option<Time>,
    now: Timestamp,
) -> SourceBuildStatus {
    let mut status = for_generation(old, generation);
    status.phase = Some(Phase::Failed);
    status.pod_name = pod_name.map(str::to_string);
    status.start_time = start;
    status.completion_time = Some(Time(now));
    status.log_snippet = failure.log_snippet.clone();
    set_provenance(&mut status, failure.provenance.as_ref());
    let reason = failure.reason.as_str();
    set_settled(
        &mut status,
        "False",
        reason,
        &failure.message,
        generation,
        now,
    );
    status
}

/// Starts from the old status, dropping what described another generation's build.
fn for_generation(old: &SourceBuildStatus, generation: i64) -> SourceBuildStatus {
    let mut status = old.clone();
    if old.observed_generation != Some(generation) {
        forget_build(&mut status);
    }
    status.observed_generation = Some(generation);
    status
}

/// Drops what described a build's end: its retry, completion, log and provenance.
fn forget_build(status: &mut SourceBuildStatus) {
    status.next_attempt_time = None;
    status.completion_time = None;
    status.log_snippet = None;
    status.source_revision = None;
    status.source_origin = None;
    status.builder_image = None;
    status.dockerfile_sha256 = None;
}

fn set_provenance(status: &mut SourceBuildStatus, provenance: Option<&PrepareResult>) {
    if let Some(p) = provenance {
        status.source_revision = p.revision.clone();
        status.source_origin = p.origin.clone().map(Box::new);
        status.builder_image = Some(p.builder_image.clone());
        status.dockerfile_sha256 = Some(p.dockerfile_sha256.clone());
    }
}

/// A build is under way: its outcome is Unknown and no image of this spec exists yet.
fn set_building(
    status: &mut SourceBuildStatus,
    reason: &str,
    message: &str,
    generation: i64,
    now: Timestamp,
) {
    set_condition(
        status, SUCCEEDED, "Unknown", reason, message, generation, now,
    );
    set_condition(status, READY, "False", "Building", message, generation, now);
}

/// A build has ended: `Succeeded` and `Ready` both say how.
fn set_settled(
    status: &mut SourceBuildStatus,
    value: &str,
    reason: &str,
    message: &str,
    generation: i64,
    now: Timestamp,
) {
    set_condition(status, SUCCEEDED, value, reason, message, generation, now);
    set_condition(status, READY, value, reason, message, generation, now);
}

/// Sets a condition, keeping `lastTransitionTime` unless its status changed.
fn set_condition(
    status: &mut SourceBuildStatus,
    type_: &str,
    value: &str,
    reason: &str,
    message: &str,
    generation: i64,
    now: Timestamp,
) {
    let last_transition_time = match status.condition(type_) {
        Some(existing) if existing.status == value => existing.last_transition_time.clone(),
        _ => Time(now),
    };
    let condition = Condition {
        type_: type_.to_string(),
        status: value.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation: Some(generation),
        last_transition_time,
    };
    match status.conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(slot) => *slot = condition,
        None => {
            status.conditions.push(condition);
            status.conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reason::FailureReason;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    fn provenance() -> PrepareResult {
        PrepareResult {
            revision: Some("0123456789abcdef0123456789abcdef01234567".into()),
            origin: Some(crate::api::SourceOrigin {
                source: Some("https://example.com/team/app".into()),
                revision: None,
            }),
            dockerfile_sha256: format!("sha256:{}", "d".repeat(64)),
            builder_image: "quay.io/sclorg/python-312-c9s:c9s".into(),
        }
    }

    fn first_build(generation: i64) -> NewBuild {
        NewBuild {
            generation,
            build: 1,
            pod_name: format!("app-build-{generation}"),
            trigger: Trigger::ConfigChange,
            attempt: 1,
            rebuild: None,
            revision: None,
        }
    }

    fn result() -> BuildResult {
        BuildResult {
            digest: format!("sha256:{}", "a".repeat(64)),
            image: format!("registry.example.com/team/app@sha256:{}", "a".repeat(64)),
            provenance: provenance(),
        }
    }

    #[test]
    fn a_build_moves_through_its_phases() {
        let s0 = SourceBuildStatus::default();
        let s1 = started(&s0, &first_build(1), at(0));
        assert_eq!(s1.phase, Some(Phase::Running));
        assert_eq!(s1.condition(SUCCEEDED).unwrap().status, "Unknown");
        assert_eq!(s1.condition(READY).unwrap().status, "False");
        let stuck = "container build is waiting: ImagePullBackOff";
        let s2 = in_progress(
            &s1,
            1,
            "app-build-1",
            Phase::Pending,
            Some(stuck),
            Time(at(0)),
            at(5),
        );
        assert_eq!(s2.phase, Some(Phase::Pending));
        assert_eq!(s2.condition(SUCCEEDED).unwrap().message, stuck);
        // Still Unknown: the transition time stays at the start.
        assert_eq!(
            s2.condition(SUCCEEDED).unwrap().last_transition_time,
            Time(at(0))
        );
        let s3 = succeeded(&s2, 1, "app-build-1", &result(), Time(at(0)), at(60));
        assert_eq!(s3.phase, Some(Phase::Succeeded));
        assert_eq!(s3.digest, Some(result().digest));
        assert_eq!(s3.latest_image, Some(result().image));
        assert_eq!(s3.source_revision, provenance().revision);
        assert_eq!(s3.source_origin.as_deref(), provenance().origin.as_ref());
        assert_eq!(s3.completion_time, Some(Time(at(60))));
        let ready = s3.condition(READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.last_transition_time.clone()),
            ("True", Time(at(60)))
        );
        assert_eq!(
            s3.conditions
                .iter()
                .map(|c| c.type_.as_str())
                .collect::<Vec<_>>(),
            [READY, SUCCEEDED]
        );
    }

    #[test]
    fn a_failure_keeps_the_last_good_image_and_drops_old_provenance() {
        let good = succeeded(
            &SourceBuildStatus::default(),
            1,
            "app-build-1",
            &result(),
            Time(at(0)),
            at(60),
        );
        let next = started(&good, &first_build(2), at(100));
        assert_eq!(
            next.source_revision, None,
            "gen 1's commit must not describe gen 2"
        );
        assert_eq!(next.source_origin, None);
        assert_eq!(next.completion_time, None);
        let failure = BuildFailure {
            reason: FailureReason::AssembleFailed,
            message: "assemble exited with code 1".into(),
            log_snippet: Some("ERROR: No matching distribution found".into()),
            provenance: None,
        };
        let bad = failed(
            &next,
            2,
            Some("app-build-2"),
            &failure,
            next.start_time.clone(),
            at(130),
        );
        assert_eq!(bad.phase, Some(Phase::Failed));
        assert_eq!(bad.latest_image, good.latest_image);
        assert_eq!(bad.digest, good.digest);
        assert_eq!(
            bad.log_snippet.as_deref(),
            Some("ERROR: No matching distribution found")
        );
        let cond = bad.condition(SUCCEEDED).unwrap();
        assert_eq!(
            (cond.status.as_str(), cond.reason.as_str()),
            ("False", "AssembleFailed")
        );
        assert_eq!(cond.observed_generation, Some(2));
        assert_eq!(bad.condition(READY).unwrap().status, "False");
    }
}
