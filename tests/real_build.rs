//! Real image builds end to end, without a cluster or a container engine: a local registry
//! (crane), an S2I builder image made from Debian packages, a build context written by our own
//! `sourcebuild render`, and the pinned Kaniko executor building and pushing in a throwaway root.
//!
//! Needs root, the pinned tools (built on first use) and, once per machine, the Debian root
//! filesystem (scripts/builder-images.sh, minutes). Each test takes about a minute after that.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sourcebuild::contract::{PrepareReport, REQUEST_ENV};
use support::app::{
    ASSEMBLE_HOOK, FAILING_ASSEMBLE_HOOK, poll_http, start_image_command, write_app,
};
use support::builder::push_builder_images;
use support::kaniko::{KanikoResult, run_kaniko};
use support::registry::{Registry, free_port};
use support::{HttpServer, Response};

const BIN: &str = env!("CARGO_BIN_EXE_sourcebuild");

/// Kaniko's message when a RUN step fails (pkg/executor/build.go).
const KANIKO_RUN_FAILED: &str = "failed to execute command";

/// `sourcebuild render` of a SourceBuild for `builder`, with `app` standing in for the source:
/// the build context the prepare step would write. The builder's config and digest come from
/// `registry` (`crane config`, `crane digest`), as prepare reads them. `builder_extra` adds
/// `spec.builder` fields (YAML flow-mapping entries).
fn render_context(
    registry: &Registry,
    work: &Path,
    app: &Path,
    builder: &str,
    builder_extra: &str,
    output: &str,
) -> Rendered {
    let manifest = work.join("sourcebuild.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: sourcebuild.dev/v1alpha1\nkind: SourceBuild\nmetadata: {{name: hello}}\n\
             spec:\n  source: {{git: {{url: https://example.com/acme/hello.git}}}}\n  \
             builder: {{image: \"{builder}\"{builder_extra}}}\n  output: {{image: \"{output}\"}}\n"
        ),
    )
    .unwrap();
    let context = work.join("workspace");
    let builder_config = work.join("builder-config.json");
    std::fs::write(&builder_config, registry.crane(&["config", builder])).unwrap();
    let rendered = Command::new(BIN)
        .args(["render", "-f"])
        .arg(&manifest)
        .arg("--builder-config")
        .arg(&builder_config)
        .arg("--builder-digest")
        .arg(registry.digest(builder))
        .arg("--source")
        .arg(app)
        .arg("--context")
        .arg(&context)
        .output()
        .unwrap();
    assert!(
        rendered.status.success(),
        "render failed: {}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let dockerfile = String::from_utf8(rendered.stdout).unwrap();
    // `builder` is already pinned (repo@digest): pinning it again names it unchanged.
    assert!(
        dockerfile.starts_with(&format!("FROM {builder}\n")),
        "{dockerfile}"
    );
    let stderr = String::from_utf8_lossy(&rendered.stderr);
    assert!(
        !stderr.contains("note:"),
        "render assumed defaults: {stderr}"
    );
    let kaniko_args = pod_kaniko_args(&manifest, output);
    Rendered {
        context,
        kaniko_args,
    }
}

/// A build context and the Kaniko flags the build Pod would add to the harness's own.
struct Rendered {
    context: std::path::PathBuf,
    kaniko_args: Vec<String>,
}

/// The build container's args in the Pod `sourcebuild render --pod` makes, less the five the
/// harness sets itself or leaves out (checked to agree with it). `--digest-file` differs on
/// purpose: the Pod writes the termination log, the harness a file in the throwaway root (its
/// /dev is the host's); the publish step's digest file is the node tests' to check.
fn pod_kaniko_args(manifest: &Path, output: &str) -> Vec<String> {
    let rendered = Command::new(BIN)
        .args(["render", "--pod", "-f"])
        .arg(manifest)
        .output()
        .unwrap();
    assert!(rendered.status.success());
    let pod: serde_norway::Value = serde_norway::from_slice(&rendered.stdout).unwrap();
    let build = pod["spec"]["initContainers"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "build")
        .expect("a build container");
    let args: Vec<String> = serde_norway::from_value(build["args"].clone()).unwrap();
    let own = [
        "--context=dir:///workspace".to_string(),
        format!("--dockerfile={DOCKERFILE}"),
        format!("--destination={output}"),
        "--digest-file=/dev/termination-log".to_string(),
        "--image-name-with-digest-file=/var/run/sourcebuild/digest/image".to_string(),
    ];
    for flag in &own {
        assert!(
            args.contains(flag),
            "the Pod's Kaniko args {args:?} lack {flag}"
        );
    }
    args.into_iter().filter(|a| !own.contains(a)).collect()
}

