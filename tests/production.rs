//! Production behaviour on the real control plane: rebuilds, suspend, history and retention,
//! retries. The operator runs from the Helm chart's RBAC; the tests play the kubelet by patching
//! build Pods' status.

mod support;

use std::time::Duration;

use kube::Client;
use kube::api::Api;
use serde_json::{Value, json};
use sourcebuild::api::{Phase, SourceBuild, Trigger};
use support::operator::Operator;
use support::sourcebuilds::*;
use support::{ControlPlane, eventually};

fn setup() -> Option<(&'static ControlPlane, &'static Operator)> {
    // With the routine Events, which these tests read as the build's story.
    shared_operator("production", &["--routine-events"])
}

const ASSEMBLE_FAILED: &str = "ERROR: No matching distribution found for flask==99\n\
    error building image: error building stage: failed to execute command: waiting for process to exit: exit status 1";

fn annotate_rebuild(cp: &ControlPlane, ns: &str, name: &str, value: &str) {
    kubectl(
        cp,
        &[
            "annotate",
            "-n",
            ns,
            "--overwrite",
            &format!("sourcebuild/{name}"),
            &format!("sourcebuild.dev/rebuild={value}"),
        ],
        None,
    );
}

#[tokio::test]
async fn a_new_generation_builds_after_a_failure_and_a_rebuild_value_builds_once() {
    let Some((cp, operator)) = setup() else {
        return;
    };
    let client = cp.client().await;
    let ns = cp.namespace("rebuild").await;
    apply(
        cp,
        &ns,
        &manifest("app", "  env: [{name: V, value: '1'}]\n"),
    );
    wait_for_pod(&client, &ns, "app-build-1").await;
    mark_finished(&client, &ns, "app-build-1", 1, ASSEMBLE_FAILED).await;
    wait_for_build(&client, &ns, "app", "app-build-1", Phase::Failed).await;

    // The fix: a new generation builds although the last build failed.
    apply(
        cp,
        &ns,
        &manifest("app", "  env: [{name: V, value: '2'}]\n"),
    );
    wait_for_pod(&client, &ns, "app-build-2").await;
    let sb = wait_for_build(&client, &ns, "app", "app-build-2", Phase::Running).await;
    let status = sb.status.unwrap();
    assert_eq!(
        (status.trigger, status.build, status.observed_generation),
        (Some(Trigger::ConfigChange), Some(1), Some(2))
    );
    mark_finished(&client, &ns, "app-build-2", 0, DIGEST).await;
    wait_for_build(&client, &ns, "app", "app-build-2", Phase::Succeeded).await;
    // `--routine-events`: each build's start and success are Events too.
    let reasons = eventually("the BuildSucceeded Event", WAIT, || async {
        let r = event_reasons(&client, &ns, "app").await;
        r.contains(&"BuildSucceeded".to_string()).then_some(r)
    })
    .await;
    assert_eq!(
        reasons,
        [
            "BuildStarted",
            "AssembleFailed",
            "BuildStarted",
            "BuildSucceeded"
        ]
    );

    // A manual rebuild of the same generation.
    annotate_rebuild(cp, &ns, "app", "first");
    wait_for_pod(&client, &ns, "app-build-2-2").await;
    let sb = wait_for_build(&client, &ns, "app", "app-build-2-2", Phase::Running).await;
    let status = sb.status.unwrap();
    assert_eq!(
        (
            status.trigger,
            status.build,
            status.rebuild.as_deref(),
            status.observed_generation
        ),
        (Some(Trigger::Manual), Some(2), Some("first"), Some(2))
    );
    mark_finished(&client, &ns, "app-build-2-2", 0, DIGEST).await;
    let sb = wait_for_build(&client, &ns, "app", "app-build-2-2", Phase::Succeeded).await;
    let history = sb.status.unwrap().history;
    assert_eq!(
        history
            .iter()
            .map(|r| (r.generation, r.build, r.trigger, r.phase))
            .collect::<Vec<_>>(),
        [
            (2, 2, Some(Trigger::Manual), Phase::Succeeded),
            (2, 1, Some(Trigger::ConfigChange), Phase::Succeeded),
            (1, 1, Some(Trigger::ConfigChange), Phase::Failed),
        ]
    );
    assert_eq!(history[0].digest.as_deref(), Some(DIGEST));
    assert_eq!(history[2].reason.as_deref(), Some("AssembleFailed"));

    // A restart, and the same value written again: neither starts another build. A further
    // value does, and its Pod name is the next one.
    operator.kill_and_restart();
    annotate_rebuild(cp, &ns, "app", "first");
    annotate_rebuild(cp, &ns, "app", "second");
    wait_for_pod(&client, &ns, "app-build-2-3").await;
    wait_for_build(&client, &ns, "app", "app-build-2-3", Phase::Running).await;
    let names = pod_names(&client, &ns, "app").await;
    assert_eq!(
        names,
        [
            "app-build-1",
            "app-build-2",
            "app-build-2-2",
            "app-build-2-3"
        ]
    );
}

