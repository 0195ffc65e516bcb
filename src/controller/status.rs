//! Status transitions: the old status and what happened give the new status. Pure.
//!
//! Conditions follow the Kubernetes API conventions: `Succeeded` is the outcome of the build of
//! `observedGeneration` (Unknown while it runs), `Ready` says whether an image for the current
//! spec exists. `lastTransitionTime` only moves when a condition's status changes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::api::{Phase, SourceBuildStatus};
use crate::outcome::{BuildFailure, BuildResult};
use crate::prepare::PrepareResult;

/// Condition type: an image built from the current spec is available.
pub const READY: &str = "Ready";
/// Condition type: outcome of the latest build.
pub const SUCCEEDED: &str = "Succeeded";

/// A build Pod was just created for `generation`.
pub fn started(
    old: &SourceBuildStatus,
    generation: i64,
    pod_name: &str,
    now: Timestamp,
) -> SourceBuildStatus {
    let mut status = for_generation(old, generation);
    status.phase = Some(Phase::Pending);
    status.pod_name = Some(pod_name.to_string());
    status.start_time = Some(Time(now));
    let message = format!("build Pod {pod_name} created for generation {generation}");
    set_condition(
        &mut status,
        SUCCEEDED,
        "Unknown",
        "Pending",
        &message,
        generation,
        now,
    );
    set_condition(
        &mut status,
        READY,
        "False",
        "Building",
        &message,
        generation,
        now,
    );
    status
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
    set_condition(
        &mut status,
        SUCCEEDED,
        "Unknown",
        &reason,
        &message,
        generation,
        now,
    );
    set_condition(
        &mut status,
        READY,
        "False",
        "Building",
        &message,
        generation,
        now,
    );
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
    set_condition(
        &mut status,
        SUCCEEDED,
        "True",
        "Succeeded",
        &message,
        generation,
        now,
    );
    set_condition(
        &mut status,
        READY,
        "True",
        "Succeeded",
        &message,
        generation,
        now,
    );
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
    set_condition(
        &mut status,
        SUCCEEDED,
        "False",
        reason,
        &failure.message,
        generation,
        now,
    );
    set_condition(
        &mut status,
        READY,
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
        status.completion_time = None;
        status.log_snippet = None;
        status.source_revision = None;
        status.builder_image = None;
        status.dockerfile_sha256 = None;
    }
    status.observed_generation = Some(generation);
    status
}

fn set_provenance(status: &mut SourceBuildStatus, provenance: Option<&PrepareResult>) {
    if let Some(p) = provenance {
        status.source_revision = p.revision.clone();
        status.builder_image = Some(p.builder_image.clone());
        status.dockerfile_sha256 = Some(p.dockerfile_sha256.clone());
    }
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
    use crate::outcome::FailureReason;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    fn provenance() -> PrepareResult {
        PrepareResult {
            revision: Some("0123456789abcdef0123456789abcdef01234567".into()),
            dockerfile_sha256: format!("sha256:{}", "d".repeat(64)),
            builder_image: "quay.io/sclorg/python-312-c9s:c9s".into(),
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
        let s1 = started(&s0, 1, "app-build-1", at(0));
        assert_eq!(s1.phase, Some(Phase::Pending));
        assert_eq!(s1.condition(SUCCEEDED).unwrap().status, "Unknown");
        assert_eq!(s1.condition(READY).unwrap().status, "False");
        let s2 = in_progress(
            &s1,
            1,
            "app-build-1",
            Phase::Running,
            None,
            Time(at(0)),
            at(5),
        );
        assert_eq!(s2.phase, Some(Phase::Running));
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
        let next = started(&good, 2, "app-build-2", at(100));
        assert_eq!(
            next.source_revision, None,
            "gen 1's commit must not describe gen 2"
        );
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