const DOCKERFILE: &str = "/workspace/Dockerfile";

/// The files under `dir`, as paths relative to it, sorted.
fn files_under(dir: &Path, relative: &Path, out: &mut Vec<std::path::PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir.join(relative))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    entries.sort();
    for name in entries {
        let path = relative.join(name);
        if dir.join(&path).is_dir() {
            files_under(dir, &path, out);
        } else {
            out.push(path);
        }
    }
}

/// The build context as the build Pod's init step writes it: `sourcebuild prepare` itself,
/// with `app` served as an archive source and the builder image named by its tag, so prepare
/// reads the image's labels and USER from `registry` and pins FROM to its digest. Checks the
/// termination report names the pinned image.
fn prepare_context(
    registry: &Registry,
    work: &Path,
    app: &Path,
    builder_tag: &str,
    output: &str,
) -> Rendered {
    let mut tar = tar::Builder::new(Vec::new());
    let mut files = Vec::new();
    files_under(app, Path::new(""), &mut files);
    for file in &files {
        tar.append_path_with_name(app.join(file), file).unwrap();
    }
    let body = tar.into_inner().unwrap();
    let server = HttpServer::start(move |request| {
        if request.target == "/app.tar" {
            Response::ok(body.clone())
        } else {
            Response::status(404)
        }
    });
    let request = serde_json::json!({
        "source": {"archive": {"url": server.url("/app.tar")}},
        "builderImage": builder_tag,
        "outputImage": output,
        "insecureRegistries": [registry.host()],
    });
    let context = work.join("workspace");
    let scratch = work.join("scratch");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::create_dir_all(&scratch).unwrap();
    let termination_log = work.join("prepare-termination-log");
    let prepared = Command::new(BIN)
        .arg("prepare")
        .arg("--workspace")
        .arg(&context)
        .arg("--scratch")
        .arg(&scratch)
        .arg("--termination-log")
        .arg(&termination_log)
        .env(REQUEST_ENV, request.to_string())
        .output()
        .unwrap();
    let report = std::fs::read_to_string(&termination_log).unwrap_or_default();
    assert!(
        prepared.status.success(),
        "prepare failed: {report}\n{}",
        String::from_utf8_lossy(&prepared.stderr)
    );
    let pinned = format!(
        "{}@{}",
        builder_tag.trim_end_matches(":latest"),
        registry.digest(builder_tag)
    );
    let PrepareReport::Prepared(result) = serde_json::from_str(&report).unwrap() else {
        panic!("not a success report: {report}");
    };
    assert_eq!(result.builder_image, pinned);
    let dockerfile = std::fs::read_to_string(context.join("Dockerfile")).unwrap();
    assert!(
        dockerfile.starts_with(&format!("FROM {pinned}\n")),
        "{dockerfile}"
    );
    eprintln!("prepare wrote:\n{dockerfile}");

    let manifest = work.join("sourcebuild.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: sourcebuild.dev/v1alpha1\nkind: SourceBuild\nmetadata: {{name: hello}}\n\
             spec:\n  source: {{archive: {{url: \"{}\"}}}}\n  \
             builder: {{image: \"{builder_tag}\"}}\n  output: {{image: \"{output}\"}}\n",
            server.url("/app.tar")
        ),
    )
    .unwrap();
    let kaniko_args = pod_kaniko_args(&manifest, output);
    Rendered {
        context,
        kaniko_args,
    }
}

fn build(rendered: &Rendered, output: &str) -> KanikoResult {
    let extra: Vec<&str> = rendered.kaniko_args.iter().map(String::as_str).collect();
    let result = run_kaniko(&rendered.context, DOCKERFILE, output, &extra);
    eprintln!("kaniko exit {}; log:\n{}", result.exit_code, result.log);
    result
}

