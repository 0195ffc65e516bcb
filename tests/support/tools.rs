//! Pinned tools (`scripts/tools.sh TOOL`) and child processes that cannot outlive the tests.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The repository root.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The path of a pinned tool's binary, built by `scripts/tools.sh` on first use (cached per
/// machine). Panics with tools.sh's own output when the tool cannot be built.
pub fn tool(name: &str) -> PathBuf {
    // One tools.sh at a time in this process: two parallel first builds would race on the cache.
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let output = Command::new(repo_root().join("scripts/tools.sh"))
        .arg(name)
        .output()
        .unwrap_or_else(|e| panic!("running scripts/tools.sh {name}: {e}"));
    assert!(
        output.status.success(),
        "scripts/tools.sh {name} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

/// Makes `command`'s child die with SIGKILL when the thread that started it exits (a panicking
/// test included), so no server or build outlives the test that owns it.
pub fn kill_with_parent(command: &mut Command) -> &mut Command {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        })
    }
}
