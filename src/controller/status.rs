//! Status transitions: the old status and what happened give the new status. Pure.
//!
//! Conditions follow the Kubernetes API conventions: `Succeeded` is the outcome of the build of
//! `observedGeneration` (Unknown while it runs), `Ready` says whether an image for the current
//! spec exists. `Reconciling` and `Stalled` are kstatus's two "abnormal-true" conditions, present
//! only while true, derived from the rest by [`summarize`]: they are what Flux, cli-utils and
//! `kubectl wait` users read, and kstatus reads nothing else of a custom resource.
//! `lastTransitionTime` only moves when a condition's status changes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::api::{BuildRecord, Phase, ProvenanceStatus, SourceBuildStatus, Trigger};
use crate::contract::PrepareResult;
use crate::outcome::{BuildFailure, BuildResult};
use crate::reason::FailureReason;

/// Condition type: an image built from the current spec is available.
pub const READY: &str = "Ready";
/// Condition type: outcome of the latest build.
pub const SUCCEEDED: &str = "Succeeded";
/// Condition type: whether the last look at a polled git remote resolved its head.
pub const SOURCE_REACHABLE: &str = "SourceReachable";
/// Condition type (kstatus): the build of `observedGeneration` is on its way or its retry is
/// due. Present only while true.
pub const RECONCILING: &str = "Reconciling";
/// Condition type (kstatus): the build of `observedGeneration` failed and nothing more happens
/// without a change. Present only while true.
pub const STALLED: &str = "Stalled";

/// `Reconciling` reason: the build Pod was created and the build runs.
pub const BUILDING: &str = "Building";
/// `Reconciling` reason: the build Pod cannot start yet (no node, an image pull).
pub const PENDING: &str = "Pending";
/// `Reconciling` reason: a transient failure waits for its retry (`status.nextAttemptTime`).
pub const RETRY_SCHEDULED: &str = "RetryScheduled";

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
    summarize(&mut status, now);
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
    // `Succeeded` says the build was cancelled; `Ready` goes (see `summarize`).
    set_condition(
        &mut status,
        SUCCEEDED,
        "False",
        "Cancelled",
        &message,
        generation,
        now,
    );
    summarize(&mut status, now);
    status
}