#[test]
fn kaniko_builds_and_pushes_an_s2i_python_app_that_serves() {
    let registry = Registry::start();
    let builders = push_builder_images(&registry);
    let work = tempfile::tempdir().unwrap();
    let app = work.path().join("app");
    write_app(&app, Some(ASSEMBLE_HOOK));
    let output = format!("{}/apps/hello:1", registry.host());
    let rendered = render_context(&registry, work.path(), &app, &builders.sclorg, "", &output);

    let result = build(&rendered, &output);
    assert_eq!(result.exit_code, 0, "Kaniko failed:\n{}", result.log);

    // The digest Kaniko reports is the one the registry serves for the tag.
    let digest = registry.digest(&output);
    assert!(digest.starts_with("sha256:"), "{digest}");
    assert_eq!(
        result.digest_file_contents.as_deref(),
        Some(digest.as_str())
    );

    // The image's command is the source's run hook, as the Dockerfile's CMD says.
    let config = registry.config(&output);
    let cmd: Vec<String> =
        serde_json::from_value(config["config"]["Cmd"].clone()).expect("Cmd is a list");
    assert_eq!(cmd, ["/tmp/scripts/run"]);
    assert_eq!(config["config"]["User"], "1001");
    let env: Vec<String> = serde_json::from_value(config["config"]["Env"].clone()).unwrap();
    assert!(env.contains(&"APP_FILE=service.py".to_string()), "{env:?}");
    assert_eq!(
        config["config"]["Labels"]["io.openshift.s2i.build.source-location"],
        "https://example.com/acme/hello.git"
    );

    // The assemble hook ran at build time, as the assemble user, after the builder's assemble.
    let rootfs = work.path().join("rootfs");
    registry.export(&output, &rootfs);
    let marker = rootfs.join("opt/app-root/src/s2i-marker.txt");
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "assembled by uid 1001\n"
    );
    assert_eq!(std::fs::metadata(&marker).unwrap().uid(), 1001);
    assert!(rootfs.join("opt/app-root/src/service.py").is_file());

    // The image's command, started as its user in a chroot of its filesystem, serves the app.
    let port = free_port();
    let mut app_process = start_image_command(&rootfs, &config, port);
    let answer = poll_http(&mut app_process, port);
    let _ = app_process.kill();
    let _ = app_process.wait();
    assert_eq!(answer, "hello from a real build (assembled by uid 1001)\n");
}

#[test]
fn daeploy_style_builder_with_its_scripts_url_and_root_assemble_user() {
    let registry = Registry::start();
    let builders = push_builder_images(&registry);
    let work = tempfile::tempdir().unwrap();
    let app = work.path().join("app");
    write_app(&app, None);
    let output = format!("{}/apps/daeploy:1", registry.host());
    // No overrides: prepare reads the scripts-url label and the missing USER (root) from the
    // image itself.
    let tag = format!("{}/s2i/python-daeploy:latest", registry.host());
    let rendered = prepare_context(&registry, work.path(), &app, &tag, &output);
    assert!(
        std::fs::read_to_string(rendered.context.join("Dockerfile"))
            .unwrap()
            .lines()
            .all(|line| !line.starts_with("USER")),
        "assemble runs as the image's own user, root"
    );
    // The tag prepare resolved is the image builder-images.sh pushed.
    assert_eq!(
        format!(
            "{}@{}",
            tag.trim_end_matches(":latest"),
            registry.digest(&tag)
        ),
        builders.daeploy
    );

    let result = build(&rendered, &output);
    assert_eq!(result.exit_code, 0, "Kaniko failed:\n{}", result.log);
    let digest = registry.digest(&output);
    assert_eq!(
        result.digest_file_contents.as_deref(),
        Some(digest.as_str())
    );
    assert!(
        result
            .log
            .contains("---> Installing application source into /app_root")
    );

    let config = registry.config(&output);
    let cmd: Vec<String> = serde_json::from_value(config["config"]["Cmd"].clone()).unwrap();
    assert_eq!(cmd, ["/.s2i/bin/run"]);
    let user = config["config"]["User"].as_str().unwrap_or("");
    assert!(["", "0", "root"].contains(&user), "{user:?}");

    let rootfs = work.path().join("rootfs");
    registry.export(&output, &rootfs);
    let service = rootfs.join("app_root/service.py");
    assert!(service.is_file());
    assert_eq!(std::fs::metadata(&service).unwrap().uid(), 0);

    let port = free_port();
    let mut app_process = start_image_command(&rootfs, &config, port);
    let answer = poll_http(&mut app_process, port);
    let _ = app_process.kill();
    let _ = app_process.wait();
    assert_eq!(answer, "hello from a real build (no marker)\n");
}

