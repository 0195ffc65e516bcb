//! A real OCI registry on loopback for tests: `crane registry serve` (pinned in tools/crane),
//! plain HTTP, blobs in a temporary directory, stopped on drop. Helpers shell out to crane.
#![allow(dead_code)]

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::tools::{kill_with_parent, tool};

/// How long the registry may take to answer `/v2/` after starting.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// A running `crane registry serve`. It lives until dropped or until the thread that started it
/// exits (PR_SET_PDEATHSIG), so keep it in the test function that uses it.
pub struct Registry {
    child: Child,
    port: u16,
    crane: PathBuf,
    _disk: tempfile::TempDir,
    log: PathBuf,
}

impl Registry {
    /// Starts a registry on a free 127.0.0.1 port and waits until `/v2/` answers. It has no
    /// OCI 1.1 referrers API (`crane registry serve` leaves it off).
    pub fn start() -> Registry {
        Registry::launch(false)
    }

    /// Like [`Registry::start`], with the OCI 1.1 referrers API: `tools/oci-registry`
    /// (go-containerregistry's registry with that API on, blobs in memory).
    pub fn start_with_referrers_api() -> Registry {
        Registry::launch(true)
    }

    fn launch(referrers_api: bool) -> Registry {
        let crane = tool("crane");
        let program = if referrers_api {
            tool("oci-registry")
        } else {
            crane.clone()
        };
        let disk = tempfile::Builder::new()
            .prefix("sourcebuild-registry-")
            .tempdir()
            .unwrap();
        let log = disk.path().join("registry.log");
        let blobs = disk.path().join("blobs");
        std::fs::create_dir_all(&blobs).unwrap();
        // A port freed just before the child binds it may be taken in between: then the child
        // exits and we try another.
        for _ in 0..5 {
            let port = free_port();
            let log_file = std::fs::File::create(&log).unwrap();
            let mut command = Command::new(&program);
            if referrers_api {
                command.arg(format!("127.0.0.1:{port}"));
            } else {
                command
                    .args(["registry", "serve", "--address"])
                    .arg(format!("127.0.0.1:{port}"))
                    .arg("--disk")
                    .arg(&blobs);
            }
            command
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file);
            kill_with_parent(&mut command);
            let mut child = command
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
            match wait_ready(&mut child, port) {
                Ready::Yes => {
                    return Registry {
                        child,
                        port,
                        crane,
                        _disk: disk,
                        log,
                    };
                }
                Ready::Exited => continue,
                Ready::TimedOut => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "registry on 127.0.0.1:{port} did not answer /v2/ within {START_DEADLINE:?}:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
        }
        panic!(
            "crane registry serve exited at start five times:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    }

    /// `127.0.0.1:PORT`, the registry part of image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The registry process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The temporary directory holding the blobs and the log (removed on drop).
    pub fn disk(&self) -> &Path {
        self._disk.path()
    }

    /// The crane binary the registry runs on.
    pub fn crane_path(&self) -> &Path {
        &self.crane
    }

    /// What the registry printed so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs `crane --insecure ARGS` and returns its stdout; panics with stderr on failure.
    pub fn crane(&self, args: &[&str]) -> Vec<u8> {
        let output = Command::new(&self.crane)
            .arg("--insecure")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "crane {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    }

    /// The digest (`sha256:...`) the registry serves for `image`.
    pub fn digest(&self, image: &str) -> String {
        String::from_utf8(self.crane(&["digest", image]))
            .unwrap()
            .trim()
            .to_string()
    }

    /// The image's config (the JSON document with `config.Cmd`, `config.Labels`...).
    pub fn config(&self, image: &str) -> serde_json::Value {
        serde_json::from_slice(&self.crane(&["config", image])).unwrap()
    }

    /// The image's manifest.
    pub fn manifest(&self, image: &str) -> serde_json::Value {
        serde_json::from_slice(&self.crane(&["manifest", image])).unwrap()
    }

    /// Unpacks the image's flattened filesystem into `dir`, keeping modes and owners.
    pub fn export(&self, image: &str, dir: &Path) {
        let mut child = Command::new(&self.crane)
            .args(["--insecure", "export", image, "-"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // stderr is read on its own thread and stdout drained after the unpack: a crane still
        // writing to a pipe nobody reads never exits, and the test would hang in wait().
        let mut stderr_pipe = child.stderr.take().unwrap();
        let stderr_reader = std::thread::spawn(move || {
            let mut stderr = String::new();
            let _ = stderr_pipe.read_to_string(&mut stderr);
            stderr
        });
        let mut stdout = child.stdout.take().unwrap();
        let mut archive = tar::Archive::new(&mut stdout);
        archive.set_preserve_permissions(true);
        archive.set_preserve_ownerships(true);
        archive.set_unpack_xattrs(false);
        std::fs::create_dir_all(dir).unwrap();
        let unpacked = archive.unpack(dir);
        if unpacked.is_err() {
            let _ = child.kill();
        }
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        let status = child.wait().unwrap();
        let stderr = stderr_reader.join().unwrap();
        assert!(
            unpacked.is_err() || status.success(),
            "crane export {image} failed: {stderr}"
        );
        unpacked.unwrap_or_else(|e| {
            panic!(
                "unpacking {image} into {}: {e}\ncrane: {stderr}",
                dir.display()
            )
        });
    }
}

enum Ready {
    Yes,
    Exited,
    TimedOut,
}

/// Polls `/v2/` until it answers 200, the child exits (port taken) or the deadline passes.
fn wait_ready(child: &mut Child, port: u16) -> Ready {
    let deadline = Instant::now() + START_DEADLINE;
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/v2/");
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return Ready::Exited;
        }
        if let Ok(response) = client.get(&url).send()
            && response.status().is_success()
        {
            return Ready::Yes;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ready::TimedOut
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
