//! A stand-in for the kubelet and the container runtime, for the build Pods the operator creates
//! in the test control plane (which has no nodes).
//!
//! It watches Pods labelled `app.kubernetes.io/managed-by=sourcebuild-operator` in every
//! namespace and runs each new one once, one at a time, for real:
//! - volumes: `emptyDir`s are fresh host directories; ConfigMap and Secret volumes are
//!   materialised from the real objects in the API (read with the admin client: the operator
//!   never reads Secrets) the way the kubelet's atomic writer lays them out;
//! - the init container is our own `sourcebuild` binary with the container's args and env, its
//!   mount paths mapped to those host directories by the `prepare` flags;
//! - the build container is the pinned Kaniko executor with the Pod's exact args, in a throwaway
//!   root with a container-like `/dev` (see [`super::kaniko::run_kaniko_container`]);
//! - the container states go back to the Pod's status as the kubelet writes them: exit codes,
//!   `Completed`/`Error`, termination messages (the file, else with `FallbackToLogsOnError` on a
//!   failure the log's tail), phase `Pending` → `Running` → `Succeeded`/`Failed`, and
//!   `DeadlineExceeded` when `activeDeadlineSeconds` runs out.
//!
//! Not modelled: scheduling and node binding (the Pods stay unbound, which also makes the API
//! server delete them at once), image pulls (the init container is always our binary, Kaniko
//! always the pinned executor), security contexts (both run as root: the test binaries live
//! under a 0700 home), resource limits and OOM kills, restarts.
//!
//! Needs root (Kaniko's throwaway root). Stops on drop, killing a running build.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Container, KeyToPath, Pod, Secret, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher;
use serde_json::{Value, json};
use sourcebuild::contract::{
    CONFIGMAP_DIR, GIT_SECRET_DIR, REGISTRY_AUTH_DIR, SCRATCH_DIR, WORKSPACE_DIR,
};
use sourcebuild::pod::{MANAGED_BY_SELECTOR, TERMINATION_MESSAGE_PATH};

use super::control_plane::ControlPlane;
use super::kaniko::{ContainerEnd, KanikoContainer, run_kaniko_container};
use super::tools::kill_with_parent;

/// The kubelet keeps at most this much of a termination message file (bytes).
const MAX_MESSAGE_BYTES: usize = 4096;
/// With `FallbackToLogsOnError`, the kubelet takes at most this many lines of the log's tail...
const MAX_LOG_LINES: usize = 80;
/// ...and at most this many bytes of them.
const MAX_LOG_BYTES: usize = 4096;
/// Where `/kaniko/.docker` is in the Kaniko image (the push Secret's mount path).
const KANIKO_DOCKER_CONFIG: &str = "/kaniko/.docker";

/// The runner. Dropping it stops the watch and kills a build in progress.
pub struct PodRunner {
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    dir: PathBuf,
    worker: Option<JoinHandle<()>>,
    runtime: Option<tokio::runtime::Runtime>,
}

/// State the watch task and the worker thread share.
#[derive(Default)]
struct Shared {
    /// uids of Pods deleted since the runner saw them.
    deleted: Mutex<HashSet<String>>,
    /// `namespace/name` of every Pod started, in order.
    started: Mutex<Vec<String>>,
}

/// One Pod to run, as the watch first saw it.
struct Job {
    pod: Pod,
    uid: String,
    namespace: String,
    name: String,
}

impl PodRunner {
    /// Starts watching the control plane's build Pods; per-Pod directories and logs go under
    /// `dir` (`<namespace>/<pod>/`).
    pub fn start(cp: &ControlPlane, dir: &Path) -> PodRunner {
        std::fs::create_dir_all(dir).unwrap();
        // Its own runtime: the tests' runtimes come and go with each test, the runner stays.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("pod-runner-watch")
            .enable_all()
            .build()
            .unwrap();
        let client = runtime.block_on(cp.client());
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared::default());
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();

        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        runtime.spawn(watch(client.clone(), shared.clone(), jobs, ready_tx));
        ready_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the pod runner's watch did not start within 60s");

