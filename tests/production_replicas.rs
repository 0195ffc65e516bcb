//! Production behaviour that needs operators of its own on the real control plane: leader
//! election between two replicas. Each operator here watches only its test's namespaces, so
//! tests in this binary never share a SourceBuild with another operator.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::{Client, ResourceExt};
use support::operator::{CHART_NAMESPACE, Operator, install_chart};
use support::{ControlPlane, control_plane, eventually};

const WAIT: Duration = Duration::from_secs(30);

fn setup() -> Option<&'static ControlPlane> {
    static CHART: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let cp = control_plane()?;
    CHART.get_or_init(|| {
        install_chart(cp, &[]);
    });
    Some(cp)
}

fn log_dir(prefix: &str) -> PathBuf {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .unwrap()
        .keep();
    eprintln!("operator logs: {}", dir.display());
    dir
}

fn apply(cp: &ControlPlane, ns: &str, name: &str) {
    support::sourcebuilds::apply(cp, ns, &support::sourcebuilds::manifest(name, ""));
}

async fn wait_for_pod(client: &Client, ns: &str, name: &str) -> Pod {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    eventually(&format!("Pod {ns}/{name}"), WAIT, || async {
        pods.get_opt(name).await.ok().flatten()
    })
    .await
}

async fn holder(client: &Client, lease: &str) -> Option<String> {
    Api::<Lease>::namespaced(client.clone(), CHART_NAMESPACE)
        .get_opt(lease)
        .await
        .ok()
        .flatten()?
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

#[tokio::test]
async fn a_standby_replica_takes_over_when_the_leader_dies_and_a_graceful_stop_releases_the_lease()
{
    let Some(cp) = setup() else { return };
    let client = cp.client().await;
    let ns = cp.namespace("leader").await;
    let lease = "sourcebuild-test-leader";
    let replica = |identity: &str| {
        let args = [
            "--leader-elect",
            "--lease-namespace",
            CHART_NAMESPACE,
            "--lease-name",
            lease,
            "--lease-duration",
            "4s",
            "--instance",
            identity,
            "--namespace",
            &ns,
        ];
        Operator::start(cp, &args, &log_dir(&format!("sourcebuild-{identity}-")))
    };

    let first = replica("replica-a");
    eventually("replica-a to hold the Lease", WAIT, || async {
        (holder(&client, lease).await.as_deref() == Some("replica-a")).then_some(())
    })
    .await;
    let second = replica("replica-b");
    // The standby serves its probes but does not reconcile: the leader creates the Pod.
    eventually("the standby's /readyz", WAIT, || async {
        second.http_get("/readyz").filter(|(code, _)| *code == 200)
    })
    .await;
    apply(cp, &ns, "one");
    wait_for_pod(&client, &ns, "one-build-1").await;
    assert!(
        first.log().contains("\"leading\""),
        "replica-a never led:\n{}",
        first.log()
    );
    assert!(
        !second.log().contains("\"leading\""),
        "the standby leads too:\n{}",
        second.log()
    );

    // The leader dies without releasing the Lease: the standby takes over once it expires.
    first.kill();
    eventually("replica-b to take the Lease", WAIT, || async {
        (holder(&client, lease).await.as_deref() == Some("replica-b")).then_some(())
    })
    .await;
    apply(cp, &ns, "two");
    let pod = wait_for_pod(&client, &ns, "two-build-1").await;
    assert_eq!(pod.owner_references()[0].name, "two");

    // SIGTERM: the controller stops and the Lease is released for the next replica.
    let status = second
        .terminate(WAIT)
        .expect("replica-b exits after SIGTERM");
    assert!(status.success(), "replica-b exited with {status}");
    assert_eq!(holder(&client, lease).await, None);
    assert!(
        second.log().contains("released the Lease"),
        "{}",
        second.log()
    );
}

#[tokio::test]
async fn an_operator_watches_only_the_namespaces_it_is_given() {
    let Some(cp) = setup() else { return };
    let client = cp.client().await;
    let first = cp.namespace("watched").await;
    let second = cp.namespace("watched").await;
    let third = cp.namespace("watched").await;
    let outside = cp.namespace("unwatched").await;
    // A comma-separated list and a repeated flag together.
    let list = format!("{first},{second}");
    let _operator = Operator::start(
        cp,
        &["--namespace", &list, "--namespace", &third],
        &log_dir("sourcebuild-namespaces-"),
    );
    for ns in [&first, &second, &third, &outside] {
        apply(cp, ns, "app");
    }
    for ns in [&first, &second, &third] {
        wait_for_pod(&client, ns, "app-build-1").await;
        eventually(&format!("status in {ns}"), WAIT, || async {
            let sb = Api::<sourcebuild::api::SourceBuild>::namespaced(client.clone(), ns)
                .get("app")
                .await
                .ok()?;
            sb.status?.phase
        })
        .await;
    }
    // The three watched namespaces are done; the other one was never touched.
    let sb = Api::<sourcebuild::api::SourceBuild>::namespaced(client.clone(), &outside)
        .get("app")
        .await
        .unwrap();
    // Only the CRD's default status: generation 0 observed, nothing else.
    let untouched = sourcebuild::api::SourceBuildStatus {
        observed_generation: Some(0),
        ..Default::default()
    };
    assert_eq!(sb.status, Some(untouched));
    let pods: Api<Pod> = Api::namespaced(client.clone(), &outside);
    assert!(pods.get_opt("app-build-1").await.unwrap().is_none());
}