/// Records a failed build's retry time, with the plan in the build's condition messages: the
/// build is `Reconciling` (`RetryScheduled`) again, not `Stalled`. `now` is when this is decided.
pub fn retry_at(
    mut status: SourceBuildStatus,
    at: Timestamp,
    attempt: i32,
    limit: i32,
    now: Timestamp,
) -> SourceBuildStatus {
    status.next_attempt_time = Some(Time(at));
    let note = format!(
        " (transient; attempt {} of {} at {at})",
        attempt + 1,
        limit + 1
    );
    // SourceReachable is about the remote, not this build: its message stays as it is.
    let build_conditions = status
        .conditions
        .iter_mut()
        .filter(|c| c.type_ == SUCCEEDED || c.type_ == READY);
    for condition in build_conditions {
        if !condition.message.ends_with(&note) {
            condition.message.push_str(&note);
        }
    }
    summarize(&mut status, now);
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
            let reason = status.condition(SUCCEEDED).map(|c| c.reason.clone());
            // Pushed, but without its provenance: the image exists, so the record names it.
            let pushed = status
                .provenance
                .as_ref()
                .filter(|_| reason.as_deref() == Some(FailureReason::ProvenancePushFailed.as_str()))
                .and_then(|p| p.image.rsplit_once('@'))
                .map(|(_, digest)| digest.to_string());
            let record = BuildRecord {
                generation,
                build,
                attempt: status.attempt,
                trigger: status.trigger,
                pod_name: status.pod_name.clone(),
                phase,
                reason,
                source_revision: status.source_revision.clone(),
                digest: status.digest.clone().filter(|_| succeeded).or(pushed),
                attestation: status
                    .provenance
                    .as_ref()
                    .filter(|_| succeeded)
                    .and_then(|p| p.attestation.clone()),
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
    summarize(&mut status, now);
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
    status.provenance = result.published.as_ref().map(|p| {
        Box::new(ProvenanceStatus {
            image: result.image.clone(),
            attestation: Some(p.attestation.clone()),
            signed: p.signature.is_some(),
            signature: p.signature.clone(),
            referrers: p.referrers.clone(),
        })
    });
    let message = success_message(result);
    set_settled(&mut status, "True", "Succeeded", &message, generation, now);
    summarize(&mut status, now);
    status
}

/// What the Succeeded condition (and the Event) says: the image, and whether its provenance
/// went with it signed.
fn success_message(result: &BuildResult) -> String {
    match &result.published {
        Some(published) if published.signature.is_some() => format!(
            "pushed {} with its signed provenance ({})",
            result.image, published.attestation
        ),
        Some(published) => format!(
            "pushed {} with its provenance ({}, unsigned)",
            result.image, published.attestation
        ),
        None => format!("pushed {}", result.image),
    }
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
    if let Some(image) = &failure.pushed_image {
        status.provenance = Some(Box::new(ProvenanceStatus {
            image: image.clone(),
            ..ProvenanceStatus::default()
        }));
    }
    let reason = failure.reason.as_str();
    set_settled(
        &mut status,
        "False",
        reason,
        &failure.message,
        generation,
        now,
    );
    summarize(&mut status, now);
    status
}

/// Sets `Reconciling` and `Stalled` from the phase, the pending retry and the `Succeeded`
/// condition, and removes whichever is not true. A build on its way (Running, Pending) or a
/// failure waiting for its retry is Reconciling; a failure with nothing left to try is Stalled,
/// with its reason and message; a success or a cancellation (`spec.suspend`) is neither, which
/// kstatus reads as Current: the spec asked for no more than what happened. A cancellation also
/// has no `Ready`: the suspended spec asks for no image, and kstatus reads any `Ready` that is
/// not true as in progress, so a GitOps wait on a suspended SourceBuild would never end.
/// Idempotent.
pub fn summarize(status: &mut SourceBuildStatus, now: Timestamp) {
    let (outcome, message) = status
        .condition(SUCCEEDED)
        .map(|c| (c.reason.clone(), c.message.clone()))
        .unwrap_or_default();
    let (reconciling, stalled) = match status.phase {
        Some(Phase::Running) => (Some(BUILDING.to_string()), None),
        Some(Phase::Pending) => (Some(PENDING.to_string()), None),
        Some(Phase::Failed) if status.next_attempt_time.is_some() => {
            (Some(RETRY_SCHEDULED.to_string()), None)
        }
        Some(Phase::Failed) => (None, Some(outcome)),
        Some(Phase::Succeeded | Phase::Cancelled) | None => (None, None),
    };
    let generation = status.observed_generation.unwrap_or(0);
    for (type_, reason) in [(RECONCILING, reconciling), (STALLED, stalled)] {
        match reason {
            Some(reason) => {
                set_condition(status, type_, "True", &reason, &message, generation, now)
            }
            None => status.conditions.retain(|c| c.type_ != type_),
        }
    }
    if status.phase == Some(Phase::Cancelled) {
        status.conditions.retain(|c| c.type_ != READY);
    }
}

/// `status` with [`summarize`] applied: equal to it when it already says what kstatus needs.
pub fn summarized(status: &SourceBuildStatus, now: Timestamp) -> SourceBuildStatus {
    let mut status = status.clone();
    summarize(&mut status, now);
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
            started: None,
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
            published: None,
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
        assert_eq!(
            s3.condition(SUCCEEDED).unwrap().message,
            format!("pushed {}", result().image)
        );
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
    fn the_success_message_says_whether_the_provenance_is_signed() {
        let attestation = format!("sha256:{}", "b".repeat(64));
        let published = |signature: Option<String>| BuildResult {
            published: Some(crate::contract::PublishResult {
                subject: result().digest,
                attestation: attestation.clone(),
                signature,
                referrers: Some("TagSchema".into()),
            }),
            ..result()
        };
        let message = |r: &BuildResult| {
            succeeded(
                &SourceBuildStatus::default(),
                1,
                "app-build-1",
                r,
                Time(at(0)),
                at(60),
            )
            .condition(SUCCEEDED)
            .unwrap()
            .message
            .clone()
        };
        let image = result().image;
        assert_eq!(
            message(&published(Some(format!("sha256:{}", "c".repeat(64))))),
            format!("pushed {image} with its signed provenance ({attestation})")
        );
        assert_eq!(
            message(&published(None)),
            format!("pushed {image} with its provenance ({attestation}, unsigned)")
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
            pushed_image: None,
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

    /// The kstatus conditions as `(type, reason)` pairs, in the order status keeps them.
    fn summary(status: &SourceBuildStatus) -> Vec<(&str, &str)> {
        status
            .conditions
            .iter()
            .filter(|c| c.type_ == RECONCILING || c.type_ == STALLED)
            .inspect(|c| assert_eq!(c.status, "True", "{} is present only while true", c.type_))
            .map(|c| (c.type_.as_str(), c.reason.as_str()))
            .collect()
    }

    fn assemble_failed() -> BuildFailure {
        BuildFailure {
            reason: FailureReason::AssembleFailed,
            message: "assemble exited with code 3".into(),
            log_snippet: None,
            provenance: None,
            pushed_image: None,
        }
    }

    #[test]
    fn a_build_on_its_way_is_reconciling_and_a_success_is_neither() {
        let s1 = started(&SourceBuildStatus::default(), &first_build(1), at(0));
        assert_eq!(summary(&s1), [(RECONCILING, BUILDING)]);
        let reconciling = s1.condition(RECONCILING).unwrap();
        assert_eq!(reconciling.observed_generation, Some(1));
        assert_eq!(
            reconciling.message,
            s1.condition(SUCCEEDED).unwrap().message
        );
        let stuck = "container build is waiting: ImagePullBackOff";
        let pending = Phase::Pending;
        let s2 = in_progress(
            &s1,
            1,
            "app-build-1",
            pending,
            Some(stuck),
            Time(at(0)),
            at(5),
        );
        assert_eq!(summary(&s2), [(RECONCILING, PENDING)]);
        // Still true: the transition time stays at the build's start.
        let since = &s2.condition(RECONCILING).unwrap().last_transition_time;
        assert_eq!(since, &Time(at(0)));
        let s3 = succeeded(&s2, 1, "app-build-1", &result(), Time(at(0)), at(60));
        assert_eq!(summary(&s3), []);
    }

    #[test]
    fn a_failure_for_good_is_stalled_with_its_reason_and_message() {
        let s1 = started(&SourceBuildStatus::default(), &first_build(2), at(0));
        let bad = failed(
            &s1,
            2,
            Some("app-build-2"),
            &assemble_failed(),
            None,
            at(30),
        );
        assert_eq!(summary(&bad), [(STALLED, "AssembleFailed")]);
        let stalled = bad.condition(STALLED).unwrap();
        assert_eq!(stalled.message, "assemble exited with code 3");
        assert_eq!(stalled.observed_generation, Some(2));
        assert_eq!(stalled.last_transition_time, Time(at(30)));
    }

    #[test]
    fn a_failure_with_a_retry_due_is_reconciling_not_stalled() {
        let s1 = started(&SourceBuildStatus::default(), &first_build(1), at(0));
        let s1 = polled(
            &s1,
            1,
            Ok("89ab"),
            "main of https://example.com/a.git",
            at(0),
        );
        let evicted = BuildFailure {
            reason: FailureReason::Evicted,
            message: "the kubelet evicted the Pod".into(),
            ..assemble_failed()
        };
        let bad = failed(&s1, 1, Some("app-build-1"), &evicted, None, at(30));
        let retrying = retry_at(bad, at(40), 1, 2, at(30));
        assert_eq!(summary(&retrying), [(RECONCILING, RETRY_SCHEDULED)]);
        let note = format!(" (transient; attempt 2 of 3 at {})", at(40));
        let reconciling = retrying.condition(RECONCILING).unwrap();
        assert!(
            reconciling.message.ends_with(&note),
            "{}",
            reconciling.message
        );
        let source = retrying.condition(SOURCE_REACHABLE).unwrap();
        assert_eq!(
            source.message,
            "main of https://example.com/a.git is at 89ab"
        );
        // Deciding again changes nothing.
        assert_eq!(retry_at(retrying.clone(), at(40), 1, 2, at(35)), retrying);
    }

    #[test]
    fn a_cancelled_build_is_neither_reconciling_nor_stalled() {
        let s1 = started(&SourceBuildStatus::default(), &first_build(1), at(0));
        let stopped = cancelled(&s1, 2, Some("app-build-1"), at(10));
        assert_eq!(summary(&stopped), []);
        assert_eq!(stopped.condition(SUCCEEDED).unwrap().reason, "Cancelled");
        assert_eq!(
            stopped.condition(READY),
            None,
            "a Ready=False reads in progress"
        );
        // A cancellation recorded with Ready loses it, as a legacy failure gains Stalled.
        let mut legacy = stopped.clone();
        set_condition(&mut legacy, READY, "False", "Cancelled", "", 2, at(10));
        assert_eq!(summarized(&legacy, at(20)), stopped);
    }

    #[test]
    fn a_failure_recorded_before_stalled_existed_gains_it_once() {
        let s1 = started(&SourceBuildStatus::default(), &first_build(1), at(0));
        let mut legacy = failed(
            &s1,
            1,
            Some("app-build-1"),
            &assemble_failed(),
            None,
            at(30),
        );
        legacy.conditions.retain(|c| c.type_ != STALLED);
        let caught_up = summarized(&legacy, at(500));
        assert_eq!(summary(&caught_up), [(STALLED, "AssembleFailed")]);
        assert_eq!(summarized(&caught_up, at(900)), caught_up);
    }
}