        let worker = {
            let stop = stop.clone();
            let shared = shared.clone();
            let handle = runtime.handle().clone();
            let dir = dir.to_path_buf();
            std::thread::Builder::new()
                .name("pod-runner".into())
                .spawn(move || {
                    // The build processes die with this thread (PR_SET_PDEATHSIG), so with
                    // the runner.
                    let worker = Worker {
                        client,
                        handle,
                        stop,
                        shared,
                        dir,
                    };
                    while !worker.stop.load(Ordering::SeqCst) {
                        match queue.recv_timeout(Duration::from_millis(200)) {
                            Ok(job) => worker.run(job),
                            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                        }
                    }
                })
                .unwrap()
        };
        PodRunner {
            stop,
            shared,
            dir: dir.to_path_buf(),
            worker: Some(worker),
            runtime: Some(runtime),
        }
    }

    /// `namespace/name` of every Pod started so far, in order.
    pub fn started(&self) -> Vec<String> {
        self.shared.started.lock().unwrap().clone()
    }

    /// The directory of one Pod's run: `prepare.log`, `build.log`, the volumes.
    pub fn pod_dir(&self, namespace: &str, pod: &str) -> PathBuf {
        self.dir.join(namespace).join(pod)
    }

    /// The build container's log (Kaniko's output) of a Pod that ran.
    pub fn build_log(&self, namespace: &str, pod: &str) -> String {
        std::fs::read_to_string(self.pod_dir(namespace, pod).join("build.log")).unwrap_or_default()
    }
}

