//! The local cluster of `scripts/cluster.sh` (a real node: kubelet, containerd, runc), for the
//! tests of `tests/node.rs`, which run inside the cluster's namespaces
//! (`scripts/cluster.sh exec`, as `scripts/test.sh node` does).
//!
//! `up` has installed the chart: the operator runs as the Deployment
//! `sourcebuild-system/sourcebuild-sourcebuild-operator`, from an image of this checkout's
//! binary, with the Kaniko and both S2I builder images in the cluster's registry; the
//! references are in the `SOURCEBUILD_CLUSTER_*` variables `exec` sets. Servers a build Pod
//! must reach listen on the bridge address (`HttpServer` does so by itself inside the cluster).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::Api;

use super::control_plane::{client_from_kubeconfig, eventually, fresh_namespace, repo_root};

pub const OPERATOR_NAMESPACE: &str = "sourcebuild-system";
pub const OPERATOR_RELEASE: &str = "sourcebuild";
pub const OPERATOR_DEPLOYMENT: &str = "sourcebuild-sourcebuild-operator";

/// The cluster as `scripts/cluster.sh exec` describes it.
pub struct Node {
    /// The run directory (`pki/`, `logs/`, `pids/`, ...).
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    /// `10.88.0.1:5000`, plain HTTP.
    pub registry: String,
    /// The pod bridge's address: where servers for build Pods listen.
    pub bridge_ip: String,
    pub node_name: String,
    pub operator_image: String,
    pub kaniko_image: String,
    /// The sclorg-style builder (the chart's default builder image).
    pub sclorg: String,
    /// The Daeploy-style builder.
    pub daeploy: String,
    pub crane: PathBuf,
    pub helm: PathBuf,
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: the node tests run inside the local cluster \
             (scripts/cluster.sh up, then scripts/cluster.sh exec <test binary>, \
             or scripts/test.sh node)"
        )
    })
}

fn tool(name: &str) -> PathBuf {
    let out = Command::new(repo_root().join("scripts/tools.sh"))
        .arg(name)
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/tools.sh");
    assert!(out.status.success(), "scripts/tools.sh {name} failed");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// The cluster this test binary runs in; panics, saying how to run the tests, outside one.
pub fn node() -> &'static Node {
    static NODE: OnceLock<Node> = OnceLock::new();
    NODE.get_or_init(|| {
        let dir = PathBuf::from(var("SOURCEBUILD_CLUSTER_DIR"));
        Node {
            kubeconfig: PathBuf::from(var("KUBECONFIG")),
            registry: var("SOURCEBUILD_CLUSTER_REGISTRY"),
            bridge_ip: var("SOURCEBUILD_CLUSTER_BRIDGE_IP"),
            node_name: var("SOURCEBUILD_CLUSTER_NODE"),
            operator_image: var("SOURCEBUILD_CLUSTER_OPERATOR_IMAGE"),
            kaniko_image: var("SOURCEBUILD_CLUSTER_KANIKO_IMAGE"),
            sclorg: var("SOURCEBUILD_CLUSTER_BUILDER_SCLORG"),
            daeploy: var("SOURCEBUILD_CLUSTER_BUILDER_DAEPLOY"),
            crane: tool("crane"),
            helm: tool("helm"),
            dir,
        }
    })
}

impl Node {
    /// A new admin client (`system:masters`), bound to the calling tokio runtime.
    pub async fn client(&self) -> Client {
        client_from_kubeconfig(&self.kubeconfig)
            .await
            .expect("admin client of the local cluster")
    }

