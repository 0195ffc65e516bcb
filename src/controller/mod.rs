//! The operator: watches SourceBuilds and their build Pods and keeps status up to date.

pub mod events;
pub mod plan;
pub mod reconcile;
pub mod status;

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{Controller, WatchStreamExt, reflector, watcher};
use kube::{Api, Client, ResourceExt};
use tracing::{info, warn};

use crate::api::SourceBuild;
use crate::metrics::Metrics;
use crate::pod::{BuildSettings, MANAGED_BY_SELECTOR};

pub use reconcile::{Context, Error};

/// How the operator runs.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Watch only this namespace; all namespaces when `None`.
    pub namespace: Option<String>,
    /// Images for build Pods.
    pub settings: BuildSettings,
    /// This replica's name, for Events.
    pub instance: Option<String>,
}

/// Runs the controller until SIGTERM or SIGINT. `ready` is flipped once both caches are filled.
pub async fn run(
    client: Client,
    config: ControllerConfig,
    metrics: Metrics,
    ready: Arc<std::sync::atomic::AtomicBool>,
) {
    let (builds, pods): (Api<SourceBuild>, Api<Pod>) = match &config.namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };

    // Only our build Pods are watched and cached, without the managedFields we never read.
    let (pod_store, pod_writer) = reflector::store();
    let pod_events = watcher(pods, watcher::Config::default().labels(MANAGED_BY_SELECTOR))
        .default_backoff()
        .modify(|pod| pod.managed_fields_mut().clear())
        .reflect(pod_writer)
        .touched_objects();

    let events = Arc::new(controller_events(client.clone(), config.instance.clone()));
    let context = Arc::new(Context {
        client,
        pods: pod_store.clone(),
        settings: config.settings,
        events,
        metrics,
    });

    let controller = Controller::new(builds, watcher::Config::default().any_semantic());
    let build_store = controller.store();
    tokio::spawn(async move {
        let builds_ready = build_store.wait_until_ready().await;
        let pods_ready = pod_store.wait_until_ready().await;
        if builds_ready.is_ok() && pods_ready.is_ok() {
            ready.store(true, std::sync::atomic::Ordering::SeqCst);
            info!("caches filled; ready");
        }
    });

    controller
        .owns_stream(pod_events)
        .shutdown_on_signal()
        .run(reconcile::reconcile, reconcile::error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                warn!(%error, "reconcile loop");
            }
        })
        .await;
    info!("controller stopped");
}

fn controller_events(client: Client, instance: Option<String>) -> events::KubeEvents {
    events::KubeEvents::new(client, instance)
}