impl Drop for PodRunner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Feeds every Pod seen for the first time (by uid) to the worker and records deletions. A Pod
/// already finished when first seen (left by someone else) is not run.
async fn watch(
    client: kube::Client,
    shared: Arc<Shared>,
    jobs: std::sync::mpsc::Sender<Job>,
    ready: std::sync::mpsc::Sender<()>,
) {
    let pods: Api<Pod> = Api::all(client);
    let config = watcher::Config::default().labels(MANAGED_BY_SELECTOR);
    let mut stream = watcher(pods, config).boxed();
    let mut seen = HashSet::new();
    while let Some(event) = stream.next().await {
        let pod = match event {
            Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => pod,
            Ok(watcher::Event::Delete(pod)) => {
                if let Some(uid) = pod.metadata.uid {
                    shared.deleted.lock().unwrap().insert(uid);
                }
                continue;
            }
            Ok(watcher::Event::InitDone) => {
                let _ = ready.send(());
                continue;
            }
            Ok(watcher::Event::Init) => continue,
            // The watcher retries by itself; a failed list or watch is only worth a line.
            Err(error) => {
                eprintln!("pod runner: watch error: {error}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let (Some(uid), Some(namespace), Some(name)) = (
            pod.metadata.uid.clone(),
            pod.metadata.namespace.clone(),
            pod.metadata.name.clone(),
        ) else {
            continue;
        };
        if !seen.insert(uid.clone()) || pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed" | "Running")) {
            continue;
        }
        if jobs
            .send(Job {
                pod,
                uid,
                namespace,
                name,
            })
            .is_err()
        {
            return;
        }
    }
}

/// Why a Pod's run ended early.
enum Stopped {
    /// The Pod was deleted (or the runner is stopping): leave it alone.
    Abandoned,
    /// `activeDeadlineSeconds` ran out.
    DeadlineExceeded,
}

struct Worker {
    client: kube::Client,
    handle: tokio::runtime::Handle,
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    dir: PathBuf,
}

impl Worker {
    fn run(&self, job: Job) {
        if self.is_gone(&job) {
            return;
        }
        self.shared
            .started
            .lock()
            .unwrap()
            .push(format!("{}/{}", job.namespace, job.name));
        let dir = self.dir.join(&job.namespace).join(&job.name);
        if let Err(error) = self.run_pod(&job, &dir) {
            eprintln!("pod runner: {}/{}: {error}", job.namespace, job.name);
        }
    }

    /// True when the Pod is deleted or replaced (another uid), or the runner stops.
    fn is_gone(&self, job: &Job) -> bool {
        if self.stop.load(Ordering::SeqCst)
            || self.shared.deleted.lock().unwrap().contains(&job.uid)
        {
            return true;
        }
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &job.namespace);
        match self.handle.block_on(pods.get_opt(&job.name)) {
            Ok(Some(pod)) => pod.metadata.uid.as_deref() != Some(job.uid.as_str()),
            Ok(None) => true,
            // Unknown: carry on, the next check decides.
            Err(_) => false,
        }
    }

    fn run_pod(&self, job: &Job, dir: &Path) -> Result<(), String> {
        let spec = job.pod.spec.as_ref().ok_or("the Pod has no spec")?;
        let [prepare] = spec.init_containers.as_deref().unwrap_or_default() else {
            return Err("expected exactly one init container".into());
        };
        let [build] = spec.containers.as_slice() else {
            return Err("expected exactly one container".into());
        };
        let started = Instant::now();
        let start_time = now();
        let deadline = spec
            .active_deadline_seconds
            .map(|s| started + Duration::from_secs(u64::try_from(s).unwrap_or(0)));
        let cancelled = || -> Option<Stopped> {
            if self.stop.load(Ordering::SeqCst)
                || self.shared.deleted.lock().unwrap().contains(&job.uid)
            {
                return Some(Stopped::Abandoned);
            }
            deadline
                .filter(|d| Instant::now() > *d)
                .map(|_| Stopped::DeadlineExceeded)
        };

        // Volumes first, as the kubelet does: a missing ConfigMap or Secret keeps the Pod in
        // ContainerCreating.
        let volumes = match self.materialise_volumes(
            job,
            dir,
            spec.volumes.as_deref().unwrap_or_default(),
        ) {
            Ok(volumes) => volumes,
            Err(message) => {
                self.patch_status(
                    job,
                    json!({"phase": "Pending", "startTime": start_time,
                           "initContainerStatuses": [waiting(prepare, "ContainerCreating", Some(&message))],
                           "containerStatuses": [waiting(build, "PodInitializing", None)]}),
                )?;
                return Err(format!("volumes: {message}"));
            }
        };

        let prepare_started = now();
        self.patch_status(
            job,
            json!({"phase": "Pending", "startTime": start_time,
                   "initContainerStatuses": [running(prepare, &prepare_started)],
                   "containerStatuses": [waiting(build, "PodInitializing", None)]}),
        )?;
        let prepare_end = self.run_prepare(prepare, &volumes, dir, &cancelled);
        let prepare_status = match prepare_end {
            Err(Stopped::Abandoned) => return Ok(()),
            Err(Stopped::DeadlineExceeded) => {
                return self.deadline_exceeded(
                    job,
                    &start_time,
                    json!([terminated(prepare, 137, "Error", "", &prepare_started)]),
                    json!([waiting(build, "PodInitializing", None)]),
                );
            }
            Ok(code) => {
                let message = termination_message(
                    prepare,
                    code,
                    &dir.join("prepare.termination-log"),
                    &dir.join("prepare.log"),
                );
                terminated(prepare, code, reason(code), &message, &prepare_started)
            }
        };
        if self.is_gone(job) {
            return Ok(());
        }
        if prepare_status["state"]["terminated"]["exitCode"] != 0 {
            return self.patch_status(
                job,
                json!({"phase": "Failed", "startTime": start_time,
                       "initContainerStatuses": [prepare_status],
                       "containerStatuses": [waiting(build, "PodInitializing", None)]}),
            );
        }

        let build_started = now();
        self.patch_status(
            job,
            json!({"phase": "Running", "startTime": start_time,
                   "initContainerStatuses": [prepare_status.clone()],
                   "containerStatuses": [running(build, &build_started)]}),
        )?;
        let termination_log = dir.join("build.termination-log");
        std::fs::write(&termination_log, "").map_err(|e| e.to_string())?;
        let log = dir.join("build.log");
        let args = build.args.clone().unwrap_or_default();
        let env = plain_env(build)?;
        let mut workspace = None;
        let mut docker_config = None;
        for mount in build.volume_mounts.iter().flatten() {
            let host = volumes
                .get(&mount.name)
                .ok_or_else(|| format!("build mounts unknown volume {}", mount.name))?;
            match mount.mount_path.as_str() {
                WORKSPACE_DIR => workspace = Some(host.clone()),
                KANIKO_DOCKER_CONFIG => docker_config = Some(host.clone()),
                other => return Err(format!("the runner cannot map build mount {other}")),
            }
        }
        let workspace = workspace.ok_or("the build container does not mount /workspace")?;
        let stopped_by = std::cell::Cell::new(None);
        let end = run_kaniko_container(
            &KanikoContainer {
                args: &args,
                env: &env,
                workspace: &workspace,
                docker_config: docker_config.as_deref(),
                termination_log: &termination_log,
                log: &log,
            },
            &|| {
                let stop = cancelled();
                let cancel = stop.is_some();
                if cancel {
                    stopped_by.set(stop);
                }
                cancel
            },
        );
        let code = match (end, stopped_by.into_inner()) {
            (ContainerEnd::Exited(code), _) => code,
            (ContainerEnd::Cancelled, Some(Stopped::DeadlineExceeded)) => {
                return self.deadline_exceeded(
                    job,
                    &start_time,
                    json!([prepare_status]),
                    json!([terminated(build, 137, "Error", "", &build_started)]),
                );
            }
            (ContainerEnd::Cancelled, _) => return Ok(()),
        };
        if self.is_gone(job) {
            return Ok(());
        }
        let message = termination_message(build, code, &termination_log, &log);
        self.patch_status(
            job,
            json!({"phase": if code == 0 { "Succeeded" } else { "Failed" }, "startTime": start_time,
                   "initContainerStatuses": [prepare_status],
                   "containerStatuses": [terminated(build, code, reason(code), &message, &build_started)]}),
        )
    }

    /// Runs `sourcebuild prepare` with the container's args and env, mount paths mapped to the
    /// per-Pod directories by the step's path flags. The exit code, or why it was stopped.
    fn run_prepare(
        &self,
        container: &Container,
        volumes: &BTreeMap<String, PathBuf>,
        dir: &Path,
        cancelled: &dyn Fn() -> Option<Stopped>,
    ) -> Result<i32, Stopped> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sourcebuild"));
        command.args(container.args.iter().flatten());
        for mount in container.volume_mounts.iter().flatten() {
            let host = &volumes[&mount.name];
            let flag = match mount.mount_path.as_str() {
                WORKSPACE_DIR => "--workspace",
                SCRATCH_DIR => "--scratch",
                GIT_SECRET_DIR => "--git-secret-dir",
                CONFIGMAP_DIR => "--configmap-dir",
                REGISTRY_AUTH_DIR => "--registry-auth-dir",
                other => panic!("the pod runner cannot map prepare mount {other}"),
            };
            command.arg(flag).arg(host);
        }
        let message_path = container
            .termination_message_path
            .as_deref()
            .unwrap_or(TERMINATION_MESSAGE_PATH);
        assert_eq!(message_path, TERMINATION_MESSAGE_PATH);
        let termination_log = dir.join("prepare.termination-log");
        std::fs::write(&termination_log, "").unwrap();
        command.arg("--termination-log").arg(&termination_log);
        let log = std::fs::File::create(dir.join("prepare.log")).unwrap();
        command
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .envs(plain_env(container).unwrap_or_else(|e| panic!("{e}")))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        kill_with_parent(&mut command);
        let mut child = command.spawn().expect("starting sourcebuild prepare");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                use std::os::unix::process::ExitStatusExt;
                return Ok(status
                    .code()
                    .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)));
            }
            if let Some(stopped) = cancelled() {
                let _ = child.kill();
                let _ = child.wait();
                return Err(stopped);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Host directories for the Pod's volumes, by volume name.
    fn materialise_volumes(
        &self,
        job: &Job,
        dir: &Path,
        volumes: &[Volume],
    ) -> Result<BTreeMap<String, PathBuf>, String> {
        let mut paths = BTreeMap::new();
        for volume in volumes {
            let path = dir.join("volumes").join(&volume.name);
            // A Pod name is run once, but a re-created Pod (new uid) reuses its name.
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
            if volume.empty_dir.is_some() {
                // The kubelet makes emptyDirs world-writable.
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))
                    .map_err(|e| e.to_string())?;
            } else if let Some(source) = &volume.config_map {
                let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &job.namespace);
                let config_map = self
                    .handle
                    .block_on(api.get_opt(&source.name))
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("configmap \"{}\" not found", source.name))?;
                let mut data: BTreeMap<String, Vec<u8>> = config_map
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.into_bytes()))
                    .collect();
                data.extend(
                    config_map
                        .binary_data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0)),
                );
                write_atomic_volume(
                    &path,
                    &data,
                    source.items.as_deref(),
                    source.default_mode.unwrap_or(0o644),
                )?;
            } else if let Some(source) = &volume.secret {
                let name = source.secret_name.clone().unwrap_or_default();
                let api: Api<Secret> = Api::namespaced(self.client.clone(), &job.namespace);
                let secret = self
                    .handle
                    .block_on(api.get_opt(&name))
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("secret \"{name}\" not found"))?;
                let data = secret
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect();
                write_atomic_volume(
                    &path,
                    &data,
                    source.items.as_deref(),
                    source.default_mode.unwrap_or(0o644),
                )?;
            } else {
                return Err(format!(
                    "volume {} has a type the runner cannot make",
                    volume.name
                ));
            }
            paths.insert(volume.name.clone(), path);
        }
        Ok(paths)
    }

    fn deadline_exceeded(
        &self,
        job: &Job,
        start_time: &str,
        init: Value,
        containers: Value,
    ) -> Result<(), String> {
        self.patch_status(
            job,
            json!({"phase": "Failed", "reason": "DeadlineExceeded",
                   "message": "Pod was active on the node longer than the specified deadline",
                   "startTime": start_time,
                   "initContainerStatuses": init, "containerStatuses": containers}),
        )
    }

    fn patch_status(&self, job: &Job, status: Value) -> Result<(), String> {
        if self.shared.deleted.lock().unwrap().contains(&job.uid) {
            return Ok(());
        }
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &job.namespace);
        // The uid precondition: a status never lands on a re-created Pod of the same name.
        let patch = json!({"metadata": {"uid": job.uid}, "status": status});
        match self.handle.block_on(pods.patch_status(
            &job.name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )) {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
            Err(e) => Err(format!("writing the Pod status: {e}")),
        }
    }
}

