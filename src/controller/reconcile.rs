//! The reconciler: reads a SourceBuild's Pods from the caches, asks [`plan`] what to do and
//! [`writes`] what of it to write now, and writes it.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::api::{FIELD_MANAGER, SourceBuild, SourceBuildStatus};
use crate::controller::cache::created_pods::TRUSTED_FOR;
use crate::controller::cache::source_build::{CachedSourceBuild, UnpackError};
use crate::controller::context::Context;
use crate::controller::plan::{self, Plan, Target};
use crate::controller::throttle::write_gate::{Permit, Priority};
use crate::controller::writes::{self, PodLookup, Pressure, Then, Writes};
use crate::controller::{poll, poll_remote, status};

/// Why a reconcile failed; it is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object has no namespace (never true for a namespaced SourceBuild from the API).
    #[error("SourceBuild {0} has no namespace")]
    NoNamespace(String),
    /// A call to the API server failed.
    #[error("{action} failed: {source}")]
    Api {
        /// A short, fixed name of the request for metrics, for example `create_pod`.
        operation: &'static str,
        /// What the controller was doing.
        action: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// A SourceBuild of the cache could not be unpacked (a bug).
    #[error(transparent)]
    Cache(#[from] UnpackError),
}

fn api_error(
    operation: &'static str,
    action: impl Into<String>,
) -> impl FnOnce(kube::Error) -> Error {
    let action = action.into();
    move |source| Error::Api {
        operation,
        action,
        source,
    }
}

fn is_status(error: &kube::Error, code: u16) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == code)
}

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
    let answer = ask_remote_if_due(&ctx.caches.freshest(cached.clone())).await;
    // A reconcile waiting for a permit holds no plan (Pods and statuses), so a burst of a
    // thousand waiting costs little; the second pass plans again from the cache as it is then.
    let priority = match attempt(&cached, &ctx, answer.as_ref(), None).await? {
        Pass::Done(action) => return Ok(action),
        Pass::Wait(priority) => priority,
    };
    let permit = ctx.throttle.gate.acquire(priority).await;
    match attempt(&cached, &ctx, answer.as_ref(), Some(permit)).await? {
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
    let stored = ctx.caches.freshest(cached.clone());
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
        starts_waiting: ctx.throttle.starts_waiting(),
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
        Some(uid) => ctx.caches.pods_of(&uid, namespace),
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

/// Makes `writes` in order: deletions, the create, the status, the Events.
async fn execute(
    sb: &SourceBuild,
    namespace: &str,
    mut writes: Writes,
    ctx: &Context,
    mut permit: Option<Permit>,
) -> Result<Action, Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    delete_pods(&pods, namespace, &writes.delete).await?;
    if let Some(pod) = writes.create.take()
        && let Some(failed) = create_pod(sb, &pods, namespace, &pod, &writes, ctx).await?
    {
        writes = writes::after_refused_create(failed);
    }
    if writes.yield_after_create {
        drop(permit.take());
        permit = Some(ctx.throttle.gate.acquire(Priority::Other).await);
    }
    if let Some(status) = &writes.status
        && !write_status(sb, namespace, status, ctx).await?
    {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    for event in &writes.events {
        ctx.sinks.events.publish(sb, event).await;
    }
    drop(permit);
    Ok(match writes.then() {
        Then::RequeueAfter(after) => Action::requeue(after),
        Then::AwaitChange => Action::await_change(),
    })
}

async fn delete_pods(pods: &Api<Pod>, namespace: &str, names: &[String]) -> Result<(), Error> {
    for pod in names {
        match pods.delete(pod, &DeleteParams::background()).await {
            Ok(_) => info!(pod, "deleted build Pod"),
            Err(e) if is_status(&e, 404) => {}
            Err(e) => {
                return Err(api_error(
                    "delete_pod",
                    format!("deleting Pod {namespace}/{pod}"),
                )(e));
            }
        }
    }
    Ok(())
}

/// Creates the build Pod. `Some(plan)` when the API server refused it for a reason that fails
/// the build (the plan records the failure).
async fn create_pod(
    sb: &SourceBuild,
    pods: &Api<Pod>,
    namespace: &str,
    pod: &Pod,
    writes: &Writes,
    ctx: &Context,
) -> Result<Option<Plan>, Error> {
    let name = pod.name_any();
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    };
    // Expected before the create is sent: its watch event may come before its answer.
    ctx.caches.created_pods.expect(namespace, &name);
    let refusal = match pods.create(&params, pod).await {
        Ok(_) => {
            info!(pod = name, "created build Pod");
            ctx.sinks.metrics.build_started();
            return Ok(None);
        }
        Err(e) => {
            ctx.caches.created_pods.cancel(namespace, &name);
            e
        }
    };
    match refusal {
        // Same deterministic name: our earlier attempt got there first.
        e if is_status(&e, 409) => {
            debug!(pod = name, "build Pod already exists");
            Ok(None)
        }
        kube::Error::Api(refusal)
            if let Some(failed) = plan::creation_refused(
                sb,
                writes.status.as_ref(),
                &writes.events,
                &refusal.message,
                Timestamp::now(),
            ) =>
        {
            info!(pod = name, message = refusal.message, "build Pod refused");
            Ok(Some(failed))
        }
        e => Err(api_error(
            "create_pod",
            format!("creating Pod {namespace}/{name}"),
        )(e)),
    }
}

