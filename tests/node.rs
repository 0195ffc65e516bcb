//! The operator on a real node (`scripts/cluster.sh`: kubelet, containerd, runc, the CNI bridge,
//! kube-proxy), end to end: the operator runs as the chart's Deployment, its build Pods run on
//! the kubelet (`prepare` from the operator image, the Kaniko image building and pushing to the
//! cluster's registry), and what it writes in status is checked against what the node did.
//!
//! Runs inside the cluster: `scripts/test.sh node`, or by hand
//! `scripts/cluster.sh up && scripts/cluster.sh exec cargo test --test node`. Not part of a
//! plain `cargo test` (`test = false` in Cargo.toml): outside the cluster every test would fail
//! on the missing `SOURCEBUILD_CLUSTER_*` variables.
//!
//! The tests take turns (`serial`): a 2-core node builds one app at a time in reasonable time,
//! and the fault tests stop the kubelet and containerd that every build needs.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use sourcebuild::api::{Phase, SourceBuild, SourceBuildStatus};
use support::app::{ASSEMBLE_HOOK, FAILING_ASSEMBLE_HOOK, tar_gz, write, write_app};
use support::eventually;
use support::http::{HttpServer, Response, git, git_http_server};
use support::node::{
    Node, OPERATOR_DEPLOYMENT, OPERATOR_NAMESPACE, OPERATOR_RELEASE, kaniko_running, node,
    pod_phase,
};

/// A real build takes well under a minute here; this leaves room for a slow machine.
const BUILD_WAIT: Duration = Duration::from_secs(10 * 60);
const WAIT: Duration = Duration::from_secs(120);

/// One test at a time (an async lock: held across awaits, each test has its own runtime).
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// A SourceBuild manifest; `spec` is the indented body under `spec:`.
fn source_build(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: sourcebuild.dev/v1alpha1\nkind: SourceBuild\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}

/// Waits until the SourceBuild's status describes `generation` and has ended.
async fn finished(client: &Client, ns: &str, name: &str, generation: i64) -> SourceBuild {
    let api: Api<SourceBuild> = Api::namespaced(client.clone(), ns);
    eventually(
        &format!("SourceBuild {ns}/{name} generation {generation} to end"),
        BUILD_WAIT,
        || async {
            let sb = api.get(name).await.ok()?;
            let status = sb.status.as_ref()?;
            (status.observed_generation == Some(generation)
                && status.phase.is_some_and(Phase::is_final))
            .then_some(sb)
        },
    )
    .await
}

/// The status of a build that must have failed with `reason`, shown whole when it did not.
fn expect_failure(sb: &SourceBuild, reason: &str) -> SourceBuildStatus {
    let status = sb.status.clone().unwrap();
    let condition = status.condition("Succeeded").cloned();
    assert_eq!(
        (status.phase, condition.as_ref().map(|c| c.reason.as_str())),
        (Some(Phase::Failed), Some(reason)),
        "{status:#?}"
    );
    status
}

fn expect_success(sb: &SourceBuild, node: &Node, ns: &str) -> SourceBuildStatus {
    let status = sb.status.clone().unwrap();
    let pod = status.pod_name.clone().unwrap_or_default();
    assert_eq!(
        status.phase,
        Some(Phase::Succeeded),
        "{status:#?}\n{}",
        node.build_log(ns, &pod)
    );
    status
}

fn message(status: &SourceBuildStatus) -> String {
    status
        .condition("Succeeded")
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// A git repository of the test app served by `git http-backend` on the bridge: `c1` (tagged
/// `v1.0`, GREETING "git v1") and `c2` on `main` (GREETING "git main").
struct AppRepo {
    _dir: tempfile::TempDir,
    server: HttpServer,
    c1: String,
    c2: String,
}

impl AppRepo {
    fn url(&self) -> String {
        self.server.url("/app.git")
    }
}

fn app_repo(auth: Option<(&str, &str)>, assemble_hook: &str) -> AppRepo {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    write_app(&work, Some(assemble_hook));
    let set_greeting = |greeting: &str| {
        std::fs::write(
            work.join(".s2i/environment"),
            format!("APP_FILE=service.py\nGREETING={greeting}\n"),
        )
        .unwrap();
    };
    set_greeting("git v1");
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "v1"]);
    let c1 = git(&work, &["rev-parse", "HEAD"]);
    git(&work, &["tag", "-a", "v1.0", "-m", "release 1.0"]);
    set_greeting("git main");
    git(&work, &["commit", "-q", "-am", "main"]);
    let c2 = git(&work, &["rev-parse", "HEAD"]);
    git(dir.path(), &["clone", "-q", "--bare", "work", "app.git"]);
    let server = git_http_server(dir.path().to_path_buf(), auth);
    AppRepo {
        _dir: dir,
        server,
        c1,
        c2,
    }
}

/// The test app (with `assemble_hook`) as a .tar.gz, and its sha256 in hex.
fn app_archive(assemble_hook: &str, greeting: &str) -> (Vec<u8>, String) {
    let dir = tempfile::tempdir().unwrap();
    write_app(dir.path(), Some(assemble_hook));
    std::fs::write(
        dir.path().join(".s2i/environment"),
        format!("APP_FILE=service.py\nGREETING={greeting}\n"),
    )
    .unwrap();
    tar_gz(dir.path())
}

fn serve_bytes(bytes: Vec<u8>) -> HttpServer {
    HttpServer::start(move |_| Response::ok(bytes.clone()))
}

/// An archive source served from the bridge, as spec lines.
fn archive_source(server: &HttpServer, sum: &str) -> String {
    format!(
        "  source:\n    archive:\n      url: {}\n      sha256: \"{sum}\"\n",
        server.url("/app.tar.gz")
    )
}

/// Runs `image` as a Pod on the node (the app listens on 0.0.0.0:8080) and returns its answer
/// to `GET /`, fetched from the Pod's IP; the Pod is deleted afterwards.
async fn answer_of_image(
    node: &Node,
    client: &Client,
    ns: &str,
    name: &str,
    image: &str,
) -> String {
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "automountServiceAccountToken": false,
            "containers": [{
                "name": "app",
                "image": image,
                "env": [{"name": "HOST", "value": "0.0.0.0"}, {"name": "PORT", "value": "8080"}],
                "ports": [{"containerPort": 8080}],
                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}
            }]
        }
    }))
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let running = node
        .wait_pod(client, ns, name, "ready", WAIT, |p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .await;
    let ip = running.status.unwrap().pod_ip.unwrap();
    let answer = tokio::task::block_in_place(|| http_get(&format!("{ip}:8080"), "/"));
    let _ = pods.delete(name, &DeleteParams::default()).await;
    answer
}

/// The body of `GET path` from `addr`, plain HTTP/1.0.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    body.to_string()
}

/// The chart release upgraded with `sets` (on top of its values) until dropped, when it is
/// rolled back to the revision before: a failing test leaves the operator as it found it.
struct ChartValues(&'static Node);

impl ChartValues {
    fn set(node: &'static Node, sets: &[&str]) -> ChartValues {
        let mut args = vec![
            "upgrade".to_string(),
            OPERATOR_RELEASE.to_string(),
            support::repo_root()
                .join("charts/sourcebuild-operator")
                .display()
                .to_string(),
            "-n".into(),
            OPERATOR_NAMESPACE.into(),
            "--reuse-values".into(),
            "--wait".into(),
            "--timeout".into(),
            "3m".into(),
        ];
        for set in sets {
            args.extend(["--set".to_string(), set.to_string()]);
        }
        let out = node.helm().args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "helm {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        ChartValues(node)
    }
}

impl Drop for ChartValues {
    fn drop(&mut self) {
        let out = self
            .0
            .helm()
            .args([
                "rollback",
                OPERATOR_RELEASE,
                "-n",
                OPERATOR_NAMESPACE,
                "--wait",
                "--timeout",
                "3m",
            ])
            .output();
        if !out.as_ref().is_ok_and(|o| o.status.success()) {
            eprintln!("helm rollback failed: {out:?}");
        }
    }
}

/// Fields of `/proc/<pid>/status` (`Uid`, `CapEff`, `Seccomp`, ...), first value each.
fn proc_status(pid: u32) -> std::collections::BTreeMap<String, String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((
                k.to_string(),
                v.split_whitespace().next().unwrap_or("").to_string(),
            ))
        })
        .collect()
}

// --- 1. the operator as the chart's Deployment ---------------------------------------------

/// The chart's Deployment runs the operator image on the node, ready through its probes, with
/// its ServiceAccount's token; with two replicas one leads and the other takes over when the
/// leader's Pod is deleted, and builds go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_runs_as_the_charts_deployment_and_a_standby_takes_over() {
    let node = node();
    let _serial = serial().await;
    let client = node.client().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    let pods: Api<Pod> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    let leases: Api<Lease> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    let selector = ListParams::default().labels("app.kubernetes.io/name=sourcebuild-operator");

    let deployment = deployments.get(OPERATOR_DEPLOYMENT).await.unwrap();
    let status = deployment.status.unwrap();
    assert_eq!(status.available_replicas, Some(1), "{status:?}");
    let operator_pods = pods.list(&selector).await.unwrap().items;
    assert_eq!(operator_pods.len(), 1);
    let pod = &operator_pods[0];
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.node_name.as_deref(), Some(node.node_name.as_str()));
    assert_eq!(
        spec.containers[0].image.as_deref(),
        Some(node.operator_image.as_str())
    );
    // In-cluster configuration: the projected token of its own ServiceAccount is mounted.
    assert_eq!(
        spec.service_account_name.as_deref(),
        Some("sourcebuild-sourcebuild-operator")
    );
    assert!(
        spec.volumes
            .iter()
            .flatten()
            .any(|v| v.name.starts_with("kube-api-access")),
        "no ServiceAccount token volume: {spec:?}"
    );
    // Ready through the probes: the kubelet got 200 from /readyz.
    let ready = pod
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0]
        .ready;
    assert!(ready);
    // Its own requests are authenticated as the ServiceAccount: the Lease is held by the Pod.
    let holder = leases
        .get(OPERATOR_DEPLOYMENT)
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity;
    assert_eq!(holder.as_deref(), pod.metadata.name.as_deref());

    // Two replicas: one leads.
    let _values = ChartValues::set(node, &["replicaCount=2", "leaderElection.leaseDuration=5s"]);
    let (leader, standby) = eventually("two ready replicas, one leading", WAIT, || async {
        let pods = pods.list(&selector).await.ok()?.items;
        let ready: Vec<String> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .is_some_and(|c| c.iter().all(|c| c.ready))
            })
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        if ready.len() != 2 {
            return None;
        }
        let holder = leases
            .get(OPERATOR_DEPLOYMENT)
            .await
            .ok()?
            .spec?
            .holder_identity?;
        let standby = ready.iter().find(|n| **n != holder)?.clone();
        ready.contains(&holder).then_some((holder, standby))
    })
    .await;

    // The leader's Pod is deleted: the standby takes the Lease and builds.
    pods.delete(&leader, &DeleteParams::default())
        .await
        .unwrap();
    eventually("the standby to take the Lease", WAIT, || async {
        let holder = leases
            .get(OPERATOR_DEPLOYMENT)
            .await
            .ok()?
            .spec?
            .holder_identity?;
        (holder == standby).then_some(())
    })
    .await;
    let ns = node.namespace("node-failover").await;
    let (archive, sum) = app_archive(ASSEMBLE_HOOK, "after a failover");
    let server = serve_bytes(archive);
    node.apply(
        &ns,
        &source_build(
            "after-failover",
            &format!(
                "{}  output:\n    image: {}/apps/after-failover:1\n",
                archive_source(&server, &sum),
                node.registry
            ),
        ),
    );
    let sb = finished(&client, &ns, "after-failover", 1).await;
    expect_success(&sb, node, &ns);
    assert!(
        node.operator_log().contains("leading"),
        "the standby's log says it leads"
    );

    // Back to one replica for the other tests: `_values` rolls the release back.
}

