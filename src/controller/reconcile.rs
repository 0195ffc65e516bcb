//! The reconciler: reads a SourceBuild's Pods from the caches, asks [`plan`] what to do and
//! [`writes`] what of it to write now, and has [`execute`] make the requests.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::{Instrument, debug, info_span, warn};

use crate::api::SourceBuild;
use crate::controller::cache::created_pods::TRUSTED_FOR;
use crate::controller::cache::source_build::CachedSourceBuild;
use crate::controller::context::Context;
use crate::controller::execute::{Error, execute, get_owned_pod};
use crate::controller::plan::{self, Plan, Target};
use crate::controller::throttle::write_gate::{Permit, Priority};
use crate::controller::writes::{self, PodLookup, Pressure, Writes};
use crate::controller::{poll, poll_remote};

/// Reconciles one SourceBuild. Every log line of the reconcile carries the SourceBuild's
/// `namespace` and name (as `sourcebuild`: the JSON formatter already uses a span's `name` key
/// for the span's own name) through this span.
pub async fn reconcile(sb: Arc<SourceBuild>, ctx: Arc<Context>) -> Result<Action, Error> {
    let span = info_span!(
        "reconcile",
        namespace = sb.namespace().unwrap_or_default(),
        sourcebuild = sb.name_any(),
    );
    ctx.throttle.pending.picked_up(&ObjectRef::from_obj(&*sb));
    let _in_flight = ctx.sinks.metrics.reconcile_started();
    reconcile_one(sb, ctx).instrument(span).await
}

/// Reconciles a SourceBuild of the Controller's cache: [`reconcile`] of it unpacked.
pub async fn reconcile_cached(
    cached: Arc<CachedSourceBuild>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let sb = cached.unpack()?;
    reconcile(Arc::new(sb), ctx).await
}

/// How a pass of a reconcile ended.
enum Pass {
    /// Done; what the scheduler should do next.
    Done(Action),
    /// The pass must make API requests: wait for a permit of this priority and plan again.
    Wait(Priority),
}

async fn reconcile_one(cached: Arc<SourceBuild>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.sinks.metrics.reconciled();
    ctx.caches.pods_listed().await;
    // A due look at a polled remote comes first: what it sees may start a build. It is taken
    // once; a second pass plans from the same answer.
    let answer = ask_remote_if_due(&ctx.caches.status_memo.freshest(cached.clone())).await;
    // A pass holds a plan (Pods and statuses, some 20 KB): boxed, it lives on the heap only
    // while it runs, so the many reconciles kube-runtime keeps in flight stay small, and one
    // waiting for a permit holds none of it. The second pass plans again from the cache.
    let priority = match Box::pin(attempt(&cached, &ctx, answer.as_ref(), None)).await? {
        Pass::Done(action) => return Ok(action),
        Pass::Wait(priority) => priority,
    };
    let permit = ctx.throttle.gate.acquire(priority).await;
    match Box::pin(attempt(&cached, &ctx, answer.as_ref(), Some(permit))).await? {
        Pass::Done(action) => Ok(action),
        // Not reached: a pass with a permit does not wait for one.
        Pass::Wait(_) => Ok(Action::requeue(writes::DEFER_FOR)),
    }
}

async fn ask_remote_if_due(sb: &SourceBuild) -> Option<poll::Answer> {
    let git = sb.spec.source.git.as_ref()?;
    if !poll::due(sb, Timestamp::now()) {
        return None;
    }
    let answer = poll_remote::ask(git.clone()).await;
    debug!(?answer, "polled the git remote");
    Some(answer)
}

