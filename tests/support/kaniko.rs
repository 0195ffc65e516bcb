//! Runs the pinned Kaniko executor (tools/kaniko) for real, without a container engine, and
//! never on the host's root filesystem.
//!
//! Kaniko unpacks the base image over `/` and snapshots `/`, so it only ever runs inside a
//! throwaway root: a fresh directory holding the executor at `/kaniko/executor`, entered with
//! chroot from a private mount namespace that has a fresh `/proc`, the host's `/dev` and the build
//! context at `/workspace` bind-mounted in. The network namespace stays the host's, so
//! `127.0.0.1` reaches a test registry. The mounts vanish with the namespace when the executor
//! exits; the directory is removed on return. Needs root (CAP_SYS_ADMIN, CAP_SYS_CHROOT).
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
    let executor = tool("kaniko");
    let root = tempfile::Builder::new()
        .prefix("sourcebuild-kaniko-root-")
        .tempdir()
        .unwrap();
    let log_path = root.path().with_extension("log");
    let result = run_in(
        root.path(),
        &executor,
        context_dir,
        dockerfile,
        destination,
        extra_args,
        &log_path,
    );
    let _ = std::fs::remove_file(&log_path);
    result
}

fn run_in(
    root: &Path,
    executor: &Path,
    context_dir: &Path,
    dockerfile: &str,
    destination: &str,
    extra_args: &[&str],
    log_path: &Path,
) -> KanikoResult {
    for dir in ["kaniko/.docker", "proc", "dev", "workspace", "tmp"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::copy(executor, root.join("kaniko/executor")).unwrap();
    // Anonymous pulls and pushes: an empty Docker config, as the executor image has.
    std::fs::write(root.join("kaniko/.docker/config.json"), "{}").unwrap();

    let mounts = ThrowawayRoot::new(root, context_dir);
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
    let deadline = Instant::now() + BUILD_DEADLINE;
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

/// The paths for entering the throwaway root, as C strings made before the fork.
struct ThrowawayRoot {
    root: CString,
    proc_dir: CString,
    dev_dir: CString,
    workspace_dir: CString,
    context: CString,
}

fn cstring(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap()
}

impl ThrowawayRoot {
    fn new(root: &Path, context: &Path) -> Self {
        let root = root.canonicalize().unwrap();
        ThrowawayRoot {
            proc_dir: cstring(&root.join("proc")),
            dev_dir: cstring(&root.join("dev")),
            workspace_dir: cstring(&root.join("workspace")),
            context: cstring(&context.canonicalize().unwrap()),
            root: cstring(&root),
        }
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
            check(libc::mount(
                c"/dev".as_ptr(),
                self.dev_dir.as_ptr(),
                none,
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            ))?;
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
