//! A real Kubernetes control plane for integration tests and benchmarks ("envtest" in Rust).
//!
//! etcd, kube-apiserver and kube-controller-manager run as child processes on 127.0.0.1 (random
//! free ports), from binaries built by `scripts/tools.sh kubernetes` / `scripts/tools.sh etcd`
//! (pinned Go tools modules under `tools/`) or named by `SOURCEBUILD_ETCD`,
//! `SOURCEBUILD_KUBE_APISERVER`, `SOURCEBUILD_KUBE_CONTROLLER_MANAGER`, `SOURCEBUILD_KUBECTL`.
//!
//! One control plane per test binary, started on first use by [`control_plane`] and shared by
//! all its tests; each test takes a fresh namespace with [`ControlPlane::namespace`]. A
//! `kube::Client` is bound to the tokio runtime it was made in and `#[tokio::test]` makes one
//! runtime per test, so the harness hands out a new client per call ([`ControlPlane::client`]),
//! never a shared one.
//!
//! ```ignore
//! mod support;
//!
//! #[tokio::test]
//! async fn something_against_a_real_api_server() {
//!     let Some(cp) = support::control_plane() else { return }; // None only when skipping
//!     let admin = cp.client().await; // system:masters
//!     cp.install_crds(&admin).await; // crds/*.yaml, server-side apply, Established
//!     let ns = cp.namespace("something").await; // fresh, its default ServiceAccount exists
//!     // Exactly what RBAC grants ServiceAccount ns/sourcebuild-operator, and APF limits apply.
//!     let operator = cp.client_for_service_account(&ns, "sourcebuild-operator").await;
//! }
//! ```
//!
//! Tear-down: see `control_plane/process.rs` (PR_SET_PDEATHSIG from a dedicated thread, kill on drop, and an
//! `atexit` hook that kills the children and removes the state directory). State (etcd data,
//! certificates, kubeconfigs, logs) lives in `/dev/shm/sourcebuild-cp-<pid>-<n>` (else the temp
//! directory); `SOURCEBUILD_KEEP_CONTROL_PLANE=1` keeps it for a post-mortem (with
//! `SOURCEBUILD_APISERVER_V=N` the API server logs at `--v=N`), and directories
//! left by a killed test binary are removed by the next start.
//!
//! Missing binaries that cannot be built make every test that asks for the control plane fail
//! with the reason; `SOURCEBUILD_SKIP_CONTROL_PLANE=1` makes them return early instead, after a
//! loud line on stderr (not captured by the test harness).
mod pki;
pub mod process;

use std::future::Future;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

pub use process::ProcessGroup;

pub const SKIP_ENV: &str = "SOURCEBUILD_SKIP_CONTROL_PLANE";
pub const KEEP_ENV: &str = "SOURCEBUILD_KEEP_CONTROL_PLANE";
/// kube-apiserver's `--v` (its log is kept with [`KEEP_ENV`]).
pub const APISERVER_V_ENV: &str = "SOURCEBUILD_APISERVER_V";
/// Field manager of everything the harness applies.
pub const FIELD_MANAGER: &str = "sourcebuild-tests";

const STARTUP_TIMEOUT: Duration = Duration::from_secs(180);

/// The repository root (where `scripts/` and `tools/` are).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Kubernetes version `tools/kubernetes/go.mod` pins (for example `v1.34.4`).
pub fn pinned_kubernetes_version() -> String {
    let path = repo_root().join("tools/kubernetes/go.mod");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let first = words.next()?;
            let (module, version) = if first == "require" {
                (words.next()?, words.next()?)
            } else {
                (first, words.next()?)
            };
            (module == "k8s.io/kubernetes" && version.starts_with('v')).then(|| version.to_string())
        })
        .next()
        .unwrap_or_else(|| panic!("{} does not require k8s.io/kubernetes", path.display()))
}

