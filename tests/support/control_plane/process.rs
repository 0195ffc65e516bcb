//! Child processes of the test control plane, and how none of them outlives the test binary.
//!
//! Three layers:
//! 1. `PR_SET_PDEATHSIG(SIGKILL)`, set in the child between fork and exec: the kernel kills the
//!    child when the thread that spawned it dies. That covers a test binary that is killed
//!    (SIGKILL, a CI timeout, a crash). The signal follows the spawning *thread*, not the process,
//!    so the control plane is spawned from a dedicated thread that lives as long as the control
//!    plane (see `ControlPlane::start`), never from a test's thread (libtest ends that thread
//!    when the test ends).
//! 2. `ProcessGroup`'s `Drop` kills and reaps its children: a start-up that fails half-way
//!    leaves nothing behind, and a `ControlPlane` owned outright (`ControlPlane::start`, for a
//!    benchmark) tells its thread to drop the group when it is itself dropped, panics included.
//! 3. The shared, `static` control plane is never dropped (Rust runs no destructors for
//!    statics), so `on_exit` registers a libc `atexit` hook that kills and reaps every child
//!    still registered and removes the control plane's directory when the test binary exits,
//!    however its tests ended (a panicking test does not end the process).

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

/// Children (pids) and directories the `atexit` hook cleans up.
static AT_EXIT: Mutex<(Vec<u32>, Vec<PathBuf>)> = Mutex::new((Vec::new(), Vec::new()));

extern "C" fn clean_up_at_exit() {
    let (pids, dirs) = match AT_EXIT.lock() {
        Ok(mut g) => (std::mem::take(&mut g.0), std::mem::take(&mut g.1)),
        Err(p) => {
            let mut g = p.into_inner();
            (std::mem::take(&mut g.0), std::mem::take(&mut g.1))
        }
    };
    for pid in &pids {
        // SAFETY: plain syscalls on pids of our own children.
        unsafe { libc::kill(*pid as libc::pid_t, libc::SIGKILL) };
    }
    for pid in &pids {
        let mut status = 0;
        unsafe { libc::waitpid(*pid as libc::pid_t, &mut status, 0) };
    }
    for dir in dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn register_at_exit_hook() {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        // SAFETY: registers a function with no preconditions.
        unsafe { libc::atexit(clean_up_at_exit) };
    });
}

/// Kill and reap a child when the test binary exits, for children held in statics (which are
/// never dropped), such as the operator a whole test binary shares.
pub fn kill_at_exit(pid: u32) {
    register_at_exit_hook();
    AT_EXIT
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .0
        .push(pid);
}

/// Register the `atexit` hook (once) and a directory for it to remove.
pub fn remove_at_exit(dir: &Path) {
    register_at_exit_hook();
    AT_EXIT
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .1
        .push(dir.to_path_buf());
}

/// A running child whose stdout and stderr go to a log file.
pub struct Proc {
    pub name: String,
    pub log: PathBuf,
    program: PathBuf,
    args: Vec<String>,
    child: Child,
}

impl Proc {
    /// `None` while it runs, else a description of how it ended.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(None) => None,
            Ok(Some(status)) => Some(format!("{} exited ({status})", self.name)),
            Err(e) => Some(format!("{}: wait failed: {e}", self.name)),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last `n` lines of its log, for error messages.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(n)..].join("\n");
        format!("--- last {n} lines of {} ---\n{tail}", self.log.display())
    }
}

/// Children that die together: killed and reaped on drop, and by the `atexit` hook.
#[derive(Default)]
pub struct ProcessGroup {
    procs: Vec<Proc>,
}

impl ProcessGroup {
    /// Start `program args...` with its output appended to `log`, dying with the calling thread.
    pub fn spawn(
        &mut self,
        name: &str,
        program: &Path,
        args: &[String],
        log: &Path,
    ) -> Result<&mut Proc, String> {
        let out = File::create(log).map_err(|e| format!("create {}: {e}", log.display()))?;
        let child = Self::spawn_child(name, program, args, out)?;
        self.procs.push(Proc {
            name: name.to_string(),
            log: log.to_path_buf(),
            program: program.to_path_buf(),
            args: args.to_vec(),
            child,
        });
        Ok(self.procs.last_mut().expect("just pushed"))
    }

    /// SIGKILLs the child `name` (a crash, no graceful shutdown), waits `down_for`, and starts it
    /// again with the same program and arguments (so the same ports, certificates and data
    /// directory), its output appended to the same log.
    pub fn restart(&mut self, name: &str, down_for: std::time::Duration) -> Result<(), String> {
        let proc = self
            .procs
            .iter_mut()
            .find(|p| p.name == name)
            .ok_or_else(|| format!("no child named {name}"))?;
        let old = proc.child.id();
        let _ = proc.child.kill();
        let _ = proc.child.wait();
        AT_EXIT
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .retain(|pid| *pid != old);
        std::thread::sleep(down_for);
        let out = std::fs::OpenOptions::new()
            .append(true)
            .open(&proc.log)
            .map_err(|e| format!("open {}: {e}", proc.log.display()))?;
        proc.child = Self::spawn_child(name, &proc.program, &proc.args, out)?;
        Ok(())
    }

    fn spawn_child(
        name: &str,
        program: &Path,
        args: &[String],
        out: File,
    ) -> Result<Child, String> {
        let err = out.try_clone().map_err(|e| format!("dup log fd: {e}"))?;
        let parent = std::process::id() as libc::pid_t;
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
        // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before prctl took effect.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("start {name} ({}): {e}", program.display()))?;
        AT_EXIT
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .push(child.id());
        Ok(child)
    }

    pub fn pids(&self) -> Vec<u32> {
        self.procs.iter().map(|p| p.pid()).collect()
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Proc> {
        self.procs.iter_mut().find(|p| p.name == name)
    }

    /// The first child that has exited, with its log tail.
    pub fn check_running(&mut self) -> Result<(), String> {
        for p in &mut self.procs {
            if let Some(how) = p.exited() {
                return Err(format!("{how}\n{}", p.log_tail(40)));
            }
        }
        Ok(())
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // Reverse start order: controller-manager, apiserver, then etcd.
        for p in self.procs.iter_mut().rev() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        let ids: Vec<u32> = self.procs.iter().map(|p| p.child.id()).collect();
        AT_EXIT
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .retain(|pid| !ids.contains(pid));
    }
}
