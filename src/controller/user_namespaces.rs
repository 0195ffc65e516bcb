//! Whether build Pods get a user namespace (`hostUsers: false`): `--user-namespaces auto`
//! asks the cluster once at start. An API server without the `UserNamespacesSupport` feature
//! drops the field from a Pod it admits, so a server-side dry-run create of a Pod with
//! `hostUsers: false` answers the question without creating anything.

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, PostParams};

/// The operator's `--user-namespaces`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum UserNamespaces {
    /// Where the cluster supports them (asked once at start).
    Auto,
    /// Always: a cluster without support refuses nothing but runs the Pods with the node's users.
    On,
    /// Never: build Pods run with the node's users, as before.
    Off,
}

/// The Pod the dry run sends: restricted-compliant, so Pod Security admission has nothing to
/// say about it, and never stored.
pub fn probe_pod() -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "sourcebuild-user-namespace-probe-"},
        "spec": {
            "hostUsers": false,
            "automountServiceAccountToken": false,
            "securityContext": {
                "runAsNonRoot": true,
                "runAsUser": 65532,
                "seccompProfile": {"type": "RuntimeDefault"}
            },
            "containers": [{
                "name": "probe",
                "image": "probe.invalid/none:0",
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["ALL"]}
                }
            }]
        }
    }))
    .expect("a valid Pod")
}

/// Whether the API server kept `hostUsers: false` on the Pod it admitted.
pub fn kept(admitted: &Pod) -> bool {
    admitted.spec.as_ref().and_then(|s| s.host_users) == Some(false)
}

/// Asks the API server (a dry-run create in `namespace`, which the operator may create Pods
/// in) whether it keeps `hostUsers: false`.
pub async fn supported(client: &Client, namespace: &str) -> Result<bool, kube::Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let admitted = pods.create(&params, &probe_pod()).await?;
    Ok(kept(&admitted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_keeping_host_users_false_means_support() {
        let mut pod = probe_pod();
        assert!(kept(&pod));
        // What an API server without the feature returns: the field dropped.
        pod.spec.as_mut().unwrap().host_users = None;
        assert!(!kept(&pod));
    }
}