/// The container's `env` (plain values only: the build Pods use no `valueFrom`).
fn plain_env(container: &Container) -> Result<Vec<(String, String)>, String> {
    container
        .env
        .iter()
        .flatten()
        .map(|var| match (&var.value, &var.value_from) {
            (_, Some(_)) => Err(format!("env {}: valueFrom is not supported", var.name)),
            (value, None) => Ok((var.name.clone(), value.clone().unwrap_or_default())),
        })
        .collect()
}

/// Lays out a ConfigMap or Secret volume like the kubelet's atomic writer: the files in a
/// timestamped directory, `..data` pointing at it, and one symlink per top-level entry through
/// `..data`. With `items`, only those keys, each at its path (a missing key is an error).
fn write_atomic_volume(
    dir: &Path,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: i32,
) -> Result<(), String> {
    let files: Vec<(String, &[u8], i32)> = match items {
        Some(items) => items
            .iter()
            .map(|item| {
                let bytes = data.get(&item.key).ok_or_else(|| {
                    format!("couldn't find key {} in the volume's source", item.key)
                })?;
                Ok((
                    item.path.clone(),
                    bytes.as_slice(),
                    item.mode.unwrap_or(default_mode),
                ))
            })
            .collect::<Result<_, String>>()?,
        None => data
            .iter()
            .map(|(key, bytes)| (key.clone(), bytes.as_slice(), default_mode))
            .collect(),
    };
    let stamp = format!("..{}", chrono_like_stamp(std::time::SystemTime::now()));
    let timestamped = dir.join(&stamp);
    std::fs::create_dir_all(&timestamped).map_err(|e| e.to_string())?;
    let mut top_level = std::collections::BTreeSet::new();
    for (path, bytes, mode) in &files {
        let target = timestamped.join(path);
        std::fs::create_dir_all(target.parent().unwrap()).map_err(|e| e.to_string())?;
        std::fs::write(&target, bytes).map_err(|e| e.to_string())?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(*mode as u32))
            .map_err(|e| e.to_string())?;
        top_level.insert(path.split('/').next().unwrap().to_string());
    }
    std::os::unix::fs::symlink(&stamp, dir.join("..data")).map_err(|e| e.to_string())?;
    for entry in top_level {
        std::os::unix::fs::symlink(format!("..data/{entry}"), dir.join(&entry))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// `YYYY_MM_DD_HH_MM_SS.nnnnnnnnn`, the kubelet's name for a volume's timestamped directory.
fn chrono_like_stamp(time: std::time::SystemTime) -> String {
    let since = time.duration_since(std::time::UNIX_EPOCH).unwrap();
    let ts = jiff_free_utc(since.as_secs());
    format!("{ts}.{:09}", since.subsec_nanos())
}

/// Civil UTC date and time of a Unix second count, as `YYYY_MM_DD_HH_MM_SS` (Howard Hinnant's
/// days-from-civil inverse), so no date crate is needed.
fn jiff_free_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}_{month:02}_{day:02}_{:02}_{:02}_{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The termination message as the kubelet reads it: the file (at most 4 KiB); with
/// `FallbackToLogsOnError`, an empty file and a failure, the log's last 80 lines (at most 4 KiB).
fn termination_message(container: &Container, code: i32, file: &Path, log: &Path) -> String {
    let written = std::fs::read(file).unwrap_or_default();
    let written = &written[..written.len().min(MAX_MESSAGE_BYTES)];
    let fallback = container.termination_message_policy.as_deref() == Some("FallbackToLogsOnError");
    if !written.is_empty() || !fallback || code == 0 {
        return String::from_utf8_lossy(written).into_owned();
    }
    let log = String::from_utf8_lossy(&std::fs::read(log).unwrap_or_default()).into_owned();
    log_tail(&log, MAX_LOG_LINES, MAX_LOG_BYTES).to_string()
}

/// The last `lines` lines of `log`, cut to its last `bytes` bytes (at a character boundary).
pub fn log_tail(log: &str, lines: usize, bytes: usize) -> &str {
    let trimmed = log.strip_suffix('\n').unwrap_or(log);
    let start = trimmed
        .rmatch_indices('\n')
        .nth(lines.saturating_sub(1))
        .map_or(0, |(i, _)| i + 1);
    let mut tail = &log[start..];
    if tail.len() > bytes {
        let mut cut = tail.len() - bytes;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail = &tail[cut..];
    }
    tail
}

fn reason(code: i32) -> &'static str {
    if code == 0 { "Completed" } else { "Error" }
}

fn now() -> String {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    serde_json::to_value(now)
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

fn image(container: &Container) -> &str {
    container.image.as_deref().unwrap_or_default()
}

fn waiting(container: &Container, reason: &str, message: Option<&str>) -> Value {
    json!({"name": container.name, "image": image(container), "imageID": "", "ready": false,
           "restartCount": 0, "started": false,
           "state": {"waiting": {"reason": reason, "message": message}}})
}

fn running(container: &Container, started_at: &str) -> Value {
    json!({"name": container.name, "image": image(container), "imageID": "", "ready": true,
           "restartCount": 0, "started": true,
           "state": {"running": {"startedAt": started_at}}})
}

fn terminated(
    container: &Container,
    code: i32,
    reason: &str,
    message: &str,
    started_at: &str,
) -> Value {
    json!({"name": container.name, "image": image(container), "imageID": "", "ready": false,
           "restartCount": 0, "started": false,
           "state": {"terminated": {"exitCode": code, "reason": reason, "message": message,
                                    "startedAt": started_at, "finishedAt": now()}}})
}
