//! The operator: watches SourceBuilds and their build Pods and keeps status up to date.
//!
//! Decisions, without I/O: [`plan`] (what to do for one SourceBuild), [`status`] (status and
//! conditions), [`events`] (the Events a plan publishes), [`poll`] (when a polled remote is
//! due and what its answer records), [`writes`] (what of a plan to write now). Wiring:
//! [`reconcile`] takes the decisions, [`execute`] makes their requests, [`watches`] feeds the
//! caches and starts the reconciles, [`poll_remote`] asks a git remote. Machinery behind small interfaces that the
//! decisions never see: [`cache`] (what is kept of the cluster, packed) and [`throttle`] (how
//! many requests go at once).

pub mod cache;
pub mod context;
pub mod events;
pub mod execute;
pub mod plan;
pub mod poll;
pub mod poll_remote;
pub mod reconcile;
pub mod status;
pub mod throttle;
pub mod user_namespaces;
pub mod watches;
pub mod writes;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kube::Client;
use tracing::info;

use crate::controller::context::{Settings, Sinks};
use crate::controller::throttle::Throttle;
use crate::controller::throttle::queue::Pending;
use crate::controller::throttle::write_gate::WriteGate;
use crate::metrics::Metrics;
use crate::pod::BuildSettings;

pub use context::Context;
pub use execute::Error;

/// How the operator runs.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Watch only these namespaces; all namespaces when empty.
    pub namespaces: Vec<String>,
    /// Images for build Pods.
    pub settings: BuildSettings,
    /// This replica's name, for Events.
    pub instance: Option<String>,
    /// Also publish the routine Events (`BuildStarted`, `BuildSucceeded`) of every build.
    pub routine_events: bool,
}

/// Runs the controller until SIGTERM or SIGINT. `ready` is flipped once every cache is filled.
///
/// With a list of namespaces each gets a controller of its own, with namespaced watches (which
/// need only a Role there): a single reflector cannot merge several watch streams, since each
/// stream's initial list would replace what the others had stored.
pub async fn run(
    client: Client,
    config: ControllerConfig,
    metrics: Metrics,
    ready: Arc<AtomicBool>,
) {
    let scopes: Vec<Option<String>> = if config.namespaces.is_empty() {
        vec![None]
    } else {
        let mut namespaces = config.namespaces.clone();
        namespaces.sort();
        namespaces.dedup();
        namespaces.into_iter().map(Some).collect()
    };
    info!(namespaces = ?config.namespaces, "watching");
    // One throttle for every scope: it bounds this process's requests.
    let throttle = Throttle {
        gate: WriteGate::default(),
        pending: Pending::new(metrics.clone()),
    };
    let sinks = Sinks {
        events: Arc::new(events::KubeEvents::new(
            client.clone(),
            config.instance.clone(),
        )),
        metrics,
    };
    let settings = Settings {
        build: config.settings.clone(),
        routine_events: config.routine_events,
    };
    let mut filled = Vec::new();
    let mut controllers = Vec::new();
    for scope in scopes {
        let (controller, scope_filled) = watches::scoped(
            client.clone(),
            scope,
            settings.clone(),
            throttle.clone(),
            sinks.clone(),
        );
        filled.extend(scope_filled);
        controllers.push(controller);
    }

    tokio::spawn(async move {
        for mut receiver in filled {
            if receiver.wait_for(|filled| *filled).await.is_err() {
                return;
            }
        }
        ready.store(true, Ordering::SeqCst);
        info!("caches filled; ready");
    });

    futures::future::join_all(controllers).await;
    info!("controller stopped");
}