// --- 2. builds end to end -------------------------------------------------------------------

/// The sample app from git `main`, with `.s2i` hooks and the Kaniko cache on: the digest in
/// status is what the registry serves, the image runs as a Pod and answers, and a second
/// generation with the same Dockerfile reuses the cached layers. `kubectl logs` of the build
/// Pod shows prepare's and Kaniko's output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_app_from_git_builds_runs_as_a_pod_and_rebuilds_from_cache() {
    let node = node();
    let _serial = serial().await;
    let client = node.client().await;
    let ns = node.namespace("node-sample").await;
    let repo = app_repo(None, ASSEMBLE_HOOK);
    let output = format!("{}/apps/hello:1", node.registry);
    let spec = |timeout: &str| {
        source_build(
            "hello",
            &format!(
                "  source:\n    git:\n      url: {}\n      revision: main\n  \
                 output:\n    image: {output}\n  cache:\n    enabled: true\n  timeout: {timeout}\n",
                repo.url()
            ),
        )
    };
    let start = Instant::now();
    node.apply(&ns, &spec("30m"));
    let sb = finished(&client, &ns, "hello", 1).await;
    let status = expect_success(&sb, node, &ns);
    eprintln!("first build: {:.1}s", start.elapsed().as_secs_f64());

    let digest = node.digest(&output);
    assert_eq!(status.digest.as_deref(), Some(digest.as_str()));
    assert_eq!(
        status.latest_image,
        Some(format!("{}/apps/hello@{digest}", node.registry))
    );
    assert_eq!(status.source_revision.as_deref(), Some(repo.c2.as_str()));
    assert_eq!(status.builder_image.as_deref(), Some(node.sclorg.as_str()));
    let config = node.config(&output);
    assert_eq!(
        config["config"]["Cmd"],
        serde_json::json!(["/tmp/scripts/run"])
    );
    assert_eq!(
        config["config"]["Labels"]["io.openshift.s2i.build.commit.id"],
        repo.c2.as_str()
    );
    let latest = status.latest_image.clone().unwrap();
    assert_eq!(
        answer_of_image(node, &client, &ns, "hello-app", &latest).await,
        "hello from git main (assembled by uid 1001)\n"
    );

    // kubectl logs: prepare's lines, then Kaniko's with the hook's output.
    let prepare = node.logs(&ns, "hello-build-1", "prepare");
    assert!(prepare.contains("wrote the Dockerfile"), "{prepare}");
    assert!(
        !prepare.contains('\u{1b}'),
        "colour codes in a log file: {prepare}"
    );
    let first = node.logs(&ns, "hello-build-1", "build");
    assert!(first.contains("---> source assemble hook"), "{first}");
    assert!(
        first.contains("No cached layer found for cmd RUN"),
        "{first}"
    );

    // A new generation, same Dockerfile (the timeout is not part of it): the cache is used.
    node.apply(&ns, &spec("31m"));
    let sb = finished(&client, &ns, "hello", 2).await;
    let status = expect_success(&sb, node, &ns);
    assert_eq!(status.digest, Some(node.digest(&output)));
    let second = node.logs(&ns, "hello-build-2", "build");
    assert!(
        second.contains("Using caching version of cmd: RUN"),
        "the second build did not reuse the assemble layer:\n{second}"
    );
    let tags =
        String::from_utf8(node.crane(&["ls", &format!("{}/apps/hello/cache", node.registry)]))
            .unwrap();
    assert!(!tags.trim().is_empty(), "the cache repository has no tags");
    // Each generation had exactly one Pod.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut names: Vec<String> = pods
        .list(&ListParams::default().labels("sourcebuild.dev/name=hello"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    names.sort();
    assert_eq!(names, ["hello-build-1", "hello-build-2"]);
}

/// Sources: git at a tag and at a commit (with a push Secret, which Kaniko reads where it is
/// mounted), a ConfigMap, an archive (right and wrong sha256), git credentials refused over
/// plain HTTP; the Daeploy-style builder and `contextDir`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_tag_and_commit_configmap_archive_daeploy_and_context_dir() {
    let node = node();
    let _serial = serial().await;
    let client = node.client().await;
    let ns = node.namespace("node-sources").await;
    let repo = app_repo(None, ASSEMBLE_HOOK);
    let guarded = app_repo(Some(("builder", "s3cret")), ASSEMBLE_HOOK);
    let registry = &node.registry;
    let (archive, sum) = app_archive(ASSEMBLE_HOOK, "an archive");
    let archives = serve_bytes(archive);
    // A source tree with the app under app/ (contextDir).
    let nested = {
        let dir = tempfile::tempdir().unwrap();
        write_app(&dir.path().join("app"), Some(ASSEMBLE_HOOK));
        write(
            &dir.path().join("app/.s2i/environment"),
            "APP_FILE=service.py\nGREETING=a subdirectory\n",
            0o644,
        );
        write(&dir.path().join("README"), "not part of the build\n", 0o644);
        let (bytes, sum) = tar_gz(dir.path());
        (serve_bytes(bytes), sum)
    };
    let push_config = format!(r#"{{"auths": {{"{registry}": {{"auth": "dGVzdDp0ZXN0"}}}}}}"#);
    node.apply(
        &ns,
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: git-creds\ntype: kubernetes.io/basic-auth\n\
             stringData:\n  username: builder\n  password: s3cret\n---\n\
             apiVersion: v1\nkind: Secret\nmetadata:\n  name: regcred\ntype: kubernetes.io/dockerconfigjson\n\
             stringData:\n  .dockerconfigjson: '{push_config}'\n"
        ),
    );
    let git_spec = |revision: &str, image: &str| {
        format!(
            "  source:\n    git:\n      url: {}\n      revision: \"{revision}\"\n  \
             output:\n    image: {registry}/apps/{image}:1\n    pushSecretRef: {{name: regcred}}\n",
            repo.url()
        )
    };
    node.apply(&ns, &source_build("at-tag", &git_spec("v1.0", "at-tag")));
    node.apply(
        &ns,
        &source_build("at-commit", &git_spec(&repo.c1, "at-commit")),
    );
    node.apply(
        &ns,
        &source_build(
            "creds-in-clear",
            &format!(
                "  source:\n    git:\n      url: {}\n      secretRef: {{name: git-creds}}\n  \
                 output:\n    image: {registry}/apps/creds-in-clear:1\n",
                guarded.url()
            ),
        ),
    );
    let configmap = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-source\ndata:\n  \
         service.py: {service}\n  environment: \"APP_FILE=service.py\\nGREETING=a ConfigMap\\n\"\n  \
         assemble: {assemble}\n",
        service = serde_json::to_string(support::app::SERVICE_PY).unwrap(),
        assemble = serde_json::to_string(ASSEMBLE_HOOK).unwrap(),
    );
    node.apply(&ns, &configmap);
    node.apply(
        &ns,
        &source_build(
            "from-configmap",
            &format!(
                "  source:\n    configMap:\n      name: app-source\n      items:\n      \
                 - {{key: service.py, path: service.py}}\n      \
                 - {{key: environment, path: .s2i/environment}}\n      \
                 - {{key: assemble, path: .s2i/bin/assemble}}\n  \
                 output:\n    image: {registry}/apps/from-configmap:1\n"
            ),
        ),
    );
    node.apply(
        &ns,
        &source_build(
            "from-archive",
            &format!(
                "{}  output:\n    image: {registry}/apps/from-archive:1\n",
                archive_source(&archives, &sum)
            ),
        ),
    );
    let wrong = "0".repeat(64);
    node.apply(
        &ns,
        &source_build(
            "bad-sum",
            &format!(
                "{}  output:\n    image: {registry}/apps/bad-sum:1\n",
                archive_source(&archives, &wrong)
            ),
        ),
    );
    node.apply(
        &ns,
        &source_build(
            "daeploy",
            &format!(
                "{}  builder:\n    image: {}\n  output:\n    image: {registry}/apps/daeploy:1\n",
                archive_source(&archives, &sum),
                node.daeploy
            ),
        ),
    );
    node.apply(
        &ns,
        &source_build(
            "context-dir",
            &format!(
                "  source:\n    archive:\n      url: {}\n      sha256: \"{}\"\n    contextDir: app\n  \
                 output:\n    image: {registry}/apps/context-dir:1\n",
                nested.0.url("/nested.tar.gz"),
                nested.1
            ),
        ),
    );

    let sb = finished(&client, &ns, "at-tag", 1).await;
    let status = expect_success(&sb, node, &ns);
    assert_eq!(status.source_revision.as_deref(), Some(repo.c1.as_str()));
    assert_eq!(
        status.digest,
        Some(node.digest(&format!("{registry}/apps/at-tag:1")))
    );
    let sb = finished(&client, &ns, "at-commit", 1).await;
    let status = expect_success(&sb, node, &ns);
    assert_eq!(status.source_revision.as_deref(), Some(repo.c1.as_str()));
    assert_eq!(
        answer_of_image(
            node,
            &client,
            &ns,
            "at-commit-app",
            &status.latest_image.unwrap()
        )
        .await,
        "hello from git v1 (assembled by uid 1001)\n"
    );

    let sb = finished(&client, &ns, "from-configmap", 1).await;
    let status = expect_success(&sb, node, &ns);
    assert_eq!(
        answer_of_image(
            node,
            &client,
            &ns,
            "configmap-app",
            &status.latest_image.unwrap()
        )
        .await,
        "hello from a ConfigMap (assembled by uid 1001)\n"
    );

    let sb = finished(&client, &ns, "from-archive", 1).await;
    let status = expect_success(&sb, node, &ns);
    assert_eq!(status.source_revision, Some(format!("sha256:{sum}")));
    assert_eq!(
        status.digest,
        Some(node.digest(&format!("{registry}/apps/from-archive:1")))
    );

    let sb = finished(&client, &ns, "daeploy", 1).await;
    let status = expect_success(&sb, node, &ns);
    assert_eq!(status.builder_image.as_deref(), Some(node.daeploy.as_str()));
    // The Daeploy builder assembles as root.
    assert_eq!(
        answer_of_image(
            node,
            &client,
            &ns,
            "daeploy-app",
            &status.latest_image.unwrap()
        )
        .await,
        "hello from an archive (assembled by uid 0)\n"
    );

    let sb = finished(&client, &ns, "context-dir", 1).await;
    let status = expect_success(&sb, node, &ns);
    assert_eq!(
        answer_of_image(
            node,
            &client,
            &ns,
            "context-dir-app",
            &status.latest_image.unwrap()
        )
        .await,
        "hello from a subdirectory (assembled by uid 1001)\n"
    );

    let sb = finished(&client, &ns, "creds-in-clear", 1).await;
    let status = expect_failure(&sb, "SourceFetchFailed");
    assert!(
        message(&status).contains("refusing to send the git credentials"),
        "{status:#?}"
    );
    let sb = finished(&client, &ns, "bad-sum", 1).await;
    let status = expect_failure(&sb, "SourceFetchFailed");
    let text = message(&status);
    assert!(text.contains(&sum) && text.contains(&wrong), "{text}");
}

