//! Leader election: of several replicas only the one holding a `coordination.k8s.io` Lease
//! reconciles; the others wait and take over when the holder stops renewing it.

use std::future::Future;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
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
    /// The Lease could not be confirmed renewed before a standby may take it over (the API
    /// server unreachable, a stalled connection): this one stops rather than act beside a new
    /// leader.
    #[error(
        "could not confirm Lease {0} renewed in time; stopping before another replica may take over"
    )]
    Expired(String),
}

/// The server-side apply field manager of this replica's Lease writes. One per replica: the
/// lease manager takes a free Lease with an apply that is not forced, so that of two replicas
/// racing for it the second gets a conflict; under one shared manager name the API server sees
/// no conflict and both replicas believed they held the Lease (found by `tests/faults.rs`: two
/// replicas started together both led).
pub fn lease_field_manager(identity: &str) -> String {
    let name = format!("{}-lease-{identity}", crate::api::FIELD_MANAGER);
    // The API server allows 128 characters.
    name.chars().take(128).collect()
}

/// How long before the Lease's expiry (its renew time plus duration) the leader stops acting:
/// room for the clock skew between replicas and a request in flight, so that it has stopped
/// before a standby may take the Lease over.
pub fn safety_margin(duration: Duration) -> Duration {
    duration / 6
}

/// Until when `identity` may act as the leader, from the Lease as read: its renew time (written
/// with this replica's own clock, by its lease manager) plus its duration, less `margin`.
/// `None` when the Lease is not held by `identity` or says nothing about its renewal.
pub fn leading_until(lease: &Lease, identity: &str, margin: Duration) -> Option<SystemTime> {
    let spec = lease.spec.as_ref()?;
    if spec.holder_identity.as_deref() != Some(identity) {
        return None;
    }
    let renewed: SystemTime = spec.renew_time.as_ref()?.0.into();
    let seconds = u64::try_from(spec.lease_duration_seconds?).ok()?;
    renewed
        .checked_add(Duration::from_secs(seconds))?
        .checked_sub(margin)
}

/// Resolves when this replica must stop leading: the Lease shows another holder, or its renewal
/// was not confirmed before [`leading_until`]. The lease manager renews the Lease but reports
/// nothing while a renewal hangs, so a leader cut off from the API server would otherwise go on
/// reconciling from stale caches after a standby took over (found by `tests/faults.rs`: a Pod
/// created a second time for a generation). Reads the Lease every twelfth of its duration.
async fn fence(client: Client, config: &LeaseConfig) -> LeaderError {
    let lease = format!("{}/{}", config.namespace, config.name);
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let margin = safety_margin(config.duration);
    // Acquired a moment ago; confirmed (or not) by the first read.
    let mut until = SystemTime::now() + config.duration.saturating_sub(margin * 2);
    let poll = (config.duration / 12).max(Duration::from_millis(100));
    loop {
        let left = until
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        if left.is_zero() {
            return LeaderError::Expired(lease);
        }
        match tokio::time::timeout(left, api.get_opt(&config.name)).await {
            Err(_) => return LeaderError::Expired(lease),
            Ok(Ok(Some(read))) => match leading_until(&read, &config.identity, margin) {
                Some(t) => until = t,
                None => return LeaderError::Lost(lease),
            },
            Ok(Ok(None)) => return LeaderError::Lost(lease),
            // Transient: the deadline above still holds.
            Ok(Err(e)) => warn!(lease, error = %e, "could not read the Lease"),
        }
        let left = until
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        tokio::time::sleep(poll.min(left)).await;
    }
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
    let fence_client = client.clone();
    let manager = LeaseManagerBuilder::new(client, &config.name)
        .with_namespace(&config.namespace)
        .with_identity(&config.identity)
        .with_duration(seconds)
        // Renew a third of the way before expiry: this also bounds the clock skew tolerated.
        .with_grace((seconds / 3).max(1))
        .with_field_manager(lease_field_manager(&config.identity))
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
            lost = fence(fence_client, config) => Err(lost),
        }
    } else {
        Ok(())
    };
    // Closing the channel makes the manager's task release the Lease and end; bounded, since
    // a leader that stops because the API server is unreachable would wait for it forever.
    drop(leading);
    match tokio::time::timeout(config.duration, task).await {
        Ok(Ok(Ok(_))) => info!(lease, "released the Lease"),
        Ok(Ok(Err(e))) => warn!(lease, error = %e, "could not release the Lease"),
        Ok(Err(e)) => warn!(lease, error = %e, "lease task failed"),
        Err(_) => warn!(
            lease,
            "gave up releasing the Lease: the API server does not answer"
        ),
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    fn lease(holder: &str, renewed: SystemTime, seconds: i32) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                renew_time: Some(MicroTime(renewed.try_into().unwrap())),
                lease_duration_seconds: Some(seconds),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        }
    }

    #[test]
    fn each_replica_writes_the_lease_under_its_own_field_manager() {
        assert_ne!(lease_field_manager("pod-a"), lease_field_manager("pod-b"));
        assert!(lease_field_manager(&"x".repeat(300)).chars().count() <= 128);
    }

    #[test]
    fn a_leader_stops_a_margin_before_its_lease_expires() {
        let renewed = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let margin = safety_margin(Duration::from_secs(15));
        assert_eq!(margin, Duration::from_millis(2500));
        assert_eq!(
            leading_until(&lease("a", renewed, 15), "a", margin),
            Some(renewed + Duration::from_millis(12_500))
        );
        // Not the holder, or nothing to go by: not leading at all.
        assert_eq!(leading_until(&lease("b", renewed, 15), "a", margin), None);
        assert_eq!(leading_until(&Lease::default(), "a", margin), None);
        let mut unrenewed = lease("a", renewed, 15);
        unrenewed.spec.as_mut().unwrap().renew_time = None;
        assert_eq!(leading_until(&unrenewed, "a", margin), None);
    }
}
