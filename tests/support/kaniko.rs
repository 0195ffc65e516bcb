//! Runs the pinned Kaniko executor (tools/kaniko) for real, without a container engine, and
//! never on the host's root filesystem.
//!
//! Kaniko unpacks the base image over `/` and snapshots `/`, so it only ever runs inside a
//! throwaway root: a fresh directory holding the executor at `/kaniko/executor`, entered with
//! chroot from a private mount namespace that has a fresh `/proc`, the host's `/dev` and the build
//! context at `/workspace` bind-mounted in. The network namespace stays the host's, so
//! `127.0.0.1` reaches a test registry. The mounts vanish with the namespace when the executor
//! exits; the directory is removed on return. Needs root (CAP_SYS_ADMIN, CAP_SYS_CHROOT).
//!
//! [`run_kaniko_container`] runs a build Pod's container as is (its exact args): there `/dev` is
//! a container-like tmpfs whose `termination-log` is a host file, so the Pod's
//! `--digest-file=/dev/termination-log` needs no rewriting.
#![allow(dead_code)]

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::tools::{kill_with_parent, tool};

/// Where the build context appears inside the throwaway root (as in the build Pod).
pub const WORKSPACE: &str = "/workspace";
/// The digest file inside the throwaway root.
const DIGEST_FILE: &str = "/kaniko/digest";
/// A build slower than this is killed (a real build of the test app takes well under it).
const BUILD_DEADLINE: Duration = Duration::from_secs(20 * 60);

/// What one executor run left behind.
#[derive(Debug)]
pub struct KanikoResult {
    /// The executor's exit code (`-1` when killed by a signal).
    pub exit_code: i32,
    /// The `--digest-file` contents, when the executor wrote one.
    pub digest_file_contents: Option<String>,
    /// stdout and stderr, interleaved as written.
    pub log: String,
}

/// Builds `dockerfile` (a path inside the context, as the Pod passes `/workspace/Dockerfile`)
/// from `context_dir` and pushes it to `destination`, with the flags a plain-HTTP local registry
/// needs plus `extra_args`.
pub fn run_kaniko(
    context_dir: &Path,
    dockerfile: &str,
    destination: &str,
    extra_args: &[&str],
) -> KanikoResult {
    run_kaniko_with(
        context_dir,
        dockerfile,
        destination,
        extra_args,
        &KanikoOptions::default(),
    )
}

/// How [`run_kaniko_with`] runs the executor, beyond its arguments.
pub struct KanikoOptions<'a> {
    /// More host files (absolute paths) bound at the same path inside the throwaway root,
    /// visible to RUN steps and never part of a layer: for example the host's CA bundle, where
    /// the network to a package registry goes through a TLS proxy only the host trusts.
    pub host_files: &'a [&'a str],
    /// The executor is killed past this.
    pub deadline: Duration,
}

impl Default for KanikoOptions<'_> {
    fn default() -> Self {
        KanikoOptions {
            host_files: &[],
            deadline: BUILD_DEADLINE,
        }
    }
}

/// [`run_kaniko`] with [`KanikoOptions`].
pub fn run_kaniko_with(
    context_dir: &Path,
    dockerfile: &str,
    destination: &str,
    extra_args: &[&str],
    options: &KanikoOptions,
) -> KanikoResult {
    let root = tempfile::Builder::new()
        .prefix("sourcebuild-kaniko-root-")
        .tempdir()
        .unwrap();
    let log_path = root.path().with_extension("log");
    let result = run_in(
        root.path(),
        context_dir,
        dockerfile,
        destination,
        extra_args,
        options,
        &log_path,
    );
    let _ = std::fs::remove_file(&log_path);
    result
}