// --- 3. the build Pod as the kubelet runs it ------------------------------------------------

/// An assemble hook that takes its time, so the test can look at the build while it runs.
const SLOW_ASSEMBLE_HOOK: &str = r#"#!/bin/bash
set -euo pipefail
echo "---> slow source assemble hook"
"${STI_SCRIPTS_PATH}/assemble"
sleep "${SLOW_SECONDS:-15}"
echo "assembled by uid $(id -u)" > "${APP_SRC_DIR:-$HOME}/s2i-marker.txt"
"#;

/// Processes of Pod `uid`'s containers whose command line starts with `prefix`.
fn processes_of_pod(node: &Node, pod_uid: &str, prefix: &str) -> Vec<u32> {
    node.processes(prefix)
        .into_iter()
        .map(|(pid, _)| pid)
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .is_ok_and(|c| c.contains(&format!("pod{pod_uid}")))
        })
        .collect()
}

/// Whether `/` of the process is mounted read-only (its mountinfo's root entry).
fn root_is_read_only(pid: u32) -> bool {
    let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
    info.lines().any(|l| {
        let fields: Vec<&str> = l.split_whitespace().collect();
        fields.get(4) == Some(&"/")
            && fields
                .get(5)
                .is_some_and(|o| o.split(',').any(|o| o == "ro"))
    })
}

/// In a user namespace of its own (`--user-namespaces auto` on this cluster): `prepare` runs as
/// uid 65532 on a read-only root with no capability and no token, under RuntimeDefault
/// seccomp; Kaniko runs as root with exactly the five capabilities, and reads the push Secret
/// where it is mounted; the assemble script runs as the builder's user 1001. Inside those are
/// the ids; on the node each is the namespace's base id plus it, never the node's root. Read
/// from the running processes (`/proc/<pid>/status` and `uid_map`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_containers_run_with_the_documented_identity_capabilities_and_mounts() {
    let node = node();
    let _serial = serial().await;
    let client = node.client().await;
    let ns = node.namespace("node-pod-security").await;
    let registry = &node.registry;
    let (archive, sum) = app_archive(SLOW_ASSEMBLE_HOOK, "a slow build");
    // The archive server holds its answer until the test has looked at prepare.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = std::sync::Mutex::new(released);
    let server = HttpServer::start(move |_| {
        let _ = released
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(120));
        Response::ok(archive.clone())
    });
    let push_config =
        format!(r#"{{"auths": {{"{registry}": {{"auth": "cHVzaGVyOnNlY3JldA=="}}}}}}"#);
    node.apply(
        &ns,
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: regcred\ntype: kubernetes.io/dockerconfigjson\n\
             stringData:\n  .dockerconfigjson: '{push_config}'\n"
        ),
    );
    node.apply(
        &ns,
        &source_build(
            "inspected",
            &format!(
                "{}  output:\n    image: {registry}/apps/inspected:1\n    pushSecretRef: {{name: regcred}}\n",
                archive_source(&server, &sum)
            ),
        ),
    );
    let pod = node
        .wait_pod(&client, &ns, "inspected-build-1", "scheduled", WAIT, |p| {
            p.metadata.uid.is_some() && !pod_phase(p).is_empty()
        })
        .await;
    let uid = pod.metadata.uid.clone().unwrap();
    let prepare = eventually("prepare's process on the node", WAIT, || async {
        processes_of_pod(node, &uid, "/sourcebuild prepare")
            .first()
            .copied()
    })
    .await;
    // The Pod's user namespace maps 0..65536 inside to base..base+65536 on the node.
    let base = host_base(prepare);
    assert!(
        base >= 65536,
        "prepare's user namespace maps root to host uid {base}"
    );
    let status = proc_status(prepare);
    let (host_uid, host_gid) = (format!("{}", base + 65532), format!("{}", base + 65532));
    let seen = (
        status["Uid"].as_str(),
        status["Gid"].as_str(),
        status["CapEff"].as_str(),
        status["CapBnd"].as_str(),
        status["NoNewPrivs"].as_str(),
        status["Seccomp"].as_str(),
    );
    assert_eq!(
        seen,
        (
            host_uid.as_str(),
            host_gid.as_str(),
            "0000000000000000",
            "0000000000000000",
            "1",
            "2"
        ),
        "prepare's /proc/{prepare}/status"
    );
    assert!(root_is_read_only(prepare), "prepare's root is writable");
    let root = format!("/proc/{prepare}/root");
    assert!(
        !std::path::Path::new(&format!("{root}/var/run/secrets/kubernetes.io")).exists(),
        "a ServiceAccount token is mounted in prepare"
    );
    release.send(()).unwrap();

    let kaniko = eventually("Kaniko's process on the node", WAIT, || async {
        processes_of_pod(node, &uid, "/kaniko/executor")
            .first()
            .copied()
    })
    .await;
    assert_eq!(host_base(kaniko), base, "one user namespace for the Pod");
    let status = proc_status(kaniko);
    let kaniko_uid = base.to_string();
    let seen = (
        status["Uid"].as_str(),
        status["CapEff"].as_str(),
        status["CapBnd"].as_str(),
        status["NoNewPrivs"].as_str(),
        status["Seccomp"].as_str(),
    );
    // 0xcb: CHOWN, DAC_OVERRIDE, FOWNER, SETGID, SETUID.
    assert_eq!(
        seen,
        (
            kaniko_uid.as_str(),
            "00000000000000cb",
            "00000000000000cb",
            "1",
            "2"
        ),
        "Kaniko's /proc/{kaniko}/status"
    );
    let root = format!("/proc/{kaniko}/root");
    assert_eq!(
        std::fs::read_to_string(format!("{root}/kaniko/.docker/config.json")).unwrap(),
        push_config,
        "the push Secret where Kaniko reads it"
    );
    assert!(
        !std::path::Path::new(&format!("{root}/var/run/secrets/kubernetes.io")).exists(),
        "a ServiceAccount token is mounted in the build container"
    );
    // The slow hook's `sleep`, run by the builder's user 1001 inside the build.
    let hook = eventually(
        "the assemble hook's sleep on the node",
        BUILD_WAIT,
        || async { processes_of_pod(node, &uid, "sleep").first().copied() },
    )
    .await;
    assert_eq!(
        proc_status(hook)["Uid"],
        (base + 1001).to_string(),
        "the assemble hook's host uid"
    );
    let sb = finished(&client, &ns, "inspected", 1).await;
    expect_success(&sb, node, &ns);
}

/// The first line of `/proc/<pid>/uid_map` (`0 <base> <count>`): the host uid of root inside.
fn host_base(pid: u32) -> u64 {
    let map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap_or_default();
    let fields: Vec<u64> = map
        .split_whitespace()
        .take(3)
        .map(|f| f.parse().unwrap())
        .collect();
    assert_eq!(fields.first(), Some(&0), "uid_map of {pid}: {map}");
    fields[1]
}

/// The files of an image's filesystem as (path, uid, gid, mode, size), from `crane export`.
fn image_files(
    node: &Node,
    image: &str,
) -> std::collections::BTreeSet<(String, u64, u64, u32, u64)> {
    let tar_bytes = node.crane(&["export", image, "-"]);
    let mut archive = tar::Archive::new(std::io::Cursor::new(tar_bytes));
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                e.path().unwrap().display().to_string(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.mode().unwrap(),
                h.size().unwrap(),
            )
        })
        .collect()
}