#[test]
fn a_failing_assemble_fails_the_kaniko_build() {
    let registry = Registry::start();
    let builders = push_builder_images(&registry);
    let work = tempfile::tempdir().unwrap();
    let app = work.path().join("app");
    write_app(&app, Some(FAILING_ASSEMBLE_HOOK));
    let output = format!("{}/apps/broken:1", registry.host());
    let rendered = render_context(&registry, work.path(), &app, &builders.sclorg, "", &output);

    let result = build(&rendered, &output);
    assert_ne!(result.exit_code, 0, "{}", result.log);
    assert!(result.log.contains(KANIKO_RUN_FAILED), "{}", result.log);
    assert!(
        result.log.contains("source assemble hook that fails"),
        "{}",
        result.log
    );
    // Nothing was pushed under the tag.
    let missing = Command::new(registry.crane_path())
        .args(["--insecure", "digest", &output])
        .output()
        .unwrap();
    assert!(!missing.status.success());
}

#[test]
fn builder_images_carry_s2i_metadata_and_push_reproducibly() {
    let registry = Registry::start();
    let builders = push_builder_images(&registry);
    let env_of = |config: &serde_json::Value| -> Vec<String> {
        serde_json::from_value(config["config"]["Env"].clone()).unwrap()
    };

    let sclorg = registry.config(&builders.sclorg);
    let labels = &sclorg["config"]["Labels"];
    assert_eq!(
        labels["io.openshift.s2i.scripts-url"],
        "image:///usr/libexec/s2i"
    );
    assert_eq!(labels["io.openshift.s2i.destination"], "/tmp");
    assert_eq!(sclorg["config"]["User"], "1001");
    let env = env_of(&sclorg);
    assert!(
        env.contains(&"STI_SCRIPTS_PATH=/usr/libexec/s2i".to_string()),
        "{env:?}"
    );
    assert!(
        env.contains(&"HOME=/opt/app-root/src".to_string()),
        "{env:?}"
    );
    assert_eq!(sclorg["architecture"], "amd64");
    assert_eq!(sclorg["os"], "linux");

    let daeploy = registry.config(&builders.daeploy);
    assert_eq!(
        daeploy["config"]["Labels"]["io.openshift.s2i.scripts-url"],
        "image://.s2i/bin"
    );
    assert!(daeploy["config"]["User"].as_str().unwrap_or("").is_empty());
    assert!(env_of(&daeploy).contains(&"STI_SCRIPTS_PATH=/.s2i/bin".to_string()));

    let work = tempfile::tempdir().unwrap();
    let fs = work.path().join("sclorg");
    registry.export(&builders.sclorg, &fs);
    let passwd = std::fs::read_to_string(fs.join("etc/passwd")).unwrap();
    assert!(
        passwd.lines().any(|l| l.starts_with("default:x:1001:0:")),
        "{passwd}"
    );
    let src = std::fs::metadata(fs.join("opt/app-root/src")).unwrap();
    assert_eq!((src.uid(), src.gid(), src.mode() & 0o777), (1001, 0, 0o775));
    for script in ["assemble", "run", "usage"] {
        let meta = std::fs::metadata(fs.join("usr/libexec/s2i").join(script)).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o755, "{script}");
    }
    assert!(fs.join("usr/bin/python3").exists());
    let fs = work.path().join("daeploy");
    registry.export(&builders.daeploy, &fs);
    assert!(fs.join(".s2i/bin/assemble").is_file());
    assert_eq!(std::fs::metadata(fs.join("app_root")).unwrap().uid(), 0);

    // Same recipe, same bytes: a second push names the same digests.
    let again = push_builder_images(&registry);
    assert_eq!(again.sclorg, builders.sclorg);
    assert_eq!(again.daeploy, builders.daeploy);
}

/// Whether anything answers `/v2/` on `host`.
fn answers(host: &str) -> bool {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap()
        .get(format!("http://{host}/v2/"))
        .send()
        .is_ok()
}

/// Polls until `host` stops answering; false if it still answers at the deadline.
fn stops_answering(host: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if !answers(host) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn the_registry_stops_on_drop_and_cannot_outlive_its_thread() {
    let registry = Registry::start();
    let host = registry.host();
    assert!(answers(&host));
    drop(registry);
    assert!(!answers(&host), "still answering after drop");

    // Leaked, never dropped: PR_SET_PDEATHSIG kills it when the thread that started it ends.
    let (host, disk) = std::thread::spawn(|| {
        let registry = Registry::start();
        let leaked = (registry.host(), registry.disk().to_path_buf());
        std::mem::forget(registry);
        leaked
    })
    .join()
    .unwrap();
    let stopped = stops_answering(&host);
    std::fs::remove_dir_all(&disk).unwrap();
    assert!(stopped, "{host} outlived the thread that started it");
}
