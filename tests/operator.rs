//! The operator against a real kube-apiserver, etcd and kube-controller-manager: installed from
//! the Helm chart, running as the chart's ServiceAccount (so its RBAC is what is tested), driven
//! with kubectl like a user would. The tests play the kubelet by writing the build Pods' status.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use sourcebuild::api::{Phase, SourceBuild};
use support::operator::Operator;
use support::sourcebuilds::*;
use support::{ControlPlane, eventually, repo_root};

fn setup() -> Option<(&'static ControlPlane, &'static Operator)> {
    shared_operator("operator", &[])
}

#[tokio::test]
async fn an_example_builds_to_succeeded_with_its_digest() {
    let Some((cp, _)) = setup() else { return };
    let client = cp.client().await;
    let ns = cp.namespace("example").await;
    let text = std::fs::read_to_string(repo_root().join("examples/configmap-app.yaml")).unwrap();
    apply(cp, &ns, &text);

    let pod = wait_for_pod(&client, &ns, "hello-configmap-build-1").await;
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    assert_eq!(
        spec.init_containers.as_ref().unwrap()[0].args,
        Some(vec!["prepare".to_string()])
    );
    let owner = &pod.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("SourceBuild", "hello-configmap", Some(true))
    );
    // Running from the create on: the fetch step is part of the build.
    wait_for_phase(&client, &ns, "hello-configmap", Phase::Running).await;

    mark_running(&client, &ns, "hello-configmap-build-1").await;
    wait_for_phase(&client, &ns, "hello-configmap", Phase::Running).await;
    mark_finished(&client, &ns, "hello-configmap-build-1", 0, DIGEST).await;
    let sb = wait_for_phase(&client, &ns, "hello-configmap", Phase::Succeeded).await;

    let status = sb.status.unwrap();
    assert_eq!(status.digest.as_deref(), Some(DIGEST));
    assert_eq!(
        status.latest_image,
        Some(format!("registry.example.com/team/hello@{DIGEST}"))
    );
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(
        status.source_revision.as_deref(),
        Some("0123456789abcdef0123456789abcdef01234567")
    );
    let ready = status.condition("Ready").unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Succeeded")
    );
    assert!(status.completion_time.is_some() && status.start_time.is_some());

    // kubectl's columns come from the CRD.
    let table = cp
        .kubectl()
        .args(["get", "sb", "-n", &ns])
        .output()
        .unwrap();
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(
        table.contains("PHASE") && table.contains("Succeeded") && table.contains(DIGEST),
        "{table}"
    );
}

#[tokio::test]
async fn a_failed_build_names_its_reason_and_keeps_the_log_snippet() {
    let Some((cp, _)) = setup() else { return };
    let client = cp.client().await;
    let ns = cp.namespace("failed").await;
    apply(cp, &ns, &manifest("broken", ""));
    wait_for_pod(&client, &ns, "broken-build-1").await;
    let log = "Collecting flask==99\nERROR: No matching distribution found for flask==99\n\
               error building image: error building stage: failed to execute command: waiting for process to exit: exit status 1";
    mark_finished(&client, &ns, "broken-build-1", 1, log).await;
    let sb = wait_for_phase(&client, &ns, "broken", Phase::Failed).await;
    let status = sb.status.unwrap();
    let succeeded = status.condition("Succeeded").unwrap();
    assert_eq!(
        (succeeded.status.as_str(), succeeded.reason.as_str()),
        ("False", "AssembleFailed")
    );
    assert!(
        status
            .log_snippet
            .unwrap()
            .contains("No matching distribution found")
    );
    assert_eq!(status.digest, None);
    let reasons = eventually("the failure Event", WAIT, || async {
        let r = event_reasons(&client, &ns, "broken").await;
        r.contains(&"AssembleFailed".to_string()).then_some(r)
    })
    .await;
    // Routine Events are off by default (`--routine-events`): the failure is the only one.
    assert_eq!(reasons, ["AssembleFailed"]);
}

#[tokio::test]
async fn a_spec_change_supersedes_the_running_build() {
    let Some((cp, _)) = setup() else { return };
    let client = cp.client().await;
    let ns = cp.namespace("supersede").await;
    apply(
        cp,
        &ns,
        &manifest("app", "  env:\n  - {name: APP_FILE, value: v1.py}\n"),
    );
    wait_for_pod(&client, &ns, "app-build-1").await;
    mark_running(&client, &ns, "app-build-1").await;
    wait_for_phase(&client, &ns, "app", Phase::Running).await;

    apply(
        cp,
        &ns,
        &manifest("app", "  env:\n  - {name: APP_FILE, value: v2.py}\n"),
    );
    wait_for_pod(&client, &ns, "app-build-2").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    eventually("the generation 1 Pod to go", WAIT, || async {
        match pods.get_opt("app-build-1").await.unwrap() {
            None => Some(()),
            Some(p) if p.metadata.deletion_timestamp.is_some() => Some(()),
            Some(_) => None,
        }
    })
    .await;
    let sb = eventually("status for generation 2", WAIT, || async {
        let sb = get(&client, &ns, "app").await;
        (sb.status.as_ref()?.observed_generation == Some(2)).then_some(sb)
    })
    .await;
    assert_eq!(sb.status.unwrap().pod_name.as_deref(), Some("app-build-2"));
    mark_finished(&client, &ns, "app-build-2", 0, DIGEST).await;
    wait_for_phase(&client, &ns, "app", Phase::Succeeded).await;
}