fn run_in(
    root: &Path,
    context_dir: &Path,
    dockerfile: &str,
    destination: &str,
    extra_args: &[&str],
    options: &KanikoOptions,
    log_path: &Path,
) -> KanikoResult {
    for dir in ["kaniko/.docker", "proc", "dev", "workspace", "tmp"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::copy(tool("kaniko"), root.join("kaniko/executor")).unwrap();
    // Anonymous pulls and pushes: an empty Docker config, as the executor image has.
    std::fs::write(root.join("kaniko/.docker/config.json"), "{}").unwrap();

    let mounts = ThrowawayRoot::new(root, context_dir, options.host_files);
    let log = std::fs::File::create(log_path).unwrap();
    let mut command = Command::new("/kaniko/executor");
    command
        .arg("--force")
        .arg(format!("--context=dir://{WORKSPACE}"))
        .arg(format!("--dockerfile={dockerfile}"))
        .arg(format!("--destination={destination}"))
        .arg(format!("--digest-file={DIGEST_FILE}"))
        .args(["--insecure", "--insecure-pull", "--skip-tls-verify"])
        .args(extra_args)
        .env_clear()
        // The executor image's environment.
        .env("PATH", "/usr/local/bin:/kaniko:/usr/bin:/bin")
        .env("HOME", "/root")
        .env("USER", "root")
        .env("DOCKER_CONFIG", "/kaniko/.docker/")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    kill_with_parent(&mut command);
    // SAFETY: the closure makes only raw syscalls on CStrings prepared before the fork.
    unsafe {
        command.pre_exec(move || mounts.enter());
    }
    let mut child = command
        .spawn()
        .expect("starting the Kaniko executor in a throwaway root");
    let deadline = Instant::now() + options.deadline;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let digest_file_contents =
        std::fs::read_to_string(root.join(DIGEST_FILE.trim_start_matches('/'))).ok();
    KanikoResult {
        exit_code: status.code().unwrap_or(-1),
        digest_file_contents,
        log: String::from_utf8_lossy(&std::fs::read(log_path).unwrap()).into_owned(),
    }
}

/// One run of a build Pod's Kaniko container, as a container runtime would start it.
pub struct KanikoContainer<'a> {
    /// The container's args, exactly as in the Pod (the executor is the image's entrypoint).
    pub args: &'a [String],
    /// The container's own `env` from the Pod (added to the executor image's environment).
    pub env: &'a [(String, String)],
    /// The host directory behind the `/workspace` volume.
    pub workspace: &'a Path,
    /// The host directory behind the push Secret volume at `/kaniko/.docker`, if the Pod has one.
    pub docker_config: Option<&'a Path>,
    /// The host file that is `/dev/termination-log` inside.
    pub termination_log: &'a Path,
    /// Where stdout and stderr go, interleaved.
    pub log: &'a Path,
}

/// How a container run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerEnd {
    /// The exit code, `128 + signal` when killed by a signal (as the kubelet reports it).
    Exited(i32),
    /// `cancelled` said stop; the process group was killed.
    Cancelled,
}

