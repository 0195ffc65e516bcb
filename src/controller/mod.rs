//! The operator: watches SourceBuilds and their build Pods and keeps status up to date.

pub mod build_pod;
pub mod cached_build;
pub mod created_pods;
pub mod events;
pub mod mount_failures;
pub mod pack;
pub mod plan;
pub mod pod_cache;
pub mod poll;
pub mod priority;
pub mod queue;
pub mod reconcile;
pub mod status;
pub mod status_memo;
pub mod uid;
pub mod write_gate;

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Event as CoreEvent;
use kube::runtime::{Controller, WatchStreamExt, reflector, watcher};
use kube::{Api, Client, ResourceExt};
use tracing::{info, warn};

use crate::api::{REBUILD_ANNOTATION, SourceBuild};
use crate::controller::build_pod::BuildPod;
use crate::controller::cached_build::{CachedSourceBuild, cached_ref};
use crate::controller::mount_failures::MountFailures;
use crate::controller::pod_cache::PodCache;
use crate::metrics::Metrics;
use crate::pod::{BuildSettings, MANAGED_BY_SELECTOR};

pub use reconcile::{Context, Error};

/// Reconciles running at once (per watched scope). Most plan and end without a request; those
/// that make requests wait at the [`write_gate`], which lets [`write_gate::MAX_WRITERS`] of
/// them talk to the API server at once, Pod creates first. kube-runtime's limit stays well
/// above that so that its scheduler, which takes due requests in no fair order once its limit
/// is reached, is not the queue (see `write_gate.rs`), yet bounds the memory of a restart over
/// many thousands of SourceBuilds (each waiting reconcile holds its future).
pub const MAX_CONCURRENT_RECONCILES: u16 = 1024;

/// How long kube-runtime's scheduler holds a request before it may run. Not for deduplication:
/// a request due at once goes to its timer queue's "already expired" list, which is a stack, so
/// whenever more requests are due than can start, the newest start first and the oldest wait
/// (measured with a limit of 64: in a burst of 1,000 builds some SourceBuilds got their Pods
/// 17 s late, after all the others). A request due a moment ahead goes into the timer wheel
/// instead, which hands requests out in the order they fell due.
pub const SCHEDULER_DEBOUNCE: std::time::Duration = std::time::Duration::from_millis(2);

/// The longest wait between two tries of a failed watch, before jitter (which adds up to as
/// much again). kube-runtime's default is 30 s, reset only after 120 s without an error: an
/// API server restarted four times in a minute left the watches waiting up to 54 s after it
/// was back, and the builds with them (`tests/faults.rs`). A retry every few seconds costs a
/// down API server nothing it cannot refuse.
pub const WATCH_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(5);

/// The backoff of every watch: kube-runtime's default (800 ms, doubling, with jitter, reset
/// after two minutes without an error) with its longest wait at [`WATCH_RETRY_MAX`].
pub fn watch_backoff() -> impl kube::runtime::utils::Backoff {
    let exponential = backon::ExponentialBuilder::default()
        .with_min_delay(std::time::Duration::from_millis(800))
        .with_max_delay(WATCH_RETRY_MAX)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times();
    kube::runtime::utils::ResetTimerBackoff::new(
        watcher::ExponentialBackoff::from(exponential),
        std::time::Duration::from_secs(120),
    )
}

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
    ready: Arc<std::sync::atomic::AtomicBool>,
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
    let events: Arc<dyn events::EventSink> =
        Arc::new(controller_events(client.clone(), config.instance.clone()));
    // One set for every scope: the gauge counts them all.
    let pending = queue::Pending::new(metrics.clone());
    // One gate for every scope: it bounds this process's requests.
    let gate = write_gate::WriteGate::default();
    let mut filled = Vec::new();
    let mut controllers = Vec::new();
    for scope in scopes {
        let (controller, scope_filled) = scoped(
            client.clone(),
            scope,
            &config,
            events.clone(),
            metrics.clone(),
            pending.clone(),
            gate.clone(),
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
        ready.store(true, std::sync::atomic::Ordering::SeqCst);
        info!("caches filled; ready");
    });

    futures::future::join_all(controllers).await;
    info!("controller stopped");
}

/// Drops what the controller never reads of a cached SourceBuild's metadata: managedFields,
/// labels, and annotations but the rebuild request (kubectl's last-applied-configuration alone
/// is a copy of the whole object). Status writes are patches of the status subresource, so
/// nothing pruned here is ever written back.
pub fn prune_source_build(sb: &mut SourceBuild) {
    sb.managed_fields_mut().clear();
    sb.metadata.labels = None;
    if let Some(annotations) = sb.metadata.annotations.as_mut() {
        annotations.retain(|key, _| key == REBUILD_ANNOTATION);
        if annotations.is_empty() {
            sb.metadata.annotations = None;
        }
    }
}

