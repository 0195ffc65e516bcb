//! The S2I test app (a tiny Python HTTP server with `.s2i` hooks) and running a built image's
//! command in a chroot of its filesystem: shared by the real-build tests.
#![allow(dead_code)]

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::registry::{Registry, free_port};
use super::tools::kill_with_parent;

pub const SERVICE_PY: &str = r#"import http.server
import os

# Written by the source's assemble hook into the app directory (the run script's cwd).
MARKER = os.path.abspath("s2i-marker.txt")


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            with open(MARKER) as f:
                marker = f.read().strip()
        except FileNotFoundError:
            marker = "no marker"
        body = f"hello from {os.environ['GREETING']} ({marker})\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


http.server.HTTPServer((os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8080"))), Hello).serve_forever()
"#;

pub const ASSEMBLE_HOOK: &str = r#"#!/bin/bash
# Source hook: the builder's own assemble, then a marker proving the hook ran.
set -euo pipefail
echo "---> source assemble hook"
"${STI_SCRIPTS_PATH}/assemble"
echo "assembled by uid $(id -u)" > "${APP_SRC_DIR:-$HOME}/s2i-marker.txt"
"#;

pub const FAILING_ASSEMBLE_HOOK: &str = r#"#!/bin/bash
echo "---> source assemble hook that fails"
exit 1
"#;

pub const RUN_HOOK: &str = r#"#!/bin/bash
echo "---> source run hook"
exec "${STI_SCRIPTS_PATH}/run"
"#;

pub fn write(path: &Path, text: &str, mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A tiny Python HTTP app with S2I environment and, when given an assemble hook, `.s2i/bin`
/// hooks (assemble and a run hook chaining to the builder's run).
pub fn write_app(dir: &Path, assemble_hook: Option<&str>) {
    write(&dir.join("service.py"), SERVICE_PY, 0o644);
    write(
        &dir.join(".s2i/environment"),
        "# read by the builder's run script\nAPP_FILE=service.py\nGREETING=a real build\n",
        0o644,
    );
    if let Some(hook) = assemble_hook {
        write(&dir.join(".s2i/bin/assemble"), hook, 0o755);
        write(&dir.join(".s2i/bin/run"), RUN_HOOK, 0o755);
    }
}

/// Starts the image's `Entrypoint + Cmd` with its `Env` (plus `PORT`) and `WorkingDir`, as
/// uid/gid from its `User` (gid 0 unless the `User` names one), chrooted into `rootfs` with a
/// fresh `/proc` in a private mount namespace.
pub fn start_image_command(rootfs: &Path, config: &serde_json::Value, port: u16) -> Child {
    let mut command = image_command(rootfs, config, &[]);
    command
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command.spawn().expect("starting the image's command")
}

/// The image's `Entrypoint + Cmd` (or `Entrypoint + args`, when `args` is not empty, as a Pod's
/// `args` replace `Cmd`), set up as a container runtime would run it: its `Env`, `WorkingDir`
/// and `User`, chrooted into `rootfs` with a fresh `/proc` in a private mount namespace. The
/// network is the host's, so loopback servers are reachable. Not spawned; killed with its parent.
pub fn image_command(rootfs: &Path, config: &serde_json::Value, args: &[String]) -> Command {
    let strings = |v: &serde_json::Value| -> Vec<String> {
        serde_json::from_value(v.clone()).unwrap_or_default()
    };
    let c = &config["config"];
    let mut argv = strings(&c["Entrypoint"]);
    if args.is_empty() {
        argv.extend(strings(&c["Cmd"]));
    } else {
        argv.extend(args.iter().cloned());
    }
    assert!(!argv.is_empty(), "the image has no command: {c}");
    let id = |s: &str| -> libc::uid_t {
        match s {
            "" | "root" => 0,
            n => n.parse().expect("a numeric USER"),
        }
    };
    let (uid, gid) = match c["User"].as_str().unwrap_or("").split_once(':') {
        Some((user, group)) => (id(user), id(group)),
        None => (id(c["User"].as_str().unwrap_or("")), 0),
    };
    let workdir = c["WorkingDir"]
        .as_str()
        .filter(|dir| !dir.is_empty())
        .unwrap_or("/");

    std::fs::create_dir_all(rootfs.join("proc")).unwrap();
    let root = CString::new(rootfs.canonicalize().unwrap().as_os_str().as_bytes()).unwrap();
    let proc_dir = CString::new(rootfs.join("proc").as_os_str().as_bytes()).unwrap();
    let workdir = CString::new(workdir).unwrap();

    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]).env_clear();
    for pair in strings(&c["Env"]) {
        if let Some((name, value)) = pair.split_once('=') {
            command.env(name, value);
        }
    }
    kill_with_parent(&mut command);
    // SAFETY: raw syscalls on C strings made before the fork.
    unsafe {
        command.pre_exec(move || {
            let check = |r: libc::c_int| {
                if r == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            };
            check(libc::unshare(libc::CLONE_NEWNS))?;
            check(libc::mount(
                c"none".as_ptr(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            check(libc::mount(
                c"proc".as_ptr(),
                proc_dir.as_ptr(),
                c"proc".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                std::ptr::null(),
            ))?;
            check(libc::chroot(root.as_ptr()))?;
            check(libc::chdir(workdir.as_ptr()))?;
            check(libc::setgroups(0, std::ptr::null()))?;
            check(libc::setgid(gid))?;
            check(libc::setuid(uid))?;
            Ok(())
        });
    }
    // argv[0] is resolved inside the chroot: exec happens after pre_exec.
    command
}

/// GETs `/` on the app's port until it answers or the process exits; the answer's body.
pub fn poll_http(process: &mut Child, port: u16) -> String {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(status) = process.try_wait().unwrap() {
            let out = process.wait_with_output_after_exit();
            panic!("the app exited ({status}) before answering:\n{out}");
        }
        if let Ok(response) = client.get(&url).send() {
            return response.text().unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the app did not answer on {url} within 60s");
}

pub trait OutputAfterExit {
    fn wait_with_output_after_exit(&mut self) -> String;
}

impl OutputAfterExit for Child {
    fn wait_with_output_after_exit(&mut self) -> String {
        use std::io::Read;
        let mut text = String::new();
        if let Some(mut out) = self.stdout.take() {
            let _ = out.read_to_string(&mut text);
        }
        if let Some(mut err) = self.stderr.take() {
            let _ = err.read_to_string(&mut text);
        }
        text
    }
}

/// Exports `image` from `registry` into `rootfs`, starts its command there as its user on a free
/// loopback port and returns the body of its answer to `GET /`.
pub fn serve_image_once(registry: &Registry, image: &str, rootfs: &Path) -> String {
    serve_image_once_on(registry, image, rootfs, free_port())
}

/// [`serve_image_once`] on a given port (for an app that ignores `PORT` and has its own).
pub fn serve_image_once_on(registry: &Registry, image: &str, rootfs: &Path, port: u16) -> String {
    let config = registry.config(image);
    registry.export(image, rootfs);
    let mut app_process = start_image_command(rootfs, &config, port);
    let answer = poll_http(&mut app_process, port);
    let _ = app_process.kill();
    let _ = app_process.wait();
    answer
}

/// `dir` as a .tar.gz (the tree under `.`), and the archive's sha256 in hex: an archive source.
pub fn tar_gz(dir: &Path) -> (Vec<u8>, String) {
    use sha2::Digest;
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    builder.append_dir_all(".", dir).unwrap();
    let bytes = builder.into_inner().unwrap().finish().unwrap();
    let sum = hex::encode(sha2::Sha256::digest(&bytes));
    (bytes, sum)
}
