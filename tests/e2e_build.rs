//! Real builds end to end, driven by the operator: SourceBuilds applied with kubectl to a real
//! control plane, the operator process (the chart's RBAC) creating build Pods, the pod runner
//! (tests/support/pod_runner.rs) running them as a kubelet would — our `sourcebuild prepare`
//! fetching real sources over HTTP on loopback, the pinned Kaniko building and pushing to a real
//! local registry — and the operator turning the Pods' status into the SourceBuilds' status.
//!
//! One control plane, registry, operator and runner for the whole file. Builds run one at a time
//! and the tests take turns (`serial`), so a build's wall time is its own. Needs root, the pinned
//! tools and the builder images' Debian root filesystem (see tests/real_build.rs).

mod support;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use sourcebuild::api::{Phase, SourceBuild};
use support::app::{ASSEMBLE_HOOK, FAILING_ASSEMBLE_HOOK, serve_image_once, write_app};
use support::build_env::BuildEnv;
use support::http::{HttpServer, Response, git, git_http_server};
use support::registry::free_port;
use support::{ControlPlane, control_plane, eventually};

/// A real build takes about a minute on 2 cores; this leaves room for a slow machine.
const BUILD_WAIT: Duration = Duration::from_secs(10 * 60);

fn env() -> Option<(&'static ControlPlane, &'static BuildEnv)> {
    static ENV: OnceLock<BuildEnv> = OnceLock::new();
    let cp = control_plane()?;
    let env = ENV.get_or_init(|| {
        let env = BuildEnv::start(cp);
        eprintln!("e2e logs (operator.log, pods/): {}", env.logs.display());
        env
    });
    Some((cp, env))
}

/// One test at a time: the runner builds one Pod at a time anyway, and this keeps each measured
/// wall time free of other tests' builds.
/// An async lock: it is held across the test's awaits, and each test has its own runtime.
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

/// Waits until the SourceBuild's status describes `generation` and has ended (Succeeded or
/// Failed); panics with the operator's view and the build log when it takes too long.
async fn finished(client: &Client, ns: &str, name: &str, generation: i64) -> SourceBuild {
    let api: Api<SourceBuild> = Api::namespaced(client.clone(), ns);
    eventually(
        &format!("SourceBuild {ns}/{name} generation {generation} to end"),
        BUILD_WAIT,
        || async {
            let sb = api.get(name).await.ok()?;
            let status = sb.status.as_ref()?;
            (status.observed_generation == Some(generation)
                && matches!(status.phase, Some(Phase::Succeeded | Phase::Failed)))
            .then_some(sb)
        },
    )
    .await
}

/// The status of a build that must have failed with `reason`, shown whole when it did not.
fn expect_failure(sb: &SourceBuild, reason: &str) -> sourcebuild::api::SourceBuildStatus {
    let status = sb.status.clone().unwrap();
    let condition = status.condition("Succeeded").cloned();
    assert_eq!(
        (status.phase, condition.as_ref().map(|c| c.reason.as_str())),
        (Some(Phase::Failed), Some(reason)),
        "{status:#?}"
    );
    status
}

fn expect_success(
    sb: &SourceBuild,
    env: &BuildEnv,
    ns: &str,
) -> sourcebuild::api::SourceBuildStatus {
    let status = sb.status.clone().unwrap();
    let pod = status.pod_name.clone().unwrap_or_default();
    assert_eq!(
        status.phase,
        Some(Phase::Succeeded),
        "{status:#?}\nbuild log:\n{}",
        env.runner.build_log(ns, &pod)
    );
    status
}

/// A git repository of the test app served by `git http-backend`: `c1` (tagged `v1.0`,
/// GREETING "git v1") and `c2` on `main` (GREETING "git main").
struct AppRepo {
    _dir: tempfile::TempDir,
    server: HttpServer,
    c1: String,
    c2: String,
}