/// The shared control plane of this test binary, started on first call.
///
/// Panics with the reason when it cannot start (binaries missing and not buildable, a process
/// that exits, a deadline). Returns `None` only when `SOURCEBUILD_SKIP_CONTROL_PLANE=1`, after
/// printing a loud skip line: write tests as `let Some(cp) = support::control_plane() else { return };`.
pub fn control_plane() -> Option<&'static ControlPlane> {
    if skip_control_plane() {
        return None;
    }
    static SHARED: LazyLock<Result<ControlPlane, String>> = LazyLock::new(|| {
        let started = Instant::now();
        let cp = ControlPlane::start_shared();
        if let Ok(cp) = &cp {
            let _ = writeln!(
                std::io::stderr(),
                "support: control plane up at {} in {:.1}s (state in {})",
                cp.server,
                started.elapsed().as_secs_f64(),
                cp.dir.display()
            );
        }
        cp
    });
    match &*SHARED {
        Ok(cp) => Some(cp),
        Err(e) => panic!("the test control plane did not start:\n{e}"),
    }
}

/// True (after a loud line on stderr naming the test) when `SOURCEBUILD_SKIP_CONTROL_PLANE=1`.
/// For tests that start their own control plane with [`ControlPlane::start`].
pub fn skip_control_plane() -> bool {
    if std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") {
        let test = std::thread::current().name().unwrap_or("?").to_string();
        // Straight to stderr: libtest captures print!/eprint! of passing tests, not this.
        let _ = writeln!(
            std::io::stderr(),
            "\n!!!!!!!! SKIPPED {test}: {SKIP_ENV}=1, no control plane: this test checked NOTHING !!!!!!!!"
        );
        return true;
    }
    false
}

/// Paths of the four binaries.
#[derive(Clone, Debug)]
pub struct Binaries {
    pub etcd: PathBuf,
    pub kube_apiserver: PathBuf,
    pub kube_controller_manager: PathBuf,
    pub kubectl: PathBuf,
}

impl Binaries {
    /// From the `SOURCEBUILD_*` variables, else built (once, cached) by `scripts/tools.sh`.
    pub fn find() -> Result<Self, String> {
        let env = |var: &str| {
            std::env::var_os(var)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let etcd = match env("SOURCEBUILD_ETCD") {
            Some(p) => p,
            None => tools_sh("etcd")?,
        };
        let (apiserver, kcm, kubectl) = (
            env("SOURCEBUILD_KUBE_APISERVER"),
            env("SOURCEBUILD_KUBE_CONTROLLER_MANAGER"),
            env("SOURCEBUILD_KUBECTL"),
        );
        let bin_dir = if apiserver.is_none() || kcm.is_none() || kubectl.is_none() {
            Some(tools_sh("kubernetes")?)
        } else {
            None
        };
        let from_dir = |p: Option<PathBuf>, name: &str| {
            p.unwrap_or_else(|| bin_dir.as_ref().expect("built").join(name))
        };
        let b = Self {
            etcd,
            kube_apiserver: from_dir(apiserver, "kube-apiserver"),
            kube_controller_manager: from_dir(kcm, "kube-controller-manager"),
            kubectl: from_dir(kubectl, "kubectl"),
        };
        for p in [
            &b.etcd,
            &b.kube_apiserver,
            &b.kube_controller_manager,
            &b.kubectl,
        ] {
            if !p.is_file() {
                return Err(format!("{} is not a file", p.display()));
            }
        }
        Ok(b)
    }
}

/// `scripts/tools.sh TOOL`: builds the tool on first use (its progress goes to our stderr).
fn tools_sh(tool: &str) -> Result<PathBuf, String> {
    let script = repo_root().join("scripts/tools.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg(tool)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "`scripts/tools.sh {tool}` failed ({}); its output is above",
            out.status
        ));
    }
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok(PathBuf::from(path))
}

