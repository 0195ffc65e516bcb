//! `kubectl-sourcebuild` as a user runs it, against the test control plane (no operator, no
//! node) and a loopback registry: bad input of every kind ends with a clear message, its exit
//! status and nothing half-made (no SourceBuild written, nothing pushed when the cluster says
//! no); `status`, `list` and `logs` read what the controller would have written; an unchanged
//! tree is a no-op that prints the same image. Builds that run are in tests/node.rs.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use sourcebuild::api::SourceBuild;
use support::registry::{Registry, free_port};
use support::{HttpServer, Response};

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-sourcebuild");

fn app(root: &Path) -> PathBuf {
    let dir = root.join("my-app");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("app.py"), "print('hello')\n").unwrap();
    std::fs::write(dir.join("requirements.txt"), "").unwrap();
    dir
}

fn plugin(kubeconfig: &Path, args: &[&str]) -> Output {
    // No user credentials: the tests' registries are anonymous (or refuse).
    plugin_with(kubeconfig, args, &[("DOCKER_CONFIG", "/nonexistent")])
}

fn plugin_with(kubeconfig: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("RUST_LOG");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_exit(output: &Output, code: i32, message: &str) {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(code), "stderr: {text}");
    assert!(text.contains(message), "{message:?} not in stderr: {text}");
    assert!(
        output.stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
}

async fn sourcebuilds(client: kube::Client, ns: &str) -> Vec<String> {
    Api::<SourceBuild>::namespaced(client, ns)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|sb| sb.metadata.name)
        .collect()
}