/// One pass: plans, decides the writes, and makes them if they need no request, or `permit`
/// is held, or a permit is free at once.
async fn attempt(
    cached: &Arc<SourceBuild>,
    ctx: &Context,
    answer: Option<&poll::Answer>,
    mut permit: Option<Permit>,
) -> Result<Pass, Error> {
    // The cache may not show our last status write yet; plan from what is really stored.
    let stored = ctx.caches.status_memo.freshest(cached.clone());
    let namespace = stored
        .namespace()
        .ok_or_else(|| Error::NoNamespace(stored.name_any()))?;
    let now = Timestamp::now();
    let seen = poll::record_answer(&stored, answer, now);
    let target = plan::target(&seen, now);
    let (mut current, others) = cached_pods(ctx, &seen, &namespace, &target);

    let just_created = current.is_none()
        && ctx
            .caches
            .created_pods
            .awaiting(&namespace, &target.pod_name);
    match writes::lookup(
        seen.status.as_ref(),
        &target,
        current.is_some(),
        just_created,
    ) {
        PodLookup::Cache => {}
        PodLookup::AwaitWatch => {
            debug!(pod = %target.pod_name, "build Pod created, not in the cache yet");
            return Ok(Pass::Done(Action::requeue(TRUSTED_FOR)));
        }
        PodLookup::Confirm => {
            let Some(held) = permit.or_else(|| ctx.throttle.gate.try_acquire(Priority::Other))
            else {
                return Ok(Pass::Wait(Priority::Other));
            };
            permit = Some(held);
            current = get_owned_pod(ctx, &seen, &namespace, &target.pod_name).await?;
        }
    }

    let plan = make_plan(
        ctx,
        &stored,
        &seen,
        &target,
        current.as_ref(),
        &others,
        answer,
        now,
    );
    let pressure = Pressure {
        starts_waiting: ctx.throttle.gate.starts_waiting(),
        unseen_creates: ctx.caches.created_pods.unseen(),
    };
    ctx.sinks
        .metrics
        .set_starts_waiting(pressure.starts_waiting);
    let writes = writes::decide(plan, pressure);
    debug!(
        create = writes.create.is_some(),
        delete = ?writes.delete,
        status = writes.status.is_some(),
        deferred = writes.deferred,
        queued = ctx.throttle.pending.waiting(),
        ?pressure,
        "planned"
    );
    if writes.deferred {
        ctx.sinks.metrics.status_write_deferred();
    }
    let permit = match (writes.talks(), permit) {
        (false, permit) | (true, permit @ Some(_)) => permit,
        (true, None) => {
            let priority = priority_of(&writes);
            match ctx.throttle.gate.try_acquire(priority) {
                Some(permit) => Some(permit),
                None => return Ok(Pass::Wait(priority)),
            }
        }
    };
    execute(&seen, &namespace, writes, ctx, permit)
        .await
        .map(Pass::Done)
}

fn priority_of(writes: &Writes) -> Priority {
    if writes.create.is_some() {
        Priority::Start
    } else {
        Priority::Other
    }
}

/// The target build's Pod, and the SourceBuild's other build Pods, as the cache holds them.
fn cached_pods(
    ctx: &Context,
    sb: &SourceBuild,
    namespace: &str,
    target: &Target,
) -> (Option<Pod>, Vec<Pod>) {
    let mut pods = match sb.uid() {
        Some(uid) => ctx.caches.pods.owned(&uid, namespace),
        None => Vec::new(),
    };
    let current = pods
        .iter()
        .position(|pod| pod.name_any() == target.pod_name)
        .map(|at| pods.swap_remove(at));
    (current, pods)
}

/// The plan for `seen` (the stored SourceBuild with the poll's answer recorded).
#[allow(clippy::too_many_arguments)]
fn make_plan(
    ctx: &Context,
    stored: &SourceBuild,
    seen: &SourceBuild,
    target: &Target,
    current: Option<&Pod>,
    others: &[Pod],
    answer: Option<&poll::Answer>,
    now: Timestamp,
) -> Plan {
    // A missing volume shows only in the kubelet's Events, which a watch records.
    let pod_events = match current {
        Some(pod) if is_waiting_to_start(pod) => ctx.caches.mount_failures.messages(pod),
        _ => Vec::new(),
    };
    let others: Vec<&Pod> = others.iter().collect();
    let planned = plan::plan(
        seen,
        target,
        current,
        &others,
        &pod_events,
        &ctx.settings.build,
        now,
    );
    let mut plan = plan::with_poll_answer(planned, stored, seen, answer);
    if !ctx.settings.routine_events {
        plan.events.retain(|event| !event.is_routine());
    }
    plan
}

/// A Pod none of whose containers has started: a missing Secret or ConfigMap volume shows
/// only in its Events then.
fn is_waiting_to_start(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    let started = status
        .and_then(|s| s.init_container_statuses.as_ref())
        .into_iter()
        .chain(status.and_then(|s| s.container_statuses.as_ref()))
        .flatten()
        .any(|c| c.state.as_ref().is_some_and(|st| st.waiting.is_none()));
    pod.metadata.deletion_timestamp.is_none()
        && status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending") == "Pending"
        && !started
}

/// Retry policy for failed reconciles.
pub fn error_policy(cached: Arc<CachedSourceBuild>, error: &Error, ctx: Arc<Context>) -> Action {
    let meta = cached.meta();
    warn!(namespace = meta.namespace, sourcebuild = meta.name, %error, "reconcile failed");
    ctx.sinks.metrics.reconcile_failed();
    if let Error::Api { operation, .. } = error {
        ctx.sinks.metrics.api_request_failed(operation);
    }
    Action::requeue(Duration::from_secs(5))
}