/// Runs the executor with the Pod's args in a fresh throwaway root whose `/dev` is laid out like
/// a container's (so `--digest-file=/dev/termination-log` lands in `termination_log` unchanged).
/// Polls `cancelled` while it runs (a deleted Pod, a stopping runner) and then kills the
/// executor's whole process group, RUN steps included.
pub fn run_kaniko_container(
    container: &KanikoContainer<'_>,
    cancelled: &dyn Fn() -> bool,
) -> ContainerEnd {
    let executor = tool("kaniko");
    let root = tempfile::Builder::new()
        .prefix("sourcebuild-kaniko-root-")
        .tempdir()
        .unwrap();
    for dir in ["kaniko/.docker", "proc", "dev", "workspace", "tmp"] {
        std::fs::create_dir_all(root.path().join(dir)).unwrap();
    }
    std::fs::copy(&executor, root.path().join("kaniko/executor")).unwrap();
    if container.docker_config.is_none() {
        // Anonymous pulls and pushes: an empty Docker config, as the executor image has.
        std::fs::write(root.path().join("kaniko/.docker/config.json"), "{}").unwrap();
    }
    let mounts = ThrowawayRoot::for_container(
        root.path(),
        container.workspace,
        container.termination_log,
        container.docker_config,
    );
    let log = std::fs::File::create(container.log).unwrap();
    let mut command = Command::new("/kaniko/executor");
    command
        .args(container.args)
        .env_clear()
        // The executor image's environment.
        .env("PATH", "/usr/local/bin:/kaniko:/usr/bin:/bin")
        .env("HOME", "/root")
        .env("USER", "root")
        .env("DOCKER_CONFIG", "/kaniko/.docker/")
        // What a container runtime tells its processes (CRI-O and Podman set it): Kaniko refuses
        // to run when it cannot tell it is in a container, and the Pod's args have no --force.
        .env("container", "kube")
        .envs(container.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        // Its own process group, so that a cancel also stops the RUN steps it started.
        .process_group(0);
    kill_with_parent(&mut command);
    // SAFETY: the closure makes only raw syscalls on CStrings prepared before the fork.
    unsafe {
        command.pre_exec(move || mounts.enter());
    }
    let mut child = command
        .spawn()
        .expect("starting the Kaniko executor in a throwaway root");
    let group = child.id() as libc::pid_t;
    let deadline = Instant::now() + BUILD_DEADLINE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            use std::os::unix::process::ExitStatusExt;
            return ContainerEnd::Exited(
                status
                    .code()
                    .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
            );
        }
        let stop = cancelled();
        if stop || Instant::now() > deadline {
            // SAFETY: a plain kill(2) of the group this child leads.
            unsafe { libc::kill(-group, libc::SIGKILL) };
            let status = child.wait().unwrap();
            if stop {
                return ContainerEnd::Cancelled;
            }
            use std::os::unix::process::ExitStatusExt;
            return ContainerEnd::Exited(128 + status.signal().unwrap_or(libc::SIGKILL));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The paths for entering the throwaway root, as C strings made before the fork.
struct ThrowawayRoot {
    root: CString,
    proc_dir: CString,
    dev_dir: CString,
    workspace_dir: CString,
    context: CString,
    /// Host files bound at the same path inside the root: always `/etc/resolv.conf`, as a
    /// container runtime does, so a RUN step that fetches (cargo, pip) resolves names. Kaniko
    /// skips mount points, so they are neither overwritten by a base image nor snapshotted.
    host_files: Vec<(CString, CString)>,
    dev: Dev,
    /// A host directory bound over `/kaniko/.docker` (the Pod's push Secret volume).
    docker_config: Option<(CString, CString)>,
}

/// What `/dev` is inside the throwaway root.
enum Dev {
    /// The host's `/dev`, bound in (the digest goes to a file elsewhere).
    Host,
    /// A fresh tmpfs with only the device nodes a container gets (bound from the host's) and a
    /// `termination-log` file bound from the host, as a container runtime lays it out: so
    /// `--digest-file=/dev/termination-log` works unchanged and nothing else of the host's
    /// `/dev` is reachable.
    Container(ContainerDev),
}

struct ContainerDev {
    /// (host node, file inside the tmpfs) pairs to bind.
    binds: Vec<(CString, CString)>,
    /// (target, link inside the tmpfs) pairs.
    symlinks: Vec<(CString, CString)>,
    shm: CString,
}

/// What a container runtime binds into every container from the host.
const RESOLV_CONF: &str = "/etc/resolv.conf";

/// The device nodes a container runtime gives every container (runc's defaults).
const CONTAINER_DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

fn cstring(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap()
}

impl ThrowawayRoot {
    fn new(root: &Path, context: &Path, host_files: &[&str]) -> Self {
        let root = root.canonicalize().unwrap();
        ThrowawayRoot {
            proc_dir: cstring(&root.join("proc")),
            dev_dir: cstring(&root.join("dev")),
            workspace_dir: cstring(&root.join("workspace")),
            context: cstring(&context.canonicalize().unwrap()),
            host_files: std::iter::once(RESOLV_CONF)
                .chain(host_files.iter().copied())
                .map(|file| {
                    let target = root.join(file.trim_start_matches('/'));
                    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
                    std::fs::write(&target, "").unwrap();
                    (cstring(Path::new(file)), cstring(&target))
                })
                .collect(),
            root: cstring(&root),
            dev: Dev::Host,
            docker_config: None,
        }
    }

    /// A container-like `/dev` whose `termination-log` is `termination_log` on the host, and
    /// `/kaniko/.docker` from `docker_config` when given.
    fn for_container(
        root: &Path,
        context: &Path,
        termination_log: &Path,
        docker_config: Option<&Path>,
    ) -> Self {
        let mut this = Self::new(root, context, &[]);
        let dev = root.canonicalize().unwrap().join("dev");
        let mut binds: Vec<(CString, CString)> = CONTAINER_DEVICES
            .iter()
            .map(|node| {
                (
                    cstring(&Path::new("/dev").join(node)),
                    cstring(&dev.join(node)),
                )
            })
            .collect();
        binds.push((
            cstring(&termination_log.canonicalize().unwrap()),
            cstring(&dev.join("termination-log")),
        ));
        let symlinks = [
            ("/proc/self/fd", "fd"),
            ("/proc/self/fd/0", "stdin"),
            ("/proc/self/fd/1", "stdout"),
            ("/proc/self/fd/2", "stderr"),
        ]
        .iter()
        .map(|(target, link)| (CString::new(*target).unwrap(), cstring(&dev.join(link))))
        .collect();
        this.dev = Dev::Container(ContainerDev {
            binds,
            symlinks,
            shm: cstring(&dev.join("shm")),
        });
        this.docker_config = docker_config.map(|dir| {
            (
                cstring(&dir.canonicalize().unwrap()),
                cstring(&root.canonicalize().unwrap().join("kaniko/.docker")),
            )
        });
        this
    }

    /// In the child, before exec: a private mount namespace (nothing propagates back to the
    /// host), fresh proc, /dev and the context bound in, then chroot. Any failure stops the exec.
    fn enter(&self) -> std::io::Result<()> {
        fn check(result: libc::c_int) -> std::io::Result<()> {
            if result == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        }
        let none = std::ptr::null();
        // SAFETY: raw syscalls with valid NUL-terminated strings.
        unsafe {
            check(libc::unshare(libc::CLONE_NEWNS))?;
            check(libc::mount(
                c"none".as_ptr(),
                c"/".as_ptr(),
                none,
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            check(libc::mount(
                c"proc".as_ptr(),
                self.proc_dir.as_ptr(),
                c"proc".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                std::ptr::null(),
            ))?;
            match &self.dev {
                Dev::Host => check(libc::mount(
                    c"/dev".as_ptr(),
                    self.dev_dir.as_ptr(),
                    none,
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                ))?,
                Dev::Container(dev) => {
                    check(libc::mount(
                        c"tmpfs".as_ptr(),
                        self.dev_dir.as_ptr(),
                        c"tmpfs".as_ptr(),
                        libc::MS_NOSUID,
                        c"mode=755".as_ptr().cast(),
                    ))?;
                    for (source, target) in &dev.binds {
                        // A bind needs an existing file to mount over.
                        let fd = libc::open(
                            target.as_ptr(),
                            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                            0o644,
                        );
                        if fd < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        libc::close(fd);
                        check(libc::mount(
                            source.as_ptr(),
                            target.as_ptr(),
                            none,
                            libc::MS_BIND,
                            std::ptr::null(),
                        ))?;
                    }
                    for (target, link) in &dev.symlinks {
                        check(libc::symlink(target.as_ptr(), link.as_ptr()))?;
                    }
                    check(libc::mkdir(dev.shm.as_ptr(), 0o1777))?;
                    check(libc::mount(
                        c"shm".as_ptr(),
                        dev.shm.as_ptr(),
                        c"tmpfs".as_ptr(),
                        libc::MS_NOSUID | libc::MS_NODEV,
                        c"mode=1777".as_ptr().cast(),
                    ))?;
                }
            }
            if let Some((source, target)) = &self.docker_config {
                check(libc::mount(
                    source.as_ptr(),
                    target.as_ptr(),
                    none,
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                ))?;
            }
            for (source, target) in &self.host_files {
                check(libc::mount(
                    source.as_ptr(),
                    target.as_ptr(),
                    none,
                    libc::MS_BIND,
                    std::ptr::null(),
                ))?;
            }
            check(libc::mount(
                self.context.as_ptr(),
                self.workspace_dir.as_ptr(),
                none,
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            ))?;
            check(libc::chroot(self.root.as_ptr()))?;
            check(libc::chdir(c"/".as_ptr()))?;
        }
        Ok(())
    }
}
