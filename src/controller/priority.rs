//! Which writes of a plan go now when builds wait for their Pods.
//!
//! In a burst (a GitOps sync or a script applying hundreds of SourceBuilds) every reconcile
//! used to create a Pod, write a `Pending` status and publish `BuildStarted`, and the Pod
//! watch soon asked for `Running`: four writes per build queued at the API server. The
//! [`write_gate`](crate::controller::write_gate) already lets Pod creates go first; this
//! module keeps the rest from piling up behind them. While [`BACKLOG`] or more reconciles wait
//! at the gate to create a Pod, a reconcile creates its Pod and leaves status and Events to
//! the reconcile that follows (the new Pod's watch event, or [`DEFER_FOR`] later), and a
//! reconcile with nothing but a progress status to write puts it off. Once the backlog is gone
//! each build gets its status in one write of the phase it has reached by then, so a burst also
//! costs fewer writes. Final statuses (the digest, a failure, a cancellation) and Pod deletions
//! are never put off: users and timeouts wait on them.

use std::time::Duration;

use crate::controller::plan::Plan;

/// Reconciles waiting at the write gate to create a Pod from which status waits. Any: one
/// waits only when every permit is in use, that is when the API server is the bottleneck.
pub const BACKLOG: usize = 1;

/// When a reconcile that put its writes off looks again (if no watch event comes first).
pub const DEFER_FOR: Duration = Duration::from_millis(500);

/// What a reconcile writes of its plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writes {
    /// Everything the plan holds.
    All,
    /// The Pod deletions and the create; status and Events wait for the next reconcile.
    PodsOnly,
    /// Nothing now; look again after [`DEFER_FOR`].
    Later,
}

/// The writes of `plan` to make while `starts_waiting` reconciles wait to create a Pod.
pub fn writes(plan: &Plan, starts_waiting: usize) -> Writes {
    if starts_waiting < BACKLOG {
        return Writes::All;
    }
    if plan.create.is_some() {
        return Writes::PodsOnly;
    }
    let final_status = plan
        .status
        .as_ref()
        .is_some_and(|s| s.phase.is_some_and(crate::api::Phase::is_final));
    let progress_only = (plan.status.is_some() || !plan.events.is_empty())
        && plan.delete.is_empty()
        && !final_status;
    if progress_only {
        Writes::Later
    } else {
        Writes::All
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Phase, SourceBuildStatus};
    use crate::controller::plan::{Note, Severity};
    use k8s_openapi::api::core::v1::Pod;

    fn status(phase: Phase) -> Option<SourceBuildStatus> {
        Some(SourceBuildStatus {
            phase: Some(phase),
            ..Default::default()
        })
    }

    fn started() -> Note {
        Note {
            severity: Severity::Normal,
            reason: "BuildStarted".into(),
            message: String::new(),
        }
    }

    fn new_build() -> Plan {
        Plan {
            create: Some(Pod::default()),
            status: status(Phase::Pending),
            events: vec![started()],
            requeue_after: Some(Duration::from_secs(3600)),
            ..Plan::default()
        }
    }

    #[test]
    fn below_the_backlog_every_write_goes_now() {
        for plan in [
            new_build(),
            Plan {
                status: status(Phase::Running),
                ..Plan::default()
            },
            Plan::default(),
        ] {
            assert_eq!(writes(&plan, BACKLOG - 1), Writes::All, "{plan:?}");
        }
    }

    #[test]
    fn in_a_backlog_a_new_build_creates_its_pod_and_nothing_else() {
        assert_eq!(writes(&new_build(), BACKLOG), Writes::PodsOnly);
        // Also when it stops the build it replaces (the deletion goes with the create).
        let replacing = Plan {
            delete: vec!["app-1-build-1".into()],
            ..new_build()
        };
        assert_eq!(writes(&replacing, BACKLOG + 500), Writes::PodsOnly);
    }

    #[test]
    fn in_a_backlog_progress_waits() {
        for phase in [Phase::Pending, Phase::Running] {
            let plan = Plan {
                status: status(phase),
                ..Plan::default()
            };
            assert_eq!(writes(&plan, BACKLOG), Writes::Later, "{phase:?}");
        }
        let event_only = Plan {
            events: vec![started()],
            ..Plan::default()
        };
        assert_eq!(writes(&event_only, BACKLOG), Writes::Later);
    }

    #[test]
    fn in_a_backlog_results_deletions_and_no_ops_are_not_put_off() {
        for phase in [Phase::Succeeded, Phase::Failed, Phase::Cancelled] {
            let plan = Plan {
                status: status(phase),
                events: vec![started()],
                ..Plan::default()
            };
            assert_eq!(writes(&plan, BACKLOG * 10), Writes::All, "{phase:?}");
        }
        let timed_out = Plan {
            delete: vec!["app-1-build-1".into()],
            status: status(Phase::Running),
            ..Plan::default()
        };
        assert_eq!(writes(&timed_out, BACKLOG), Writes::All);
        // Nothing to write: nothing to put off, and no pointless requeue.
        assert_eq!(writes(&Plan::default(), BACKLOG), Writes::All);
    }
}
