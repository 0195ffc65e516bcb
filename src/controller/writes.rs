//! The pure step between a plan and the API server: whether the cache's view of the current
//! build Pod can be trusted, and which of a plan's writes go now.
//!
//! In a burst (a GitOps sync applying hundreds of SourceBuilds) the API server's CPU is the
//! bound, and every write beside a Pod create makes the creates wait. So while the API server
//! is behind ([`Pressure::is_behind`]) a new build creates its Pod and leaves its status and
//! Events to the reconcile that follows, and a progress status waits; once the server has
//! caught up each build gets one status write of the phase it has reached. Final statuses
//! (the digest, a failure, a cancellation) and Pod deletions never wait: users and timeouts
//! wait on them. The reconciler carries out what [`decide`] returns; figures in
//! `docs/performance.md`.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use crate::api::{Phase, SourceBuildStatus};
use crate::controller::events::Event;
use crate::controller::plan::{Plan, Target};

/// Reconciles waiting at the write gate to create a Pod from which progress waits. Any: one
/// waits only when every permit is in use, that is when the API server is the bottleneck.
pub const BACKLOG: usize = 1;

/// Our Pod creates not yet shown by our Pod watch from which progress waits. At a steady load
/// the watch shows each within milliseconds; in a burst the API server answers creates long
/// before its watches deliver them.
pub const UNSEEN_CREATES: usize = 16;

/// When a reconcile that put its writes off looks again (if no watch event comes first).
pub const DEFER_FOR: Duration = Duration::from_millis(500);

/// How far behind the API server is, as the operator sees it at one moment.
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

/// Where the reconcile takes the current build's Pod from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodLookup {
    /// The cache: it shows the Pod, or its absence is news the plan may act on.
    Cache,
    /// We created the Pod a moment ago and its watch event, which reconciles again, is on the
    /// way: nothing to decide until it comes (the cache stops trusting the create after a
    /// while, and then the lookup is [`PodLookup::Confirm`]).
    AwaitWatch,
    /// Status records the Pod as the running build but the cache does not hold it: the watch
    /// may lag behind a create of an earlier run of the controller, so ask the API server
    /// before calling the Pod deleted.
    Confirm,
}

/// Where the current build's Pod comes from, given whether the cache holds it and whether we
/// created it a moment ago.
pub fn lookup(
    status: Option<&SourceBuildStatus>,
    target: &Target,
    in_cache: bool,
    just_created: bool,
) -> PodLookup {
    if in_cache {
        return PodLookup::Cache;
    }
    if just_created {
        return PodLookup::AwaitWatch;
    }
    let recorded_running = status.is_some_and(|s| {
        s.observed_generation == Some(target.generation)
            && s.pod_name.as_deref() == Some(target.pod_name.as_str())
            && !s.phase.is_some_and(Phase::is_final)
    });
    if target.start.is_none() && recorded_running {
        PodLookup::Confirm
    } else {
        PodLookup::Cache
    }
}

/// What the reconcile does after its writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Then {
    /// Reconcile again after this long, even if nothing changes.
    RequeueAfter(Duration),
    /// Wait for a watch event.
    #[default]
    AwaitChange,
}

/// The writes of one reconcile, in the order they are made.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Writes {
    /// Build Pods to delete.
    pub delete: Vec<String>,
    /// A build Pod to create.
    pub create: Option<Pod>,
    /// Give the write permit back after the create and take a new one for the rest: the build
    /// has its Pod, and its status waits behind builds still to start.
    pub yield_after_create: bool,
    /// The status to write.
    pub status: Option<SourceBuildStatus>,
    /// Events to publish.
    pub events: Vec<Event>,
    /// A status or Events of the plan wait for a later reconcile (the API server is behind).
    pub deferred: bool,
    /// What follows.
    pub then: Then,
}

impl Writes {
    /// Whether any request is made.
    pub fn talks(&self) -> bool {
        self.create.is_some()
            || !self.delete.is_empty()
            || self.status.is_some()
            || !self.events.is_empty()
    }
}