/// The same app built in a user namespace and with the node's users (`spec.hostUsers: true`):
/// the Pods say which, and the two images hold the same files with the same owners, modes and
/// sizes (Kaniko's timestamps differ, so the digests do).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_in_a_user_namespace_makes_the_same_files_as_one_with_the_nodes_users() {
    let node = node();
    let _serial = serial().await;
    let client = node.client().await;
    let ns = node.namespace("node-userns").await;
    let (archive, sum) = app_archive(ASSEMBLE_HOOK, "either way");
    let server = serve_bytes(archive);
    for (name, extra) in [("in-userns", ""), ("host-users", "  hostUsers: true\n")] {
        node.apply(
            &ns,
            &source_build(
                name,
                &format!(
                    "{}  output:\n    image: {}/apps/{name}:1\n{extra}",
                    archive_source(&server, &sum),
                    node.registry
                ),
            ),
        );
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut images = Vec::new();
    for (name, host_users) in [("in-userns", Some(false)), ("host-users", None)] {
        let sb = finished(&client, &ns, name, 1).await;
        let status = expect_success(&sb, node, &ns);
        let pod = pods.get(&format!("{name}-build-1")).await.unwrap();
        assert_eq!(pod.spec.unwrap().host_users, host_users, "{name}'s Pod");
        images.push(status.latest_image.unwrap());
    }
    let (a, b) = (image_files(node, &images[0]), image_files(node, &images[1]));
    assert!(a.len() > 100, "{} files in {}", a.len(), images[0]);
    let only_a: Vec<_> = a.difference(&b).collect();
    let only_b: Vec<_> = b.difference(&a).collect();
    assert!(
        only_a.is_empty() && only_b.is_empty(),
        "in the user namespace only: {only_a:#?}\nwith the node's users only: {only_b:#?}"
    );
}

// --- 4. real failures, in the kubelet's words -----------------------------------------------

/// Failures, each with its precise reason: a wrong git revision, an unknown builder image, a
/// registry that refuses the push, an assemble that exits 1 (its log snippet is the build
/// container's log tail), a build over its memory limit, a build over its timeout, a missing
/// push Secret and a missing ConfigMap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_have_precise_reasons_from_the_node() {
    let node = node();
    let _serial = serial().await;
    let client = node.client().await;
    let ns = node.namespace("node-failures").await;
    let repo = app_repo(None, ASSEMBLE_HOOK);
    let registry = &node.registry;
    let (broken, broken_sum) = app_archive(FAILING_ASSEMBLE_HOOK, "never");
    let broken_server = serve_bytes(broken);
    let (greedy, greedy_sum) = app_archive(
        "#!/bin/bash\necho '---> allocating 1 GiB'\npython3 -c 'x = bytearray(1 << 30); print(len(x))'\n",
        "never",
    );
    let greedy_server = serve_bytes(greedy);
    let (slow, slow_sum) = app_archive(SLOW_ASSEMBLE_HOOK, "never");
    let slow_server = serve_bytes(slow);
    let git_source = format!("  source:\n    git:\n      url: {}\n", repo.url());
    let output = |name: &str| format!("  output:\n    image: {registry}/apps/{name}:1\n");
    let builds = [
        (
            "wrong-revision",
            format!(
                "{git_source}      revision: no-such-branch\n{}",
                output("x")
            ),
        ),
        (
            "unknown-builder",
            format!(
                "{git_source}  builder:\n    image: {registry}/no/such-builder:1\n{}",
                output("unknown-builder")
            ),
        ),
        (
            // Nothing listens on the Pod's own loopback.
            "push-refused",
            format!("{git_source}  output:\n    image: 127.0.0.1:1/apps/refused:1\n"),
        ),
        (
            "assemble-fails",
            format!(
                "{}{}",
                archive_source(&broken_server, &broken_sum),
                output("broken")
            ),
        ),
        (
            "out-of-memory",
            format!(
                "{}{}  resources:\n    limits:\n      memory: 256Mi\n",
                archive_source(&greedy_server, &greedy_sum),
                output("greedy")
            ),
        ),
        (
            "too-slow",
            format!(
                "{}{}  timeout: 20s\n  env:\n    - {{name: SLOW_SECONDS, value: \"600\"}}\n",
                archive_source(&slow_server, &slow_sum),
                output("slow")
            ),
        ),
        (
            "no-push-secret",
            format!(
                "{git_source}  output:\n    image: {registry}/apps/no-secret:1\n    pushSecretRef: {{name: nope}}\n"
            ),
        ),
        (
            "no-configmap",
            format!(
                "  source:\n    configMap:\n      name: nope\n      items:\n      - {{key: a, path: a}}\n{}",
                output("no-configmap")
            ),
        ),
    ];
    for (name, spec) in &builds {
        node.apply(&ns, &source_build(name, spec));
    }

    let sb = finished(&client, &ns, "wrong-revision", 1).await;
    let status = expect_failure(&sb, "SourceFetchFailed");
    assert!(message(&status).contains("no-such-branch"), "{status:#?}");

    let sb = finished(&client, &ns, "unknown-builder", 1).await;
    let status = expect_failure(&sb, "BuilderImagePullFailed");
    assert!(message(&status).contains("no/such-builder"), "{status:#?}");

    let sb = finished(&client, &ns, "push-refused", 1).await;
    let status = expect_failure(&sb, "PushFailed");
    assert!(message(&status).contains("127.0.0.1:1"), "{status:#?}");

    let sb = finished(&client, &ns, "assemble-fails", 1).await;
    let status = expect_failure(&sb, "AssembleFailed");
    let snippet = status.log_snippet.clone().unwrap_or_default();
    assert!(
        snippet.contains("source assemble hook that fails"),
        "{status:#?}"
    );
    // The snippet is the tail of what the kubelet kept of the build container's log.
    let log = node.logs(&ns, "assemble-fails-build-1", "build");
    let last_line = snippet.trim_end().lines().last().unwrap();
    assert!(
        log.trim_end().ends_with(last_line),
        "snippet {snippet:?} is not the tail of the log:\n{log}"
    );
    assert!(!node.has_image(&format!("{registry}/apps/broken:1")));

    let sb = finished(&client, &ns, "out-of-memory", 1).await;
    let status = expect_failure(&sb, "OOMKilled");
    assert!(message(&status).contains("256Mi"), "{status:#?}");

    let sb = finished(&client, &ns, "too-slow", 1).await;
    let status = expect_failure(&sb, "Timeout");
    assert!(message(&status).contains("20s"), "{status:#?}");

    let sb = finished(&client, &ns, "no-push-secret", 1).await;
    let status = expect_failure(&sb, "SecretNotFound");
    assert!(message(&status).contains("nope"), "{status:#?}");

    let sb = finished(&client, &ns, "no-configmap", 1).await;
    let status = expect_failure(&sb, "ConfigMapNotFound");
    assert!(message(&status).contains("nope"), "{status:#?}");
}

/// The operator configured with a Kaniko image the registry does not have: the build fails as
/// `ImagePullFailed` as soon as the kubelet reports the registry's `NotFound` (not at its
/// timeout), naming the container and the image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpullable_kaniko_image_fails_as_image_pull_failed() {
    let node = node();
    let _serial = serial().await;
    let client = node.client().await;
    let ns = node.namespace("node-kaniko-pull").await;
    let missing = format!("{}/sourcebuild/kaniko", node.registry);
    let _values = ChartValues::set(
        node,
        &[
            &format!("kanikoImage.repository={missing}"),
            "kanikoImage.tag=no-such-tag",
            "kanikoImage.digest=",
        ],
    );
    let (archive, sum) = app_archive(ASSEMBLE_HOOK, "never");
    let server = serve_bytes(archive);
    node.apply(
        &ns,
        &source_build(
            "no-kaniko",
            &format!(
                "{}  output:\n    image: {}/apps/no-kaniko:1\n  timeout: 90s\n",
                archive_source(&server, &sum),
                node.registry
            ),
        ),
    );
    let sb = finished(&client, &ns, "no-kaniko", 1).await;
    let status = expect_failure(&sb, "ImagePullFailed");
    assert!(
        message(&status).contains(&format!("{missing}:no-such-tag")),
        "{status:#?}"
    );
}

