//! The operator image, built from the repository's own `Dockerfile` by the pinned Kaniko, and the
//! chart run with it.
//!
//! No public registry is reachable here, so the Dockerfile's two bases are replaced (through its
//! `RUST_IMAGE` / `RUNTIME_IMAGE` build args) by stand-ins of the same content that
//! `scripts/operator-image.sh` assembles from Debian packages and this machine's Rust toolchain
//! of the pinned version. Everything after that is the Dockerfile as written: the release build
//! with `--locked` (crates fetched by cargo inside the RUN step), the copy into the runtime, the
//! user, the entrypoint.
//!
//! Then the chart's Deployment is run with that image the way a kubelet would: its container's
//! exact `args` and `env`, as the image's user, chrooted into the image's filesystem, with the
//! in-cluster configuration (a real ServiceAccount token from the TokenRequest API at the standard
//! path, `KUBERNETES_SERVICE_HOST`/`PORT`). The only change is `--metrics-addr`, bound to
//! loopback, since the process shares the host's network. It must become ready, turn a SourceBuild
//! into a build Pod whose prepare step is this same image, and write the result to status.
//!
//! Ignored by default: the release build takes 15-25 minutes on 2 cores. Run it with
//! `cargo test --test operator_image -- --ignored --nocapture` (root, network to crates.io).

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use sourcebuild::api::Phase;
use support::app::image_command;
use support::kaniko::{KanikoOptions, run_kaniko_with};
use support::operator::{CHART_NAMESPACE, SERVICE_ACCOUNT, render_chart};
use support::registry::{Registry, free_port};
use support::sourcebuilds::{
    DIGEST, apply, manifest, mark_finished, mark_running, pods_of, wait_for_phase,
};
use support::tools::repo_root;
use support::{ControlPlane, control_plane, eventually};

use serde::Deserialize;

/// The stand-in base images, as `scripts/operator-image.sh` printed them.
struct Bases {
    rust: String,
    runtime: String,
}

fn push_bases(registry: &Registry) -> Bases {
    let output = std::process::Command::new(repo_root().join("scripts/operator-image.sh"))
        .arg(registry.host())
        .stdin(Stdio::null())
        .output()
        .expect("running scripts/operator-image.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "scripts/operator-image.sh failed:\n{}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let image = |name: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} line in operator-image.sh output:\n{stdout}"))
            .to_string()
    };
    Bases {
        rust: image("rust"),
        runtime: image("runtime"),
    }
}

/// The chart's Deployment, rendered for `image`.
fn chart_deployment(sets: &[&str]) -> (String, Deployment) {
    let rendered = render_chart(sets);
    let deployment = serde_norway::Deserializer::from_str(&rendered)
        .filter_map(|doc| {
            let value = serde_norway::Value::deserialize(doc).ok()?;
            (value.get("kind")?.as_str()? == "Deployment").then_some(value)
        })
        .next()
        .expect("the chart renders a Deployment");
    let deployment: Deployment = serde_norway::from_value(deployment).expect("a valid Deployment");
    (rendered, deployment)
}

/// Writes what the kubelet mounts for a ServiceAccount at the standard path inside `rootfs`.
fn mount_service_account(rootfs: &Path, token: &str, ca: &Path, uid: u32) {
    let dir = rootfs.join("var/run/secrets/kubernetes.io/serviceaccount");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token"), token).unwrap();
    std::fs::copy(ca, dir.join("ca.crt")).unwrap();
    std::fs::write(dir.join("namespace"), CHART_NAMESPACE).unwrap();
    for file in ["token", "ca.crt", "namespace"] {
        std::os::unix::fs::chown(dir.join(file), Some(uid), Some(uid)).unwrap();
    }
}

#[test]
#[ignore = "a release build of the operator inside Kaniko: 15-25 minutes on 2 cores"]
fn the_dockerfile_builds_an_image_that_runs_the_chart() {
    let registry = Registry::start();
    let bases = push_bases(&registry);
    let image = format!("{}/sourcebuild-operator:test", registry.host());

    // The Dockerfile as written, with the stand-in bases.
    let started = Instant::now();
    // This machine reaches crates.io through a TLS proxy whose CA only the host's bundle
    // holds: the RUN step sees the host's bundle (a mount, so in no layer of either stage).
    let build = run_kaniko_with(
        repo_root(),
        "/workspace/Dockerfile",
        &image,
        &[
            &format!("--build-arg=RUST_IMAGE={}", bases.rust),
            &format!("--build-arg=RUNTIME_IMAGE={}", bases.runtime),
        ],
        &KanikoOptions {
            host_files: &["/etc/ssl/certs/ca-certificates.crt"],
            // A release build with one codegen unit and LTO, on 2 shared cores.
            deadline: Duration::from_secs(75 * 60),
        },
    );
    eprintln!(
        "operator image built in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    let tail: String = build
        .log
        .lines()
        .rev()
        .take(60)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(build.exit_code, 0, "Kaniko failed:\n{tail}");
    let digest = registry.digest(&image);
    assert_eq!(
        build.digest_file_contents.as_deref().map(str::trim),
        Some(digest.as_str()),
        "the digest Kaniko reports is the one the registry serves"
    );
    let pinned = format!("{}/sourcebuild-operator@{digest}", registry.host());

    // What the Dockerfile promises about the image.
    let config = registry.config(&pinned);
    let c = &config["config"];
    assert_eq!(c["User"], "65532:65532", "{c}");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/sourcebuild"]), "{c}");
    assert_eq!(c["Cmd"], serde_json::json!(["--help"]), "{c}");
    let runtime_layers = registry.manifest(&bases.runtime)["layers"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        registry.manifest(&pinned)["layers"]
            .as_array()
            .unwrap()
            .len(),
        runtime_layers + 1,
        "the runtime base plus one layer holding the binary"
    );
    let rootfs = tempfile::tempdir().unwrap();
    registry.export(&pinned, rootfs.path());
    let binary = std::fs::metadata(rootfs.path().join("sourcebuild")).unwrap();
    eprintln!("binary: {} bytes", binary.len());
    for absent in [
        "bin/sh",
        "usr/bin/sh",
        "usr/bin/apt-get",
        "usr/local/rust",
        "src",
    ] {
        assert!(
            !rootfs.path().join(absent).exists(),
            "/{absent} must not be in the runtime image"
        );
    }

    // The image's default command, as its own user inside its own filesystem.
    let help = image_command(rootfs.path(), &config, &[])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let help_text = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.status.success() && help_text.contains("controller") && help_text.contains("prepare"),
        "`sourcebuild --help` in the image: {help:?}"
    );

    let Some(cp) = control_plane() else { return };
    tokio::runtime::Runtime::new().unwrap().block_on(run_chart(
        cp,
        &registry,
        &digest,
        rootfs.path(),
        &config,
    ));
}

