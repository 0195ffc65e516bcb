//! What GitOps tools read of a SourceBuild, asked of their own code at every state of real
//! SourceBuilds on the test control plane (the operator running as the chart's ServiceAccount,
//! the tests playing the kubelet): kstatus's `Compute` (`tools/kstatus`, the library behind
//! Flux's health checks and cli-utils' waits) and the Argo CD health check in
//! `docs/argocd/resource_customizations/` (`tools/argocd-health`, Argo CD's Lua set-up).
//!
//! kstatus must say InProgress while a build is on its way or a retry is due, Current once the
//! current spec is built (or suspended: nothing is asked), Failed once it failed for good, and
//! never Current for a generation the operator has not observed.

mod support;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use sourcebuild::api::Phase;
use support::flux::Flux;
use support::sourcebuilds::*;
use support::tools::tool;
use support::{ControlPlane, eventually, git, git_http_server, repo_root};

fn setup() -> Option<&'static ControlPlane> {
    shared_operator("gitops", &[]).map(|(cp, _)| cp)
}

/// The health check as it would be offered to Argo CD.
fn health_lua() -> PathBuf {
    repo_root().join("docs/argocd/resource_customizations/sourcebuild.dev/SourceBuild/health.lua")
}

/// What both tools say of one object.
#[derive(Debug)]
struct Verdict {
    /// kstatus: InProgress, Current, Failed, Terminating or Unknown.
    kstatus: String,
    /// kstatus's message.
    kstatus_message: String,
    /// Argo CD: Healthy, Progressing, Degraded, Suspended, ...
    argo: String,
    /// Argo CD's message: ours.
    argo_message: String,
}

