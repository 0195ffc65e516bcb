//! Which writes of a plan go now while the API server is behind.
//!
//! In a burst (a GitOps sync or a script applying hundreds of SourceBuilds) every reconcile
//! used to create a Pod and write its status at once, and the Pod watch soon asked for more:
//! writes per build queued at the API server, whose CPU is the burst's bound. The
//! [`write_gate`](crate::controller::write_gate) already lets Pod creates go first; this
//! module keeps the rest from piling up beside them. The API server is taken to be behind
//! while [`BACKLOG`] or more reconciles wait at the gate to create a Pod, or while
//! [`UNSEEN_CREATES`] or more of our own Pod creates have not come back through our Pod watch
//! yet. Then a reconcile creates its Pod and leaves status and Events to the reconcile that
//! follows (the new Pod's watch event, or [`DEFER_FOR`] later), and a reconcile with nothing
//! but a progress status to write puts it off. Once the API server has caught up each build
//! gets its status in one write of the phase it has reached by then, so a burst also costs
//! fewer writes. Final statuses (the digest, a failure, a cancellation) and Pod deletions are
//! never put off: users and timeouts wait on them.

use std::time::Duration;

use crate::controller::plan::Plan;

/// Reconciles waiting at the write gate to create a Pod from which status waits. Any: one
/// waits only when every permit is in use, that is when the API server is the bottleneck.
pub const BACKLOG: usize = 1;

/// Our Pod creates not yet shown by our Pod watch from which status waits. At a steady 20
/// builds a second the watch shows each within milliseconds (steady load puts nothing off:
/// 2,400 status writes for 1,200 builds); in a burst
/// the API server answers creates long before its watches deliver them, and the gate alone
/// seldom has a queue, since the operator keeps up with the SourceBuilds it hears of. Measured
/// on a 2-core machine (1,000 builds at once): status writes 1,986-1,989 -> 1,562-1,922;
/// create -> Pod stays within the runs' spread (audit-log p99 0.7-3.6 s either way).
pub const UNSEEN_CREATES: usize = 16;

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

/// How far behind the API server is, as the operator sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pressure {
    /// Reconciles waiting at the write gate to create a Pod.
    pub starts_waiting: usize,
    /// Pods we created that our Pod watch has not shown yet.
    pub unseen_creates: usize,
}

impl Pressure {
    /// Whether progress writes wait.
    pub fn is_behind(&self) -> bool {
        self.starts_waiting >= BACKLOG || self.unseen_creates >= UNSEEN_CREATES
    }
}

/// The writes of `plan` to make under `pressure`.
pub fn writes(plan: &Plan, pressure: Pressure) -> Writes {
    if !pressure.is_behind() {
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

    fn waiting(starts_waiting: usize) -> Pressure {
        Pressure {
            starts_waiting,
            unseen_creates: 0,
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
            assert_eq!(writes(&plan, waiting(BACKLOG - 1)), Writes::All, "{plan:?}");
        }
    }

    #[test]
    fn in_a_backlog_a_new_build_creates_its_pod_and_nothing_else() {
        assert_eq!(writes(&new_build(), waiting(BACKLOG)), Writes::PodsOnly);
        // Also when it stops the build it replaces (the deletion goes with the create).
        let replacing = Plan {
            delete: vec!["app-1-build-1".into()],
            ..new_build()
        };
        assert_eq!(writes(&replacing, waiting(BACKLOG + 500)), Writes::PodsOnly);
    }

    #[test]
    fn in_a_backlog_progress_waits() {
        for phase in [Phase::Pending, Phase::Running] {
            let plan = Plan {
                status: status(phase),
                ..Plan::default()
            };
            assert_eq!(writes(&plan, waiting(BACKLOG)), Writes::Later, "{phase:?}");
        }
        let event_only = Plan {
            events: vec![started()],
            ..Plan::default()
        };
        assert_eq!(writes(&event_only, waiting(BACKLOG)), Writes::Later);
    }

    #[test]
    fn in_a_backlog_results_deletions_and_no_ops_are_not_put_off() {
        for phase in [Phase::Succeeded, Phase::Failed, Phase::Cancelled] {
            let plan = Plan {
                status: status(phase),
                events: vec![started()],
                ..Plan::default()
            };
            assert_eq!(
                writes(&plan, waiting(BACKLOG * 10)),
                Writes::All,
                "{phase:?}"
            );
        }
        let timed_out = Plan {
            delete: vec!["app-1-build-1".into()],
            status: status(Phase::Running),
            ..Plan::default()
        };
        assert_eq!(writes(&timed_out, waiting(BACKLOG)), Writes::All);
        // Nothing to write: nothing to put off, and no pointless requeue.
        assert_eq!(writes(&Plan::default(), waiting(BACKLOG)), Writes::All);
    }

    #[test]
    fn creates_the_watch_has_not_shown_count_as_a_backlog() {
        let progress = Plan {
            status: status(Phase::Running),
            ..Plan::default()
        };
        let unseen = |unseen_creates| Pressure {
            starts_waiting: 0,
            unseen_creates,
        };
        assert_eq!(writes(&progress, unseen(UNSEEN_CREATES - 1)), Writes::All);
        assert_eq!(writes(&progress, unseen(UNSEEN_CREATES)), Writes::Later);
        assert_eq!(
            writes(&new_build(), unseen(UNSEEN_CREATES)),
            Writes::PodsOnly
        );
        let done = Plan {
            status: status(Phase::Succeeded),
            ..Plan::default()
        };
        assert_eq!(writes(&done, unseen(UNSEEN_CREATES * 10)), Writes::All);
    }
}