/// `spec.suspend` and a spec change stop a running build (the kubelet kills its containers
/// and the Pod goes), and a deleted running Pod is `PodDeleted`; each SourceBuild gets no
/// second Pod for a generation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_spec_change_and_deletion_stop_running_builds() {
    let node = node();
    let _serial = serial().await;
    let client = node.client().await;
    let ns = node.namespace("node-stops").await;
    let registry = &node.registry;
    let (slow, sum) = app_archive(SLOW_ASSEMBLE_HOOK, "a rebuilt app");
    let server = serve_bytes(slow);
    let spec = |name: &str, slow_seconds: u32, extra: &str| {
        source_build(
            name,
            &format!(
                "{}  output:\n    image: {registry}/apps/{name}:1\n  env:\n    - {{name: SLOW_SECONDS, value: \"{slow_seconds}\"}}\n{extra}",
                archive_source(&server, &sum)
            ),
        )
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let api: Api<SourceBuild> = Api::namespaced(client.clone(), &ns);
    for name in ["suspended", "changed", "deleted"] {
        node.apply(&ns, &spec(name, 600, ""));
    }
    for name in ["suspended", "changed", "deleted"] {
        node.wait_pod(
            &client,
            &ns,
            &format!("{name}-build-1"),
            "running Kaniko",
            BUILD_WAIT,
            kaniko_running,
        )
        .await;
    }

    node.apply(&ns, &spec("suspended", 600, "  suspend: true\n"));
    node.apply(&ns, &spec("changed", 1, ""));
    pods.delete("deleted-build-1", &DeleteParams::default())
        .await
        .unwrap();

    let sb = finished(&client, &ns, "suspended", 2).await;
    assert_eq!(
        sb.status.as_ref().unwrap().phase,
        Some(Phase::Cancelled),
        "{:#?}",
        sb.status
    );
    eventually("the suspended build's Pod gone", WAIT, || async {
        pods.get_opt("suspended-build-1")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;

    let sb = finished(&client, &ns, "changed", 2).await;
    expect_success(&sb, node, &ns);
    let history = &sb.status.as_ref().unwrap().history;
    assert!(
        history
            .iter()
            .any(|h| h.generation == 1 && h.phase == Phase::Cancelled),
        "generation 1 is recorded as cancelled: {history:#?}"
    );
    assert!(pods.get_opt("changed-build-1").await.unwrap().is_none());

    let sb = finished(&client, &ns, "deleted", 1).await;
    expect_failure(&sb, "PodDeleted");
    // Never started again.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(pods.get_opt("deleted-build-1").await.unwrap().is_none());
    let sb = api.get("deleted").await.unwrap();
    assert_eq!(sb.status.unwrap().phase, Some(Phase::Failed));
}

// --- 5. faults on the node ------------------------------------------------------------------

/// Waits until the kubelet's healthz (which checks its runtime too) answers `ok`.
async fn kubelet_healthy() {
    eventually("the kubelet's /healthz", WAIT, || async {
        tokio::task::spawn_blocking(|| {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect("127.0.0.1:10248").ok()?;
            s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
            s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").ok()?;
            let mut text = String::new();
            s.read_to_string(&mut text).ok()?;
            (text.starts_with("HTTP/1.0 200") && text.ends_with("ok")).then_some(())
        })
        .await
        .ok()
        .flatten()
    })
    .await
}

/// The kubelet and then containerd are killed and started again while builds run: every build
/// ends final with the digest the registry serves, and none gets a second Pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_survive_kubelet_and_containerd_restarts() {
    let node = node();
    let _serial = serial().await;
    let client = node.client().await;
    let ns = node.namespace("node-faults").await;
    let registry = &node.registry;
    let (slow, sum) = app_archive(SLOW_ASSEMBLE_HOOK, "a node fault");
    let server = serve_bytes(slow);
    let names = ["through-kubelet", "through-containerd"];
    for name in names {
        node.apply(
            &ns,
            &source_build(
                name,
                &format!(
                    "{}  output:\n    image: {registry}/apps/{name}:1\n  env:\n    - {{name: SLOW_SECONDS, value: \"20\"}}\n",
                    archive_source(&server, &sum)
                ),
            ),
        );
    }
    for name in names {
        node.wait_pod(
            &client,
            &ns,
            &format!("{name}-build-1"),
            "running Kaniko",
            BUILD_WAIT,
            kaniko_running,
        )
        .await;
    }
    // Each crash while the other daemon is up (a kubelet that starts without its runtime
    // exits, as on any node: a supervisor would start it again).
    node.cluster_sh(&["stop", "kubelet", "KILL"]);
    tokio::time::sleep(Duration::from_secs(5)).await;
    node.cluster_sh(&["start", "kubelet"]);
    kubelet_healthy().await;
    node.cluster_sh(&["stop", "containerd", "KILL"]);
    tokio::time::sleep(Duration::from_secs(5)).await;
    node.cluster_sh(&["start", "containerd"]);
    kubelet_healthy().await;

    for name in names {
        let sb = finished(&client, &ns, name, 1).await;
        let status = expect_success(&sb, node, &ns);
        assert_eq!(
            status.digest,
            Some(node.digest(&format!("{registry}/apps/{name}:1")))
        );
        assert_eq!(status.history.len(), 1, "{:#?}", status.history);
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut all: Vec<String> = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    all.sort();
    assert_eq!(
        all,
        ["through-containerd-build-1", "through-kubelet-build-1"]
    );
}

// --- secrets on the node ----------------------------------------------------------------------

fn random_value() -> String {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .expect("read /dev/urandom");
    hex::encode(bytes)
}

/// A random secret value in a push Secret and a git Secret, used by real builds on the node
/// in a namespace enforcing Pod Security `baseline`: it appears in nothing the operator or the
/// builds write back (the operator's log, Events, SourceBuilds, Pods, the containers' logs),
/// and the API server's audit log shows the operator never made a request on a Secret or a
/// ConfigMap while the kubelet did read the Secret to mount it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_values_never_leak_and_the_operator_never_requests_secrets() {
    use base64::Engine;
    use k8s_openapi::api::core::v1::{Event, Secret};
    use kube::ResourceExt;
    let node = node();
    let _serial = serial().await;
    let admin = node.client().await;
    let ns = node.namespace("node-secrets").await;
    node.kubectl_ok(
        &[
            "label",
            "namespace",
            &ns,
            "pod-security.kubernetes.io/enforce=baseline",
        ],
        None,
    );
    let value = random_value();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("pusher:{value}"));
    let registry = &node.registry;
    let push_config = serde_json::json!({"auths": {registry.clone(): {"auth": auth}}}).to_string();
    // A git server wanting exactly these credentials; prepare refuses to send them over plain
    // HTTP, so that build fails before any request carries them.
    let guarded = app_repo(Some(("builder", value.as_str())), ASSEMBLE_HOOK);
    node.apply(
        &ns,
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: git-creds\ntype: kubernetes.io/basic-auth\n\
             stringData:\n  username: builder\n  password: {value}\n---\n\
             apiVersion: v1\nkind: Secret\nmetadata:\n  name: regcred\ntype: kubernetes.io/dockerconfigjson\n\
             stringData:\n  .dockerconfigjson: '{push_config}'\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-source\ndata:\n  \
             service.py: {service}\n  environment: \"APP_FILE=service.py\\nGREETING=x\\n\"\n",
            service = serde_json::to_string(support::app::SERVICE_PY).unwrap(),
        ),
    );
    node.apply(
        &ns,
        &source_build(
            "git-creds",
            &format!(
                "  source:\n    git:\n      url: {}\n      secretRef: {{name: git-creds}}\n  \
                 output:\n    image: {registry}/apps/git-creds:1\n    pushSecretRef: {{name: regcred}}\n",
                guarded.url()
            ),
        ),
    );
    node.apply(
        &ns,
        &source_build(
            "pushed",
            &format!(
                "  source:\n    configMap:\n      name: app-source\n      items:\n      \
                 - {{key: service.py, path: service.py}}\n      \
                 - {{key: environment, path: .s2i/environment}}\n  \
                 output:\n    image: {registry}/apps/pushed:1\n    pushSecretRef: {{name: regcred}}\n"
            ),
        ),
    );
    let git = finished(&admin, &ns, "git-creds", 1).await;
    expect_failure(&git, "SourceFetchFailed");
    let pushed = finished(&admin, &ns, "pushed", 1).await;
    // Kaniko ran with the push Secret mounted and pushed (the registry takes any auth).
    expect_success(&pushed, node, &ns);

    let needles = [value.clone(), auth.clone()];
    let mut haystacks: Vec<(String, String)> = vec![("operator log".into(), node.operator_log())];
    assert!(!haystacks[0].1.is_empty(), "no operator log");
    let events = Api::<Event>::namespaced(admin.clone(), &ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(!events.items.is_empty(), "no Events in {ns}");
    haystacks.push((
        "Events".into(),
        serde_json::to_string(&events.items).unwrap(),
    ));
    let builds = Api::<SourceBuild>::namespaced(admin.clone(), &ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    haystacks.push((
        "SourceBuilds".into(),
        serde_json::to_string(&builds.items).unwrap(),
    ));
    let pods = Api::<Pod>::namespaced(admin.clone(), &ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(pods.items.len(), 2, "a build Pod per SourceBuild");
    for pod in &pods.items {
        let name = pod.name_any();
        haystacks.push((format!("Pod {name}"), serde_json::to_string(pod).unwrap()));
        haystacks.push((format!("{name} logs"), node.build_log(&ns, &name)));
    }
    for (what, text) in &haystacks {
        for needle in &needles {
            assert!(!text.contains(needle), "the secret value is in the {what}");
        }
    }

    // The audit log of the cluster's API server (scripts/cluster.sh's policy).
    let operator_user = "system:serviceaccount:sourcebuild-system:sourcebuild-sourcebuild-operator";
    // A refused request with the operator's identity (impersonated by the admin): the log
    // records refusals, so an attempt by the operator would show.
    let impersonating = {
        let mut config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&node.kubeconfig).unwrap(),
            &Default::default(),
        )
        .await
        .unwrap();
        config.auth_info.impersonate = Some(operator_user.to_string());
        kube::Client::try_from(config).unwrap()
    };
    let refused = Api::<Secret>::namespaced(impersonating, &ns)
        .get("regcred")
        .await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(e)) if e.code == 403),
        "the operator's ServiceAccount may read Secrets: {refused:?}"
    );
    let entries = eventually("the audit log's entries", WAIT, || async {
        let audit = std::fs::read_to_string(node.dir.join("logs/audit.log")).ok()?;
        let entries: Vec<serde_json::Value> = audit
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        // Written a moment after the request: wait for the refused one.
        entries
            .iter()
            .any(|e| {
                e["impersonatedUser"]["username"] == operator_user
                    && e["objectRef"]["resource"] == "secrets"
                    && e["objectRef"]["namespace"] == ns.as_str()
            })
            .then_some(entries)
    })
    .await;
    let on = |e: &serde_json::Value, resource: &str| e["objectRef"]["resource"] == resource;
    // The kubelet read this namespace's push Secret to mount it: the log records such reads.
    assert!(
        entries.iter().any(|e| on(e, "secrets")
            && e["objectRef"]["namespace"] == ns.as_str()
            && e["objectRef"]["name"] == "regcred"
            && e["user"]["username"]
                .as_str()
                .is_some_and(|u| u.starts_with("system:node:"))),
        "the audit log has no read of {ns}/regcred by the kubelet: the check would prove nothing"
    );
    // The operator itself (its own token, not impersonated): not one request on a Secret or
    // ConfigMap since the cluster started, in any namespace; and it is in the log (it created
    // this namespace's build Pods).
    let by_operator: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| e["user"]["username"] == operator_user)
        .collect();
    assert!(
        by_operator.iter().any(|e| on(e, "pods")
            && e["verb"] == "create"
            && e["objectRef"]["namespace"] == ns.as_str()),
        "no build Pod creation by the operator in the audit log"
    );
    let on_secrets: Vec<_> = by_operator
        .iter()
        .filter(|e| on(e, "secrets") || on(e, "configmaps"))
        .collect();
    assert!(
        on_secrets.is_empty(),
        "the operator made requests on Secrets or ConfigMaps: {on_secrets:#?}"
    );
}