    /// `kubectl` (on PATH inside the cluster) as the admin.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig").arg(&self.kubeconfig);
        cmd
    }

    /// Runs kubectl with `args` (and `stdin`); its stdout, or a panic with its stderr.
    pub fn kubectl_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl_output(args, stdin);
        assert!(
            out.status.success(),
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn kubectl_output(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        let mut child = self
            .kubectl()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
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
    pub fn apply(&self, ns: &str, manifest: &str) {
        self.kubectl_ok(&["apply", "-n", ns, "-f", "-"], Some(manifest));
    }

    /// A fresh namespace `<prefix>-<random>`, returned once its `default` ServiceAccount exists.
    pub async fn namespace(&self, prefix: &str) -> String {
        fresh_namespace(self.client().await, prefix).await
    }

    /// crane against the cluster's registry; its stdout, or a panic with its stderr.
    pub fn crane(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new(&self.crane)
            .arg("--insecure")
            .args(args)
            .output()
            .expect("run crane");
        assert!(
            out.status.success(),
            "crane {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Whether the registry serves `image` (a tag or digest reference).
    pub fn has_image(&self, image: &str) -> bool {
        Command::new(&self.crane)
            .args(["--insecure", "digest", image])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// The manifest digest the registry serves for `image`.
    pub fn digest(&self, image: &str) -> String {
        String::from_utf8(self.crane(&["digest", image]))
            .unwrap()
            .trim()
            .to_string()
    }

    /// The image's config JSON.
    pub fn config(&self, image: &str) -> serde_json::Value {
        serde_json::from_slice(&self.crane(&["config", image])).expect("config JSON")
    }

    /// A container's log as the kubelet kept it (`kubectl logs`).
    pub fn logs(&self, ns: &str, pod: &str, container: &str) -> String {
        let out = self.kubectl_output(&["logs", "-n", ns, pod, "-c", container], None);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Both build containers' logs, prepare then build, for a failure message.
    pub fn build_log(&self, ns: &str, pod: &str) -> String {
        format!(
            "--- prepare\n{}--- build\n{}",
            self.logs(ns, pod, "prepare"),
            self.logs(ns, pod, "build")
        )
    }

    /// Every operator Pod's log, each line prefixed with its Pod.
    pub fn operator_log(&self) -> String {
        let out = self.kubectl_output(
            &[
                "logs",
                "-n",
                OPERATOR_NAMESPACE,
                "-l",
                "app.kubernetes.io/name=sourcebuild-operator",
                "--prefix",
                "--tail=-1",
                "--max-log-requests=10",
            ],
            None,
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `helm` as the admin, with its caches in the run directory.
    pub fn helm(&self) -> Command {
        let mut cmd = Command::new(&self.helm);
        cmd.arg("--kubeconfig").arg(&self.kubeconfig);
        cmd
    }

    /// `scripts/cluster.sh ARGS` (it knows it runs inside): stop and start node daemons.
    pub fn cluster_sh(&self, args: &[&str]) {
        let status = Command::new(repo_root().join("scripts/cluster.sh"))
            .args(args)
            .status()
            .expect("run scripts/cluster.sh");
        assert!(
            status.success(),
            "scripts/cluster.sh {} failed",
            args.join(" ")
        );
    }

    /// Host processes (as this PID namespace sees them) whose command line starts with
    /// `prefix`: (pid, command line with spaces).
    pub fn processes(&self, prefix: &str) -> Vec<(u32, String)> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let line = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if line.starts_with(prefix) {
                found.push((pid, line.trim_end().to_string()));
            }
        }
        found
    }

    /// Waits for Pod `ns/name` and returns it once `ready` says so.
    pub async fn wait_pod(
        &self,
        client: &Client,
        ns: &str,
        name: &str,
        what: &str,
        timeout: Duration,
        ready: impl Fn(&Pod) -> bool,
    ) -> Pod {
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        eventually(&format!("Pod {ns}/{name}: {what}"), timeout, || async {
            let pod = pods.get_opt(name).await.ok()??;
            ready(&pod).then_some(pod)
        })
        .await
    }
}

/// The phase of a Pod, or "".
pub fn pod_phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Whether the Pod's Kaniko step is running (an init container: the Pod is still Pending).
pub fn kaniko_running(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.init_container_statuses.as_ref())
        .into_iter()
        .flatten()
        .any(|c| {
            c.name == sourcebuild::pod::BUILD_CONTAINER
                && c.state.as_ref().is_some_and(|s| s.running.is_some())
        })
}
