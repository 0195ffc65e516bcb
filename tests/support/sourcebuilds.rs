//! Driving SourceBuilds on the test control plane as a user and a kubelet would: `kubectl apply`,
//! waiting for phases, and writing build Pods' status in the kubelet's place.

use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use sourcebuild::api::{Phase, SourceBuild};

use super::control_plane::{ControlPlane, control_plane, eventually};
use super::operator::{Operator, install_chart};

/// How long a step of the controller may take before a test gives up.
pub const WAIT: Duration = Duration::from_secs(30);
/// A digest Kaniko could have written.
pub const DIGEST: &str = "sha256:5f0e1b6bd2f5fb0f3bc3b1d2c9e0e8f4a7c1d3e5f60718293a4b5c6d7e8f9a0b";

/// The control plane and one operator (all namespaces, the chart's identity) for this test
/// binary, or `None` when the control plane is skipped on purpose.
pub fn shared_operator(
    log_prefix: &str,
    args: &[&str],
) -> Option<(&'static ControlPlane, &'static Operator)> {
    static OPERATOR: OnceLock<Operator> = OnceLock::new();
    let cp = control_plane()?;
    let operator = OPERATOR.get_or_init(|| {
        install_chart(cp, &[]);
        let logs = tempfile::Builder::new()
            .prefix(&format!("sourcebuild-{log_prefix}-"))
            .tempdir()
            .unwrap()
            .keep();
        eprintln!("operator log: {}", logs.join("operator.log").display());
        Operator::start(cp, args, &logs)
    });
    Some((cp, operator))
}

/// Runs kubectl as the admin, feeding `stdin`; panics with kubectl's stderr on failure.
pub fn kubectl(cp: &ControlPlane, args: &[&str], stdin: Option<&str>) {
    let out = kubectl_output(cp, args, stdin);
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `kubectl apply -n ns -f -` of `text`, which the API server must refuse: kubectl's stderr.
pub fn apply_refused(cp: &ControlPlane, ns: &str, text: &str) -> String {
    let out = kubectl_output(cp, &["apply", "-n", ns, "-f", "-"], Some(text));
    assert!(!out.status.success(), "accepted {text}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs kubectl as the admin, feeding `stdin`: its output, whether it succeeded or not.
pub fn kubectl_output(
    cp: &ControlPlane,
    args: &[&str],
    stdin: Option<&str>,
) -> std::process::Output {
    let mut child = cp
        .kubectl()
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

/// `kubectl apply -n ns -f -` of `manifest`.
pub fn apply(cp: &ControlPlane, ns: &str, manifest: &str) {
    kubectl(cp, &["apply", "-n", ns, "-f", "-"], Some(manifest));
}

/// A SourceBuild from a git URL nobody fetches (the kubelet is played by the test), with
/// `extra_spec` lines appended to its spec.
pub fn manifest(name: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: sourcebuild.dev/v1alpha1\nkind: SourceBuild\nmetadata:\n  name: {name}\nspec:\n  \
         source:\n    git:\n      url: https://example.com/acme/app.git\n  \
         output:\n    image: registry.example.com/team/{name}:1.0\n{extra_spec}"
    )
}

/// The SourceBuild as stored.
pub async fn get(client: &Client, ns: &str, name: &str) -> SourceBuild {
    Api::<SourceBuild>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap()
}

/// Waits for the Pod to exist (and not be on its way out).
pub async fn wait_for_pod(client: &Client, ns: &str, name: &str) -> Pod {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    eventually(&format!("Pod {ns}/{name}"), WAIT, || async {
        pods.get_opt(name)
            .await
            .ok()
            .flatten()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
    })
    .await
}

/// Waits until the SourceBuild's status is in `phase`.
pub async fn wait_for_phase(client: &Client, ns: &str, name: &str, phase: Phase) -> SourceBuild {
    let api: Api<SourceBuild> = Api::namespaced(client.clone(), ns);
    eventually(
        &format!("SourceBuild {ns}/{name} {phase}"),
        WAIT,
        || async {
            let sb = api.get(name).await.ok()?;
            (sb.status.as_ref()?.phase == Some(phase)).then_some(sb)
        },
    )
    .await
}

/// Waits until status describes the build in Pod `pod` in `phase`.
pub async fn wait_for_build(
    client: &Client,
    ns: &str,
    name: &str,
    pod: &str,
    phase: Phase,
) -> SourceBuild {
    let api: Api<SourceBuild> = Api::namespaced(client.clone(), ns);
    eventually(
        &format!("SourceBuild {ns}/{name}: {pod} {phase}"),
        WAIT,
        || async {
            let sb = api.get(name).await.ok()?;
            let status = sb.status.as_ref()?;
            (status.phase == Some(phase) && status.pod_name.as_deref() == Some(pod)).then_some(sb)
        },
    )
    .await
}

/// The reasons of the Events about the SourceBuild, oldest first.
pub async fn event_reasons(client: &Client, ns: &str, name: &str) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let mut list = events.list(&ListParams::default()).await.unwrap().items;
    list.sort_by_key(|e| e.event_time.clone().map(|t| t.0));
    list.into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter_map(|e| e.reason)
        .collect()
}

/// The build Pods of a SourceBuild, by its label.
pub async fn pods_of(client: &Client, ns: &str, name: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&format!("sourcebuild.dev/name={name}")))
        .await
        .unwrap()
        .items
}