#[tokio::test]
async fn deleting_a_source_build_collects_its_pods() {
    let Some((cp, _)) = setup() else { return };
    let client = cp.client().await;
    let ns = cp.namespace("gc").await;
    apply(cp, &ns, &manifest("gone", ""));
    wait_for_pod(&client, &ns, "gone-build-1").await;
    Api::<SourceBuild>::namespaced(client.clone(), &ns)
        .delete("gone", &DeleteParams::foreground())
        .await
        .unwrap();
    eventually(
        "garbage collection of the build Pod",
        Duration::from_secs(60),
        || async { pods_of(&client, &ns, "gone").await.is_empty().then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn a_pod_deleted_by_someone_else_fails_the_build() {
    let Some((cp, _)) = setup() else { return };
    let client = cp.client().await;
    let ns = cp.namespace("poddeleted").await;
    apply(cp, &ns, &manifest("victim", ""));
    wait_for_pod(&client, &ns, "victim-build-1").await;
    wait_for_phase(&client, &ns, "victim", Phase::Running).await;
    Api::<Pod>::namespaced(client.clone(), &ns)
        .delete("victim-build-1", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    let sb = wait_for_phase(&client, &ns, "victim", Phase::Failed).await;
    let succeeded = sb
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Succeeded")
        .unwrap();
    assert_eq!(succeeded.reason, "PodDeleted");
    assert!(
        succeeded.message.contains("victim-build-1"),
        "{}",
        succeeded.message
    );
    // No second Pod for the same generation.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(pods_of(&client, &ns, "victim").await.is_empty());
}

#[tokio::test]
async fn a_build_stuck_in_pending_times_out() {
    let Some((cp, _)) = setup() else { return };
    let client = cp.client().await;
    let ns = cp.namespace("timeout").await;
    apply(cp, &ns, &manifest("stuck", "  timeout: 3s\n"));
    let pod = wait_for_pod(&client, &ns, "stuck-build-1").await;
    assert_eq!(pod.spec.unwrap().active_deadline_seconds, Some(3));
    let sb = wait_for_phase(&client, &ns, "stuck", Phase::Failed).await;
    let succeeded = sb
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Succeeded")
        .unwrap();
    assert_eq!(succeeded.reason, "Timeout");
    eventually("the timed-out Pod to be deleted", WAIT, || async {
        let pods = pods_of(&client, &ns, "stuck").await;
        pods.iter()
            .all(|p| p.metadata.deletion_timestamp.is_some())
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_restarted_controller_finishes_the_build_without_a_second_pod() {
    let Some((cp, operator)) = setup() else {
        return;
    };
    let client = cp.client().await;
    let ns = cp.namespace("restart").await;
    apply(cp, &ns, &manifest("survivor", ""));
    wait_for_pod(&client, &ns, "survivor-build-1").await;
    wait_for_phase(&client, &ns, "survivor", Phase::Running).await;

    operator.kill();
    mark_running(&client, &ns, "survivor-build-1").await;
    mark_finished(&client, &ns, "survivor-build-1", 0, DIGEST).await;
    operator.kill_and_restart();

    let sb = wait_for_phase(&client, &ns, "survivor", Phase::Succeeded).await;
    assert_eq!(sb.status.unwrap().digest.as_deref(), Some(DIGEST));
    let pods = pods_of(&client, &ns, "survivor").await;
    assert_eq!(
        pods.iter().map(|p| p.name_any()).collect::<Vec<_>>(),
        ["survivor-build-1"]
    );
}

#[tokio::test]
async fn metrics_and_probes_are_served() {
    let Some((_, operator)) = setup() else { return };
    let (code, _) = eventually("/readyz to turn green", WAIT, || async {
        operator
            .http_get("/readyz")
            .filter(|(code, _)| *code == 200)
    })
    .await;
    assert_eq!(code, 200);
    assert_eq!(operator.http_get("/healthz").map(|(c, _)| c), Some(200));
    let (_, metrics) = operator.http_get("/metrics").unwrap();
    assert!(
        metrics.contains("sourcebuild_reconciliations_total"),
        "{metrics}"
    );
}

/// Bad specs: the API server refuses what the schema can express; the controller fails the
/// rest with `InvalidSpec`. Either way the message names the field.
#[tokio::test]
async fn invalid_source_builds_are_refused_naming_the_field() {
    let Some((cp, _)) = setup() else { return };
    let client = cp.client().await;
    let ns = cp.namespace("invalid").await;
    let git = "  source:\n    git: {url: https://example.com/a.git}\n";
    let output = "  output: {image: registry.example.com/team/app:1.0}\n";
    let spec = |body: &str| {
        format!(
            "apiVersion: sourcebuild.dev/v1alpha1\nkind: SourceBuild\nmetadata:\n  name: bad\nspec:\n{body}"
        )
    };
    // (field named in the error, spec body)
    let refused_by_the_api_server: Vec<(&str, String)> = vec![
        ("spec.source", format!("  source: {{}}\n{output}")),
        (
            "spec.source",
            format!(
                "  source:\n    git: {{url: https://example.com/a.git}}\n    archive: {{url: https://example.com/a.tgz}}\n{output}"
            ),
        ),
        ("spec.output", git.to_string()),
        (
            "spec.env[0].name",
            format!("{git}{output}  env: [{{name: 1BAD, value: x}}]\n"),
        ),
        (
            "spec.source.contextDir",
            format!("{git}    contextDir: ../etc\n{output}"),
        ),
        (
            "spec.source.contextDir",
            format!("{git}    contextDir: /abs\n{output}"),
        ),
        (
            "spec.output.image",
            format!("{git}  output: {{image: Not An Image}}\n"),
        ),
        (
            "spec.builder.image",
            format!("{git}{output}  builder: {{image: 'UPPER CASE'}}\n"),
        ),
        ("spec.timeout", format!("{git}{output}  timeout: -5m\n")),
        ("spec.timeout", format!("{git}{output}  timeout: 0s\n")),
        (
            "spec.source.git.url",
            "  source:\n    git: {url: file:///etc/passwd}\n".to_string() + output,
        ),
        (
            "spec.source.archive.sha256",
            format!(
                "  source:\n    archive: {{url: https://example.com/a.tgz, sha256: xyz}}\n{output}"
            ),
        ),
        (
            "spec.builder.assembleUser",
            format!("{git}{output}  builder: {{assembleUser: 'root; rm -rf /'}}\n"),
        ),
        (
            "spec.serviceAccountName",
            format!("{git}{output}  serviceAccountName: Not_Valid\n"),
        ),
        (
            "spec.output.labels",
            format!(
                "{git}  output: {{image: registry.example.com/a:1, labels: {{'bad key': v}}}}\n"
            ),
        ),
        (
            "spec.source.configMap.items[0].path",
            format!(
                "  source:\n    configMap: {{name: src, items: [{{key: a, path: ../a}}]}}\n{output}"
            ),
        ),
    ];
    let mut refused = 0;
    for (field, body) in &refused_by_the_api_server {
        let mut child = cp
            .kubectl()
            .args(["apply", "-n", &ns, "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(spec(body).as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "the API server accepted a bad {field}:\n{body}"
        );
        assert!(
            stderr.contains(field),
            "the refusal does not name {field}: {stderr}"
        );
        refused += 1;
    }

    // What only the controller can see: values the schema allows but a Dockerfile cannot hold,
    // a digest as the push target, two items on one path.
    let failed_by_the_controller: Vec<(&str, &str, String)> = vec![
        (
            "newline",
            "spec.env[0].value",
            format!("{git}{output}  env: [{{name: A, value: \"x\\nRUN evil\"}}]\n"),
        ),
        (
            "digest",
            "spec.output.image",
            format!(
                "{git}  output: {{image: 'registry.example.com/a@sha256:{}'}}\n",
                "a".repeat(64)
            ),
        ),
        (
            "twopaths",
            "spec.source.configMap.items[1].path",
            format!(
                "  source:\n    configMap: {{name: src, items: [{{key: a, path: x}}, {{key: b, path: x}}]}}\n{output}"
            ),
        ),
        (
            "labelnl",
            "spec.output.labels",
            format!(
                "{git}  output: {{image: registry.example.com/a:1, labels: {{k: \"a\\nb\"}}}}\n"
            ),
        ),
    ];
    for (name, field, body) in &failed_by_the_controller {
        let text = spec(body).replace("name: bad", &format!("name: {name}"));
        apply(cp, &ns, &text);
        let sb = wait_for_phase(&client, &ns, name, Phase::Failed).await;
        let succeeded = sb
            .status
            .unwrap()
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Succeeded")
            .unwrap();
        assert_eq!(succeeded.reason, "InvalidSpec", "{name}");
        assert!(
            succeeded.message.contains(field),
            "{name}: {} does not name {field}",
            succeeded.message
        );
        assert!(
            pods_of(&client, &ns, name).await.is_empty(),
            "{name}: no Pod for an invalid spec"
        );
        refused += 1;
    }
    assert!(refused >= 15);
}