/// The writes of `plan` to make now under `pressure`.
pub fn decide(plan: Plan, pressure: Pressure) -> Writes {
    let deferred = Writes {
        deferred: true,
        then: Then::RequeueAfter(DEFER_FOR),
        ..Writes::default()
    };
    if pressure.is_behind() {
        if plan.create.is_some() {
            return Writes {
                delete: plan.delete,
                create: plan.create,
                deferred: plan.status.is_some() || !plan.events.is_empty(),
                ..deferred
            };
        }
        let final_status = plan
            .status
            .as_ref()
            .is_some_and(|s| s.phase.is_some_and(Phase::is_final));
        let progress_only = (plan.status.is_some() || !plan.events.is_empty())
            && plan.delete.is_empty()
            && !final_status;
        if progress_only {
            return deferred;
        }
    }
    let then = match plan.requeue_after {
        // A little past the deadline, so the timeout is seen as reached.
        Some(after) => Then::RequeueAfter(after + Duration::from_secs(1)),
        None => Then::AwaitChange,
    };
    Writes {
        yield_after_create: plan.create.is_some()
            && (plan.status.is_some() || !plan.events.is_empty()),
        delete: plan.delete,
        create: plan.create,
        status: plan.status,
        events: plan.events,
        deferred: false,
        then,
    }
}