fn catalog(registry: &Registry) -> String {
    String::from_utf8(registry.crane(&["catalog", &registry.host()])).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_named_and_leaves_nothing() {
    let Some(cp) = support::control_plane() else {
        return;
    };
    let client = cp.client().await;
    cp.install_crds(&client).await;
    let ns = cp.namespace("plugin-bad").await;
    let admin = cp.kubeconfig_for("admin", &["system:masters"]);
    // Its readiness check blocks (reqwest's blocking client): off the async workers.
    let registry = tokio::task::block_in_place(Registry::start);
    let root = tempfile::tempdir().unwrap();
    let dir = app(root.path());
    let image = format!("{}/team/app:1", registry.host());
    let dir_arg = dir.to_str().unwrap().to_string();
    let base = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = ["build", &dir_arg, "--image", &image, "-n", &ns]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(["--insecure-registry".to_string(), registry.host()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let run = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        plugin(&admin, &refs)
    };

    assert_exit(
        &run(base(&["--env", "DEBUG"])),
        2,
        "--env \"DEBUG\": expected NAME=VALUE",
    );
    assert_exit(&run(base(&["--env", "1X=y"])), 2, "--env: ");
    assert_exit(
        &run(base(&["--name", "My_App"])),
        2,
        "--name \"My_App\": not a valid name",
    );
    assert_exit(
        &run(base(&["--context-dir", "../elsewhere"])),
        2,
        "--context-dir \"../elsewhere\"",
    );
    let missing = root.path().join("missing");
    assert_exit(
        &plugin(
            &admin,
            &[
                "build",
                missing.to_str().unwrap(),
                "--image",
                &image,
                "-n",
                &ns,
            ],
        ),
        2,
        "not a directory",
    );
    let empty = root.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_exit(
        &plugin(
            &admin,
            &[
                "build",
                empty.to_str().unwrap(),
                "--image",
                &image,
                "-n",
                &ns,
            ],
        ),
        2,
        "no files to build",
    );
    std::os::unix::fs::symlink("/etc/passwd", dir.join("passwords")).unwrap();
    assert_exit(
        &run(base(&[])),
        2,
        "passwords: a symlink to \"/etc/passwd\", outside",
    );
    std::fs::remove_file(dir.join("passwords")).unwrap();

    // The cluster's answers come before the push: an unknown context, then a user who may not
    // create SourceBuilds here.
    assert_exit(
        &run(base(&["--context", "no-such-context"])),
        4,
        "no-such-context",
    );
    let nobody = cp.kubeconfig_for("nobody", &[]);
    let refs: Vec<String> = base(&[]);
    let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
    let forbidden = plugin(&nobody, &refs);
    assert_exit(&forbidden, 4, "forbidden");
    assert!(
        stderr(&forbidden).contains(&format!("applying sourcebuild my-app in namespace {ns}")),
        "{}",
        stderr(&forbidden)
    );

    assert_eq!(
        sourcebuilds(client.clone(), &ns).await,
        Vec::<String>::new()
    );
    assert!(
        !catalog(&registry).contains("team/app"),
        "something was pushed: {}",
        catalog(&registry)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_that_refuses_or_is_not_there_writes_no_sourcebuild() {
    let Some(cp) = support::control_plane() else {
        return;
    };
    let client = cp.client().await;
    cp.install_crds(&client).await;
    let ns = cp.namespace("plugin-registry").await;
    let admin = cp.kubeconfig_for("admin", &["system:masters"]);
    let root = tempfile::tempdir().unwrap();
    let dir = app(root.path());

    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let recorder = seen.clone();
    let refusing = HttpServer::start(move |request| {
        if let Some(authorization) = request.header("authorization") {
            recorder.lock().unwrap().push(authorization.to_string());
        }
        let mut response = Response::status(401);
        response
            .headers
            .push(("WWW-Authenticate".into(), "Basic realm=\"test\"".into()));
        response
    });
    let host = format!("{}:{}", support::http::listen_ip(), refusing.port());
    let image = format!("{host}/team/app:1");
    let output = plugin(
        &admin,
        &[
            "build",
            dir.to_str().unwrap(),
            "--image",
            &image,
            "-n",
            &ns,
            "--insecure-registry",
            &host,
        ],
    );
    assert_exit(
        &output,
        3,
        &format!("pushing {host}/team/app/source to {host}"),
    );

    let port = free_port();
    let silent = format!("127.0.0.1:{port}");
    let output = plugin(
        &admin,
        &[
            "build",
            dir.to_str().unwrap(),
            "--image",
            &format!("{silent}/team/app:1"),
            "-n",
            &ns,
            "--insecure-registry",
            &silent,
        ],
    );
    assert_exit(&output, 3, &format!("pushing {silent}/team/app/source"));
    assert_eq!(sourcebuilds(client, &ns).await, Vec::<String>::new());
}

/// Lets `user` do with SourceBuilds and build Pods what `edit` gives (with the chart's
/// aggregated roles), and nothing else: the plugin's needs.
async fn grant(client: &kube::Client, ns: &str, user: &str) {
    let role = Role {
        metadata: ObjectMeta {
            name: Some("sourcebuilds".into()),
            ..Default::default()
        },
        rules: Some(vec![
            PolicyRule {
                api_groups: Some(vec!["sourcebuild.dev".into()]),
                resources: Some(vec!["sourcebuilds".into()]),
                verbs: ["get", "list", "watch", "create", "update", "patch"]
                    .map(String::from)
                    .to_vec(),
                ..Default::default()
            },
            PolicyRule {
                api_groups: Some(vec![String::new()]),
                resources: Some(vec!["pods".into(), "pods/log".into()]),
                verbs: ["get", "list"].map(String::from).to_vec(),
                ..Default::default()
            },
        ]),
    };
    Api::<Role>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some("sourcebuilds".into()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: "sourcebuilds".into(),
        },
        subjects: Some(vec![Subject {
            kind: "User".into(),
            name: user.into(),
            ..Default::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unchanged_tree_is_a_no_op_and_status_list_logs_read_the_result() {
    let Some(cp) = support::control_plane() else {
        return;
    };
    let client = cp.client().await;
    cp.install_crds(&client).await;
    let ns = cp.namespace("plugin-noop").await;
    grant(&client, &ns, "dev").await;
    let dev = cp.kubeconfig_for("dev", &[]);
    // Its readiness check blocks (reqwest's blocking client): off the async workers.
    let registry = tokio::task::block_in_place(Registry::start);
    let root = tempfile::tempdir().unwrap();
    let dir = app(root.path());
    let image = format!("{}/team/app:1", registry.host());
    let host = registry.host();
    let build = |extra: &[&str]| {
        let mut args = vec![
            "build",
            dir.to_str().unwrap(),
            "--image",
            &image,
            "-n",
            &ns,
            "--insecure-registry",
            &host,
        ];
        args.extend(extra);
        plugin(&dev, &args)
    };

    // No operator runs here: following stops at its limit, and says the build goes on.
    let first = build(&["--follow-timeout", "3s"]);
    assert_exit(
        &first,
        130,
        "the build goes on: kubectl sourcebuild logs -f my-app",
    );
    let builds: Api<SourceBuild> = Api::namespaced(client.clone(), &ns);
    let sb = builds.get("my-app").await.unwrap();
    let source = sb.spec.source.oci.as_ref().unwrap().image.clone();
    let digest = source.split_once('@').unwrap().1;
    assert_eq!(
        source,
        format!("{}/team/app/source@{digest}", registry.host())
    );
    assert_eq!(registry.digest(&source), digest);
    assert_eq!(sb.spec.output.image, image);

    // What the controller writes when the build succeeds.
    let generation = sb.metadata.generation.unwrap();
    let built = format!("{}/team/app@sha256:{}", registry.host(), "b".repeat(64));
    let status = serde_json::json!({"status": {
        "phase": "Succeeded", "observedGeneration": generation, "build": 1,
        "podName": "my-app-build-1", "latestImage": built, "sourceRevision": digest,
        "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:01:05Z",
        "history": [{"generation": generation, "build": 1, "phase": "Succeeded",
                     "podName": "my-app-build-1", "digest": format!("sha256:{}", "b".repeat(64)),
                     "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:01:05Z"}]
    }});
    builds
        .patch_status("my-app", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();

    let again = build(&[]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(
        String::from_utf8(again.stdout.clone()).unwrap(),
        format!("{built}\n")
    );
    assert!(stderr(&again).contains("unchanged"), "{}", stderr(&again));
    assert_eq!(
        builds.get("my-app").await.unwrap().metadata.generation,
        Some(generation)
    );

    let status = plugin(&dev, &["status", "my-app", "-n", &ns]);
    assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
    let text = String::from_utf8(status.stdout).unwrap();
    assert!(text.contains(&format!("Image:   {built}")), "{text}");
    assert!(text.contains("Took:    1m5s"), "{text}");
    assert!(text.contains(&format!("oci://{source}")), "{text}");

    let list = plugin(&dev, &["list", "-n", &ns]);
    let text = String::from_utf8(list.stdout).unwrap();
    assert!(text.starts_with("NAME"), "{text}");
    assert!(
        text.contains("my-app") && text.contains("Succeeded"),
        "{text}"
    );

    // The Pod never existed here, as if cleaned up: logs says so and shows the record.
    let logs = plugin(&dev, &["logs", "my-app", "-n", &ns]);
    assert_eq!(logs.status.code(), Some(1), "{}", stderr(&logs));
    let text = stderr(&logs);
    assert!(text.contains("build Pod my-app-build-1 is gone"), "{text}");
    assert!(
        text.contains(&format!(
            "generation {generation} build 1: Succeeded in 1m5s"
        )),
        "{text}"
    );

    // One changed file is a new artifact and a new generation.
    std::fs::write(dir.join("app.py"), "print('changed')\n").unwrap();
    let changed = build(&["--follow-timeout", "1s", "--quiet"]);
    assert_eq!(changed.status.code(), Some(130), "{}", stderr(&changed));
    let sb = builds.get("my-app").await.unwrap();
    assert_eq!(sb.metadata.generation, Some(generation + 1));
    assert_ne!(sb.spec.source.oci.unwrap().image, source);

    // rebuild: the annotation, then following (stopped here at its limit).
    let rebuild = plugin(
        &dev,
        &["rebuild", "my-app", "-n", &ns, "--follow-timeout", "1s"],
    );
    assert_exit(&rebuild, 130, "the build goes on");
    let annotations = builds.get("my-app").await.unwrap().metadata.annotations;
    assert!(
        annotations
            .as_ref()
            .is_some_and(|a| a.contains_key("sourcebuild.dev/rebuild")),
        "{annotations:?}"
    );

    // Ctrl-C while following: the same message and status, the SourceBuild left as applied.
    std::fs::write(dir.join("app.py"), "print('interrupted')\n").unwrap();
    let mut child = Command::new(BIN)
        .args([
            "build",
            dir.to_str().unwrap(),
            "--image",
            &image,
            "-n",
            &ns,
            "--insecure-registry",
            &host,
            "--quiet",
        ])
        .env("KUBECONFIG", &dev)
        .env("DOCKER_CONFIG", "/nonexistent")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr_pipe = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("following sourcebuild my-app") {
        let mut line = String::new();
        let read = std::io::BufRead::read_line(&mut stderr_pipe, &mut line).unwrap();
        assert!(read > 0, "the plugin ended before following: {seen}");
        seen.push_str(&line);
    }
    let pid = i32::try_from(child.id()).unwrap();
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr_pipe, &mut rest).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{seen}{rest}");
    assert!(rest.contains("the build goes on"), "{rest}");
    assert!(output.stdout.is_empty());
    assert_eq!(
        builds.get("my-app").await.unwrap().metadata.generation,
        Some(generation + 2)
    );

    let missing = plugin(&dev, &["status", "nope", "-n", &ns]);
    assert_exit(&missing, 4, "sourcebuild \"nope\" not found");
}
