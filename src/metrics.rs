//! Prometheus metrics and the HTTP endpoints beside them: `/metrics`, `/healthz`, `/readyz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::Phase;

/// Labels of a finished build.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FinishedLabels {
    /// `Succeeded` or `Failed`.
    pub result: String,
    /// The `Succeeded` condition's reason.
    pub reason: String,
}

/// Labels of a build duration: how the build ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `Succeeded`, `Failed` or `Cancelled`.
    pub result: String,
}

/// Labels of a failed API request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    /// What the controller was doing, for example `create_pod` or `patch_status`.
    pub operation: String,
}

/// Decrements the in-flight gauge when a reconcile ends, however it ends.
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The operator's metrics. Cheap to clone: every clone updates the same series.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    reconciliations: Counter,
    reconcile_errors: Counter,
    builds_started: Counter,
    builds_finished: Family<FinishedLabels, Counter>,
    build_duration: Family<ResultLabels, Histogram>,
    in_flight: Gauge,
    queue_depth: Gauge,
    starts_waiting: Gauge,
    status_writes_deferred: Counter,
    api_failures: Family<OperationLabels, Counter>,
    pod_watch_delay: Histogram,
    user_namespaces: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every series registered under the `sourcebuild` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sourcebuild");
        let reconciliations = Counter::default();
        let reconcile_errors = Counter::default();
        let builds_started = Counter::default();
        let builds_finished = Family::<FinishedLabels, Counter>::default();
        // 5 s to about 85 min: S2I builds range from a quick script to a large dependency set.
        let build_duration = Family::<ResultLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(5.0, 2.0, 11))) as fn() -> Histogram,
        );
        let in_flight = Gauge::default();
        let queue_depth = Gauge::default();
        let starts_waiting = Gauge::default();
        let status_writes_deferred = Counter::default();
        let api_failures = Family::<OperationLabels, Counter>::default();
        // 1 ms to about 16 s: milliseconds on an idle API server, seconds when it is saturated.
        let pod_watch_delay = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        registry.register(
            "reconciles_in_flight",
            "Reconciles running now",
            in_flight.clone(),
        );
        registry.register(
            "queue_depth",
            "SourceBuilds waiting for a reconcile: a watch event of the SourceBuild or of one of \
             its build Pods arrived and no reconcile of it has started since (scheduled requeues \
             are not counted)",
            queue_depth.clone(),
        );
        registry.register(
            "starts_waiting",
            "Reconciles waiting for their turn to create a build Pod (every request slot is in \
             use)",
            starts_waiting.clone(),
        );
        registry.register(
            "status_writes_deferred",
            "Progress-only status writes put off so that waiting builds get their Pods first",
            status_writes_deferred.clone(),
        );
        registry.register_with_unit(
            "pod_watch_delay",
            "From the API server answering a build Pod create of this replica to the Pod watch \
             showing the Pod: how far behind the API server's watches are",
            prometheus_client::registry::Unit::Seconds,
            pod_watch_delay.clone(),
        );
        registry.register(
            "api_request_failures",
            "Kubernetes API requests of a reconcile that failed, by operation",
            api_failures.clone(),
        );
        let user_namespaces = Gauge::default();
        registry.register(
            "user_namespaces",
            "1 when build Pods get a user namespace of their own (hostUsers: false), else 0 \
             (--user-namespaces, and with auto what the cluster answered at start)",
            user_namespaces.clone(),
        );
        registry.register(
            "reconciliations",
            "SourceBuild reconciles",
            reconciliations.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciles that failed and were retried",
            reconcile_errors.clone(),
        );
        registry.register(
            "builds_started",
            "Build Pods created",
            builds_started.clone(),
        );
        registry.register(
            "builds_finished",
            "Builds that ended, by result and reason",
            builds_finished.clone(),
        );
        registry.register(
            "build_duration_seconds",
            "Build Pod creation to final status, by result",
            build_duration.clone(),
        );
        Self {
            registry: Arc::new(registry),
            reconciliations,
            reconcile_errors,
            builds_started,
            builds_finished,
            build_duration,
            in_flight,
            queue_depth,
            starts_waiting,
            status_writes_deferred,
            api_failures,
            pod_watch_delay,
            user_namespaces,
        }
    }

    /// Records whether build Pods get a user namespace (decided once at start).
    pub fn set_user_namespaces(&self, on: bool) {
        self.user_namespaces.set(i64::from(on));
    }

    /// A reconcile starts; it counts as in flight until the guard is dropped.
    pub fn reconcile_started(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// How many SourceBuilds wait for a reconcile now.
    pub fn set_queue_depth(&self, depth: usize) {
        self.queue_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// How many reconciles wait for their turn to create a build Pod now.
    pub fn set_starts_waiting(&self, waiting: usize) {
        self.starts_waiting
            .set(i64::try_from(waiting).unwrap_or(i64::MAX));
    }

    /// A reconcile put its status write (and Events) off for later.
    pub fn status_write_deferred(&self) {
        self.status_writes_deferred.inc();
    }

    /// The Pod watch showed a build Pod this replica created `delay` after the create was
    /// answered.
    pub fn pod_seen(&self, delay: std::time::Duration) {
        self.pod_watch_delay.observe(delay.as_secs_f64());
    }

    /// An API request of a reconcile failed.
    pub fn api_request_failed(&self, operation: &str) {
        self.api_failures
            .get_or_create(&OperationLabels {
                operation: operation.to_string(),
            })
            .inc();
    }

    /// One reconcile ran.
    pub fn reconciled(&self) {
        self.reconciliations.inc();
    }

    /// One reconcile failed.
    pub fn reconcile_failed(&self) {
        self.reconcile_errors.inc();
    }

    /// One build Pod was created.
    pub fn build_started(&self) {
        self.builds_started.inc();
    }

    /// One build reached a final phase.
    pub fn build_finished(&self, phase: Phase, reason: &str, seconds: Option<f64>) {
        self.builds_finished
            .get_or_create(&FinishedLabels {
                result: phase.to_string(),
                reason: reason.to_string(),
            })
            .inc();
        if let Some(seconds) = seconds {
            self.build_duration
                .get_or_create(&ResultLabels {
                    result: phase.to_string(),
                })
                .observe(seconds);
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[derive(Clone)]
struct ServerState {
    metrics: Metrics,
    ready: Arc<AtomicBool>,
}

/// The HTTP routes; `ready` turns `/readyz` green once the controller's caches are filled.
pub fn router(metrics: Metrics, ready: Arc<AtomicBool>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(ServerState { metrics, ready })
}

async fn metrics_handler(State(state): State<ServerState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

async fn readyz(State(state): State<ServerState>) -> impl IntoResponse {
    if state.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not filled yet")
    }
}

/// Serves the routes on `addr` until the process ends.
pub async fn serve(
    addr: SocketAddr,
    metrics: Metrics,
    ready: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, router(metrics, ready)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pod_watch_delay_is_a_histogram_in_seconds() {
        let metrics = Metrics::new();
        metrics.pod_seen(std::time::Duration::from_millis(3));
        metrics.pod_seen(std::time::Duration::from_secs(2));
        let text = metrics.encode();
        for line in [
            "sourcebuild_pod_watch_delay_seconds_count 2",
            "sourcebuild_pod_watch_delay_seconds_bucket{le=\"0.002\"} 0",
            "sourcebuild_pod_watch_delay_seconds_bucket{le=\"0.004\"} 1",
            "sourcebuild_pod_watch_delay_seconds_bucket{le=\"2.048\"} 2",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    #[test]
    fn finished_builds_are_counted_by_result_and_reason() {
        let metrics = Metrics::new();
        metrics.build_started();
        metrics.build_finished(Phase::Failed, "AssembleFailed", Some(12.0));
        metrics.build_finished(Phase::Succeeded, "Succeeded", Some(40.0));
        let text = metrics.encode();
        assert!(
            text.contains("sourcebuild_builds_started_total 1"),
            "{text}"
        );
        assert!(
            text.contains(
                r#"sourcebuild_builds_finished_total{result="Failed",reason="AssembleFailed"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"sourcebuild_build_duration_seconds_count{result="Failed"} 1"#),
            "{text}"
        );
        let guard = metrics.reconcile_started();
        assert!(
            metrics
                .encode()
                .contains("sourcebuild_reconciles_in_flight 1")
        );
        drop(guard);
        assert!(
            metrics
                .encode()
                .contains("sourcebuild_reconciles_in_flight 0")
        );
        metrics.api_request_failed("create_pod");
        assert!(
            metrics
                .encode()
                .contains(r#"sourcebuild_api_request_failures_total{operation="create_pod"} 1"#)
        );
    }

    #[tokio::test]
    async fn readyz_follows_the_flag() {
        let ready = Arc::new(AtomicBool::new(false));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(Metrics::new(), ready.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let get = |path: &'static str| async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            stream
                .write_all(
                    format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await
                .unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).await.unwrap();
            response
        };
        assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get("/readyz").await.starts_with("HTTP/1.1 503"));
        ready.store(true, Ordering::SeqCst);
        assert!(get("/readyz").await.starts_with("HTTP/1.1 200"));
        assert!(
            get("/metrics")
                .await
                .contains("sourcebuild_reconciliations_total")
        );
    }
}