/// A builder image with a file owned by uid 100000, beyond the 65,536 ids a Pod's user
/// namespace maps: in a user namespace Kaniko cannot unpack it and the build fails as
/// `UserNamespaceUnsupported`, naming the file and the way out; with `spec.hostUsers: true`
/// the same build succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_builder_with_a_file_of_an_unmapped_uid_needs_the_nodes_users() {
    let node = node();
    let _serial = serial().await;
    let client = node.client().await;
    let ns = node.namespace("node-high-uid").await;
    let layer = tempfile::NamedTempFile::new().unwrap();
    {
        let mut tar = tar::Builder::new(std::fs::File::create(layer.path()).unwrap());
        let data = b"owned by a high uid\n";
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_uid(100_000);
        header.set_gid(100_000);
        header.set_mode(0o644);
        tar.append_data(&mut header, "opt/app-root/high-uid-file", &data[..])
            .unwrap();
        tar.finish().unwrap();
    }
    let builder = format!("{}/s2i/python-high-uid:1", node.registry);
    node.crane(&[
        "append",
        "-b",
        &node.sclorg,
        "-f",
        &layer.path().display().to_string(),
        "-t",
        &builder,
    ]);
    let (archive, sum) = app_archive(ASSEMBLE_HOOK, "a high uid");
    let server = serve_bytes(archive);
    for (name, extra) in [("in-userns", ""), ("host-users", "  hostUsers: true\n")] {
        node.apply(
            &ns,
            &source_build(
                name,
                &format!(
                    "{}  builder:\n    image: {builder}\n  output:\n    image: {}/apps/high-uid-{name}:1\n{extra}",
                    archive_source(&server, &sum),
                    node.registry
                ),
            ),
        );
    }
    let sb = finished(&client, &ns, "in-userns", 1).await;
    let status = expect_failure(&sb, "UserNamespaceUnsupported");
    let text = message(&status);
    assert!(
        text.contains("chown /opt/app-root/high-uid-file") && text.contains("spec.hostUsers: true"),
        "{text}"
    );
    let sb = finished(&client, &ns, "host-users", 1).await;
    expect_success(&sb, node, &ns);
}

/// A hostile source hook: as the Daeploy-style builder's root (inside Kaniko's container, with
/// its five capabilities) it tries to reach the node, prints `probe NAME: RESULT` for each
/// attempt (`ok` or the errno's name), then builds as the builder's own assemble does.
const HOSTILE_ASSEMBLE_HOOK: &str = r##"#!/bin/bash
set -euo pipefail
echo "---> hostile source assemble hook"
python3 - <<'PY'
import ctypes, errno, os, stat
libc = ctypes.CDLL(None, use_errno=True)
def probe(name, attempt):
    try:
        attempt()
        result = "ok"
    except OSError as e:
        result = errno.errorcode.get(e.errno, str(e.errno))
    print(f"probe {name}: {result}", flush=True)
def checked(r):
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
def write(path, text, mode="w"):
    def attempt():
        with open(path, mode) as f:
            f.write(text)
    return attempt
# The node's kernel settings: a core_pattern that pipes to a program is the classic escape.
probe("core_pattern", write("/proc/sys/kernel/core_pattern", "|/tmp/escape %p"))
probe("sysfs", write("/sys/kernel/mm/transparent_hugepage/enabled", "never"))
# Loading a module (x86_64: finit_module 313, init_module 175).
fd = os.open("/usr/bin/python3", os.O_RDONLY)
probe("finit_module", lambda: checked(libc.syscall(313, fd, b"", 0)))
image = ctypes.create_string_buffer(b"\x7fELF" + b"\0" * 60)
probe("init_module", lambda: checked(libc.syscall(175, image, 64, b"")))
# /proc/sys read-write again (MS_REMOUNT | MS_BIND), a block device node of the node's disk.
probe("remount", lambda: checked(libc.mount(b"none", b"/proc/sys", None, 32 | 4096, None)))
probe("mknod", lambda: os.mknod("/tmp/sda", 0o600 | stat.S_IFBLK, os.makedev(8, 0)))
# A file the kubelet gives the container: the Pod's /etc/hosts, a file on the node.
probe("etc_hosts", write("/etc/hosts", "# written by the hostile hook\n", "a"))
# Who owns the node's kernel settings, as the build sees it.
print(f"probe core_pattern_owner: {os.stat('/proc/sys/kernel/core_pattern').st_uid}", flush=True)
PY
# A setuid-root program in the build's filesystem: the test looks at it from the node, then
# lets the build go on (/tmp/release, made by the test through /proc/<pid>/root).
cp /usr/bin/true /tmp/setuid-probe
chmod 4755 /tmp/setuid-probe
for _ in $(seq 300); do [ -e /tmp/release ] && break; sleep 1; done
rm -f /tmp/setuid-probe /tmp/release
"${STI_SCRIPTS_PATH}/assemble"
echo "assembled by uid $(id -u)" > "${APP_SRC_DIR:-$HOME}/s2i-marker.txt"
"##;