fn free_ports<const N: usize>() -> Result<[u16; N], String> {
    // Hold all listeners until every port is chosen, so the N ports differ.
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1:0: {e}")))
        .collect::<Result<_, _>>()?;
    let mut ports = [0u16; N];
    for (p, l) in ports.iter_mut().zip(&listeners) {
        *p = l.local_addr().map_err(|e| e.to_string())?.port();
    }
    Ok(ports)
}

/// Where state goes: `/dev/shm` (RAM: etcd is fast without fsync) when usable, else the temp dir.
/// Also removes directories left by earlier test binaries that no longer run.
fn state_dir() -> Result<PathBuf, String> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() && tempfile_probe(shm) {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    if let Ok(entries) = std::fs::read_dir(&base) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(rest) = name.strip_prefix("sourcebuild-cp-") else {
                continue;
            };
            let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let dir = base.join(format!(
        "sourcebuild-cp-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    Ok(dir)
}

fn tempfile_probe(dir: &Path) -> bool {
    let probe = dir.join(format!(".sourcebuild-probe-{}", std::process::id()));
    let ok = std::fs::write(&probe, b"").is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

fn write(path: &Path, contents: &str) -> Result<(), String> {
    std::fs::write(path, contents).map_err(|e| format!("write {}: {e}", path.display()))
}

/// A kubeconfig for `server` with a client certificate whose files are `<stem>.crt`/`<stem>.key`.
fn kubeconfig_yaml(server: &str, ca: &Path, cert: &Path, key: &Path) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: sourcebuild-test\n  cluster:\n    server: {server}\n    certificate-authority: {}\n\
         users:\n- name: user\n  user:\n    client-certificate: {}\n    client-key: {}\n\
         contexts:\n- name: sourcebuild-test\n  context:\n    cluster: sourcebuild-test\n    user: user\n\
         current-context: sourcebuild-test\n",
        ca.display(),
        cert.display(),
        key.display()
    )
}

/// A plain-HTTP GET on 127.0.0.1 (etcd's /health), without a client library.
fn http_get_local(port: u16, path: &str) -> Option<String> {
    let mut s =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

/// rustls is built with both the ring and aws-lc-rs providers in this crate graph (kube-client
/// enables ring, gix's reqwest enables aws-lc-rs), so rustls cannot pick one by itself and a
/// kube client panics unless a process-wide default is installed first. Ring is what kube
/// selects; a provider installed earlier by someone else stays.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Build a client from a kubeconfig file, in the current tokio runtime.
pub async fn client_from_kubeconfig(path: &Path) -> Result<Client, String> {
    install_crypto_provider();
    let kc = Kubeconfig::read_from(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?;
    Client::try_from(config).map_err(|e| format!("client from {}: {e}", path.display()))
}

/// Poll `check` every 100 ms until it returns `Some`, or panic after `timeout` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A running control plane. The shared one comes from [`control_plane`]; [`ControlPlane::start`]
/// makes one owned by the caller (for example a benchmark), torn down when dropped.
pub struct ControlPlane {
    /// State directory: `pki/`, `etcd/`, `*.log`, `admin.kubeconfig`, `identities/`.
    pub dir: PathBuf,
    /// `https://127.0.0.1:PORT`
    pub server: String,
    pub admin_kubeconfig: PathBuf,
    /// The API server's audit log (JSON lines): every request on Secrets and ConfigMaps and every
    /// Pod and SourceBuild creation, at Metadata level.
    pub audit_log: PathBuf,
    pub binaries: Binaries,
    ca: pki::Ca,
    identities: AtomicUsize,
    /// pids of etcd, kube-apiserver and kube-controller-manager as started (a
    /// [`ControlPlane::restart`] gives the restarted one a new pid).
    pub pids: Vec<u32>,
    /// etcd's client port (plain HTTP on 127.0.0.1).
    pub etcd_port: u16,
    /// The thread that spawned the children and owns them (see `process.rs`).
    owner: Option<Owner>,
}

/// The owning thread: it carries out restarts (children must be spawned by the thread that
/// owns them, see `process.rs`) until `commands` closes, then kills and reaps the children.
struct Owner {
    commands: std::sync::Mutex<std::sync::mpsc::Sender<Restart>>,
    thread: std::thread::JoinHandle<()>,
}

/// A request to the owning thread: restart one child, answer when it runs again.
struct Restart {
    component: Component,
    down_for: Duration,
    done: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// A control-plane process that [`ControlPlane::restart`] can crash and start again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    Etcd,
    KubeApiserver,
}

impl Component {
    /// The child's name in the process group (and its log file's stem).
    pub fn process_name(self) -> &'static str {
        match self {
            Component::Etcd => "etcd",
            Component::KubeApiserver => "kube-apiserver",
        }
    }
}

impl ControlPlane {
    /// Start a control plane owned by the caller (a benchmark, a test that needs its own):
    /// dropping it kills etcd, kube-apiserver and kube-controller-manager and removes its
    /// directory. Blocks until the API server is ready and the controller manager works.
    ///
    /// The children are spawned by a dedicated thread that lives until the drop, since
    /// PR_SET_PDEATHSIG follows the spawning thread; so it may be called from any thread,
    /// a tokio runtime's included.
    pub fn start() -> Result<Self, String> {
        let (tx, rx) = std::sync::mpsc::channel();
        let (commands, received) = std::sync::mpsc::channel::<Restart>();
        let thread = std::thread::Builder::new()
            .name("sourcebuild-control-plane".into())
            .spawn(move || {
                let mut group = ProcessGroup::default();
                let result = Self::start_with_retries(&mut group).map(|mut cp| {
                    cp.pids = group.pids();
                    cp
                });
                let ok = result.is_ok();
                let _ = tx.send(result);
                if ok {
                    // Ends when the ControlPlane (holding the sender) is dropped. The shared one
                    // never is: the atexit hook kills its children when the process exits.
                    for restart in received {
                        let result =
                            group.restart(restart.component.process_name(), restart.down_for);
                        let _ = restart.done.send(result);
                    }
                }
                drop(group);
            })
            .map_err(|e| format!("spawn the control-plane thread: {e}"))?;
        let mut cp = rx
            .recv()
            .map_err(|_| "the control-plane thread died while starting".to_string())??;
        cp.owner = Some(Owner {
            commands: std::sync::Mutex::new(commands),
            thread,
        });
        Ok(cp)
    }

    fn start_shared() -> Result<Self, String> {
        Self::start()
    }

    fn start_with_retries(group: &mut ProcessGroup) -> Result<Self, String> {
        let binaries = Binaries::find().map_err(|e| {
            format!(
                "control-plane binaries unavailable: {e}\n\
                 Set SOURCEBUILD_ETCD, SOURCEBUILD_KUBE_APISERVER, SOURCEBUILD_KUBE_CONTROLLER_MANAGER and \
                 SOURCEBUILD_KUBECTL to their paths, or let `scripts/tools.sh etcd` and \
                 `scripts/tools.sh kubernetes` build them (needs Go; the first kubernetes build takes \
                 tens of minutes on 2 cores). To skip these tests on purpose set {SKIP_ENV}=1."
            )
        })?;
        // A free port can be taken by someone else between our probe and the child's bind.
        let mut last = String::new();
        for _ in 0..3 {
            match Self::start_once(group, binaries.clone()) {
                Ok(cp) => return Ok(cp),
                Err(e) if e.contains("address already in use") => {
                    *group = ProcessGroup::default();
                    last = e;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    fn start_once(group: &mut ProcessGroup, binaries: Binaries) -> Result<Self, String> {
        let dir = state_dir()?;
        if std::env::var(KEEP_ENV).is_ok_and(|v| v == "1") {
            let _ = writeln!(
                std::io::stderr(),
                "support: keeping control plane state in {}",
                dir.display()
            );
        } else {
            process::remove_at_exit(&dir);
        }
        let pki_dir = dir.join("pki");
        std::fs::create_dir_all(&pki_dir).map_err(|e| e.to_string())?;
        let f = |name: &str| pki_dir.join(name);

        let ca = pki::Ca::new()?;
        write(&f("ca.crt"), ca.cert_pem())?;
        let serving = ca.serving_cert()?;
        write(&f("apiserver.crt"), &serving.cert)?;
        write(&f("apiserver.key"), &serving.key)?;
        let sa_key = pki::Ca::service_account_key()?;
        write(&f("sa.key"), &sa_key.key)?;
        write(&f("sa.pub"), &sa_key.cert)?;
        for (stem, user) in [
            ("admin", "sourcebuild-admin"),
            ("kcm", "system:kube-controller-manager"),
        ] {
            let c = ca.client_cert(user, &["system:masters"])?;
            write(&f(&format!("{stem}.crt")), &c.cert)?;
            write(&f(&format!("{stem}.key")), &c.key)?;
        }

        let [etcd_client, etcd_peer, apiserver_port, kcm_port] = free_ports::<4>()?;
        let server = format!("https://127.0.0.1:{apiserver_port}");
        let admin_kubeconfig = dir.join("admin.kubeconfig");
        write(
            &admin_kubeconfig,
            &kubeconfig_yaml(&server, &f("ca.crt"), &f("admin.crt"), &f("admin.key")),
        )?;
        let kcm_kubeconfig = dir.join("kcm.kubeconfig");
        write(
            &kcm_kubeconfig,
            &kubeconfig_yaml(&server, &f("ca.crt"), &f("kcm.crt"), &f("kcm.key")),
        )?;
        let deadline = Instant::now() + STARTUP_TIMEOUT;

        // etcd
        let etcd_url = format!("http://127.0.0.1:{etcd_client}");
        let peer_url = format!("http://127.0.0.1:{etcd_peer}");
        let args = vec![
            "--name=sourcebuild".to_string(),
            format!("--data-dir={}", dir.join("etcd").display()),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=sourcebuild={peer_url}"),
            "--unsafe-no-fsync=true".to_string(),
            "--log-level=warn".to_string(),
        ];
        group.spawn("etcd", &binaries.etcd, &args, &dir.join("etcd.log"))?;
        wait_sync(group, "etcd /health", deadline, || {
            http_get_local(etcd_client, "/health")
                .is_some_and(|b| b.contains("\"health\":\"true\""))
        })?;

        // An audit log of every request on Secrets and ConfigMaps, at Metadata level (who, which
        // verb, which object, the response code; never a body): tests/security.rs reads it to
        // prove that the operator never asked for a Secret, not even a refused request. Pod
        // creations are logged too, to show the operator's own requests are recorded under its
        // certificate, and with SourceBuild creations they give the benchmark the API server's
        // own (microsecond) times of create -> Pod. Nothing else, so it stays small.
        let audit_policy = dir.join("audit-policy.yaml");
        write(
            &audit_policy,
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n\
             - level: Metadata\n  resources:\n  - group: \"\"\n    resources: [secrets, configmaps]\n\
             - level: Metadata\n  verbs: [create]\n  resources:\n  - group: \"\"\n    resources: [pods]\n\
             - level: Metadata\n  verbs: [create]\n  resources:\n  - group: sourcebuild.dev\n    resources: [sourcebuilds]\n\
             - level: None\n",
        )?;
        let audit_log = dir.join("audit.log");

        // kube-apiserver, the way controller-runtime's envtest starts it, plus the controller
        // manager's needs (ServiceAccount admission stays on: the controller makes the accounts).
        // The default admission plugins stay on, PodSecurity included (enabled by default since
        // 1.25; nothing here disables it): namespaces labelled pod-security.kubernetes.io/enforce
        // are enforced, dry runs included.
        let p = |name: &str| f(name).display().to_string();
        let args = vec![
            format!("--etcd-servers={etcd_url}"),
            format!("--cert-dir={}", dir.join("apiserver-certs").display()),
            format!("--tls-cert-file={}", p("apiserver.crt")),
            format!("--tls-private-key-file={}", p("apiserver.key")),
            format!("--client-ca-file={}", p("ca.crt")),
            format!("--secure-port={apiserver_port}"),
            "--bind-address=127.0.0.1".to_string(),
            // Without a default route kube-apiserver exits with "no default routes found".
            "--advertise-address=127.0.0.1".to_string(),
            "--service-cluster-ip-range=10.0.0.0/24".to_string(),
            "--allow-privileged=true".to_string(),
            "--authorization-mode=Node,RBAC".to_string(),
            format!("--service-account-issuer={server}/"),
            format!("--service-account-key-file={}", p("sa.pub")),
            format!("--service-account-signing-key-file={}", p("sa.key")),
            format!("--audit-policy-file={}", audit_policy.display()),
            format!("--audit-log-path={}", audit_log.display()),
            // Written before the response is sent: a test reading the log after a request
            // finds it there.
            "--audit-log-mode=blocking".to_string(),
        ];
        // The API server's log level for a post-mortem: at 1 it names each watcher it closes
        // "due to unresponsiveness" (key and selectors), which the benchmark only counts.
        let mut args = args;
        if let Ok(level) = std::env::var(APISERVER_V_ENV) {
            let level: u8 = level
                .parse()
                .map_err(|e| format!("{APISERVER_V_ENV}={level}: {e}"))?;
            args.push(format!("--v={level}"));
        }
        group.spawn(
            "kube-apiserver",
            &binaries.kube_apiserver,
            &args,
            &dir.join("kube-apiserver.log"),
        )?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        let client = rt.block_on(client_from_kubeconfig(&admin_kubeconfig))?;
        wait_sync(group, "kube-apiserver /readyz", deadline, || {
            let req = http::Request::get("/readyz")
                .body(Vec::new())
                .expect("request");
            rt.block_on(client.request_text(req))
                .is_ok_and(|t| t.trim() == "ok")
        })?;

        // kube-controller-manager: garbage collection, ServiceAccounts and their tokens,
        // namespace deletion, and the workload controllers.
        let args = vec![
            format!("--kubeconfig={}", kcm_kubeconfig.display()),
            format!("--authentication-kubeconfig={}", kcm_kubeconfig.display()),
            format!("--authorization-kubeconfig={}", kcm_kubeconfig.display()),
            "--controllers=*".to_string(),
            format!("--service-account-private-key-file={}", p("sa.key")),
            format!("--root-ca-file={}", p("ca.crt")),
            "--leader-elect=false".to_string(),
            "--bind-address=127.0.0.1".to_string(),
            format!("--secure-port={kcm_port}"),
            format!("--cert-dir={}", dir.join("kcm-certs").display()),
            "--use-service-account-credentials=false".to_string(),
        ];
        group.spawn(
            "kube-controller-manager",
            &binaries.kube_controller_manager,
            &args,
            &dir.join("kube-controller-manager.log"),
        )?;
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
        wait_sync(
            group,
            "kube-controller-manager to create ServiceAccount default/default",
            deadline,
            || {
                rt.block_on(accounts.get_opt("default"))
                    .is_ok_and(|sa| sa.is_some())
            },
        )?;
        drop(client);
        drop(rt);

        Ok(Self {
            dir,
            server,
            admin_kubeconfig,
            audit_log,
            binaries,
            ca,
            identities: AtomicUsize::new(0),
            pids: Vec::new(),
            etcd_port: etcd_client,
            owner: None,
        })
    }

    /// A new admin client (`system:masters`), bound to the calling tokio runtime.
    pub async fn client(&self) -> Client {
        client_from_kubeconfig(&self.admin_kubeconfig)
            .await
            .expect("admin client")
    }

    /// Write a kubeconfig for `user` in `groups` (at most 2), authenticated by a client
    /// certificate from the cluster's client CA, and return its path.
    pub fn kubeconfig_for(&self, user: &str, groups: &[&str]) -> PathBuf {
        self.kubeconfig_for_at(&self.server, user, groups)
    }

    /// [`ControlPlane::kubeconfig_for`] with another server URL: the API server through a
    /// proxy (`https://127.0.0.1:PORT`; its serving certificate is for 127.0.0.1).
    pub fn kubeconfig_for_at(&self, server: &str, user: &str, groups: &[&str]) -> PathBuf {
        let n = self.identities.fetch_add(1, Ordering::SeqCst);
        let dir = self.dir.join("identities").join(n.to_string());
        std::fs::create_dir_all(&dir).expect("create identity dir");
        let c = self
            .ca
            .client_cert(user, groups)
            .expect("client certificate");
        write(&dir.join("client.crt"), &c.cert).expect("write cert");
        write(&dir.join("client.key"), &c.key).expect("write key");
        let path = dir.join("kubeconfig");
        let yaml = kubeconfig_yaml(
            server,
            &self.dir.join("pki/ca.crt"),
            &dir.join("client.crt"),
            &dir.join("client.key"),
        );
        write(&path, &yaml).expect("write kubeconfig");
        path
    }

    /// A client for an arbitrary user and groups (at most 2).
    pub async fn client_as(&self, user: &str, groups: &[&str]) -> Client {
        client_from_kubeconfig(&self.kubeconfig_for(user, groups))
            .await
            .expect("identity client")
    }

    /// A client that the API server sees exactly as ServiceAccount `namespace/name`
    /// (`system:serviceaccount:<ns>:<name>` in `system:serviceaccounts` and
    /// `system:serviceaccounts:<ns>`): RBAC bindings to the account apply, and API Priority and
    /// Fairness treats it as a workload, not as an exempt `system:masters` admin. The account
    /// object itself need not exist.
    pub async fn client_for_service_account(&self, namespace: &str, name: &str) -> Client {
        let groups = [
            "system:serviceaccounts".to_string(),
            format!("system:serviceaccounts:{namespace}"),
        ];
        self.client_as(
            &format!("system:serviceaccount:{namespace}:{name}"),
            &[&groups[0], &groups[1]],
        )
        .await
    }

    /// A fresh namespace `<prefix>-<random>`, returned once its `default` ServiceAccount exists
    /// (so Pods can be created in it right away).
    pub async fn namespace(&self, prefix: &str) -> String {
        fresh_namespace(self.client().await, prefix).await
    }

    /// Server-side apply every CRD in `crds/` and wait until each is Established.
    /// Returns their names. Idempotent: tests may call it concurrently.
    pub async fn install_crds(&self, client: &Client) -> Vec<String> {
        let api: Api<CustomResourceDefinition> = Api::all(client.clone());
        let mut names = Vec::new();
        let dir = repo_root().join("crds");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("read crds/")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read CRD file");
            for doc in serde_norway::Deserializer::from_str(&text) {
                let value =
                    <serde_json::Value as serde::Deserialize>::deserialize(doc).expect("CRD YAML");
                if value.is_null() {
                    continue;
                }
                let crd: CustomResourceDefinition =
                    serde_json::from_value(value).expect("a CustomResourceDefinition");
                let name = crd.metadata.name.clone().expect("CRD name");
                api.patch(
                    &name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&crd),
                )
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "apply CRD {name} ({}): {}",
                        file.display(),
                        shorten(&e.to_string(), 2000)
                    )
                });
                names.push(name);
            }
        }
        for name in &names {
            eventually(
                &format!("CRD {name} Established"),
                Duration::from_secs(30),
                || async {
                    let crd = api.get(name).await.ok()?;
                    let conds = crd.status?.conditions?;
                    conds
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                        .then_some(())
                },
            )
            .await;
        }
        names
    }

    /// Crashes `component` (SIGKILL), leaves it down for `down_for`, starts it again on the same
    /// ports with the same certificates and data directory, and returns once the API server
    /// answers `/readyz` again (its etcd check included). For fault tests on a control plane of
    /// their own ([`ControlPlane::start`]): every client of this control plane sees the outage.
    pub async fn restart(&self, component: Component, down_for: Duration) {
        let owner = self.owner.as_ref().expect("a started control plane");
        let (done, result) = tokio::sync::oneshot::channel();
        owner
            .commands
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(Restart {
                component,
                down_for,
                done,
            })
            .expect("the control-plane thread runs");
        result
            .await
            .expect("the control-plane thread answers")
            .unwrap_or_else(|e| panic!("restart {component:?}: {e}"));
        let client = self.client().await;
        eventually(
            &format!("kube-apiserver /readyz after restarting {component:?}"),
            STARTUP_TIMEOUT,
            || async {
                let req = http::Request::get("/readyz").body(Vec::new()).ok()?;
                let text = client.request_text(req).await.ok()?;
                (text.trim() == "ok").then_some(())
            },
        )
        .await;
    }

    /// `kubectl --kubeconfig <admin>`, ready for arguments.
    pub fn kubectl(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.binaries.kubectl);
        cmd.arg("--kubeconfig").arg(&self.admin_kubeconfig);
        cmd
    }
}