#[tokio::test]
async fn suspend_cancels_the_running_build_and_resume_builds_again() {
    let Some((cp, _)) = setup() else { return };
    let client = cp.client().await;
    let ns = cp.namespace("suspend").await;
    apply(cp, &ns, &manifest("paused", ""));
    wait_for_pod(&client, &ns, "paused-build-1").await;
    mark_running(&client, &ns, "paused-build-1").await;
    wait_for_build(&client, &ns, "paused", "paused-build-1", Phase::Running).await;

    apply(cp, &ns, &manifest("paused", "  suspend: true\n"));
    let api: Api<SourceBuild> = Api::namespaced(client.clone(), &ns);
    let sb = eventually("phase Cancelled", WAIT, || async {
        let sb = api.get("paused").await.ok()?;
        (sb.status.as_ref()?.phase == Some(Phase::Cancelled)).then_some(sb)
    })
    .await;
    let status = sb.status.unwrap();
    let succeeded = status.condition("Succeeded").unwrap();
    assert_eq!(
        (succeeded.status.as_str(), succeeded.reason.as_str()),
        ("False", "Cancelled")
    );
    assert!(
        succeeded.message.contains("paused-build-1"),
        "{succeeded:?}"
    );
    assert_eq!(status.history[0].phase, Phase::Cancelled);
    eventually("the running Pod to be deleted", WAIT, || async {
        pod_names(&client, &ns, "paused")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    // Still suspended: a rebuild request does not start anything.
    annotate_rebuild(cp, &ns, "paused", "now");
    let reasons = eventually("the Cancelled Event", WAIT, || async {
        let r = event_reasons(&client, &ns, "paused").await;
        r.contains(&"Cancelled".to_string()).then_some(r)
    })
    .await;
    assert!(reasons.contains(&"BuildStarted".to_string()), "{reasons:?}");
    assert_eq!(
        get(&client, &ns, "paused").await.status.unwrap().phase,
        Some(Phase::Cancelled)
    );
    assert!(pod_names(&client, &ns, "paused").await.is_empty());

    apply(cp, &ns, &manifest("paused", "  suspend: false\n"));
    wait_for_pod(&client, &ns, "paused-build-3").await;
    let sb = wait_for_build(&client, &ns, "paused", "paused-build-3", Phase::Running).await;
    assert_eq!(sb.status.unwrap().observed_generation, Some(3));
}

#[tokio::test]
async fn history_is_bounded_and_finished_pods_beyond_retention_are_deleted() {
    let Some((cp, _)) = setup() else { return };
    let client = cp.client().await;
    let ns = cp.namespace("retention").await;
    let spec = "  historyLimit: 2\n  retention: {succeededLimit: 1, failedLimit: 1}\n";
    apply(cp, &ns, &manifest("kept", spec));
    // Four builds: failed, succeeded, failed, succeeded.
    let builds = [
        ("kept-build-1", 1, ASSEMBLE_FAILED),
        ("kept-build-1-2", 0, DIGEST),
        ("kept-build-1-3", 1, ASSEMBLE_FAILED),
        ("kept-build-1-4", 0, DIGEST),
    ];
    for (i, (pod, code, message)) in builds.iter().enumerate() {
        if i > 0 {
            annotate_rebuild(cp, &ns, "kept", &i.to_string());
        }
        wait_for_pod(&client, &ns, pod).await;
        mark_finished(&client, &ns, pod, *code, message).await;
        let phase = if *code == 0 {
            Phase::Succeeded
        } else {
            Phase::Failed
        };
        wait_for_build(&client, &ns, "kept", pod, phase).await;
    }
    let names = eventually("retention to delete the older Pods", WAIT, || async {
        let names = pod_names(&client, &ns, "kept").await;
        (names.len() == 2).then_some(names)
    })
    .await;
    assert_eq!(names, ["kept-build-1-3", "kept-build-1-4"]);
    let history = get(&client, &ns, "kept").await.status.unwrap().history;
    assert_eq!(
        history
            .iter()
            .map(|r| (r.build, r.phase))
            .collect::<Vec<_>>(),
        [(4, Phase::Succeeded), (3, Phase::Failed)]
    );
    assert!(
        history
            .iter()
            .all(|r| r.start_time.is_some() && r.completion_time.is_some())
    );
}

#[tokio::test]
async fn a_finished_pod_older_than_its_ttl_is_deleted() {
    let Some((cp, _)) = setup() else { return };
    let client = cp.client().await;
    let ns = cp.namespace("ttl").await;
    apply(
        cp,
        &ns,
        &manifest("brief", "  retention: {ttlAfterFinished: 2s}\n"),
    );
    wait_for_pod(&client, &ns, "brief-build-1").await;
    // Finished "now", so the TTL runs from the moment this test marks it.
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let status = json!({"phase": "Succeeded",
        "initContainerStatuses": [terminated("prepare", 0, &prepared()), terminated("build", 0, DIGEST)],
        "containerStatuses": [{"name": "publish", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed", "message": published(DIGEST),
                                     "finishedAt": now}}}]});
    patch_pod_status(&client, &ns, "brief-build-1", status).await;
    wait_for_build(&client, &ns, "brief", "brief-build-1", Phase::Succeeded).await;
    eventually("the TTL to delete the Pod", WAIT, || async {
        pod_names(&client, &ns, "brief")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    // Status keeps what the build produced.
    let sb = get(&client, &ns, "brief").await;
    assert_eq!(sb.status.unwrap().digest.as_deref(), Some(DIGEST));
}

#[tokio::test]
async fn an_eviction_is_retried_and_an_assemble_failure_is_not() {
    let Some((cp, _)) = setup() else { return };
    let client = cp.client().await;
    let ns = cp.namespace("retry").await;
    let retry = "  retry: {limit: 2, backoff: 1s}\n";
    apply(cp, &ns, &manifest("flaky", retry));
    wait_for_pod(&client, &ns, "flaky-build-1").await;
    patch_pod_status(
        &client,
        &ns,
        "flaky-build-1",
        json!({"phase": "Failed", "reason": "Evicted",
               "message": "The node was low on resource: ephemeral-storage."}),
    )
    .await;
    let sb = wait_for_build(&client, &ns, "flaky", "flaky-build-1-2", Phase::Running).await;
    let status = sb.status.unwrap();
    assert_eq!(
        (status.attempt, status.trigger),
        (Some(2), Some(Trigger::ConfigChange))
    );
    assert_eq!(status.history[0].reason.as_deref(), Some("Evicted"));
    assert_eq!(status.history[0].attempt, Some(1));
    let reasons = eventually("the Retrying Event", WAIT, || async {
        let r = event_reasons(&client, &ns, "flaky").await;
        r.contains(&"Retrying".to_string()).then_some(r)
    })
    .await;
    assert!(reasons.contains(&"Evicted".to_string()), "{reasons:?}");
    mark_finished(&client, &ns, "flaky-build-1-2", 0, DIGEST).await;
    wait_for_build(&client, &ns, "flaky", "flaky-build-1-2", Phase::Succeeded).await;

    apply(cp, &ns, &manifest("broken", retry));
    wait_for_pod(&client, &ns, "broken-build-1").await;
    mark_finished(&client, &ns, "broken-build-1", 1, ASSEMBLE_FAILED).await;
    let sb = wait_for_build(&client, &ns, "broken", "broken-build-1", Phase::Failed).await;
    assert_eq!(sb.status.as_ref().unwrap().next_attempt_time, None);
    // Well past the backoff, still the one Pod.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(pod_names(&client, &ns, "broken").await, ["broken-build-1"]);
}

async fn wait_for_failure(client: &Client, ns: &str, name: &str) -> (String, String) {
    let api: Api<SourceBuild> = Api::namespaced(client.clone(), ns);
    eventually(&format!("SourceBuild {ns}/{name} Failed"), WAIT, || async {
        let status = api.get(name).await.ok()?.status?;
        if status.phase != Some(Phase::Failed) {
            return None;
        }
        let c = status.condition("Succeeded")?;
        Some((c.reason.clone(), c.message.clone()))
    })
    .await
}

#[tokio::test]
async fn a_missing_secret_reported_by_the_kubelet_fails_the_build_at_once() {
    let Some((cp, _)) = setup() else { return };
    let client = cp.client().await;
    let ns = cp.namespace("nosecret").await;
    apply(
        cp,
        &ns,
        &manifest("app", "  timeout: 1h\n").replace(
            "image: registry.example.com/team/app:1.0",
            "image: registry.example.com/team/app:1.0\n    pushSecretRef: {name: regcred}",
        ),
    );
    wait_for_pod(&client, &ns, "app-build-1").await;
    // The kubelet's own words when a container's Secret is missing.
    patch_pod_status(
        &client,
        &ns,
        "app-build-1",
        json!({"phase": "Pending", "initContainerStatuses": [{"name": "build", "image": "kaniko:test",
            "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "CreateContainerConfigError",
                                  "message": "secret \"regcred\" not found"}}}]}),
    )
    .await;
    let (reason, message) = wait_for_failure(&client, &ns, "app").await;
    assert_eq!(reason, "SecretNotFound");
    assert!(message.contains("\"regcred\""), "{message}");
}