/// The controller of one namespace (or of all, for `None`), and the receivers that turn true
/// once its caches are filled.
fn scoped(
    client: Client,
    namespace: Option<String>,
    config: &ControllerConfig,
    events: Arc<dyn events::EventSink>,
    metrics: Metrics,
    pending: queue::Pending,
    gate: write_gate::WriteGate,
) -> (
    impl std::future::Future<Output = ()>,
    [tokio::sync::watch::Receiver<bool>; 2],
) {
    let (builds, pods, kubelet_events): (Api<CachedSourceBuild>, Api<BuildPod>, Api<CoreEvent>) =
        match &namespace {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
            None => (
                Api::all(client.clone()),
                Api::all(client.clone()),
                Api::all(client.clone()),
            ),
        };

    // A reflector store's `wait_until_ready` wakes only one waiter (it wraps a oneshot receiver,
    // which keeps a single waker), so readiness is taken from the streams themselves and shared
    // through watch channels, which any number of tasks may wait on.
    let (builds_filled, builds_ready) = tokio::sync::watch::channel(false);
    let (pods_filled, pods_ready) = tokio::sync::watch::channel(false);

    let (build_store, build_writer) = reflector::store();
    // Only our build Pods are watched, and cached narrowed to what the controller reads.
    let pod_cache = PodCache::default();
    let (pending_pods, known_builds) = (pending.clone(), build_store.clone());
    let mount_failures = MountFailures::default();
    let created_pods = created_pods::CreatedPods::default();
    let (cached, failures, seen, watch_metrics) = (
        pod_cache.clone(),
        mount_failures.clone(),
        created_pods.clone(),
        metrics.clone(),
    );
    let pod_events = watcher(pods, watcher::Config::default().labels(MANAGED_BY_SELECTOR))
        .backoff(watch_backoff())
        .inspect(move |event| {
            if let Ok(event) = event {
                cached.apply(event);
                failures.apply(event, &cached);
                if let Some(delay) = seen.apply(event) {
                    watch_metrics.pod_seen(delay);
                }
            }
            mark_filled(event, &pods_filled)
        })
        .touched_objects()
        .inspect_ok(move |pod| pending_pods.pod_changed(pod, &known_builds));

    let (pending_builds, deleted_builds) = (pending.clone(), pending.clone());
    let status_memo = status_memo::StatusMemo::default();
    let forget_written = status_memo.clone();
    let build_events = watcher(builds, watcher::Config::default().any_semantic())
        .backoff(watch_backoff())
        .reflect(build_writer)
        .inspect(move |event| mark_filled(event, &builds_filled))
        // A deleted SourceBuild is never reconciled: it no longer waits.
        .inspect_ok(move |event| {
            if let watcher::Event::Delete(sb) = event {
                deleted_builds.picked_up(&sb.key());
                if let Some(uid) = sb.uid() {
                    forget_written.forget(&uid);
                }
            }
        })
        .applied_objects()
        .inspect_ok(move |sb| pending_builds.triggered(sb.key()));

    // Mount failures wake the owning SourceBuild; nothing of these Events is cached.
    let (failures, known_pods) = (mount_failures.clone(), pod_cache.clone());
    let failed_mounts = watcher(
        kubelet_events,
        watcher::Config::default().fields(mount_failures::FIELD_SELECTOR),
    )
    .backoff(watch_backoff())
    .touched_objects();

    let context = Arc::new(Context {
        client,
        pods: pod_cache,
        mount_failures,
        created_pods,
        status_memo,
        pods_ready: pods_ready.clone(),
        settings: config.settings.clone(),
        routine_events: config.routine_events,
        events,
        metrics,
        pending,
        gate,
    });

    let controller = Controller::for_stream(build_events, build_store)
        .with_config(
            kube::runtime::controller::Config::default()
                .concurrency(MAX_CONCURRENT_RECONCILES)
                .debounce(SCHEDULER_DEBOUNCE),
        )
        .owns_stream(pod_events)
        .watches_stream(failed_mounts, move |event| {
            failures
                .record(&event, &known_pods)
                .map(|owner| cached_ref(&owner))
        })
        .shutdown_on_signal()
        .run(
            reconcile::reconcile_cached,
            reconcile::error_policy,
            context,
        )
        .for_each(move |result| {
            let namespace = namespace.clone();
            async move {
                if let Err(error) = result {
                    warn!(%error, ?namespace, "reconcile loop");
                }
            }
        });
    (controller, [builds_ready, pods_ready])
}

/// Flags a cache as filled once its first complete list has been stored.
fn mark_filled<K>(
    event: &Result<watcher::Event<K>, watcher::Error>,
    filled: &tokio::sync::watch::Sender<bool>,
) {
    if matches!(event, Ok(watcher::Event::InitDone)) {
        filled.send_replace(true);
        // A (re-)list has just replaced the whole cache: the old copy and the list's pages
        // are free now, and would stay resident until the next periodic trim.
        crate::memory::trim();
    }
}

fn controller_events(client: Client, instance: Option<String>) -> events::KubeEvents {
    events::KubeEvents::new(client, instance)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_watch_is_tried_again_within_twice_the_cap() {
        let waits: Vec<std::time::Duration> = watch_backoff().take(20).collect();
        assert_eq!(waits.len(), 20, "the backoff never gives up");
        assert!(
            waits[0] <= std::time::Duration::from_millis(1600),
            "{waits:?}"
        );
        assert!(waits.iter().all(|w| *w <= WATCH_RETRY_MAX * 2), "{waits:?}");
        assert!(
            waits[10..].iter().any(|w| *w >= WATCH_RETRY_MAX),
            "it does back off: {waits:?}"
        );
    }
}