/// `auth`: the basic-auth user and password the server requires, if any.
fn app_repo(auth: Option<(&str, &str)>) -> AppRepo {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    write_app(&work, Some(ASSEMBLE_HOOK));
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

/// Seconds since `start`, printed with what they measure.
fn report_time(what: &str, start: Instant) -> Duration {
    let took = start.elapsed();
    eprintln!(
        "TIMING {what}: {:.1}s from kubectl apply to Succeeded",
        took.as_secs_f64()
    );
    took
}

/// (1) + (5): the sample app from git `main`, with `.s2i` hooks and the Kaniko cache on: the
/// digest in status is what the registry serves, the image runs the run hook and serves the
/// app, the assemble hook's marker is in the image; then the same app again (a new generation
/// whose Dockerfile is identical) reuses the cached layers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_app_from_git_builds_serves_and_rebuilds_from_cache() {
    let Some((cp, env)) = env() else { return };
    let _serial = serial().await;
    let client = cp.client().await;
    let ns = cp.namespace("e2e-sample").await;
    let repo = app_repo(None);
    let output = format!("{}/apps/hello:1", env.registry.host());
    let spec = |timeout: &str| {
        source_build(
            "hello",
            &format!(
                "  source:\n    git:\n      url: {}\n      revision: main\n  \
                 output:\n    image: {output}\n  cache:\n    enabled: true\n  timeout: {timeout}\n",
                repo.server.url("/app.git")
            ),
        )
    };

    let start = Instant::now();
    support::sourcebuilds::apply(cp, &ns, &spec("30m"));
    let sb = finished(&client, &ns, "hello", 1).await;
    let status = expect_success(&sb, env, &ns);
    let uncached = report_time("first build (cache empty)", start);

    let digest = env.registry.digest(&output);
    assert_eq!(status.digest.as_deref(), Some(digest.as_str()));
    assert_eq!(
        status.latest_image,
        Some(format!("{}/apps/hello@{digest}", env.registry.host()))
    );
    assert_eq!(status.source_revision.as_deref(), Some(repo.c2.as_str()));
    assert_eq!(
        status.builder_image.as_deref(),
        Some(env.builders.sclorg.as_str())
    );

    let config = env.registry.config(&output);
    let cmd: Vec<String> = serde_json::from_value(config["config"]["Cmd"].clone()).unwrap();
    assert_eq!(
        cmd,
        ["/tmp/scripts/run"],
        "the image's command is the run hook"
    );
    assert_eq!(
        config["config"]["Labels"]["io.openshift.s2i.build.commit.id"],
        repo.c2.as_str()
    );

    let work = tempfile::tempdir().unwrap();
    let rootfs = work.path().join("rootfs");
    // Blocking HTTP polling: off the async worker.
    let answer = tokio::task::block_in_place(|| serve_image_once(&env.registry, &output, &rootfs));
    assert_eq!(
        std::fs::read_to_string(rootfs.join("opt/app-root/src/s2i-marker.txt")).unwrap(),
        "assembled by uid 1001\n"
    );
    assert_eq!(answer, "hello from git main (assembled by uid 1001)\n");

    // (5) A new generation, same source, same Dockerfile: the timeout is not part of it.
    let start = Instant::now();
    support::sourcebuilds::apply(cp, &ns, &spec("31m"));
    let sb = finished(&client, &ns, "hello", 2).await;
    let status = expect_success(&sb, env, &ns);
    let cached = report_time("second build (cache filled)", start);
    eprintln!(
        "TIMING cache: uncached {:.1}s, cached {:.1}s",
        uncached.as_secs_f64(),
        cached.as_secs_f64()
    );
    assert_eq!(status.digest, Some(env.registry.digest(&output)));
    let first_log = env.runner.build_log(&ns, "hello-build-1");
    let second_log = env.runner.build_log(&ns, "hello-build-2");
    assert!(
        first_log.contains("No cached layer found for cmd RUN"),
        "{first_log}"
    );
    assert!(
        second_log.contains("Using caching version of cmd: RUN"),
        "the second build did not reuse the assemble layer:\n{second_log}"
    );
    let tags = String::from_utf8(
        env.registry
            .crane(&["ls", &format!("{}/apps/hello/cache", env.registry.host())]),
    )
    .unwrap();
    assert!(!tags.trim().is_empty(), "the cache repository has no tags");
    assert_eq!(
        env.runner
            .started()
            .iter()
            .filter(|p| p.starts_with(&format!("{ns}/")))
            .count(),
        2,
        "each generation's Pod ran exactly once"
    );
}