/// The API server refused a create and the plan `failed` records why: its status and Events
/// replace what was to follow the create. The deletions are done already. A failure is final,
/// so it is written whatever the pressure.
pub fn after_refused_create(failed: Plan) -> Writes {
    decide(
        Plan {
            delete: Vec::new(),
            create: None,
            ..failed
        },
        Pressure::default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::events::{Event, Severity};
    use crate::controller::status::NewBuild;

    fn status(phase: Phase) -> Option<SourceBuildStatus> {
        Some(SourceBuildStatus {
            phase: Some(phase),
            ..Default::default()
        })
    }

    fn started() -> Event {
        Event {
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

    /// Nothing of the plan held back.
    fn all_of(plan: &Plan) -> bool {
        let writes = decide(plan.clone(), waiting(0));
        let now = decide(plan.clone(), waiting(BACKLOG - 1));
        writes == now && !now.deferred && now.status == plan.status && now.events == plan.events
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
            assert!(all_of(&plan), "{plan:?}");
        }
    }

    #[test]
    fn a_new_build_writes_its_pod_then_yields_then_its_status() {
        let writes = decide(new_build(), Pressure::default());
        assert!(writes.create.is_some() && writes.yield_after_create);
        assert_eq!(writes.status, status(Phase::Pending));
        assert_eq!(writes.events, [started()]);
        assert_eq!(
            writes.then,
            Then::RequeueAfter(Duration::from_secs(3601)),
            "a little past the deadline"
        );
        // A create with nothing after it keeps its permit.
        let bare = Plan {
            create: Some(Pod::default()),
            ..Plan::default()
        };
        assert!(!decide(bare, Pressure::default()).yield_after_create);
    }

    #[test]
    fn in_a_backlog_a_new_build_creates_its_pod_and_nothing_else() {
        let writes = decide(new_build(), waiting(BACKLOG));
        assert!(writes.create.is_some() && writes.deferred);
        assert_eq!(writes.then, Then::RequeueAfter(DEFER_FOR));
        assert_eq!((writes.status, writes.events.len()), (None, 0));
        // Also when it stops the build it replaces (the deletion goes with the create).
        let replacing = Plan {
            delete: vec!["app-1-build-1".into()],
            ..new_build()
        };
        let writes = decide(replacing, waiting(BACKLOG + 500));
        assert_eq!(writes.delete, ["app-1-build-1"]);
        assert!(writes.create.is_some() && writes.status.is_none());
    }

    #[test]
    fn in_a_backlog_progress_waits() {
        for phase in [Phase::Pending, Phase::Running] {
            let plan = Plan {
                status: status(phase),
                ..Plan::default()
            };
            let writes = decide(plan, waiting(BACKLOG));
            assert!(!writes.talks() && writes.deferred, "{phase:?}");
            assert_eq!(writes.then, Then::RequeueAfter(DEFER_FOR));
        }
        let event_only = Plan {
            events: vec![started()],
            ..Plan::default()
        };
        assert!(!decide(event_only, waiting(BACKLOG)).talks());
    }

    #[test]
    fn in_a_backlog_results_deletions_and_no_ops_are_not_put_off() {
        for phase in [Phase::Succeeded, Phase::Failed, Phase::Cancelled] {
            let plan = Plan {
                status: status(phase),
                events: vec![started()],
                ..Plan::default()
            };
            let writes = decide(plan, waiting(BACKLOG * 10));
            assert!(
                !writes.deferred && writes.status == status(phase),
                "{phase:?}"
            );
        }
        let timed_out = Plan {
            delete: vec!["app-1-build-1".into()],
            status: status(Phase::Running),
            ..Plan::default()
        };
        let writes = decide(timed_out, waiting(BACKLOG));
        assert!(!writes.deferred && writes.status.is_some() && writes.delete.len() == 1);
        // Nothing to write: nothing to put off, and no pointless requeue.
        let nothing = decide(Plan::default(), waiting(BACKLOG));
        assert!(!nothing.talks() && !nothing.deferred);
        assert_eq!(nothing.then, Then::AwaitChange);
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
        assert!(!decide(progress.clone(), unseen(UNSEEN_CREATES - 1)).deferred);
        assert!(decide(progress, unseen(UNSEEN_CREATES)).deferred);
        let writes = decide(new_build(), unseen(UNSEEN_CREATES));
        assert!(writes.create.is_some() && writes.status.is_none());
        let done = Plan {
            status: status(Phase::Succeeded),
            ..Plan::default()
        };
        assert!(!decide(done, unseen(UNSEEN_CREATES * 10)).deferred);
    }

    #[test]
    fn a_refused_create_writes_the_failure_even_in_a_backlog() {
        let failed = Plan {
            delete: vec!["old".into()],
            status: status(Phase::Failed),
            ..Plan::default()
        };
        let writes = after_refused_create(failed);
        assert!(writes.delete.is_empty(), "deleted already");
        assert!(writes.create.is_none() && !writes.yield_after_create);
        assert_eq!(writes.status, status(Phase::Failed));
        assert_eq!(writes.then, Then::AwaitChange);
    }

    fn target(start: bool) -> Target {
        Target {
            generation: 2,
            build: 1,
            pod_name: "app-2-build-1".into(),
            start: start.then(|| NewBuild {
                generation: 2,
                build: 1,
                pod_name: "app-2-build-1".into(),
                trigger: crate::api::Trigger::ConfigChange,
                attempt: 1,
                rebuild: None,
                revision: None,
            }),
        }
    }

    fn recorded(generation: i64, pod: &str, phase: Phase) -> SourceBuildStatus {
        SourceBuildStatus {
            observed_generation: Some(generation),
            pod_name: Some(pod.into()),
            phase: Some(phase),
            ..Default::default()
        }
    }

    #[test]
    fn a_pod_in_the_cache_is_taken_from_it() {
        let running = recorded(2, "app-2-build-1", Phase::Running);
        assert_eq!(
            lookup(Some(&running), &target(false), true, true),
            PodLookup::Cache
        );
    }

    #[test]
    fn a_pod_just_created_is_awaited_not_fetched() {
        for status in [None, Some(recorded(2, "app-2-build-1", Phase::Running))] {
            assert_eq!(
                lookup(status.as_ref(), &target(false), false, true),
                PodLookup::AwaitWatch
            );
        }
    }

    #[test]
    fn a_running_build_missing_from_the_cache_is_confirmed() {
        let running = recorded(2, "app-2-build-1", Phase::Running);
        assert_eq!(
            lookup(Some(&running), &target(false), false, false),
            PodLookup::Confirm
        );
        // A build that starts now, a finished one, or another build's Pod: the cache's
        // "missing" stands (a new Pod is created, or nothing is to be done).
        assert_eq!(
            lookup(Some(&running), &target(true), false, false),
            PodLookup::Cache
        );
        let done = recorded(2, "app-2-build-1", Phase::Succeeded);
        assert_eq!(
            lookup(Some(&done), &target(false), false, false),
            PodLookup::Cache
        );
        let older = recorded(1, "app-1-build-1", Phase::Running);
        assert_eq!(
            lookup(Some(&older), &target(false), false, false),
            PodLookup::Cache
        );
        assert_eq!(lookup(None, &target(false), false, false), PodLookup::Cache);
    }
}
