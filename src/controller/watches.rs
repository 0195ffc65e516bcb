//! The watches of one scope (a namespace, or all): SourceBuilds, our build Pods and the
//! kubelet's mount failures, feeding the caches and starting reconciles.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Event as CoreEvent;
use kube::runtime::{Controller, WatchStreamExt, reflector, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;
use tracing::warn;

use crate::controller::cache::Caches;
use crate::controller::cache::mount_failures::FIELD_SELECTOR as MOUNT_FAILURES;
use crate::controller::cache::slim_pod::SlimPod;
use crate::controller::cache::source_build::{CachedSourceBuild, cached_ref};
use crate::controller::context::{Context, Settings, Sinks};
use crate::controller::reconcile;
use crate::controller::throttle::Throttle;
use crate::pod::MANAGED_BY_SELECTOR;

/// Reconciles running at once (per watched scope). Most plan and end without a request; those
/// that make requests wait at the write gate, which lets fewer talk to the API server at
/// once, Pod creates first. kube-runtime's limit stays well above that so that its scheduler,
/// which takes due requests in no fair order once its limit is reached, is not the queue, yet
/// bounds the memory of a restart over many thousands of SourceBuilds.
pub const MAX_CONCURRENT_RECONCILES: u16 = 1024;

/// How long kube-runtime's scheduler holds a request before it may run. Not for deduplication:
/// a request due at once goes to a stack of expired timers, so when more are due than can
/// start the oldest wait; one due a moment ahead goes into the timer wheel, which hands
/// requests out in the order they fell due.
pub const SCHEDULER_DEBOUNCE: Duration = Duration::from_millis(2);

/// The longest wait between two tries of a failed watch, before jitter. kube-runtime's default
/// (30 s, reset only after 120 s without an error) left builds waiting long after a restarted
/// API server was back (`tests/faults.rs`); a retry every few seconds costs a down API server
/// nothing it cannot refuse.
pub const WATCH_RETRY_MAX: Duration = Duration::from_secs(5);

/// The backoff of every watch: kube-runtime's default (800 ms, doubling, with jitter, reset
/// after two minutes without an error) with its longest wait at [`WATCH_RETRY_MAX`].
pub fn watch_backoff() -> impl kube::runtime::utils::Backoff {
    let exponential = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(800))
        .with_max_delay(WATCH_RETRY_MAX)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times();
    kube::runtime::utils::ResetTimerBackoff::new(
        watcher::ExponentialBackoff::from(exponential),
        Duration::from_secs(120),
    )
}

/// One scope's three APIs.
fn apis<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The controller of one namespace (or of all, for `None`), and the receivers that turn true
/// once its caches are filled.
pub fn scoped(
    client: Client,
    namespace: Option<String>,
    settings: Settings,
    throttle: Throttle,
    sinks: Sinks,
) -> (impl Future<Output = ()>, [watch::Receiver<bool>; 2]) {
    // A reflector store's `wait_until_ready` wakes only one waiter, so readiness is taken from
    // the streams themselves and shared through watch channels, which any number may wait on.
    let (builds_filled, builds_ready) = watch::channel(false);
    let (pods_filled, pods_ready) = watch::channel(false);
    let caches = Caches::new(pods_ready.clone());
    let (build_store, build_writer) = reflector::store();

    // Only our build Pods are watched, and cached narrowed to what the controller reads.
    let pod_events = {
        let (caches, metrics) = (caches.clone(), sinks.metrics.clone());
        let (pending, builds) = (throttle.pending.clone(), build_store.clone());
        watcher(
            apis::<SlimPod>(&client, namespace.as_deref()),
            watcher::Config::default().labels(MANAGED_BY_SELECTOR),
        )
        .backoff(watch_backoff())
        .inspect(move |event| {
            if let Ok(event) = event
                && let Some(delay) = caches.apply_pod_event(event)
            {
                metrics.pod_seen(delay);
            }
            mark_filled(event, &pods_filled)
        })
        .touched_objects()
        .inspect_ok(move |pod| pending.pod_changed(pod, &builds))
    };

    let build_events = {
        let (caches, pending) = (caches.clone(), throttle.pending.clone());
        let triggered = pending.clone();
        watcher(
            apis::<CachedSourceBuild>(&client, namespace.as_deref()),
            watcher::Config::default().any_semantic(),
        )
        .backoff(watch_backoff())
        .reflect(build_writer)
        .inspect(move |event| mark_filled(event, &builds_filled))
        // A deleted SourceBuild is never reconciled: it no longer waits.
        .inspect_ok(move |event| {
            if let watcher::Event::Delete(sb) = event {
                pending.picked_up(&sb.key());
                if let Some(uid) = sb.uid() {
                    caches.status_memo.forget(&uid);
                }
            }
        })
        .applied_objects()
        .inspect_ok(move |sb| triggered.triggered(sb.key()))
    };

    // Mount failures wake the owning SourceBuild; nothing of these Events is cached.
    let failed_mounts = watcher(
        apis::<CoreEvent>(&client, namespace.as_deref()),
        watcher::Config::default().fields(MOUNT_FAILURES),
    )
    .backoff(watch_backoff())
    .touched_objects();
    let owner_of_mount = {
        let caches = caches.clone();
        move |event: CoreEvent| {
            caches
                .mount_failures
                .record(&event, &caches.pods)
                .map(|owner| cached_ref(&owner))
        }
    };

    let context = Arc::new(Context {
        client,
        caches,
        throttle,
        settings,
        sinks,
    });
    let controller = Controller::for_stream(build_events, build_store)
        .with_config(
            kube::runtime::controller::Config::default()
                .concurrency(MAX_CONCURRENT_RECONCILES)
                .debounce(SCHEDULER_DEBOUNCE),
        )
        .owns_stream(pod_events)
        .watches_stream(failed_mounts, owner_of_mount)
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
fn mark_filled<K>(event: &Result<watcher::Event<K>, watcher::Error>, filled: &watch::Sender<bool>) {
    if matches!(event, Ok(watcher::Event::InitDone)) {
        filled.send_replace(true);
        // A (re-)list has just replaced the whole cache: the old copy and the list's pages
        // are free now, and would stay resident until the next periodic trim.
        crate::memory::trim();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_watch_is_tried_again_within_twice_the_cap() {
        let waits: Vec<Duration> = watch_backoff().take(20).collect();
        assert_eq!(waits.len(), 20, "the backoff never gives up");
        assert!(waits[0] <= Duration::from_millis(1600), "{waits:?}");
        assert!(waits.iter().all(|w| *w <= WATCH_RETRY_MAX * 2), "{waits:?}");
        assert!(
            waits[10..].iter().any(|w| *w >= WATCH_RETRY_MAX),
            "it does back off: {waits:?}"
        );
    }
}