/// Runs `command` with `input` on stdin; its one line of JSON output.
fn ask(mut command: Command, input: &Value) -> Value {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Both tools' verdicts on `object`, as the API server returned it.
fn judge(object: &Value) -> Verdict {
    let kstatus = ask(Command::new(tool("kstatus")), object);
    let mut argo = Command::new(tool("argocd-health"));
    argo.arg("eval").arg(health_lua());
    let argo = ask(argo, object);
    let text = |v: &Value, key: &str| v[key].as_str().unwrap_or_default().to_string();
    Verdict {
        kstatus: text(&kstatus, "status"),
        kstatus_message: text(&kstatus, "message"),
        argo: text(&argo, "status"),
        argo_message: text(&argo, "message"),
    }
}

/// The SourceBuild exactly as the API server serves it (`kubectl get -o json`).
fn stored(cp: &ControlPlane, ns: &str, name: &str) -> Value {
    let out = kubectl_output(cp, &["get", "sb", name, "-n", ns, "-o", "json"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `kubectl VERB -o json` of `manifest`: the object as the API server answered the write, before
/// the operator can have acted on it.
fn written(cp: &ControlPlane, ns: &str, verb: &str, manifest: &str) -> Value {
    let out = kubectl_output(
        cp,
        &[verb, "-n", ns, "-o", "json", "-f", "-"],
        Some(manifest),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Waits until the stored SourceBuild's status satisfies `ready`, then judges it.
async fn judge_when(
    cp: &ControlPlane,
    ns: &str,
    name: &str,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) -> (Value, Verdict) {
    let object = eventually(what, WAIT, || async {
        let object = stored(cp, ns, name);
        ready(&object["status"]).then_some(object)
    })
    .await;
    let verdict = judge(&object);
    (object, verdict)
}

/// A status check for [`judge_when`]: the status is in `phase`.
fn phase_is(phase: Phase) -> impl Fn(&Value) -> bool {
    move |status| status["phase"] == json!(phase.to_string())
}

#[track_caller]
fn expect(verdict: &Verdict, kstatus: &str, argo: &str, argo_message: &str) {
    assert_eq!(
        (verdict.kstatus.as_str(), verdict.argo.as_str()),
        (kstatus, argo),
        "{verdict:?}"
    );
    assert!(
        verdict.argo_message.contains(argo_message),
        "Argo CD's message lacks {argo_message:?}: {verdict:?}"
    );
}

#[tokio::test]
async fn a_build_is_in_progress_until_its_spec_is_built_and_never_current_when_stale() {
    let Some(cp) = setup() else { return };
    let client = cp.client().await;
    let ns = cp.namespace("gitops-built").await;

    // New: the create's answer, before the operator has seen it.
    let created = written(cp, &ns, "create", &manifest("app", ""));
    // The CRD's default: without it there would be no status, which kstatus reads as Current.
    assert_eq!(created["status"], json!({"observedGeneration": 0}));
    let new = judge(&created);
    expect(&new, "InProgress", "Progressing", "observe generation 1");

    let (_, building) = judge_when(cp, &ns, "app", "Running", phase_is(Phase::Running)).await;
    expect(
        &building,
        "InProgress",
        "Progressing",
        "Building: build Pod app-build-1",
    );

    // Pending on an image pull.
    let stuck = json!({"phase": "Pending",
        "initContainerStatuses": [terminated("prepare", 0, &prepared()),
            {"name": "build", "image": "kaniko", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff",
            "message": "Back-off pulling image \"kaniko\""}}}]});
    patch_pod_status(&client, &ns, "app-build-1", stuck).await;
    let (_, pending) = judge_when(cp, &ns, "app", "Pending", phase_is(Phase::Pending)).await;
    expect(&pending, "InProgress", "Progressing", "Pending: ");
    assert!(
        pending.argo_message.contains("ImagePullBackOff"),
        "{pending:?}"
    );

    mark_finished(&client, &ns, "app-build-1", 0, DIGEST).await;
    let (_, built) = judge_when(cp, &ns, "app", "Succeeded", phase_is(Phase::Succeeded)).await;
    expect(
        &built,
        "Current",
        "Healthy",
        &format!("pushed registry.example.com/team/app@{DIGEST}"),
    );

    // Superseded by a spec change: stale until the operator observes it, then building again.
    let changed = manifest("app", "  env: [{name: MODE, value: two}]\n");
    let applied = written(cp, &ns, "apply", &changed);
    assert_eq!(applied["metadata"]["generation"], json!(2));
    // The apply's answer is the object as written, before the operator could react.
    assert_eq!(applied["status"]["observedGeneration"], json!(1));
    let stale = judge(&applied);
    expect(&stale, "InProgress", "Progressing", "observe generation 2");
    let said = &stale.kstatus_message;
    assert!(said.contains("generation is 2"), "{stale:?}");
    let (_, rebuilding) = judge_when(cp, &ns, "app", "generation 2 Running", |s| {
        s["observedGeneration"] == json!(2) && phase_is(Phase::Running)(s)
    })
    .await;
    expect(&rebuilding, "InProgress", "Progressing", "app-build-2");

    // A stale generation is never Current, whatever the status says.
    let mut stale = stored(cp, &ns, "app");
    stale["metadata"]["generation"] = json!(3);
    stale["status"]["phase"] = json!("Succeeded");
    let stale = judge(&stale);
    expect(&stale, "InProgress", "Progressing", "observe generation 3");

    // Rebuilt on request, and built.
    kubectl(
        cp,
        &[
            "annotate",
            "sb",
            "app",
            "-n",
            &ns,
            "sourcebuild.dev/rebuild=1",
        ],
        None,
    );
    let (_, rebuild) = judge_when(cp, &ns, "app", "the rebuild Running", |s| {
        s["podName"] == json!("app-build-2-2") && phase_is(Phase::Running)(s)
    })
    .await;
    expect(&rebuild, "InProgress", "Progressing", "app-build-2-2");
    mark_finished(&client, &ns, "app-build-2-2", 0, DIGEST).await;
    let (_, rebuilt) = judge_when(cp, &ns, "app", "the rebuild Succeeded", |s| {
        s["podName"] == json!("app-build-2-2") && phase_is(Phase::Succeeded)(s)
    })
    .await;
    expect(&rebuilt, "Current", "Healthy", "pushed");
}

#[tokio::test]
async fn a_failure_for_good_is_failed_and_one_with_a_retry_due_is_in_progress() {
    let Some(cp) = setup() else { return };
    let client = cp.client().await;
    let ns = cp.namespace("gitops-failed").await;

    apply(cp, &ns, &manifest("broken", ""));
    wait_for_pod(&client, &ns, "broken-build-1").await;
    let log = "ERROR: No matching distribution found for flask==99\n\
               error building image: error building stage: failed to execute command: waiting for process to exit: exit status 3";
    mark_finished(&client, &ns, "broken-build-1", 1, log).await;
    let (object, failed) = judge_when(cp, &ns, "broken", "Failed", phase_is(Phase::Failed)).await;
    expect(&failed, "Failed", "Degraded", "AssembleFailed: ");
    let stalled = &object["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Stalled")
        .unwrap()
        .clone();
    assert_eq!(failed.kstatus_message, stalled["message"].as_str().unwrap());
    // kubectl's default columns name the reason.
    let table = kubectl_output(cp, &["get", "sb", "broken", "-n", &ns], None);
    let table = String::from_utf8(table.stdout).unwrap();
    let header = table.lines().next().unwrap();
    assert!(
        header.contains("REASON") && table.contains("AssembleFailed"),
        "{table}"
    );

    // A transient failure whose retry is an hour away: in progress all that time.
    apply(
        cp,
        &ns,
        &manifest("flaky", "  retry: {limit: 1, backoff: 1h}\n"),
    );
    wait_for_pod(&client, &ns, "flaky-build-1").await;
    let evicted = json!({"phase": "Failed", "reason": "Evicted",
                         "message": "The node was low on resource: ephemeral-storage."});
    patch_pod_status(&client, &ns, "flaky-build-1", evicted).await;
    let (_, retrying) = judge_when(cp, &ns, "flaky", "the retry scheduled", |s| {
        phase_is(Phase::Failed)(s) && s["nextAttemptTime"].is_string()
    })
    .await;
    expect(&retrying, "InProgress", "Progressing", "RetryScheduled: ");
    assert!(
        retrying.argo_message.contains("attempt 2 of 2"),
        "{retrying:?}"
    );
}

#[tokio::test]
async fn a_suspended_build_is_current_for_kstatus_and_suspended_for_argo_cd() {
    let Some(cp) = setup() else { return };
    let client = cp.client().await;
    let ns = cp.namespace("gitops-suspended").await;

    apply(cp, &ns, &manifest("held", ""));
    wait_for_pod(&client, &ns, "held-build-1").await;
    // Suspending stops the running build: the spec asks for nothing more.
    apply(cp, &ns, &manifest("held", "  suspend: true\n"));
    let (_, cancelled) = judge_when(cp, &ns, "held", "Cancelled", |s| {
        s["observedGeneration"] == json!(2) && phase_is(Phase::Cancelled)(s)
    })
    .await;
    expect(
        &cancelled,
        "Current",
        "Suspended",
        "build Pod held-build-1 was stopped",
    );

    // Suspended from the start: no build ever runs.
    apply(cp, &ns, &manifest("idle", "  suspend: true\n"));
    let (_, idle) = judge_when(cp, &ns, "idle", "Cancelled", phase_is(Phase::Cancelled)).await;
    expect(&idle, "Current", "Suspended", "no build runs");
}

/// The health check's own test cases, in Argo CD's `health_test.yaml` layout, run the way Argo
/// CD's `TestLuaHealthScript` runs those of its built-in checks.
#[test]
fn the_argo_cd_health_check_passes_its_own_test_cases() {
    let out = Command::new(tool("argocd-health"))
        .arg("test")
        .arg(repo_root().join("docs/argocd/resource_customizations"))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each state the issue names, and one case per Argo CD health status.
    for status in ["Healthy", "Progressing", "Degraded", "Suspended"] {
        assert!(
            report.contains(&format!(": {status}: ")),
            "{status}:\n{report}"
        );
    }
    assert!(report.contains("10 passed, 0 failed"), "{report}");
}

/// The `argocd-cm` snippet in docs/gitops.md is the tested script, word for word.
#[test]
fn the_documented_argocd_cm_snippet_is_the_tested_script() {
    let docs = std::fs::read_to_string(repo_root().join("docs/gitops.md")).unwrap();
    let key = "resource.customizations.health.sourcebuild.dev_SourceBuild: |\n";
    let start = docs.find(key).expect("the argocd-cm snippet") + key.len();
    let snippet: String = docs[start..]
        .lines()
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    let script = std::fs::read_to_string(health_lua()).unwrap();
    assert_eq!(snippet.trim_end(), script.trim_end());
}

/// A Flux `Kustomization`'s `Ready` condition: (status, reason, message).
fn kustomization_ready(
    cp: &ControlPlane,
    ns: &str,
    name: &str,
) -> Option<(String, String, String)> {
    let out = kubectl_output(
        cp,
        &["get", "kustomization", name, "-n", ns, "-o", "json"],
        None,
    );
    let object: Value = serde_json::from_slice(&out.stdout).ok()?;
    let ready = object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?
        .clone();
    let text = |key: &str| ready[key].as_str().unwrap_or_default().to_string();
    Some((text("status"), text("reason"), text("message")))
}

/// Flux end to end: source-controller fetches a repository from the tests' git server holding
/// three SourceBuilds; kustomize-controller applies each with `wait: true`. The Kustomization of
/// a build becomes Ready once the build succeeds, another fails with kstatus's Failed as soon as
/// its build fails for good, long before its timeout, and that of a suspended one is Ready.
#[tokio::test]
async fn flux_is_ready_once_built_or_suspended_and_fails_as_soon_as_a_build_fails() {
    let Some(cp) = setup() else { return };
    let client = cp.client().await;
    let ns = cp.namespace("gitops-flux").await;
    let logs = tempfile::Builder::new()
        .prefix("sourcebuild-flux-")
        .tempdir()
        .unwrap()
        .keep();
    eprintln!("flux logs: {}", logs.display());
    let flux = Flux::start(cp, &logs);

    // The repository: one directory per SourceBuild, as a GitOps repository would hold them.
    let root = tempfile::tempdir().unwrap();
    let work = root.path().join("work");
    let builds = [
        ("ok", "web", ""),
        ("broken", "bad", ""),
        ("held", "held", "  suspend: true\n"),
    ];
    for (dir, name, extra) in builds {
        let path = work.join("builds").join(dir);
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join("sourcebuild.yaml"), manifest(name, extra)).unwrap();
    }
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "three builds"]);
    git(root.path(), &["clone", "-q", "--bare", "work", "apps.git"]);
    let server = git_http_server(root.path().to_path_buf(), None);

    let timeout = "10m";
    let kustomization = |name: &str, dir: &str| {
        format!(
            "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: {name}\n\
             spec:\n  interval: 10m\n  retryInterval: 10s\n  path: ./builds/{dir}\n  prune: true\n  \
             wait: true\n  timeout: {timeout}\n  targetNamespace: {ns}\n  \
             sourceRef: {{kind: GitRepository, name: apps}}\n"
        )
    };
    let repository = format!(
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: apps\n\
         spec:\n  interval: 10m\n  url: {}\n  ref: {{branch: main}}\n",
        server.url("/apps.git")
    );
    apply(cp, &ns, &repository);
    apply(cp, &ns, &kustomization("ok", "ok"));
    apply(cp, &ns, &kustomization("broken", "broken"));
    apply(cp, &ns, &kustomization("held", "held"));

    // Source-controller fetches, kustomize-controller applies, the operator creates the Pod.
    let wait = std::time::Duration::from_secs(120);
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(client.clone(), &ns);
    let applied = |pod: &'static str| {
        let pods = pods.clone();
        async move {
            let what = format!("Flux to apply the SourceBuild whose Pod is {pod}");
            eventually(&what, wait, || async {
                pods.get_opt(pod).await.ok().flatten()
            })
            .await
        }
    };
    applied("web-build-1").await;
    // Building: the Kustomization waits.
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let building = kustomization_ready(cp, &ns, "ok");
    assert!(
        building
            .as_ref()
            .is_none_or(|(status, _, _)| status != "True"),
        "Ready while the build runs: {building:?}"
    );
    mark_finished(&client, &ns, "web-build-1", 0, DIGEST).await;
    eventually(
        "the Kustomization of the built SourceBuild to be Ready",
        wait,
        || async { kustomization_ready(cp, &ns, "ok").filter(|(status, _, _)| status == "True") },
    )
    .await;

    applied("bad-build-1").await;
    let log = "ERROR: No matching distribution found for flask==99\n\
               error building image: error building stage: failed to execute command: waiting for process to exit: exit status 3";
    mark_finished(&client, &ns, "bad-build-1", 1, log).await;
    let failed_at = std::time::Instant::now();
    let (_, reason, message) = eventually(
        "the Kustomization of the failed SourceBuild to fail",
        wait,
        || async {
            kustomization_ready(cp, &ns, "broken")
                .filter(|(status, _, m)| status == "False" && m.contains("SourceBuild"))
        },
    )
    .await;
    // Flux names the object and kstatus's verdict, long before the Kustomization's timeout
    // (it read Failed from Stalled; InProgress would have waited the whole 10m).
    assert_eq!(reason, "HealthCheckFailed", "{message}");
    let named =
        format!("failed early due to stalled resources: [SourceBuild/{ns}/bad status: 'Failed']");
    assert!(message.contains(&named), "{message}");
    assert!(failed_at.elapsed() < wait, "{:?}", failed_at.elapsed());
    // The reason itself is on the object Flux names (Flux's message carries only the verdict).
    let bad = get(&client, &ns, "bad").await.status.unwrap();
    let stalled = bad.condition("Stalled").unwrap();
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "AssembleFailed")
    );

    // A suspended SourceBuild asks for nothing: its Kustomization is done, not kept waiting.
    eventually(
        "the Kustomization of the suspended SourceBuild to be Ready",
        wait,
        || async { kustomization_ready(cp, &ns, "held").filter(|(status, _, _)| status == "True") },
    )
    .await;
    let held = get(&client, &ns, "held").await.status.unwrap();
    assert_eq!(held.phase, Some(Phase::Cancelled));
    drop(flux);
}