/// Writes `status`; `false` when the API server refused it as computed from an outdated
/// SourceBuild.
async fn write_status(
    sb: &SourceBuild,
    namespace: &str,
    status: &SourceBuildStatus,
    ctx: &Context,
) -> Result<bool, Error> {
    let name = sb.name_any();
    let api: Api<SourceBuild> = Api::namespaced(ctx.client.clone(), namespace);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match api
        .patch_status(&name, &params, &Patch::Apply(&status_patch(sb, status)))
        .await
    {
        Ok(written) => ctx
            .caches
            .status_memo
            .wrote(sb.resource_version().as_deref(), written),
        // The status was computed from an older SourceBuild than the stored one: a cache
        // behind the last write, or the write of a replica that lost its Lease arriving
        // late. Writing it would move status backwards; the newer object reconciles again.
        Err(e) if is_status(&e, 409) => {
            debug!(
                resource_version = sb.resource_version(),
                "status computed from an outdated SourceBuild; not written"
            );
            return Ok(false);
        }
        Err(e) => {
            return Err(api_error(
                "patch_status",
                format!("updating status of SourceBuild {namespace}/{name}"),
            )(e));
        }
    }
    if let Some(phase) = status.phase.filter(|p| p.is_final()) {
        let reason = status
            .condition(status::SUCCEEDED)
            .map(|c| c.reason.as_str())
            .unwrap_or("");
        let seconds = match (&status.start_time, &status.completion_time) {
            (Some(start), Some(end)) => Some(end.0.duration_since(start.0).as_secs_f64()),
            _ => None,
        };
        ctx.sinks.metrics.build_finished(phase, reason, seconds);
    }
    Ok(true)
}

/// The Pod `name`, read from the API server, if it exists and `sb` owns it.
async fn get_owned_pod(
    ctx: &Context,
    sb: &SourceBuild,
    namespace: &str,
    name: &str,
) -> Result<Option<Pod>, Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let pod = pods.get_opt(name).await.map_err(api_error(
        "get_pod",
        format!("reading Pod {namespace}/{name}"),
    ))?;
    Ok(pod.filter(|pod| is_owned_by(pod, sb)))
}

/// The server-side apply body of a status write. It carries the resourceVersion of the
/// SourceBuild the status was computed from, so the API server refuses it (409) once the object
/// changed: a status decided from stale data, or delivered late, can never overwrite a newer one
/// (`tests/faults.rs` found a leader cut off from the API server whose late write turned a
/// recorded success back into Pending).
pub fn status_patch(sb: &SourceBuild, status: &SourceBuildStatus) -> serde_json::Value {
    let mut patch = json!({
        "apiVersion": SourceBuild::api_version(&()),
        "kind": SourceBuild::kind(&()),
        "status": status,
    });
    if let Some(version) = sb.resource_version() {
        patch["metadata"] = json!({ "resourceVersion": version });
    }
    patch
}

fn is_owned_by(pod: &Pod, sb: &SourceBuild) -> bool {
    let uid = sb.uid();
    pod.owner_references()
        .iter()
        .any(|owner| owner.controller == Some(true) && Some(&owner.uid) == uid.as_ref())
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
