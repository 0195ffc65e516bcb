//! The reconciler: reads a SourceBuild's Pods, asks [`plan`] what to do, and does it.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::api::{FIELD_MANAGER, SourceBuild};
use crate::controller::cached_build::{CachedSourceBuild, UnpackError};
use crate::controller::created_pods::CreatedPods;
use crate::controller::events::EventSink;
use crate::controller::mount_failures::MountFailures;
use crate::controller::plan::{Plan, creation_refused, plan, target};
use crate::controller::pod_cache::PodCache;
use crate::controller::poll;
use crate::controller::priority::{self, Writes};
use crate::controller::status_memo::StatusMemo;
use crate::controller::write_gate::{Permit, Priority, WriteGate};
use crate::metrics::Metrics;
use crate::pod::BuildSettings;

/// What every reconcile shares.
pub struct Context {
    /// API client, with the operator's own identity.
    pub client: Client,
    /// Build Pods, from a label-selected watch.
    pub pods: PodCache,
    /// The kubelet's mount failures on build Pods, from a watch on its Events.
    pub mount_failures: MountFailures,
    /// Build Pods we created that the Pod watch has not shown yet.
    pub created_pods: CreatedPods,
    /// Our last status writes the SourceBuild cache does not show yet (read-your-writes).
    pub status_memo: StatusMemo,
    /// Turns true once `pods` holds a complete list.
    pub pods_ready: tokio::sync::watch::Receiver<bool>,
    /// Images the build Pods use.
    pub settings: BuildSettings,
    /// Publish routine Events too ([`Note::is_routine`](crate::controller::plan::Note::is_routine)).
    pub routine_events: bool,
    /// Where Events go.
    pub events: Arc<dyn EventSink>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// SourceBuilds a watch event asked to reconcile, for the queue depth metric.
    pub pending: crate::controller::queue::Pending,
    /// Bounds the reconciles making API requests at once; Pod creates first.
    pub gate: WriteGate,
}

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
    /// The status could not be serialized (a bug).
    #[error("serializing status: {0}")]
    Serialize(#[from] serde_json::Error),
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
    ctx.pending
        .picked_up(&kube::runtime::reflector::ObjectRef::from_obj(&*sb));
    let _in_flight = ctx.metrics.reconcile_started();
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
enum Step {
    /// Done; what the scheduler should do next.
    Done(Action),
    /// The plan makes API requests: wait for a permit of this priority and plan again.
    Wait(Priority),
}

async fn reconcile_one(sb: Arc<SourceBuild>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics.reconciled();
    // Deciding "the Pod is missing" from a cache that has not listed yet would be wrong.
    let _ = ctx.pods_ready.clone().wait_for(|filled| *filled).await;
    // A due look at a polled remote comes first: what it sees may start a build. It is taken
    // once; a second pass plans from the same answer.
    let poll = {
        let sb = ctx.status_memo.freshest(sb.clone());
        match &sb.spec.source.git {
            Some(git) if poll::due(&sb, Timestamp::now()) => {
                let answer = poll::check(git.clone()).await;
                debug!(?answer, "polled the git remote");
                Some(answer)
            }
            _ => None,
        }
    };
    // A plan holds Pods and statuses (the pass is some 20 KB): a reconcile waiting for a
    // permit holds none of it, so a burst of a thousand waiting costs little. The second pass
    // (only when no permit was free) plans again from the cache as it is once the permit is
    // there.
    let priority = match Box::pin(attempt(&sb, &ctx, poll.as_ref(), None)).await? {
        Step::Done(action) => return Ok(action),
        Step::Wait(priority) => priority,
    };
    let permit = ctx.gate.acquire(priority).await;
    match Box::pin(attempt(&sb, &ctx, poll.as_ref(), Some(permit))).await? {
        Step::Done(action) => Ok(action),
        // Not reached: a pass with a permit does not wait for one.
        Step::Wait(_) => Ok(Action::requeue(priority::DEFER_FOR)),
    }
}

/// One pass: plans, and carries the plan out if it makes no API request, or `permit` is held,
/// or a permit is free at once.
async fn attempt(
    sb: &Arc<SourceBuild>,
    ctx: &Context,
    poll: Option<&poll::Poll>,
    mut permit: Option<Permit>,
) -> Result<Step, Error> {
    // The cache may not show our last status write yet; plan from what is really stored.
    let sb = ctx.status_memo.freshest(sb.clone());
    let namespace = sb
        .namespace()
        .ok_or_else(|| Error::NoNamespace(sb.name_any()))?;
    let name = sb.name_any();
    let generation = sb.metadata.generation.unwrap_or(1);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);

    let now = Timestamp::now();
    let stored = sb;
    let sb = poll::observe(&stored, poll, now);
    let target = target(&sb, now);
    // Every build Pod of this SourceBuild in the cache, as the `Pod`s plan reads: the current
    // one, and the others (older ones to stop, finished ones for retention).
    let mut cached: Vec<Pod> = match sb.uid() {
        Some(uid) => ctx.pods.owned(&uid, &namespace),
        None => Vec::new(),
    };
    let mut current = cached
        .iter()
        .position(|pod| pod.name_any() == target.pod_name)
        .map(|at| cached.swap_remove(at));
    let status = sb.status.clone().unwrap_or_default();
    if current.is_none() && ctx.created_pods.awaiting(&namespace, &target.pod_name) {
        // Created by us a moment ago (also by a reconcile that left the status for later): its
        // watch event reconciles this SourceBuild again.
        debug!(pod = %target.pod_name, "build Pod created, not in the cache yet");
        return Ok(Step::Done(Action::requeue(
            crate::controller::created_pods::TRUSTED_FOR,
        )));
    }
    if current.is_none()
        && target.start.is_none()
        && status.observed_generation == Some(generation)
        && status.pod_name.as_deref() == Some(target.pod_name.as_str())
        && !status.phase.is_some_and(crate::api::Phase::is_final)
    {
        let current_name = &target.pod_name;
        // The watch may lag behind a create of an earlier run of the controller: ask the API
        // server before calling the Pod deleted.
        let Some(held) = permit.or_else(|| ctx.gate.try_acquire(Priority::Other)) else {
            return Ok(Step::Wait(Priority::Other));
        };
        permit = Some(held);
        current = pods
            .get_opt(current_name)
            .await
            .map_err(api_error(
                "get_pod",
                format!("reading Pod {namespace}/{current_name}"),
            ))?
            .filter(|pod| is_owned_by(pod, &sb));
    }
    let others: Vec<&Pod> = cached.iter().collect();

    // A missing volume shows only in the kubelet's Events, which a watch records.
    let pod_events = match current.as_ref() {
        Some(pod) if is_waiting_to_start(pod) => ctx.mount_failures.messages(pod),
        _ => Vec::new(),
    };

    let mut plan = poll::finish(
        plan(
            &sb,
            &target,
            current.as_ref(),
            &others,
            &pod_events,
            &ctx.settings,
            now,
        ),
        &stored,
        &sb,
        poll,
    );
    if !ctx.routine_events {
        plan.events.retain(|note| !note.is_routine());
    }
    debug!(
        create = plan.create.is_some(),
        delete = ?plan.delete,
        status_changed = plan.status.is_some(),
        queued = ctx.pending.len(),
        starts_waiting = ctx.gate.starts_waiting(),
        "planned"
    );
    execute(&sb, &namespace, &name, plan, &pods, ctx, permit).await
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

async fn execute(
    sb: &SourceBuild,
    namespace: &str,
    name: &str,
    plan: Plan,
    pods: &Api<Pod>,
    ctx: &Context,
    permit: Option<Permit>,
) -> Result<Step, Error> {
    let starts_waiting = ctx.gate.starts_waiting();
    ctx.metrics.set_starts_waiting(starts_waiting);
    let pressure = priority::Pressure {
        starts_waiting,
        unseen_creates: ctx.created_pods.unseen(),
    };
    let writes = priority::writes(&plan, pressure);
    let plan = match writes {
        Writes::All => plan,
        Writes::PodsOnly => Plan {
            status: None,
            events: Vec::new(),
            requeue_after: None,
            ..plan
        },
        Writes::Later => {
            debug!(?pressure, "the API server is behind: status later");
            ctx.metrics.status_write_deferred();
            return Ok(Step::Done(Action::requeue(priority::DEFER_FOR)));
        }
    };
    let talks = plan.create.is_some()
        || !plan.delete.is_empty()
        || plan.status.is_some()
        || !plan.events.is_empty();
    let priority = if plan.create.is_some() {
        Priority::Start
    } else {
        Priority::Other
    };
    let mut permit = match (talks, permit) {
        (false, permit) => permit,
        (true, Some(permit)) => Some(permit),
        (true, None) => match ctx.gate.try_acquire(priority) {
            Some(permit) => Some(permit),
            None => return Ok(Step::Wait(priority)),
        },
    };
    if writes == Writes::PodsOnly {
        debug!(
            ?pressure,
            "the API server is behind: Pod first, status later"
        );
        ctx.metrics.status_write_deferred();
    }
    for pod in &plan.delete {
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
    if let Some(pod) = &plan.create {
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..Default::default()
        };
        match pods.create(&params, pod).await {
            Ok(created) => {
                info!(pod = created.name_any(), "created build Pod");
                ctx.created_pods.created(namespace, &created.name_any());
                ctx.metrics.build_started();
            }
            // Same deterministic name: our earlier attempt got there first.
            Err(e) if is_status(&e, 409) => {
                debug!(pod = pod.name_any(), "build Pod already exists")
            }
            Err(kube::Error::Api(refusal))
                if let Some(failed) =
                    creation_refused(sb, &plan, &refusal.message, Timestamp::now()) =>
            {
                info!(
                    pod = pod.name_any(),
                    message = refusal.message,
                    "build Pod refused"
                );
                // The failed plan is written as any other.
                return Box::pin(execute(sb, namespace, name, failed, pods, ctx, permit)).await;
            }
            Err(e) => {
                return Err(api_error(
                    "create_pod",
                    format!("creating Pod {namespace}/{}", pod.name_any()),
                )(e));
            }
        }
    }
    if plan.create.is_some() && (plan.status.is_some() || !plan.events.is_empty()) {
        // The build has its Pod; its status and Events wait behind builds still to start.
        drop(permit.take());
        permit = Some(ctx.gate.acquire(Priority::Other).await);
    }
    if let Some(status) = &plan.status {
        let api: Api<SourceBuild> = Api::namespaced(ctx.client.clone(), namespace);
        let patch = status_patch(sb, status);
        match api
            .patch_status(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
        {
            Ok(written) => ctx
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
                return Ok(Step::Done(Action::requeue(Duration::from_secs(1))));
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
                .condition(crate::controller::status::SUCCEEDED)
                .map(|c| c.reason.as_str())
                .unwrap_or("");
            let seconds = match (&status.start_time, &status.completion_time) {
                (Some(start), Some(end)) => Some(end.0.duration_since(start.0).as_secs_f64()),
                _ => None,
            };
            ctx.metrics.build_finished(phase, reason, seconds);
        }
    }
    for note in &plan.events {
        ctx.events.publish(sb, note).await;
    }
    drop(permit);
    if writes == Writes::PodsOnly {
        // The new Pod's watch event normally comes first.
        return Ok(Step::Done(Action::requeue(priority::DEFER_FOR)));
    }
    Ok(Step::Done(match plan.requeue_after {
        // A little past the deadline, so the timeout is seen as reached.
        Some(after) => Action::requeue(after + Duration::from_secs(1)),
        None => Action::await_change(),
    }))
}

/// The server-side apply body of a status write. It carries the resourceVersion of the
/// SourceBuild the status was computed from, so the API server refuses it (409) once the object
/// changed: a status decided from stale data, or delivered late, can never overwrite a newer one
/// (found by `tests/faults.rs`: a leader cut off from the API server had a write in flight that
/// landed after the new leader recorded the build's success, turning it back into Pending).
pub fn status_patch(sb: &SourceBuild, status: &crate::api::SourceBuildStatus) -> serde_json::Value {
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
    ctx.metrics.reconcile_failed();
    if let Error::Api { operation, .. } = error {
        ctx.metrics.api_request_failed(operation);
    }
    Action::requeue(Duration::from_secs(5))
}