#[tokio::test]
async fn a_failed_mount_event_of_a_missing_config_map_fails_the_build_at_once() {
    let Some((cp, _)) = setup() else { return };
    let client = cp.client().await;
    let ns = cp.namespace("nocm").await;
    let text = "apiVersion: sourcebuild.dev/v1alpha1\nkind: SourceBuild\nmetadata:\n  name: app\nspec:\n  \
                timeout: 1h\n  source:\n    configMap: {name: app-source}\n  \
                output: {image: registry.example.com/team/app:1.0}\n";
    apply(cp, &ns, text);
    let pod = wait_for_pod(&client, &ns, "app-build-1").await;
    patch_pod_status(
        &client,
        &ns,
        "app-build-1",
        json!({"phase": "Pending", "initContainerStatuses": [{"name": "prepare", "image": "x",
            "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "PodInitializing"}}}]}),
    )
    .await;
    // The Event the kubelet records (core/v1, as the kubelet writes it).
    let event: k8s_openapi::api::core::v1::Event = serde_json::from_value(json!({
        "metadata": {"generateName": "app-build-1.", "namespace": ns},
        "involvedObject": {"kind": "Pod", "apiVersion": "v1", "namespace": ns, "name": "app-build-1",
                           "uid": pod.metadata.uid},
        "reason": "FailedMount", "type": "Warning", "count": 1,
        "source": {"component": "kubelet", "host": "node-1"},
        "message": "MountVolume.SetUp failed for volume \"source\" : configmap \"app-source\" not found"
    }))
    .unwrap();
    Api::<k8s_openapi::api::core::v1::Event>::namespaced(client.clone(), &ns)
        .create(&Default::default(), &event)
        .await
        .unwrap();
    let (reason, message) = wait_for_failure(&client, &ns, "app").await;
    assert_eq!(reason, "ConfigMapNotFound");
    assert!(message.contains("\"app-source\""), "{message}");
    eventually("the stuck Pod to be deleted", WAIT, || async {
        pod_names(&client, &ns, "app")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_missing_service_account_fails_the_build_without_a_pod() {
    let Some((cp, _)) = setup() else { return };
    let client = cp.client().await;
    let ns = cp.namespace("nosa").await;
    apply(cp, &ns, &manifest("app", "  serviceAccountName: builder\n"));
    let (reason, message) = wait_for_failure(&client, &ns, "app").await;
    assert_eq!(reason, "ServiceAccountNotFound");
    assert!(message.contains("\"builder\""), "{message}");
    assert!(pod_names(&client, &ns, "app").await.is_empty());
}

/// The value of the first sample line starting with `series` (name and labels).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test]
async fn metrics_count_builds_and_every_reconcile_log_line_names_its_source_build() {
    let Some((cp, operator)) = setup() else {
        return;
    };
    let client = cp.client().await;
    let ns = cp.namespace("metrics").await;
    for name in ["m1", "m2"] {
        apply(cp, &ns, &manifest(name, ""));
        let pod = format!("{name}-build-1");
        wait_for_pod(&client, &ns, &pod).await;
        mark_finished(&client, &ns, &pod, 0, DIGEST).await;
        wait_for_build(&client, &ns, name, &pod, Phase::Succeeded).await;
    }
    apply(cp, &ns, &manifest("m3", ""));
    wait_for_pod(&client, &ns, "m3-build-1").await;
    mark_finished(&client, &ns, "m3-build-1", 1, ASSEMBLE_FAILED).await;
    wait_for_build(&client, &ns, "m3", "m3-build-1", Phase::Failed).await;

    let (_, metrics) = operator.http_get("/metrics").expect("/metrics answers");
    // Other tests share this operator: counts are at least ours.
    let at_least = |series: &str, n: f64| {
        let value = sample(&metrics, series).unwrap_or_else(|| panic!("no {series}:\n{metrics}"));
        assert!(value >= n, "{series} = {value} < {n}");
    };
    at_least("sourcebuild_builds_started_total", 3.0);
    at_least(
        r#"sourcebuild_builds_finished_total{result="Succeeded",reason="Succeeded"}"#,
        2.0,
    );
    at_least(
        r#"sourcebuild_builds_finished_total{result="Failed",reason="AssembleFailed"}"#,
        1.0,
    );
    at_least(
        r#"sourcebuild_build_duration_seconds_count{result="Succeeded"}"#,
        2.0,
    );
    assert!(
        sample(&metrics, "sourcebuild_reconciles_in_flight").is_some(),
        "{metrics}"
    );
    assert!(
        metrics.contains("# HELP sourcebuild_queue_depth SourceBuilds waiting for a reconcile"),
        "{metrics}"
    );
    // Every watch event our builds caused was picked up: the queue drains (other tests share
    // the operator, so it is asked until it is seen empty).
    eventually("the queue to drain", WAIT, || async {
        let (_, metrics) = operator.http_get("/metrics")?;
        (sample(&metrics, "sourcebuild_queue_depth")? == 0.0).then_some(())
    })
    .await;
    // sourcebuild_api_request_failures_total has no series until a request fails (unit-tested
    // in src/metrics.rs).

    // Every line the reconciler logs names the SourceBuild; ours are there.
    let log = operator.log();
    let mut ours = 0;
    for line in log.lines().filter(|l| l.starts_with('{')) {
        let entry: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let target = entry["target"].as_str().unwrap_or_default();
        // The reconciler: its steps, and the requests it makes.
        let reconciler = [
            "sourcebuild::controller::reconcile",
            "sourcebuild::controller::execute",
        ];
        if !reconciler.iter().any(|r| target.starts_with(r)) {
            continue;
        }
        let span = &entry["span"];
        assert!(
            span["namespace"].is_string() && span["sourcebuild"].is_string(),
            "a reconcile line without namespace and name: {line}"
        );
        if span["namespace"] == ns.as_str() && entry["message"] == "created build Pod" {
            ours += 1;
        }
    }
    assert_eq!(
        ours, 3,
        "our three Pod creations, each with namespace and name"
    );
}

#[tokio::test]
async fn out_of_range_history_retention_and_retry_values_are_refused() {
    let Some((cp, _)) = setup() else { return };
    let ns = cp.namespace("limits").await;
    let refused = [
        ("spec.historyLimit", "  historyLimit: 101\n"),
        (
            "spec.retention.failedLimit",
            "  retention: {failedLimit: -1}\n",
        ),
        (
            "spec.retention.ttlAfterFinished",
            "  retention: {ttlAfterFinished: -5m}\n",
        ),
        ("spec.retry.limit", "  retry: {limit: 11}\n"),
        ("spec.retry.backoff", "  retry: {backoff: 2h}\n"),
        ("spec.retry.backoff", "  retry: {backoff: 0s}\n"),
    ];
    for (field, extra) in refused {
        let stderr = apply_refused(cp, &ns, &manifest("limits", extra));
        assert!(stderr.contains(field), "{field} not named: {stderr}");
    }
}

/// The revision a build Pod's prepare step was told to check out.
fn requested_revision(pod: &k8s_openapi::api::core::v1::Pod) -> Option<String> {
    let env = pod.spec.as_ref()?.init_containers.as_ref()?[0]
        .env
        .as_ref()?;
    let request = env
        .iter()
        .find(|e| e.name == sourcebuild::contract::REQUEST_ENV)?
        .value
        .as_ref()?;
    let request: sourcebuild::contract::PrepareRequest = serde_json::from_str(request).ok()?;
    request.source.git?.revision
}

/// Plays the kubelet: prepare checked out `commit`, Kaniko pushed.
async fn mark_built(client: &Client, ns: &str, pod: &str, commit: &str) {
    let prepared = json!({"prepared": {"revision": commit,
        "dockerfileSha256": format!("sha256:{}", "d".repeat(64)),
        "builderImage": "quay.io/sclorg/python-312-c9s:c9s"}})
    .to_string();
    let status = json!({"phase": "Succeeded",
        "initContainerStatuses": [terminated("prepare", 0, &prepared), terminated("build", 0, DIGEST)],
        "containerStatuses": [terminated("publish", 0, &published(DIGEST))]});
    patch_pod_status(client, ns, pod, status).await;
}

/// A poll interval (the 1m minimum) and the reconcile after it.
const POLL_WAIT: Duration = Duration::from_secs(150);

#[tokio::test]
async fn a_polled_branch_that_moves_builds_once_per_move_pinned_to_the_commit_seen() {
    let Some((cp, _)) = setup() else { return };
    let client = cp.client().await;
    let ns = cp.namespace("poll").await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = support::make_repo(tmp.path());
    let daemon = support::GitDaemon::start(&repo.base);
    let url = daemon.url("repo.git");
    let text = format!(
        "apiVersion: sourcebuild.dev/v1alpha1\nkind: SourceBuild\nmetadata:\n  name: polled\nspec:\n  \
         source:\n    git: {{url: '{url}', revision: main, pollInterval: 1m}}\n  \
         output: {{image: registry.example.com/team/polled:1.0}}\n"
    );
    apply(cp, &ns, &text);
    let api: Api<SourceBuild> = Api::namespaced(client.clone(), &ns);
    let source_of = |sb: &SourceBuild| sb.status.as_ref().and_then(|s| s.source.clone());

    // The first build is the spec's own; the first look saw main at c3.
    let first = wait_for_pod(&client, &ns, "polled-build-1").await;
    assert_eq!(requested_revision(&first).as_deref(), Some("main"));
    let sb = eventually("the first look at the remote", WAIT, || async {
        let sb = api.get("polled").await.ok()?;
        source_of(&sb)?.latest_revision.is_some().then_some(sb)
    })
    .await;
    let source = source_of(&sb).unwrap();
    assert_eq!(source.latest_revision.as_deref(), Some(repo.c3.as_str()));
    assert_eq!(sb.status.unwrap().trigger, Some(Trigger::ConfigChange));
    mark_built(&client, &ns, "polled-build-1", &repo.c3).await;
    wait_for_build(&client, &ns, "polled", "polled-build-1", Phase::Succeeded).await;

    // The branch moves: one build, trigger SourceChange, of exactly the commit seen.
    let work = repo.base.join("work");
    std::fs::write(work.join("a.txt"), "four\n").unwrap();
    support::git(&work, &["commit", "-q", "-am", "four"]);
    let c4 = support::git(&work, &["rev-parse", "HEAD"]);
    support::git(&work, &["push", "-q", "../repo.git", "main"]);
    let pod = eventually("a build of the moved branch", POLL_WAIT, || async {
        Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), &ns)
            .get_opt("polled-build-1-2")
            .await
            .ok()
            .flatten()
    })
    .await;
    assert_eq!(requested_revision(&pod).as_deref(), Some(c4.as_str()));
    let sb = wait_for_build(&client, &ns, "polled", "polled-build-1-2", Phase::Running).await;
    let status = sb.status.clone().unwrap();
    assert_eq!(
        (status.trigger, status.build),
        (Some(Trigger::SourceChange), Some(2))
    );
    let source = source_of(&sb).unwrap();
    assert_eq!(source.latest_revision.as_deref(), Some(c4.as_str()));
    assert_eq!(source.built_revision.as_deref(), Some(c4.as_str()));
    mark_built(&client, &ns, "polled-build-1-2", &c4).await;
    let sb = wait_for_build(&client, &ns, "polled", "polled-build-1-2", Phase::Succeeded).await;
    let status = sb.status.clone().unwrap();
    assert_eq!(status.source_revision.as_deref(), Some(c4.as_str()));
    assert_eq!(
        (
            status.history[0].trigger,
            status.history[0].source_revision.as_deref()
        ),
        (Some(Trigger::SourceChange), Some(c4.as_str()))
    );
    let reasons = event_reasons(&client, &ns, "polled").await;
    assert!(
        reasons.contains(&"SourceChanged".to_string()),
        "{reasons:?}"
    );

    // The next look sees the same head: nothing more is built.
    let checked = source_of(&sb).unwrap().last_checked.unwrap();
    let sb = eventually("the next look at the remote", POLL_WAIT, || async {
        let sb = api.get("polled").await.ok()?;
        (source_of(&sb)?.last_checked? > checked).then_some(sb)
    })
    .await;
    assert_eq!(
        source_of(&sb).unwrap().latest_revision.as_deref(),
        Some(c4.as_str())
    );
    assert_eq!(
        pod_names(&client, &ns, "polled").await,
        ["polled-build-1", "polled-build-1-2"]
    );

    // The remote goes away: the look fails, says so, and the last build stands.
    drop(daemon);
    let sb = eventually("a failed look at the remote", POLL_WAIT, || async {
        let sb = api.get("polled").await.ok()?;
        let reachable = sb.status.as_ref()?.condition("SourceReachable")?.clone();
        (reachable.status == "False").then_some((sb, reachable))
    })
    .await;
    let (sb, reachable) = sb;
    assert_eq!(reachable.reason, "PollFailed");
    assert!(reachable.message.contains(&url), "{reachable:?}");
    let status = sb.status.unwrap();
    assert_eq!(status.phase, Some(Phase::Succeeded));
    assert_eq!(status.condition("Ready").unwrap().status, "True");
    eventually("the SourcePollFailed Event", WAIT, || async {
        let r = event_reasons(&client, &ns, "polled").await;
        r.contains(&"SourcePollFailed".to_string()).then_some(())
    })
    .await;
    // Still the two builds: one for the spec, one for the move.
    assert_eq!(
        pod_names(&client, &ns, "polled").await,
        ["polled-build-1", "polled-build-1-2"]
    );
    assert_eq!(status.history.len(), 2);
}

#[tokio::test]
async fn poll_interval_below_a_minute_with_a_secret_or_on_a_commit_is_refused() {
    let Some((cp, _)) = setup() else { return };
    let ns = cp.namespace("pollrules").await;
    let git = |extra: &str| {
        format!(
            "apiVersion: sourcebuild.dev/v1alpha1\nkind: SourceBuild\nmetadata:\n  name: p\nspec:\n  \
             source:\n    git: {{url: 'https://example.com/acme/app.git', {extra}}}\n  \
             output: {{image: registry.example.com/team/p:1.0}}\n"
        )
    };
    let refused = [
        ("at least 1m", git("pollInterval: 30s")),
        (
            "cannot be combined with secretRef",
            git("pollInterval: 5m, secretRef: {name: git-creds}"),
        ),
        (
            "a commit never moves",
            git(&format!("pollInterval: 5m, revision: '{}'", "a".repeat(40))),
        ),
    ];
    for (why, manifest) in refused {
        let stderr = apply_refused(cp, &ns, &manifest);
        assert!(
            stderr.contains("spec.source.git.pollInterval") && stderr.contains(why),
            "{why}: {stderr}"
        );
    }
    // The minimum itself is fine (a dry run: nothing is polled).
    let accepted = git("pollInterval: 1m").replace("https://example.com", "git://127.0.0.1:9");
    kubectl(
        cp,
        &["apply", "--dry-run=server", "-n", &ns, "-f", "-"],
        Some(&accepted),
    );
}
