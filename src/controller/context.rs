//! What every reconcile shares: the client, the caches, the throttle, the settings and where
//! results go.

use std::sync::Arc;

use kube::Client;

use crate::controller::cache::Caches;
use crate::controller::events::EventSink;
use crate::controller::throttle::Throttle;
use crate::metrics::Metrics;
use crate::pod::BuildSettings;

/// The reconciles' shared state.
pub struct Context {
    /// API client, with the operator's own identity.
    pub client: Client,
    /// What the watches keep of the cluster.
    pub caches: Caches,
    /// How many requests go at once, and in which order.
    pub throttle: Throttle,
    /// How builds are made.
    pub settings: Settings,
    /// Where Events and metrics go.
    pub sinks: Sinks,
}

/// How builds are made and reported, as the operator was told.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Images the build Pods use.
    pub build: BuildSettings,
    /// Publish routine Events too ([`Event::is_routine`](crate::controller::events::Event::is_routine)).
    pub routine_events: bool,
}

/// Where a reconcile's results go besides the API objects.
#[derive(Clone)]
pub struct Sinks {
    /// Kubernetes Events.
    pub events: Arc<dyn EventSink>,
    /// Prometheus metrics.
    pub metrics: Metrics,
}
