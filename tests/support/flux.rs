//! Flux's source-controller and kustomize-controller (`tools/flux`), built from their modules and
//! run on loopback against the test control plane as an admin, with the CRDs of the same module
//! versions. Both die with the thread that started them, and on drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::control_plane::ControlPlane;
use super::tools::{kill_with_parent, repo_root, tool};

/// The two controllers, running.
pub struct Flux {
    children: Vec<Child>,
    /// Where `source-controller.log` and `kustomize-controller.log` are.
    pub logs: PathBuf,
}

/// The version `tools/flux/go.mod` pins for `module`.
fn pinned(module: &str) -> String {
    let go_mod = std::fs::read_to_string(repo_root().join("tools/flux/go.mod")).unwrap();
    go_mod
        .lines()
        .find_map(|l| {
            // `module vX.Y.Z` in the require block (the tool block names it without a version).
            let mut words = l.split_whitespace();
            let version = words.next().filter(|w| *w == module).and(words.next())?;
            version.starts_with('v').then(|| version.to_string())
        })
        .unwrap_or_else(|| panic!("tools/flux/go.mod does not require {module}"))
}

/// The module's directory in the Go module cache `scripts/tools.sh` fills.
fn module_dir(module: &str) -> PathBuf {
    let cache = std::env::var_os("SOURCEBUILD_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/sourcebuild-operator")
        });
    cache
        .join("go/mod")
        .join(format!("{module}@{}", pinned(module)))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Flux {
    /// Installs the CRDs and starts both controllers, logging under `logs`.
    pub fn start(cp: &ControlPlane, logs: &Path) -> Flux {
        let bin = tool("flux");
        for module in [
            "github.com/fluxcd/source-controller",
            "github.com/fluxcd/kustomize-controller",
        ] {
            let crds = module_dir(module).join("config/crd/bases");
            let out = cp
                .kubectl()
                .args(["apply", "--server-side", "-f"])
                .arg(&crds)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "installing {}: {}",
                crds.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let out = cp
            .kubectl()
            .args([
                "wait",
                "--for=condition=Established",
                "crd/gitrepositories.source.toolkit.fluxcd.io",
                "crd/kustomizations.kustomize.toolkit.fluxcd.io",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let kubeconfig = cp.kubeconfig_for("flux", &["system:masters"]);
        std::fs::create_dir_all(logs).unwrap();
        let storage = logs.join("artifacts");
        std::fs::create_dir_all(&storage).unwrap();
        let storage_addr = format!("127.0.0.1:{}", free_port());
        let mut flux = Flux {
            children: Vec::new(),
            logs: logs.to_path_buf(),
        };
        let source_args = [
            format!("--storage-path={}", storage.display()),
            format!("--storage-addr={storage_addr}"),
            format!("--storage-adv-addr={storage_addr}"),
        ];
        flux.spawn(&bin, "source-controller", &kubeconfig, &source_args);
        let kustomize_args = ["--no-remote-bases=true".to_string()];
        flux.spawn(&bin, "kustomize-controller", &kubeconfig, &kustomize_args);
        flux
    }

    fn spawn(&mut self, bin: &Path, name: &str, kubeconfig: &Path, args: &[String]) {
        let log = std::fs::File::create(self.logs.join(format!("{name}.log"))).unwrap();
        let mut command = Command::new(bin.join(name));
        kill_with_parent(&mut command);
        let child = command
            // Every address on loopback: their defaults listen on all interfaces.
            .arg(format!("--metrics-addr=127.0.0.1:{}", free_port()))
            .arg(format!("--health-addr=127.0.0.1:{}", free_port()))
            .args(["--enable-leader-election=false", "--log-level=debug"])
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            // Flux reads its own namespace from here (for events and leader election).
            .env("RUNTIME_NAMESPACE", "flux-system")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        self.children.push(child);
    }

    /// The tail of a controller's log, for a failure message.
    pub fn log_tail(&self, name: &str) -> String {
        let text =
            std::fs::read_to_string(self.logs.join(format!("{name}.log"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Flux {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
