//! Leader election: of several replicas only the one holding a `coordination.k8s.io` Lease
//! reconciles; the others wait and take over when the holder stops renewing it.

use std::future::Future;
use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tracing::{info, warn};

/// Which Lease to hold and how.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Namespace of the Lease: the operator's own.
    pub namespace: String,
    /// Name of the Lease, shared by all replicas.
    pub name: String,
    /// This replica's identity (its Pod name), written as the Lease's holder.
    pub identity: String,
    /// How long the Lease is valid without renewal: the longest a standby waits after the
    /// leader died.
    pub duration: Duration,
}

/// Why leading ended with an error.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The Lease could not be read, created or written.
    #[error("leader election with Lease {name}: {source}")]
    Lease {
        /// The Lease's namespace/name.
        name: String,
        /// The lease manager's error.
        #[source]
        source: LeaseManagerError,
    },
    /// Another replica took the Lease: this one stops so that two never reconcile at once.
    #[error("lost Lease {0} to another replica")]
    Lost(String),
}

/// Waits until this replica holds the Lease (or `shutdown` fires), then runs `work` until it
/// ends or the Lease is lost. The Lease is released on the way out, so a standby takes over at
/// once after a graceful shutdown instead of after the Lease expires.
pub async fn lead<W, S>(
    client: Client,
    config: &LeaseConfig,
    shutdown: S,
    work: impl FnOnce() -> W,
) -> Result<(), LeaderError>
where
    W: Future<Output = ()>,
    S: Future<Output = ()>,
{
    let lease = format!("{}/{}", config.namespace, config.name);
    let error = |source| LeaderError::Lease {
        name: lease.clone(),
        source,
    };
    let seconds = config.duration.as_secs().max(2);
    let manager = LeaseManagerBuilder::new(client, &config.name)
        .with_namespace(&config.namespace)
        .with_identity(&config.identity)
        .with_duration(seconds)
        // Renew a third of the way before expiry: this also bounds the clock skew tolerated.
        .with_grace((seconds / 3).max(1))
        .with_field_manager(format!("{}-lease", crate::api::FIELD_MANAGER))
        .build()
        .await
        .map_err(error)?;
    let (mut leading, task) = manager.watch().await;
    info!(lease, identity = config.identity, "waiting to lead");
    let acquired = tokio::select! {
        held = leading.wait_for(|held| *held) => held.is_ok(),
        () = shutdown => false,
    };
    let result = if acquired {
        info!(lease, identity = config.identity, "leading");
        tokio::select! {
            () = work() => Ok(()),
            _ = leading.wait_for(|held| !*held) => Err(LeaderError::Lost(lease.clone())),
        }
    } else {
        Ok(())
    };
    // Closing the channel makes the manager's task release the Lease and end.
    drop(leading);
    match task.await {
        Ok(Ok(_)) => info!(lease, "released the Lease"),
        Ok(Err(e)) => warn!(lease, error = %e, "could not release the Lease"),
        Err(e) => warn!(lease, error = %e, "lease task failed"),
    }
    result
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = tokio::signal::ctrl_c() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
