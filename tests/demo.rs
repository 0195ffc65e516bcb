//! `scripts/demo.sh`: the whole thing on one machine, for a person to watch. Not a check (it is
//! `#[ignore]`d and waits for Ctrl-C): a local control plane, registry, S2I builder image,
//! the operator and the pod runner standing in for a node, then `examples/configmap-app.yaml`
//! built for real and its image served.

mod support;

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use kube::api::Api;
use sourcebuild::api::{Phase, SourceBuild};
use support::app::serve_image_once_on;
use support::build_env::BuildEnv;
use support::{control_plane, eventually, repo_root};

const NAME: &str = "hello-configmap";
const EXAMPLE_OUTPUT: &str = "registry.example.com/team/hello:1.0";
/// The port the example app listens on.
const EXAMPLE_PORT: u16 = 8080;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "interactive: run through scripts/demo.sh"]
async fn demo() {
    let Some(cp) = control_plane() else { return };
    say("starting the local registry, the builder images, the operator and the pod runner");
    let env = tokio::task::block_in_place(|| BuildEnv::start(cp));
    let registry = env.registry.host();
    let output = format!("{registry}/team/hello:1.0");

    // The example as published, with its output image pointed at the local registry, and the
    // push Secret it names (no credentials: the local registry takes anonymous pushes).
    let example = std::fs::read_to_string(repo_root().join("examples/configmap-app.yaml"))
        .unwrap()
        .replace(EXAMPLE_OUTPUT, &output);
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: registry-push\n\
                  type: kubernetes.io/dockerconfigjson\n\
                  stringData:\n  .dockerconfigjson: '{\"auths\": {}}'\n";
    kubectl_apply(cp, &format!("{secret}---\n{example}"));

    say(&format!(
        "kubectl apply -f examples/configmap-app.yaml (output image {output}); watching it:"
    ));
    let mut watch = cp
        .kubectl()
        .args(["get", "sourcebuild", NAME, "-w"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let api: Api<SourceBuild> = Api::namespaced(cp.client().await, "default");
    let sb = eventually(
        "the example build to end",
        Duration::from_secs(30 * 60),
        || async {
            let sb = api.get(NAME).await.ok()?;
            matches!(
                sb.status.as_ref()?.phase,
                Some(Phase::Succeeded | Phase::Failed)
            )
            .then_some(sb)
        },
    )
    .await;
    // Let the watch print the last line before it goes.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = watch.kill();
    let _ = watch.wait();

    let status = sb.status.unwrap();
    let crane = env.registry.crane_path().display().to_string();
    if status.phase != Some(Phase::Succeeded) {
        let condition = status.condition("Succeeded");
        say(&format!(
            "the build failed: {}: {}\n{}",
            condition.map_or("", |c| c.reason.as_str()),
            condition.map_or("", |c| c.message.as_str()),
            status.log_snippet.as_deref().unwrap_or_default()
        ));
    } else {
        let digest = status.digest.unwrap_or_default();
        say(&format!(
            "built and pushed {}\n  the registry serves: {}",
            status.latest_image.unwrap_or_default(),
            env.registry.digest(&output)
        ));
        // The example's app.py listens on 8080 whatever PORT says.
        if std::net::TcpListener::bind(("127.0.0.1", EXAMPLE_PORT)).is_ok() {
            let rootfs = env.logs.join("hello-rootfs");
            let answer = tokio::task::block_in_place(|| {
                serve_image_once_on(&env.registry, &output, &rootfs, EXAMPLE_PORT)
            });
            say(&format!(
                "the image's command, started in a chroot of its filesystem, answers: {answer}"
            ));
        } else {
            say(&format!(
                "port {EXAMPLE_PORT} is taken: not starting the image's app"
            ));
        }
        say(&format!(
            "pull it while this runs:\n  {crane} --insecure pull {registry}/team/hello@{digest} hello.tar"
        ));
    }
    say(&format!(
        "the cluster is yours while this runs:\n  export KUBECONFIG={}\n  {} get sb,pods\n\
         logs: {} (operator.log, pods/<namespace>/<pod>/)\nCtrl-C stops everything.",
        cp.admin_kubeconfig.display(),
        cp.binaries.kubectl.display(),
        env.logs.display()
    ));
    tokio::signal::ctrl_c().await.unwrap();
    say("stopping");
}

fn say(text: &str) {
    eprintln!("\n==> {text}");
}

fn kubectl_apply(cp: &support::ControlPlane, manifest: &str) {
    let mut child = cp
        .kubectl()
        .args(["apply", "-n", "default", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(manifest.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