/// Lines of each component's log shown when a test fails with its own control plane.
const LOG_TAIL_ON_FAILURE: usize = 60;

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some(owner) = self.owner.take() {
            drop(owner.commands);
            let _ = owner.thread.join();
        }
        // A failing test (dropped while it panics) shows what the control plane said, and keeps
        // its directory: a CI machine keeps nothing else of it.
        let failed = std::thread::panicking();
        if failed {
            for component in ["etcd", "kube-apiserver", "kube-controller-manager"] {
                let log = self.dir.join(format!("{component}.log"));
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(LOG_TAIL_ON_FAILURE)..];
                eprintln!(
                    "--- last {} lines of {} ---\n{}",
                    tail.len(),
                    log.display(),
                    tail.join("\n")
                );
            }
            eprintln!("control plane kept in {}", self.dir.display());
        }
        if !failed && std::env::var(KEEP_ENV).is_err() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// At most `max` bytes of `s` (API errors can repeat a whole schema).
fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} more bytes)", &s[..end], s.len() - end)
}

/// Poll `ready` every 100 ms until true, failing early (with its log) when a child exits.
fn wait_sync(
    group: &mut ProcessGroup,
    what: &str,
    deadline: Instant,
    mut ready: impl FnMut() -> bool,
) -> Result<(), String> {
    let started = Instant::now();
    loop {
        if ready() {
            return Ok(());
        }
        group
            .check_running()
            .map_err(|e| format!("while waiting for {what}: {e}"))?;
        if Instant::now() >= deadline {
            let logs: Vec<String> = ["etcd", "kube-apiserver", "kube-controller-manager"]
                .iter()
                .filter_map(|n| group.get_mut(n).map(|p| p.log_tail(20)))
                .collect();
            return Err(format!(
                "timed out after {:.0}s waiting for {what}\n{}",
                started.elapsed().as_secs_f64(),
                logs.join("\n")
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A fresh namespace `<prefix>-<random>` made by `client` (an admin), returned once its
/// `default` ServiceAccount exists (so Pods can be created in it right away). Shared by the
/// test control plane and the local cluster (`node.rs`).
pub async fn fresh_namespace(client: Client, prefix: &str) -> String {
    let ns = Namespace {
        metadata: ObjectMeta {
            generate_name: Some(format!("{prefix}-")),
            labels: Some([("sourcebuild.dev/test".to_string(), prefix.to_string())].into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let created = Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
    let name = created.metadata.name.expect("generated name");
    let accounts: Api<ServiceAccount> = Api::namespaced(client, &name);
    eventually(
        &format!("ServiceAccount {name}/default"),
        Duration::from_secs(60),
        || async { accounts.get_opt("default").await.ok().flatten() },
    )
    .await;
    name
}