/// (3) Sources: git at a tag and at a commit (status records the resolved commit), pushed with a
/// push Secret; git credentials from a Secret, refused over plain HTTP; a ConfigMap, an archive whose sha256 matches and one whose sha256 does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_tag_and_commit_configmap_and_archive_sources() {
    let Some((cp, env)) = env() else { return };
    let _serial = serial().await;
    let client = cp.client().await;
    let ns = cp.namespace("e2e-sources").await;
    let repo = app_repo(None);
    // Wants the credentials prepare reads from the git Secret's volume (the runner's copy of
    // the real Secret), which prepare refuses to send over plain HTTP.
    let guarded = app_repo(Some(("builder", "s3cret")));
    let registry = env.registry.host();
    let (archive, sum) = app_archive(ASSEMBLE_HOOK, "an archive");
    let archives = serve_bytes(archive);
    let push_config = r#"{"auths": {}}"#;
    support::sourcebuilds::apply(
        cp,
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
            repo.server.url("/app.git")
        )
    };
    support::sourcebuilds::apply(
        cp,
        &ns,
        &source_build("at-tag", &git_spec("v1.0", "at-tag")),
    );
    support::sourcebuilds::apply(
        cp,
        &ns,
        &source_build("at-commit", &git_spec(&repo.c1, "at-commit")),
    );
    support::sourcebuilds::apply(
        cp,
        &ns,
        &source_build(
            "creds-in-clear",
            &format!(
                "  source:\n    git:\n      url: {}\n      secretRef: {{name: git-creds}}\n  \
                 output:\n    image: {registry}/apps/creds-in-clear:1\n",
                guarded.server.url("/app.git")
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
    support::sourcebuilds::apply(cp, &ns, &configmap);
    support::sourcebuilds::apply(
        cp,
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
    let archive_spec = |sha: &str, image: &str| {
        format!(
            "  source:\n    archive:\n      url: {}\n      sha256: \"{sha}\"\n  \
             output:\n    image: {registry}/apps/{image}:1\n",
            archives.url("/app.tar.gz")
        )
    };
    support::sourcebuilds::apply(
        cp,
        &ns,
        &source_build("from-archive", &archive_spec(&sum, "from-archive")),
    );
    let wrong = "0".repeat(64);
    support::sourcebuilds::apply(
        cp,
        &ns,
        &source_build("bad-sum", &archive_spec(&wrong, "bad-sum")),
    );

    let sb = finished(&client, &ns, "at-tag", 1).await;
    let status = expect_success(&sb, env, &ns);
    assert_eq!(
        status.source_revision.as_deref(),
        Some(repo.c1.as_str()),
        "the tag's commit"
    );
    assert_eq!(
        status.digest,
        Some(env.registry.digest(&format!("{registry}/apps/at-tag:1")))
    );

    // The push Secret's key, laid out as Kaniko's config.json like the kubelet does.
    assert_eq!(
        std::fs::read_to_string(
            env.runner
                .pod_dir(&ns, "at-tag-build-1")
                .join("volumes/push-secret/config.json")
        )
        .unwrap(),
        push_config
    );

    let sb = finished(&client, &ns, "at-commit", 1).await;
    let status = expect_success(&sb, env, &ns);
    assert_eq!(status.source_revision.as_deref(), Some(repo.c1.as_str()));

    let sb = finished(&client, &ns, "from-configmap", 1).await;
    let status = expect_success(&sb, env, &ns);
    let image = format!("{registry}/apps/from-configmap:1");
    assert_eq!(status.digest, Some(env.registry.digest(&image)));
    let work = tempfile::tempdir().unwrap();
    assert_eq!(
        tokio::task::block_in_place(|| serve_image_once(
            &env.registry,
            &image,
            &work.path().join("cm")
        )),
        "hello from a ConfigMap (assembled by uid 1001)\n"
    );

    let sb = finished(&client, &ns, "from-archive", 1).await;
    let status = expect_success(&sb, env, &ns);
    assert_eq!(status.source_revision, Some(format!("sha256:{sum}")));
    assert_eq!(
        status.digest,
        Some(
            env.registry
                .digest(&format!("{registry}/apps/from-archive:1"))
        )
    );

    let sb = finished(&client, &ns, "creds-in-clear", 1).await;
    let status = expect_failure(&sb, "SourceFetchFailed");
    let message = &status.condition("Succeeded").unwrap().message;
    assert!(
        message.contains("refusing to send the git credentials"),
        "{message}"
    );

    let sb = finished(&client, &ns, "bad-sum", 1).await;
    let status = expect_failure(&sb, "SourceFetchFailed");
    let message = &status.condition("Succeeded").unwrap().message;
    assert!(
        message.contains(&sum) && message.contains(&wrong),
        "{message}"
    );
}

/// (4) Failures, each with its precise reason: a wrong git revision, an unknown builder image,
/// a registry that refuses the push, an assemble that exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_have_precise_reasons() {
    let Some((cp, env)) = env() else { return };
    let _serial = serial().await;
    let client = cp.client().await;
    let ns = cp.namespace("e2e-failures").await;
    let repo = app_repo(None);
    let registry = env.registry.host();
    let (broken, broken_sum) = app_archive(FAILING_ASSEMBLE_HOOK, "never");
    let archives = serve_bytes(broken);
    let git_source = format!(
        "  source:\n    git:\n      url: {}\n",
        repo.server.url("/app.git")
    );

    support::sourcebuilds::apply(
        cp,
        &ns,
        &source_build(
            "wrong-revision",
            &format!(
                "{git_source}      revision: no-such-branch\n  output:\n    image: {registry}/apps/x:1\n"
            ),
        ),
    );
    support::sourcebuilds::apply(
        cp,
        &ns,
        &source_build(
            "unknown-builder",
            &format!(
                "{git_source}  builder:\n    image: {registry}/no/such-builder:1\n  \
                 output:\n    image: {registry}/apps/unknown-builder:1\n"
            ),
        ),
    );
    // Nothing listens there: the push (and Kaniko's push-permission check before the build)
    // cannot reach a registry.
    let nowhere = format!("127.0.0.1:{}", free_port());
    support::sourcebuilds::apply(
        cp,
        &ns,
        &source_build(
            "push-refused",
            &format!("{git_source}  output:\n    image: {nowhere}/apps/refused:1\n"),
        ),
    );
    support::sourcebuilds::apply(
        cp,
        &ns,
        &source_build(
            "assemble-fails",
            &format!(
                "  source:\n    archive:\n      url: {}\n      sha256: \"{broken_sum}\"\n  \
                 output:\n    image: {registry}/apps/broken:1\n",
                archives.url("/broken.tar.gz")
            ),
        ),
    );

    let sb = finished(&client, &ns, "wrong-revision", 1).await;
    let status = expect_failure(&sb, "SourceFetchFailed");
    let message = &status.condition("Succeeded").unwrap().message;
    assert!(message.contains("no-such-branch"), "{message}");

    let sb = finished(&client, &ns, "unknown-builder", 1).await;
    let status = expect_failure(&sb, "BuilderImagePullFailed");
    let message = &status.condition("Succeeded").unwrap().message;
    assert!(message.contains("no/such-builder"), "{message}");

    let sb = finished(&client, &ns, "push-refused", 1).await;
    let status = expect_failure(&sb, "PushFailed");
    let message = &status.condition("Succeeded").unwrap().message;
    assert!(message.contains(&nowhere), "{message}");

    let sb = finished(&client, &ns, "assemble-fails", 1).await;
    let status = expect_failure(&sb, "AssembleFailed");
    let snippet = status.log_snippet.clone().unwrap_or_default();
    assert!(
        snippet.contains("source assemble hook that fails"),
        "{status:#?}"
    );
    // Nothing was pushed under the tag.
    let pushed = std::process::Command::new(env.registry.crane_path())
        .args(["--insecure", "digest", &format!("{registry}/apps/broken:1")])
        .output()
        .unwrap();
    assert!(!pushed.status.success());
}

/// A deleted build Pod is abandoned: the runner stops its build and writes nothing more, and a
/// Pod it started is never started again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_pod_is_abandoned_and_never_restarted() {
    let Some((cp, env)) = env() else { return };
    let _serial = serial().await;
    let client = cp.client().await;
    let ns = cp.namespace("e2e-deleted").await;
    let repo = app_repo(None);
    support::sourcebuilds::apply(
        cp,
        &ns,
        &source_build(
            "doomed",
            &format!(
                "  source:\n    git:\n      url: {}\n  output:\n    image: {}/apps/doomed:1\n",
                repo.server.url("/app.git"),
                env.registry.host()
            ),
        ),
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    eventually("the build container running", BUILD_WAIT, || async {
        let pod = pods.get_opt("doomed-build-1").await.ok()??;
        (pod.status?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;
    // Deleting an unbound Pod removes it at once: what the controller sees as PodDeleted.
    let _ = pods
        .delete("doomed-build-1", &Default::default())
        .await
        .unwrap();
    let sb = finished(&client, &ns, "doomed", 1).await;
    expect_failure(&sb, "PodDeleted");
    // The runner moves on: a later build in the queue starts (it would wait behind a stuck one).
    let api: Api<SourceBuild> = Api::namespaced(client.clone(), &ns);
    api.patch(
        "doomed",
        &PatchParams::default(),
        &Patch::Merge(&serde_json::json!({"spec": {"timeout": "31m"}})),
    )
    .await
    .unwrap();
    let sb = finished(&client, &ns, "doomed", 2).await;
    expect_success(&sb, env, &ns);
    let runs: Vec<String> = env
        .runner
        .started()
        .into_iter()
        .filter(|p| p.starts_with(&format!("{ns}/")))
        .collect();
    assert_eq!(
        runs,
        [
            format!("{ns}/doomed-build-1"),
            format!("{ns}/doomed-build-2")
        ]
    );
}