/// The `probe NAME: RESULT` lines of a log, by name.
fn probes(log: &str) -> std::collections::BTreeMap<String, String> {
    log.lines()
        .filter_map(|l| l.trim().strip_prefix("probe "))
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// A source hook that tries to reach the node, run by the Daeploy-style builder's root (the
/// worst case: the hook keeps Kaniko's five capabilities; the sclorg-style builder's hook runs
/// as 1001 with none), in a user namespace and with the node's users (`spec.hostUsers: true`).
///
/// Every attempt on the node fails the same way in both modes, and the node is unchanged: the
/// walls that answer are not the user namespace's but the container's, which hold with the
/// node's users too. Writing `/proc/sys/...` and `/sys/...` gets `EROFS` (runc mounts them
/// read-only); `finit_module`, `init_module` and `mount` get `EPERM` (none of the five
/// capabilities, and RuntimeDefault seccomp allows none of them without `CAP_SYS_MODULE` or
/// `CAP_SYS_ADMIN`; this node's kernel has no module support at all, no `/proc/modules`);
/// `mknod` of a block device gets `EPERM` (no `CAP_MKNOD`). The user namespace is a second wall
/// behind those, seen in what the build sees: the node's root owns the kernel's settings, and
/// in a user namespace that owner is unmapped, uid 65534 (nobody) to the hook, so were
/// `/proc/sys` writable, root's `DAC_OVERRIDE` in the namespace would not reach it; with the
/// node's users the owner is the hook's own uid 0.
///
/// Where the user namespace shows: what the hook writes is the node's too (the container's
/// writable layer is a directory on the node's disk), and a setuid-root program it makes there
/// is, on the node, setuid to the namespace's base id (a user that owns nothing), where with
/// the node's users it is setuid root. Read from the node through the hook's process while it
/// waits (`/proc/<pid>/root`).
///
/// What the hook can write on the node in both modes: the files the kubelet gives the Pod.
/// Its `/etc/hosts` is the node's file `<kubelet root>/pods/<uid>/etc-hosts` (owned by the
/// node's root, 0644), bind-mounted read-write; in a user namespace the mount is idmapped
/// (`idmapped` in its mountinfo), so the Pod's root writes it as the node's root would. The
/// hook's write succeeds either way; it is that Pod's own file, read only by its containers
/// (so is the termination log, 0666 by the kubelet's design), and the kubelet rewrites it for
/// each container it starts, so the line is gone once the publish step runs. The build itself
/// succeeds: a hook's failed attempts are its own business.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_hook_can_neither_change_the_node_nor_load_a_module() {
    use std::os::unix::fs::MetadataExt;
    let node = node();
    let _serial = serial().await;
    let client = node.client().await;
    let ns = node.namespace("node-hostile").await;
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let host = || {
        (
            read("/proc/sys/kernel/core_pattern"),
            read("/sys/kernel/mm/transparent_hugepage/enabled"),
            read("/proc/modules"),
        )
    };
    let before = host();
    let (archive, sum) = app_archive(HOSTILE_ASSEMBLE_HOOK, "hostile");
    let server = serve_bytes(archive);
    for (name, extra) in [("in-userns", ""), ("host-users", "  hostUsers: true\n")] {
        node.apply(
            &ns,
            &source_build(
                name,
                &format!(
                    "{}  builder:\n    image: {}\n  output:\n    image: {}/apps/hostile-{name}:1\n{extra}",
                    archive_source(&server, &sum),
                    node.daeploy,
                    node.registry
                ),
            ),
        );
    }
    // The hook's setuid-root program, stat'ed on the node: its owner there, and its mode.
    let mut setuid = Vec::new();
    for name in ["in-userns", "host-users"] {
        let pod = node
            .wait_pod(
                &client,
                &ns,
                &format!("{name}-build-1"),
                "scheduled",
                WAIT,
                |p| p.metadata.uid.is_some() && !pod_phase(p).is_empty(),
            )
            .await;
        let uid = pod.metadata.uid.unwrap();
        let (pid, meta) = eventually(
            &format!("{name}'s hook waiting with its setuid program"),
            BUILD_WAIT,
            || async {
                processes_of_pod(node, &uid, "sleep")
                    .into_iter()
                    .find_map(|pid| {
                        let meta = std::fs::metadata(format!("/proc/{pid}/root/tmp/setuid-probe"));
                        Some((pid, meta.ok()?))
                    })
            },
        )
        .await;
        setuid.push((name, meta.uid(), meta.mode() & 0o7777, host_base(pid)));
        std::fs::write(format!("/proc/{pid}/root/tmp/release"), "").unwrap();
    }
    let base = setuid[0].3;
    assert!(base >= 65536, "the user namespace maps root to {base}");
    assert_eq!(
        setuid,
        vec![
            ("in-userns", base as u32, 0o4755, base),
            ("host-users", 0, 0o4755, 0)
        ],
        "(build, owner on the node, mode, host uid of root inside) of the hook's setuid program"
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut seen = Vec::new();
    for name in ["in-userns", "host-users"] {
        let sb = finished(&client, &ns, name, 1).await;
        let status = expect_success(&sb, node, &ns);
        let pod_name = status.pod_name.unwrap();
        let log = node.logs(&ns, &pod_name, "build");
        let pod = pods.get(&pod_name).await.unwrap();
        let etc_hosts = node.dir.join(format!(
            "kubelet/pods/{}/etc-hosts",
            pod.metadata.uid.unwrap()
        ));
        let meta = std::fs::metadata(&etc_hosts)
            .unwrap_or_else(|e| panic!("{}: {e}", etc_hosts.display()));
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (0, 0, 0o644),
            "{}",
            etc_hosts.display()
        );
        let etc_hosts = std::fs::read_to_string(&etc_hosts).unwrap();
        // The kubelet writes the file afresh for each container it starts, so the publish
        // step that follows Kaniko undid the hook's line.
        assert!(
            etc_hosts.starts_with("# Kubernetes-managed hosts file.")
                && !etc_hosts.contains("hostile hook"),
            "{name}'s etc-hosts on the node:\n{etc_hosts}"
        );
        seen.push((name, probes(&log), etc_hosts, log));
    }
    let after = host();
    assert_eq!(after, before, "the node's core_pattern, THP mode, modules");
    assert_eq!(before.2, None, "this node's kernel has no module support");
    let expected = |owner: &str| -> std::collections::BTreeMap<String, String> {
        [
            ("core_pattern", "EROFS"),
            ("sysfs", "EROFS"),
            ("finit_module", "EPERM"),
            ("init_module", "EPERM"),
            ("remount", "EPERM"),
            ("mknod", "EPERM"),
            ("etc_hosts", "ok"),
            ("core_pattern_owner", owner),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    let actual: Vec<_> = seen
        .iter()
        .map(|(name, probes, ..)| (*name, probes.clone()))
        .collect();
    let wanted = vec![
        ("in-userns", expected("65534")),
        ("host-users", expected("0")),
    ];
    let shown: Vec<_> = seen
        .iter()
        .map(|(name, _, etc_hosts, log)| {
            format!("--- {name}'s build log\n{log}--- its /etc/hosts on the node\n{etc_hosts}")
        })
        .collect();
    assert_eq!(actual, wanted, "{}", shown.join("\n"));
}

// --- the oci source and the kubectl plugin ---------------------------------------------------

const PLUGIN: &str = env!("CARGO_BIN_EXE_kubectl-sourcebuild");

/// `kubectl-sourcebuild ARGS` as a user runs it, against this cluster.
fn plugin(node: &Node, args: &[&str]) -> std::process::Output {
    tokio::task::block_in_place(|| {
        std::process::Command::new(PLUGIN)
            .args(args)
            .env("KUBECONFIG", &node.kubeconfig)
            .env("DOCKER_CONFIG", "/nonexistent")
            .output()
            .unwrap()
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `kubectl sourcebuild build DIR`: the image on stdout is what the registry serves and runs;
/// the build's phases and logs were followed on stderr; an unchanged tree is a no-op, one changed
/// file a new build; a failing assemble exits 1 with its reason and log; `logs` prints both
/// containers' logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_builds_a_directory_follows_it_and_reports() {
    let node = node();
    let _serial = serial().await;
    let client = node.client().await;
    let ns = node.namespace("node-plugin").await;
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("hello-plugin");
    write_app(&app, Some(ASSEMBLE_HOOK));
    let output = format!("{}/apps/plugin:1", node.registry);
    let app_arg = app.to_str().unwrap().to_string();
    let build = |extra: &[&str]| {
        let mut args = vec![
            "build",
            app_arg.as_str(),
            "--image",
            output.as_str(),
            "-n",
            ns.as_str(),
            "--insecure-registry",
            node.registry.as_str(),
        ];
        args.extend(extra);
        plugin(node, &args)
    };

    let start = Instant::now();
    let first = build(&[]);
    let stderr = text(&first.stderr);
    assert_eq!(first.status.code(), Some(0), "{stderr}");
    eprintln!("plugin build: {:.1}s", start.elapsed().as_secs_f64());
    let digest = node.digest(&output);
    let image = format!("{}/apps/plugin@{digest}", node.registry);
    assert_eq!(text(&first.stdout), format!("{image}\n"));
    for expected in [
        "pushed the source as",
        "Running (pod hello-plugin-build-1)",
        "Succeeded (pod hello-plugin-build-1)",
        "[prepare] ",
        "[build] ---> source assemble hook",
    ] {
        assert!(stderr.contains(expected), "{expected:?} not in:\n{stderr}");
    }
    let sb: SourceBuild = Api::namespaced(client.clone(), &ns)
        .get("hello-plugin")
        .await
        .unwrap();
    let source = sb.spec.source.oci.as_ref().unwrap().image.clone();
    let status = sb.status.unwrap();
    assert_eq!(
        status.source_revision.as_deref(),
        source.split_once('@').map(|(_, d)| d)
    );
    let config = node.config(&output);
    assert_eq!(
        config["config"]["Labels"]["io.openshift.s2i.build.source-location"],
        format!("oci://{source}").as_str()
    );
    assert_eq!(
        answer_of_image(node, &client, &ns, "plugin-app", &image).await,
        "hello from a real build (assembled by uid 1001)\n"
    );

    // Unchanged: nothing new, the same image.
    let again = build(&["--quiet"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert_eq!(text(&again.stdout), format!("{image}\n"));
    assert!(text(&again.stderr).contains("unchanged"));

    // `logs`: both containers, on stdout.
    let logs = plugin(node, &["logs", "hello-plugin", "-n", &ns]);
    let logs_text = text(&logs.stdout);
    assert_eq!(logs.status.code(), Some(0), "{}", text(&logs.stderr));
    assert!(logs_text.contains("wrote the Dockerfile"), "{logs_text}");
    assert!(
        logs_text.contains("---> source assemble hook"),
        "{logs_text}"
    );

    // One changed file: a new artifact, a new generation, a new image.
    write(
        &app.join(".s2i/environment"),
        "APP_FILE=service.py\nGREETING=a changed build\n",
        0o644,
    );
    let changed = build(&["--quiet"]);
    assert_eq!(changed.status.code(), Some(0), "{}", text(&changed.stderr));
    let new_image = text(&changed.stdout).trim().to_string();
    assert_ne!(new_image, image);
    assert_eq!(
        answer_of_image(node, &client, &ns, "plugin-app-2", &new_image).await,
        "hello from a changed build (assembled by uid 1001)\n"
    );

    // A failing assemble: exit 1, the reason and the log snippet.
    let broken = dir.path().join("broken");
    write_app(&broken, Some(FAILING_ASSEMBLE_HOOK));
    let failed = plugin(
        node,
        &[
            "build",
            broken.to_str().unwrap(),
            "--image",
            &format!("{}/apps/broken-plugin:1", node.registry),
            "-n",
            &ns,
            "--insecure-registry",
            &node.registry,
            "--quiet",
        ],
    );
    let stderr = text(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{stderr}");
    assert!(failed.stdout.is_empty());
    assert!(stderr.contains("AssembleFailed"), "{stderr}");
    assert!(
        stderr.contains("source assemble hook that fails"),
        "{stderr}"
    );
}

/// An artifact in the format `flux push artifact` writes, pushed by tag: the build pins the
/// manifest digest the tag had, and its origin annotations reach status and the image labels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flux_artifact_by_tag_builds_with_its_origin() {
    use sourcebuild::source::oci::{ANNOTATION_REVISION, ANNOTATION_SOURCE, Artifact};
    let node = node();
    let _serial = serial().await;
    let client = node.client().await;
    let ns = node.namespace("node-flux").await;
    let dir = tempfile::tempdir().unwrap();
    write_app(dir.path(), Some(ASSEMBLE_HOOK));
    let packed = sourcebuild::s2i::pack::pack_source(dir.path()).unwrap();
    let artifact = Artifact {
        content: packed.archive,
        annotations: [
            (ANNOTATION_SOURCE, "https://git.example.com/team/app"),
            (ANNOTATION_REVISION, "main@sha1:0123456789abcdef"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    };
    let tag = format!("{}/apps/flux-source:v1", node.registry);
    let digest = sourcebuild::source::oci::push_artifact(
        &tag,
        &artifact,
        &oci_client::secrets::RegistryAuth::Anonymous,
        std::slice::from_ref(&node.registry),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let output = format!("{}/apps/flux:1", node.registry);
    node.apply(
        &ns,
        &source_build(
            "flux",
            &format!("  source:\n    oci:\n      image: {tag}\n  output:\n    image: {output}\n"),
        ),
    );
    let sb = finished(&client, &ns, "flux", 1).await;
    let status = expect_success(&sb, node, &ns);
    assert_eq!(status.source_revision.as_deref(), Some(digest.as_str()));
    let origin = status.source_origin.unwrap();
    assert_eq!(
        origin.source.as_deref(),
        Some("https://git.example.com/team/app")
    );
    assert_eq!(
        origin.revision.as_deref(),
        Some("main@sha1:0123456789abcdef")
    );
    let labels = &node.config(&output)["config"]["Labels"];
    assert_eq!(
        labels["org.opencontainers.image.source"],
        "https://git.example.com/team/app"
    );
    assert_eq!(
        labels["org.opencontainers.image.revision"],
        "main@sha1:0123456789abcdef"
    );

    // A tag with no artifact: SourceFetchFailed, naming it.
    node.apply(
        &ns,
        &source_build(
            "flux-missing",
            &format!(
                "  source:\n    oci:\n      image: {}/apps/flux-source:none\n  output:\n    image: {output}\n",
                node.registry
            ),
        ),
    );
    let sb = finished(&client, &ns, "flux-missing", 1).await;
    let status = expect_failure(&sb, "SourceFetchFailed");
    assert!(
        message(&status).contains("apps/flux-source:none not found"),
        "{}",
        message(&status)
    );
}

/// `cosign` (pinned in tools/cosign) with `args`, in `dir`; its output, whether it succeeded.
fn cosign(dir: &std::path::Path, args: &[&str], password: &str) -> (bool, String) {
    let out = std::process::Command::new(support::tools::tool("cosign"))
        .args(args)
        .current_dir(dir)
        .env("COSIGN_PASSWORD", password)
        // No transparency log, no TUF root: nothing may leave this machine.
        .env("COSIGN_EXPERIMENTAL", "0")
        .env("TUF_ROOT", dir.join("tuf"))
        .output()
        .expect("run cosign");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The in-toto statements cosign verified for `image` with `key`, decoded from their envelopes.
fn verified_statements(dir: &std::path::Path, key: &str, image: &str) -> Vec<serde_json::Value> {
    let (ok, out) = cosign(
        dir,
        &[
            "verify-attestation",
            "--key",
            key,
            "--type",
            "slsaprovenance1",
            "--insecure-ignore-tlog=true",
            "--allow-http-registry=true",
            image,
        ],
        "",
    );
    assert!(ok, "cosign verify-attestation {image} with {key}:\n{out}");
    use base64::Engine as _;
    out.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|envelope| {
            let payload = envelope["payload"].as_str()?.to_string();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(payload)
                .ok()?;
            serde_json::from_slice(&bytes).ok()
        })
        .collect()
}

/// The unsigned statement attached to `repository@digest`, read from the registry: the referrer
/// manifest `status.provenance.attestation` names, and its one layer.
fn stored_statement(node: &Node, repository: &str, attestation: &str) -> serde_json::Value {
    let manifest: serde_json::Value =
        serde_json::from_slice(&node.crane(&["manifest", &format!("{repository}@{attestation}")]))
            .unwrap();
    assert_eq!(
        manifest["artifactType"], "application/vnd.in-toto+json",
        "{manifest}"
    );
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    serde_json::from_slice(&node.crane(&["blob", &format!("{repository}@{layer}")])).unwrap()
}

/// What a statement must say about a build, checked against status and the registry.
fn assert_statement_matches(
    statement: &serde_json::Value,
    status: &SourceBuildStatus,
    revision_hex: &str,
) {
    assert_eq!(
        statement["_type"], "https://in-toto.io/Statement/v1",
        "{statement:#}"
    );
    assert_eq!(statement["predicateType"], "https://slsa.dev/provenance/v1");
    let digest = status.digest.as_deref().unwrap();
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"],
        digest.trim_start_matches("sha256:"),
        "{statement:#}"
    );
    let build = &statement["predicate"]["buildDefinition"];
    assert_eq!(build["buildType"], "https://sourcebuild.dev/SourceBuild/v1");
    let dependencies = build["resolvedDependencies"].as_array().unwrap();
    let pinned = |hex: &str| {
        dependencies.iter().any(|d| {
            d["digest"]
                .as_object()
                .is_some_and(|m| m.values().any(|v| v == hex))
        })
    };
    let builder = status.builder_image.as_deref().unwrap();
    let builder_hex = builder.rsplit_once("@sha256:").unwrap().1;
    assert!(pinned(builder_hex), "no builder {builder}: {statement:#}");
    assert!(
        pinned(revision_hex),
        "no source {revision_hex}: {statement:#}"
    );
    let dockerfile = status.dockerfile_sha256.as_deref().unwrap();
    assert!(
        build["internalParameters"]
            .to_string()
            .contains(dockerfile.trim_start_matches("sha256:")),
        "no Dockerfile hash: {statement:#}"
    );
}

/// Issue 27: every image gets its SLSA provenance in the registry, as a referrer; with a key
/// Secret it and the image are signed, and cosign verifies both with the public key and refuses
/// them with another. Git, archive, ConfigMap and OCI sources; bad keys fail before the build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_carry_provenance_that_cosign_verifies() {
    let node = node();
    let _serial = serial().await;
    let client = node.client().await;
    let ns = node.namespace("node-provenance").await;
    let registry = &node.registry;
    let keys = tempfile::tempdir().unwrap();
    let dir = keys.path();
    for (prefix, password) in [("ours", "s3cret"), ("other", "another")] {
        let (ok, out) = cosign(
            dir,
            &["generate-key-pair", "--output-key-prefix", prefix],
            password,
        );
        assert!(ok, "cosign generate-key-pair: {out}");
    }
    let key = |file: &str| dir.join(file).display().to_string();
    let secret = |name: &str, extra: &[String]| {
        let mut args = vec!["-n", ns.as_str(), "create", "secret", "generic", name];
        args.extend(extra.iter().map(String::as_str));
        node.kubectl_ok(&args, None);
    };
    secret(
        "cosign-key",
        &[
            format!("--from-file=cosign.key={}", key("ours.key")),
            "--from-literal=cosign.password=s3cret".to_string(),
            format!("--from-file=cosign.pub={}", key("ours.pub")),
        ],
    );
    secret(
        "no-password",
        &[format!("--from-file=cosign.key={}", key("ours.key"))],
    );
    secret(
        "malformed",
        &["--from-literal=cosign.key=not a key".to_string()],
    );
    secret(
        "wrong-password",
        &[
            format!("--from-file=cosign.key={}", key("ours.key")),
            "--from-literal=cosign.password=guess".to_string(),
        ],
    );

    // Signed: git. Unsigned: archive, ConfigMap, OCI artifact.
    let repo = app_repo(None, ASSEMBLE_HOOK);
    node.apply(
        &ns,
        &source_build(
            "signed",
            &format!(
                "  source:\n    git:\n      url: {}\n      revision: main\n  \
                 output:\n    image: {registry}/prov/signed:1\n    signing:\n      \
                 keySecretRef: {{name: cosign-key}}\n",
                repo.url()
            ),
        ),
    );
    let sb = finished(&client, &ns, "signed", 1).await;
    let status = expect_success(&sb, node, &ns);
    let image = status.latest_image.clone().unwrap();
    assert_eq!(
        status.digest,
        Some(node.digest(&format!("{registry}/prov/signed:1")))
    );
    let provenance = status.provenance.clone().expect("status.provenance");
    assert_eq!(provenance.image, image);
    assert!(provenance.signed, "{provenance:?}");
    let attestation = provenance.attestation.clone().unwrap();
    assert!(provenance.signature.is_some(), "{provenance:?}");
    assert_eq!(
        sb.status.as_ref().unwrap().history[0].attestation.as_ref(),
        Some(&attestation)
    );

    let (ok, out) = cosign(
        dir,
        &[
            "verify",
            "--key",
            &key("ours.pub"),
            "--insecure-ignore-tlog=true",
            "--allow-http-registry=true",
            &image,
        ],
        "",
    );
    assert!(ok, "cosign verify with our key:\n{out}");
    let statements = verified_statements(dir, &key("ours.pub"), &image);
    assert_eq!(statements.len(), 1, "{statements:#?}");
    let commit = status.source_revision.clone().unwrap();
    assert_eq!(commit, repo.c2);
    assert_statement_matches(&statements[0], &status, &commit);
    let predicate = &statements[0]["predicate"];
    assert_eq!(
        predicate["buildDefinition"]["externalParameters"]["output"]["signing"]["keySecretRef"]["name"],
        "cosign-key"
    );
    assert!(
        predicate["runDetails"]["builder"]["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("https://sourcebuild.dev/clusters/")),
        "{predicate:#}"
    );
    let invocation = predicate["runDetails"]["metadata"]["invocationId"].to_string();
    assert!(
        invocation.contains(sb.metadata.uid.as_deref().unwrap())
            && invocation.contains("generation/1/build/1"),
        "{invocation}"
    );
    for command in ["verify", "verify-attestation"] {
        let (ok, out) = cosign(
            dir,
            &[
                command,
                "--key",
                &key("other.pub"),
                "--type",
                "slsaprovenance1",
                "--insecure-ignore-tlog=true",
                "--allow-http-registry=true",
                &image,
            ]
            .into_iter()
            .filter(|a| {
                command == "verify-attestation" || !["--type", "slsaprovenance1"].contains(a)
            })
            .collect::<Vec<_>>(),
            "",
        );
        assert!(!ok, "cosign {command} accepted another key:\n{out}");
    }
    // The registry lists the attestation among the image's referrers.
    let oras = std::process::Command::new(support::tools::tool("oras"))
        .args(["discover", "--plain-http", "--format", "json", &image])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&oras.stdout);
    assert!(
        oras.status.success(),
        "oras discover: {listed}{}",
        String::from_utf8_lossy(&oras.stderr)
    );
    assert!(
        listed.contains(&attestation) && listed.contains("application/vnd.in-toto+json"),
        "oras discover does not list {attestation}: {listed}"
    );

    let (archive, sum) = app_archive(ASSEMBLE_HOOK, "an archive");
    let archives = serve_bytes(archive);
    let configmap = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-source\ndata:\n  \
         service.py: {service}\n  environment: \"APP_FILE=service.py\\nGREETING=a ConfigMap\\n\"\n",
        service = serde_json::to_string(support::app::SERVICE_PY).unwrap(),
    );
    node.apply(&ns, &configmap);
    let artifact_dir = tempfile::tempdir().unwrap();
    write_app(artifact_dir.path(), Some(ASSEMBLE_HOOK));
    let packed = sourcebuild::s2i::pack::pack_source(artifact_dir.path()).unwrap();
    let artifact = sourcebuild::source::oci::Artifact {
        content: packed.archive,
        annotations: Default::default(),
    };
    let artifact_tag = format!("{registry}/prov/source:v1");
    let artifact_digest = sourcebuild::source::oci::push_artifact(
        &artifact_tag,
        &artifact,
        &oci_client::secrets::RegistryAuth::Anonymous,
        std::slice::from_ref(registry),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let sources = [
        ("from-archive", archive_source(&archives, &sum)),
        (
            "from-configmap",
            "  source:\n    configMap:\n      name: app-source\n      items:\n      \
             - {key: service.py, path: service.py}\n      \
             - {key: environment, path: .s2i/environment}\n"
                .to_string(),
        ),
        (
            "from-oci",
            format!("  source:\n    oci:\n      image: {artifact_tag}\n"),
        ),
    ];
    for (name, source) in &sources {
        node.apply(
            &ns,
            &source_build(
                name,
                &format!("{source}  output:\n    image: {registry}/prov/{name}:1\n"),
            ),
        );
    }
    for (name, _) in &sources {
        let sb = finished(&client, &ns, name, 1).await;
        let status = expect_success(&sb, node, &ns);
        let provenance = status.provenance.clone().expect("status.provenance");
        assert!(
            !provenance.signed && provenance.signature.is_none(),
            "{provenance:?}"
        );
        let revision = status.source_revision.clone().unwrap();
        match *name {
            "from-archive" => assert_eq!(revision, format!("sha256:{sum}")),
            "from-oci" => assert_eq!(revision, artifact_digest),
            _ => assert!(revision.starts_with("sha256:"), "{revision}"),
        }
        let statement = stored_statement(
            node,
            &format!("{registry}/prov/{name}"),
            provenance.attestation.as_deref().unwrap(),
        );
        assert_statement_matches(&statement, &status, revision.trim_start_matches("sha256:"));
    }

    // Bad keys fail before anything is fetched or pushed, each with its reason.
    for (name, secret_name, reason, says) in [
        ("key-absent", "absent", "SecretNotFound", "absent"),
        (
            "key-malformed",
            "malformed",
            "SigningKeyInvalid",
            "malformed",
        ),
        (
            "key-no-password",
            "no-password",
            "SigningKeyInvalid",
            "password",
        ),
        (
            "key-wrong-password",
            "wrong-password",
            "SigningKeyInvalid",
            "password",
        ),
    ] {
        node.apply(
            &ns,
            &source_build(
                name,
                &format!(
                    "  source:\n    git:\n      url: {}\n  output:\n    image: {registry}/prov/{name}:1\n    \
                     signing:\n      keySecretRef: {{name: {secret_name}}}\n",
                    repo.url()
                ),
            ),
        );
        let sb = finished(&client, &ns, name, 1).await;
        let status = expect_failure(&sb, reason);
        assert!(
            message(&status).contains(says),
            "{name}: {}",
            message(&status)
        );
        assert!(
            !node.has_image(&format!("{registry}/prov/{name}:1")),
            "{name}: an image was pushed"
        );
    }
}