/// Runs the chart's Deployment with the image (exported to `rootfs`) and one build through it.
async fn run_chart(
    cp: &ControlPlane,
    registry: &Registry,
    digest: &str,
    rootfs: &Path,
    config: &serde_json::Value,
) {
    let repository = format!("{}/sourcebuild-operator", registry.host());
    // The chart keeps the tag beside the digest for readability; the digest decides the pull.
    let pinned = format!("{repository}:test@{digest}");
    let sets = [
        format!("image.repository={repository}"),
        "image.tag=test".to_string(),
        format!("image.digest={digest}"),
    ];
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    support::operator::install_chart(cp, &sets);
    let (_, deployment) = chart_deployment(&sets);
    let container = deployment.spec.unwrap().template.spec.unwrap().containers[0].clone();
    assert_eq!(container.image.as_deref(), Some(pinned.as_str()));

    // The Deployment's container, as the kubelet would run it.
    let metrics = format!("127.0.0.1:{}", free_port());
    let args: Vec<String> = container
        .args
        .unwrap_or_default()
        .into_iter()
        .map(|arg| match arg.strip_prefix("--metrics-addr=") {
            // The Pod would have a network namespace of its own; here only loopback may listen.
            Some(_) => format!("--metrics-addr={metrics}"),
            None => arg,
        })
        .collect();
    let token = {
        let out = cp
            .kubectl()
            .args(["create", "token", SERVICE_ACCOUNT, "-n", CHART_NAMESPACE])
            .output()
            .unwrap();
        assert!(out.status.success(), "kubectl create token: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    mount_service_account(rootfs, &token, &cp.dir.join("pki/ca.crt"), 65532);
    let server = url_host_port(&cp.server);
    let pod_name = "sb-sourcebuild-operator-6f7d9c-x2k4p";
    let log_path = rootfs.with_extension("operator.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut command = image_command(rootfs, config, &args);
    for env in container.env.unwrap_or_default() {
        let value = match (env.value, env.value_from) {
            (Some(value), _) => value,
            (None, Some(from)) => match from.field_ref.map(|f| f.field_path).as_deref() {
                Some("metadata.name") => pod_name.to_string(),
                Some("metadata.namespace") => CHART_NAMESPACE.to_string(),
                other => panic!("env {} from {other:?}: not played here", env.name),
            },
            (None, None) => String::new(),
        };
        command.env(&env.name, value);
    }
    let mut operator = command
        .env("KUBERNETES_SERVICE_HOST", &server.0)
        .env("KUBERNETES_SERVICE_PORT", server.1.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start the operator from the image");
    let operator_log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    // Ready means both caches listed through the API server with the token: in-cluster
    // configuration, RBAC and TLS all work from inside the image.
    let deadline = Instant::now() + Duration::from_secs(60);
    let readyz = format!("http://{metrics}/readyz");
    loop {
        if let Some(status) = operator.try_wait().unwrap() {
            panic!(
                "the operator from the image exited ({status}):\n{}",
                operator_log()
            );
        }
        if reqwest::get(&readyz)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the operator from the image is not ready after 60 s:\n{}",
            operator_log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A SourceBuild becomes a build Pod whose prepare step is this very image, and the Pod's end
    // becomes status.
    let client = cp.client().await;
    let ns = cp.namespace("opimage").await;
    apply(cp, &ns, &manifest("app", ""));
    let pod = eventually("the build Pod", Duration::from_secs(60), || async {
        pods_of(&client, &ns, "app").await.into_iter().next()
    })
    .await;
    let pod_name = pod.metadata.name.clone().unwrap();
    let init = &pod.spec.as_ref().unwrap().init_containers.as_ref().unwrap()[0];
    assert_eq!(init.image.as_deref(), Some(pinned.as_str()));
    mark_running(&client, &ns, &pod_name).await;
    mark_finished(&client, &ns, &pod_name, 0, DIGEST).await;
    let sb = wait_for_phase(&client, &ns, "app", Phase::Succeeded).await;
    let status = sb.status.unwrap();
    assert!(
        status.digest.as_deref() == Some(DIGEST)
            && status
                .latest_image
                .as_deref()
                .is_some_and(|i| i.ends_with(DIGEST)),
        "{status:?}\noperator log:\n{}",
        operator_log()
    );
    let _ = operator.kill();
}

/// `https://127.0.0.1:PORT` -> ("127.0.0.1", PORT).
fn url_host_port(url: &str) -> (String, u16) {
    let rest = url.strip_prefix("https://").expect("an https server URL");
    let (host, port) = rest.rsplit_once(':').expect("a port in the server URL");
    (
        host.to_string(),
        port.trim_end_matches('/').parse().unwrap(),
    )
}
