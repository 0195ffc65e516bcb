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
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use sourcebuild::api::{Phase, SourceBuild, SourceBuildStatus};
use support::app::{ASSEMBLE_HOOK, FAILING_ASSEMBLE_HOOK, write, write_app};
use support::eventually;
use support::http::{HttpServer, Response, git, git_http_server};
use support::node::{
    Node, OPERATOR_DEPLOYMENT, OPERATOR_NAMESPACE, OPERATOR_RELEASE, node, pod_phase,
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
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    write_app(dir.path(), Some(assemble_hook));
    std::fs::write(
        dir.path().join(".s2i/environment"),
        format!("APP_FILE=service.py\nGREETING={greeting}\n"),
    )
    .unwrap();
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    builder.append_dir_all(".", dir.path()).unwrap();
    let bytes = builder.into_inner().unwrap().finish().unwrap();
    let sum = hex::encode(sha2::Sha256::digest(&bytes));
    (bytes, sum)
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
    let helm = node
        .helm()
        .args([
            "upgrade",
            OPERATOR_RELEASE,
            &support::repo_root()
                .join("charts/sourcebuild-operator")
                .display()
                .to_string(),
            "-n",
            OPERATOR_NAMESPACE,
            "--reuse-values",
            "--set",
            "replicaCount=2",
            "--set",
            "leaderElection.leaseDuration=5s",
            "--wait",
            "--timeout",
            "3m",
        ])
        .output()
        .unwrap();
    assert!(
        helm.status.success(),
        "{}",
        String::from_utf8_lossy(&helm.stderr)
    );
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

    // Back to one replica for the other tests.
    let helm = node
        .helm()
        .args([
            "upgrade",
            OPERATOR_RELEASE,
            &support::repo_root()
                .join("charts/sourcebuild-operator")
                .display()
                .to_string(),
            "-n",
            OPERATOR_NAMESPACE,
            "--reuse-values",
            "--set",
            "replicaCount=1",
            "--wait",
            "--timeout",
            "3m",
        ])
        .output()
        .unwrap();
    assert!(
        helm.status.success(),
        "{}",
        String::from_utf8_lossy(&helm.stderr)
    );
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
        use sha2::Digest;
        let dir = tempfile::tempdir().unwrap();
        write_app(&dir.path().join("app"), Some(ASSEMBLE_HOOK));
        write(
            &dir.path().join("app/.s2i/environment"),
            "APP_FILE=service.py\nGREETING=a subdirectory\n",
            0o644,
        );
        write(&dir.path().join("README"), "not part of the build\n", 0o644);
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        builder.append_dir_all(".", dir.path()).unwrap();
        let bytes = builder.into_inner().unwrap().finish().unwrap();
        let sum = hex::encode(sha2::Sha256::digest(&bytes));
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
