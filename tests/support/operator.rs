//! The operator binary as a separate process, running with the chart's ServiceAccount identity
//! against the test control plane, so a missing RBAC rule fails the tests.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use super::control_plane::{ControlPlane, repo_root};
use super::tools::tool;

/// Namespace and release the chart is installed with in the tests.
pub const CHART_NAMESPACE: &str = "sourcebuild-system";
/// `helm template` release name; the chart names its ServiceAccount `<release>-sourcebuild-operator`.
pub const RELEASE: &str = "sb";
/// The chart's ServiceAccount, which the operator runs as.
pub const SERVICE_ACCOUNT: &str = "sb-sourcebuild-operator";

/// Renders the chart with `helm template` (extra `--set` values allowed) and applies every object
/// with kubectl, as an operator install would.
pub fn install_chart(cp: &ControlPlane, sets: &[&str]) -> String {
    install_chart_release(cp, RELEASE, sets)
}

/// The chart rendered with `helm template` (release [`RELEASE`], namespace [`CHART_NAMESPACE`],
/// CRDs included), not applied.
pub fn render_chart(sets: &[&str]) -> String {
    render_chart_release(RELEASE, sets)
}

fn render_chart_release(release: &str, sets: &[&str]) -> String {
    let helm = tool("helm");
    let mut cmd = Command::new(helm);
    cmd.args(["template", release])
        .arg(repo_root().join("charts/sourcebuild-operator"))
        .args(["--namespace", CHART_NAMESPACE, "--include-crds"]);
    for set in sets {
        cmd.args(["--set", set]);
    }
    let rendered = cmd.output().expect("run helm");
    assert!(
        rendered.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    String::from_utf8(rendered.stdout).unwrap()
}

/// [`install_chart`] under another release name: its objects, ServiceAccount included, are
/// named `<release>-sourcebuild-operator`, so its RBAC does not mix with the default release's.
pub fn install_chart_release(cp: &ControlPlane, release: &str, sets: &[&str]) -> String {
    let manifests = render_chart_release(release, sets);
    let ns = cp
        .kubectl()
        .args(["create", "namespace", CHART_NAMESPACE])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&ns.stderr);
    assert!(
        ns.status.success() || stderr.contains("AlreadyExists"),
        "create namespace: {stderr}"
    );
    let mut apply = cp
        .kubectl()
        .args(["apply", "--server-side", "--force-conflicts", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    apply
        .stdin
        .take()
        .unwrap()
        .write_all(manifests.as_bytes())
        .unwrap();
    let out = apply.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kubectl apply of the chart: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    manifests
}

/// The tests' `--log-level`: every reconcile's decisions, for a post-mortem.
const DEBUG: &str = "info,sourcebuild=debug";

/// The `sourcebuild controller` process. Restartable; killed on drop.
pub struct Operator {
    kubeconfig: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Mutex<Option<Child>>,
    /// Whether the process dies with the thread that (re)started it (PR_SET_PDEATHSIG).
    tied: bool,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub metrics_addr: String,
    /// `--log-level`: debug for the tests' post-mortems, info for a benchmark (as deployed).
    log_level: String,
}

impl Operator {
    /// Starts the operator as the chart's ServiceAccount, with `args` after `controller`.
    pub fn start(cp: &ControlPlane, args: &[&str], log_dir: &Path) -> Operator {
        Self::start_with(cp, args, log_dir, false)
    }

    /// Like [`Operator::start`], but the process also dies (SIGKILL) when the calling thread
    /// ends: for an operator kept in a static, started from a thread that lives as long as the
    /// test binary, so that it cannot outlive it.
    pub fn start_tied_to_thread(cp: &ControlPlane, args: &[&str], log_dir: &Path) -> Operator {
        Self::start_with(cp, args, log_dir, true)
    }

    /// Like [`Operator::start`], as another ServiceAccount of [`CHART_NAMESPACE`] (the one of a
    /// release installed with [`install_chart_release`]).
    pub fn start_as(
        cp: &ControlPlane,
        service_account: &str,
        args: &[&str],
        log_dir: &Path,
    ) -> Operator {
        Self::start_with_account(cp, service_account, args, log_dir, false, DEBUG)
    }

    /// Like [`Operator::start`], but the operator reaches the API server at `server` (a proxy
    /// in front of it, see `proxy.rs`).
    pub fn start_at(cp: &ControlPlane, server: &str, args: &[&str], log_dir: &Path) -> Operator {
        Self::start_with_account_at(cp, server, SERVICE_ACCOUNT, args, log_dir, false, DEBUG)
    }

    fn start_with(cp: &ControlPlane, args: &[&str], log_dir: &Path, tied: bool) -> Operator {
        Self::start_with_account(cp, SERVICE_ACCOUNT, args, log_dir, tied, DEBUG)
    }

    /// Like [`Operator::start`], logging at `info` as the chart deploys it (debug logging of
    /// every reconcile would be part of what a benchmark measures), or at
    /// `SOURCEBUILD_BENCH_LOG_LEVEL` to look into a run.
    pub fn start_for_benchmark(cp: &ControlPlane, args: &[&str], log_dir: &Path) -> Operator {
        let level = std::env::var("SOURCEBUILD_BENCH_LOG_LEVEL").unwrap_or_else(|_| "info".into());
        Self::start_with_account(cp, SERVICE_ACCOUNT, args, log_dir, false, &level)
    }

    fn start_with_account(
        cp: &ControlPlane,
        service_account: &str,
        args: &[&str],
        log_dir: &Path,
        tied: bool,
        log_level: &str,
    ) -> Operator {
        Self::start_with_account_at(
            cp,
            &cp.server,
            service_account,
            args,
            log_dir,
            tied,
            log_level,
        )
    }

    fn start_with_account_at(
        cp: &ControlPlane,
        server: &str,
        service_account: &str,
        args: &[&str],
        log_dir: &Path,
        tied: bool,
        log_level: &str,
    ) -> Operator {
        let kubeconfig = cp.kubeconfig_for_at(
            server,
            &format!("system:serviceaccount:{CHART_NAMESPACE}:{service_account}"),
            &[
                "system:serviceaccounts",
                &format!("system:serviceaccounts:{CHART_NAMESPACE}"),
            ],
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let operator = Operator {
            kubeconfig,
            args: args.iter().map(|a| a.to_string()).collect(),
            log: log_dir.join("operator.log"),
            child: Mutex::new(None),
            tied,
            metrics_addr: format!("127.0.0.1:{port}"),
            log_level: log_level.to_string(),
        };
        operator.spawn();
        operator
    }

    fn spawn(&self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_sourcebuild"));
        if self.tied {
            super::tools::kill_with_parent(&mut command);
        }
        let child = command
            .arg("controller")
            .args(&self.args)
            .args([
                "--metrics-addr",
                &self.metrics_addr,
                "--log-format",
                "json",
                "--log-level",
                &self.log_level,
            ])
            .args([
                "--kaniko-image",
                "kaniko:test",
                "--prepare-image",
                "sourcebuild-operator:test",
            ])
            .env("KUBECONFIG", &self.kubeconfig)
            .env_remove("SOURCEBUILD_NAMESPACE")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start the operator");
        // A shared operator lives in a static that is never dropped.
        super::control_plane::process::kill_at_exit(child.id());
        *self.child.lock().unwrap() = Some(child);
    }

    /// SIGKILLs the operator (no graceful shutdown) and starts a new one.
    pub fn kill_and_restart(&self) {
        self.kill();
        self.spawn();
    }

    /// Starts the operator again if it is not running (killed, or exited on its own, as a
    /// replica that lost its Lease does). True when it had to.
    pub fn ensure_running(&self) -> bool {
        let mut child = self.child.lock().unwrap();
        let running = child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
        if running {
            return false;
        }
        if let Some(mut dead) = child.take() {
            let _ = dead.wait();
        }
        drop(child);
        self.spawn();
        true
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.lock().unwrap().as_ref().map(Child::id)
    }

    /// SIGKILLs the operator.
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERMs the operator (graceful shutdown) and waits for it to exit; `None` when it was
    /// not running or did not exit within `timeout` (then it is SIGKILLed).
    pub fn terminate(&self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.lock().unwrap().take()?;
        let pid = libc::pid_t::try_from(child.id()).ok()?;
        // SAFETY: signalling a child process we spawned and have not reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// The `X509SHA256=<hex>` credential id the API server records (in its audit log, as the
    /// user's `authentication.kubernetes.io/credential-id`) for this process's client
    /// certificate: it tells the operator's requests apart from a test's client with the same
    /// ServiceAccount identity.
    pub fn credential_id(&self) -> String {
        use base64::Engine;
        use sha2::Digest;
        let pem = std::fs::read_to_string(self.kubeconfig.with_file_name("client.crt")).unwrap();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .expect("the client certificate's PEM");
        format!("X509SHA256={}", hex::encode(sha2::Sha256::digest(der)))
    }

    /// The operator's log so far (JSON lines).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GETs a path of the metrics server; `None` while it is not listening.
    pub fn http_get(&self, path: &str) -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&self.metrics_addr).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let code = response.split_whitespace().nth(1)?.parse().ok()?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Some((code, body))
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}