/// The names of its build Pods that are not being deleted, sorted.
pub async fn pod_names(client: &Client, ns: &str, name: &str) -> Vec<String> {
    let mut names: Vec<String> = pods_of(client, ns, name)
        .await
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| p.name_any())
        .collect();
    names.sort();
    names
}

/// The init container's report of a prepared build context.
pub fn prepared() -> String {
    json!({"prepared": {"revision": "0123456789abcdef0123456789abcdef01234567",
                        "dockerfileSha256": format!("sha256:{}", "d".repeat(64)),
                        "builderImage": "quay.io/sclorg/python-312-c9s:c9s"}})
    .to_string()
}

/// A terminated container status, as the kubelet writes it.
pub fn terminated(name: &str, code: i32, message: &str) -> Value {
    json!({"name": name, "image": "x", "imageID": "", "ready": false, "restartCount": 0,
           "state": {"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" },
                                    "message": message,
                                    "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:01Z"}}})
}

/// Writes a Pod's status (merge patch of the status subresource), in the kubelet's place.
pub async fn patch_pod_status(client: &Client, ns: &str, pod: &str, status: Value) {
    Api::<Pod>::namespaced(client.clone(), ns)
        .patch_status(
            pod,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": status })),
        )
        .await
        .unwrap();
}

/// The Pod status the kubelet writes once the fetch step finished and Kaniko runs (an init
/// container, so the Pod is still Pending).
pub fn running_status() -> Value {
    json!({"phase": "Pending",
        "initContainerStatuses": [terminated("prepare", 0, &prepared()),
            {"name": "build", "image": "kaniko:test", "imageID": "", "ready": false, "restartCount": 0,
             "state": {"running": {"startedAt": "2026-01-01T00:00:02Z"}}}]})
}

/// The publish step's report of the provenance of `digest`.
pub fn published(digest: &str) -> String {
    json!({"published": {"subject": digest, "attestation": format!("sha256:{}", "e".repeat(64)),
                         "referrers": "ReferrersAPI"}})
    .to_string()
}

/// The Pod status the kubelet writes once Kaniko ended with `code` and `message` (its
/// termination message) and, after a success, the publish step reported the digest's provenance.
pub fn finished_status(code: i32, message: &str) -> Value {
    let publish = if code == 0 {
        vec![terminated("publish", 0, &published(message.trim()))]
    } else {
        vec![]
    };
    json!({"phase": if code == 0 { "Succeeded" } else { "Failed" },
        "initContainerStatuses": [terminated("prepare", 0, &prepared()), terminated("build", code, message)],
        "containerStatuses": publish})
}

/// Plays the kubelet: the fetch step finished, Kaniko runs.
pub async fn mark_running(client: &Client, ns: &str, pod: &str) {
    patch_pod_status(client, ns, pod, running_status()).await;
}

/// Plays the kubelet: Kaniko ended with `code` and `message` (its termination message).
pub async fn mark_finished(client: &Client, ns: &str, pod: &str, code: i32, message: &str) {
    patch_pod_status(client, ns, pod, finished_status(code, message)).await;
}
