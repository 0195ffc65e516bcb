//! Carrying out what a reconcile decided: the API requests, in order, and what each answer
//! means for the reconcile.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{debug, info};

use crate::api::{FIELD_MANAGER, SourceBuild, SourceBuildStatus};
use crate::controller::cache::source_build::UnpackError;
use crate::controller::context::Context;
use crate::controller::plan::{self, Plan};
use crate::controller::status;
use crate::controller::throttle::write_gate::{Permit, Priority};
use crate::controller::writes::{self, Then, Writes};

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

/// Makes `writes` in order: deletions, the create, the status, the Events.
pub async fn execute(
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
    Ok(match writes.then {
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
pub async fn get_owned_pod(
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
