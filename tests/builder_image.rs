//! prepare learns the builder image from a real registry: `crane registry serve` on loopback
//! holding the two S2I test builder images (scripts/builder-images.sh), read with our OCI client
//! and checked against what crane itself says.
//!
//! Needs root and, once per machine, the Debian root filesystem (minutes); then seconds.

mod support;

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sourcebuild::api::{ArchiveSource, Source};
use sourcebuild::builder_image::{
    BuilderImageError, FetchOptions, fetch_builder_image, this_architecture,
};
use sourcebuild::contract::{PrepareReport, PrepareRequest, REQUEST_ENV};
use sourcebuild::prepare::{PrepareError, PrepareMounts, prepare_build};
use sourcebuild::reason::FailureReason;
use sourcebuild::s2i::scripts::BuilderMetadata;
use sourcebuild::source::SourceMounts;
use support::builder::{BuilderImages, push_builder_images};
use support::registry::{Registry, free_port};
use support::{HttpServer, Response};

const BIN: &str = env!("CARGO_BIN_EXE_sourcebuild");

/// The builder images pushed under their tags; `pinned(name)` is `host/s2i/name@<crane digest>`.
struct Setup {
    registry: Registry,
    builders: BuilderImages,
}

impl Setup {
    fn start() -> Setup {
        let registry = Registry::start();
        let builders = push_builder_images(&registry);
        Setup { registry, builders }
    }

    fn tagged(&self, name: &str) -> String {
        format!("{}/s2i/{name}:latest", self.registry.host())
    }

    fn pinned(&self, name: &str) -> String {
        let digest = self.registry.digest(&self.tagged(name));
        format!("{}/s2i/{name}@{digest}", self.registry.host())
    }

    fn options(&self) -> FetchOptions {
        FetchOptions {
            insecure_registries: vec![self.registry.host()],
            ..FetchOptions::default()
        }
    }
}

#[test]
fn both_builder_images_are_read_from_the_registry() {
    let setup = Setup::start();

    let sclorg = fetch_builder_image(&setup.tagged("python-sclorg"), &setup.options()).unwrap();
    assert_eq!(sclorg.reference, setup.pinned("python-sclorg"));
    assert_eq!(
        sclorg.metadata,
        BuilderMetadata {
            scripts_url: Some("image:///usr/libexec/s2i".into()),
            destination: Some("/tmp".into()),
            assemble_user: None,
            user: Some("1001".into()),
        }
    );

    let daeploy = fetch_builder_image(&setup.tagged("python-daeploy"), &setup.options()).unwrap();
    assert_eq!(daeploy.reference, setup.pinned("python-daeploy"));
    assert_eq!(
        daeploy.metadata,
        BuilderMetadata {
            scripts_url: Some("image://.s2i/bin".into()),
            destination: None,
            assemble_user: None,
            // No USER in the config: known to run as root.
            user: Some(String::new()),
        }
    );
    // The digest crane reports is the one pushed (builder-images.sh prints it too).
    assert_eq!(daeploy.reference, setup.builders.daeploy);

    // A reference that already names the digest resolves to itself.
    let again = fetch_builder_image(&setup.builders.sclorg, &setup.options()).unwrap();
    assert_eq!(again.reference, setup.builders.sclorg);
    assert_eq!(again.metadata, sclorg.metadata);

    // Credentials in a docker config.json for this registry are used and do no harm on a
    // registry without auth; a config.json entry that cannot be decoded is an error naming
    // the file, never the secret.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        serde_json::json!({"auths": {setup.registry.host(): {"auth": "dXNlcjpwYXNz"}}}).to_string(),
    )
    .unwrap();
    let with_auth = FetchOptions {
        docker_config: Some(config.clone()),
        ..setup.options()
    };
    let authed = fetch_builder_image(&setup.tagged("python-sclorg"), &with_auth).unwrap();
    assert_eq!(authed.reference, sclorg.reference);
    std::fs::write(
        &config,
        serde_json::json!({"auths": {setup.registry.host(): {"auth": "s3cret!"}}}).to_string(),
    )
    .unwrap();
    let error = fetch_builder_image(&setup.tagged("python-sclorg"), &with_auth).unwrap_err();
    assert!(
        matches!(error, BuilderImageError::DockerConfig { .. }),
        "{error}"
    );
    assert!(!error.to_string().contains("s3cret"), "{error}");
}

#[test]
fn an_index_resolves_to_this_platform_or_fails_without_it() {
    let setup = Setup::start();
    let host = setup.registry.host();
    let amd64 = setup.tagged("python-daeploy");
    // The same image claimed for another platform, and indexes made of them.
    let other = format!("{host}/s2i/other:s390x");
    setup.registry.crane(&[
        "mutate",
        &amd64,
        "--set-platform",
        "linux/s390x",
        "-t",
        &other,
    ]);
    let both = format!("{host}/s2i/multi:both");
    setup
        .registry
        .crane(&["index", "append", "-m", &other, "-m", &amd64, "-t", &both]);
    let only_other = format!("{host}/s2i/multi:s390x-only");
    setup
        .registry
        .crane(&["index", "append", "-m", &other, "-t", &only_other]);

    if this_architecture() == "amd64" {
        let resolved = fetch_builder_image(&both, &setup.options()).unwrap();
        // Pinned to the platform's manifest, whose config was read: not to the index.
        let manifest_digest = setup.registry.digest(&amd64);
        assert_eq!(
            resolved.reference,
            format!("{host}/s2i/multi@{manifest_digest}")
        );
        assert_ne!(setup.registry.digest(&both), manifest_digest);
        assert_eq!(
            resolved.metadata.scripts_url.as_deref(),
            Some("image://.s2i/bin")
        );
    }

    let error = fetch_builder_image(&only_other, &setup.options()).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "pulling builder image {only_other} from {host}: the image index has no linux/{} manifest",
            this_architecture()
        )
    );
}

#[test]
fn unknown_images_and_tags_and_unreachable_registries_fail_naming_the_image() {
    let setup = Setup::start();
    let host = setup.registry.host();
    for image in [
        format!("{host}/s2i/no-such-builder:1"),
        format!("{host}/s2i/python-sclorg:no-such-tag"),
    ] {
        let error = fetch_builder_image(&image, &setup.options()).unwrap_err();
        let text = error.to_string();
        assert!(
            matches!(error, BuilderImageError::Registry { .. }),
            "{text}"
        );
        assert!(
            text.starts_with(&format!("pulling builder image {image} from {host}: ")),
            "{text}"
        );
        // The registry's own answer: "Unknown name" / "manifest unknown".
        assert!(text.to_lowercase().contains("unknown"), "{text}");
    }

    // Nobody listens: the connection is refused.
    let closed = format!("127.0.0.1:{}", free_port());
    let image = format!("{closed}/s2i/python:1");
    let options = FetchOptions {
        insecure_registries: vec![closed.clone()],
        ..FetchOptions::default()
    };
    let text = fetch_builder_image(&image, &options)
        .unwrap_err()
        .to_string();
    assert!(
        text.starts_with(&format!("pulling builder image {image} from {closed}: ")),
        "{text}"
    );

    // Without --insecure-registry the client speaks TLS, which a plain-HTTP registry refuses.
    let plain = FetchOptions::default();
    let image = setup.tagged("python-sclorg");
    let error = fetch_builder_image(&image, &plain).unwrap_err();
    assert!(
        matches!(error, BuilderImageError::Registry { .. }),
        "{error}"
    );
}

#[test]
fn a_registry_that_never_answers_times_out() {
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let image = format!("{host}/s2i/python:1");
    let options = FetchOptions {
        insecure_registries: vec![host.clone()],
        timeout: Duration::from_secs(2),
        ..FetchOptions::default()
    };
    let start = Instant::now();
    let error = fetch_builder_image(&image, &options).unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        error.to_string(),
        format!("pulling builder image {image} from {host}: no answer within 2s")
    );
}

/// An archive source served over HTTP: `service.py` and `.s2i/environment`.
fn serve_app() -> HttpServer {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, text) in [
        ("service.py", "print('hello')\n"),
        (".s2i/environment", "APP_FILE=service.py\n"),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, text.as_bytes()).unwrap();
    }
    let body = tar.into_inner().unwrap();
    HttpServer::start(move |request| {
        if request.target == "/app.tar" {
            Response::ok(body.clone())
        } else {
            Response::status(404)
        }
    })
}

fn request(setup: &Setup, app: &HttpServer, builder: &str) -> PrepareRequest {
    PrepareRequest {
        source: Source {
            archive: Some(Box::new(ArchiveSource {
                url: app.url("/app.tar"),
                sha256: None,
            })),
            ..Source::default()
        },
        builder_image: builder.to_string(),
        scripts_url: None,
        assemble_user: None,
        env: Vec::new(),
        labels: Default::default(),
        output_image: format!("{}/apps/hello:1", setup.registry.host()),
        insecure_registries: vec![setup.registry.host()],
    }
}

/// `sourcebuild prepare` as the build Pod runs it: the request in the environment, the report
/// in the termination log.
fn run_prepare(req: &PrepareRequest, dir: &Path) -> (bool, PrepareReport) {
    let termination_log = dir.join("termination-log");
    // The Pod's emptyDirs exist before prepare starts.
    for volume in ["workspace", "scratch"] {
        std::fs::create_dir_all(dir.join(volume)).unwrap();
    }
    let output = Command::new(BIN)
        .arg("prepare")
        .arg("--workspace")
        .arg(dir.join("workspace"))
        .arg("--scratch")
        .arg(dir.join("scratch"))
        .arg("--termination-log")
        .arg(&termination_log)
        .env(REQUEST_ENV, serde_json::to_string(req).unwrap())
        .output()
        .unwrap();
    let report = std::fs::read_to_string(&termination_log).unwrap_or_else(|e| {
        panic!(
            "no termination log ({e}); stderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (
        output.status.success(),
        serde_json::from_str(&report).unwrap(),
    )
}

#[test]
fn prepare_builds_from_the_daeploy_builder_as_root_with_its_scripts_and_reports_the_digest() {
    let setup = Setup::start();
    let app = serve_app();
    let dir = tempfile::tempdir().unwrap();
    let req = request(&setup, &app, &setup.tagged("python-daeploy"));

    let (ok, report) = run_prepare(&req, dir.path());
    assert!(ok, "{report:?}");
    let PrepareReport::Prepared(result) = report else {
        panic!("prepare failed: {report:?}");
    };
    let pinned = setup.pinned("python-daeploy");
    assert_eq!(result.builder_image, pinned);

    let dockerfile = std::fs::read_to_string(dir.path().join("workspace/Dockerfile")).unwrap();
    assert!(
        dockerfile.starts_with(&format!("FROM {pinned}\n")),
        "{dockerfile}"
    );
    // Root, as the image runs: no USER instruction, files owned by root.
    assert!(!dockerfile.contains("\nUSER "), "{dockerfile}");
    assert!(
        dockerfile.contains("COPY --chown=0:0 upload/src /tmp/src\n"),
        "{dockerfile}"
    );
    assert!(
        dockerfile.contains("RUN [\"/.s2i/bin/assemble\"]\n"),
        "{dockerfile}"
    );
    assert!(
        dockerfile.contains("CMD [\"/.s2i/bin/run\"]\n"),
        "{dockerfile}"
    );
    // The label keeps the image as the spec named it, tag included.
    assert!(
        dockerfile.contains(&format!(
            "\"io.openshift.s2i.build.image\"=\"{}\"",
            setup.tagged("python-daeploy")
        )),
        "{dockerfile}"
    );
}

/// A workspace and a scratch directory under `dir`, as the Pod's emptyDirs.
fn volumes(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let workspace = dir.join(name).join("workspace");
    let scratch = dir.join(name).join("scratch");
    std::fs::create_dir_all(&workspace).unwrap();
    std::fs::create_dir_all(&scratch).unwrap();
    (workspace, scratch)
}

#[test]
fn spec_overrides_win_over_the_builder_image() {
    let setup = Setup::start();
    let app = serve_app();
    let dir = tempfile::tempdir().unwrap();
    let mut req = request(&setup, &app, &setup.tagged("python-daeploy"));
    req.scripts_url = Some("image:///opt/custom/s2i".into());
    req.assemble_user = Some("1001".into());
    let mounts = PrepareMounts {
        source: SourceMounts {
            git_secret_dir: None,
            configmap_dir: dir.path().join("no-configmap"),
            ..SourceMounts::default()
        },
        docker_config: dir.path().join("no-config.json"),
        oci_docker_config: None,
        results_dir: None,
    };
    let (workspace, scratch) = volumes(dir.path(), "daeploy");
    let result = prepare_build(&req, &mounts, &workspace, &scratch).unwrap();
    assert_eq!(result.builder_image, setup.pinned("python-daeploy"));
    let dockerfile = std::fs::read_to_string(workspace.join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("\nUSER 1001\n"), "{dockerfile}");
    assert!(
        dockerfile.contains("COPY --chown=1001:0 upload/src /tmp/src\n"),
        "{dockerfile}"
    );
    assert!(
        dockerfile.contains("RUN [\"/opt/custom/s2i/assemble\"]\n"),
        "{dockerfile}"
    );
    assert!(
        dockerfile.contains("CMD [\"/opt/custom/s2i/run\"]\n"),
        "{dockerfile}"
    );

    // The sclorg builder's labels and USER apply when the spec says nothing.
    let req = request(&setup, &app, &setup.tagged("python-sclorg"));
    let (workspace, scratch) = volumes(dir.path(), "sclorg");
    prepare_build(&req, &mounts, &workspace, &scratch).unwrap();
    let dockerfile = std::fs::read_to_string(workspace.join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("\nUSER 1001\n"), "{dockerfile}");
    assert!(
        dockerfile.contains("RUN [\"/usr/libexec/s2i/assemble\"]\n"),
        "{dockerfile}"
    );
}

#[test]
fn prepare_reports_builder_image_pull_failed_for_an_unknown_image_or_tag() {
    let setup = Setup::start();
    let app = serve_app();
    let host = setup.registry.host();
    for image in [
        format!("{host}/s2i/no-such-builder:1"),
        format!("{host}/s2i/python-daeploy:no-such-tag"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (ok, report) = run_prepare(&request(&setup, &app, &image), dir.path());
        assert!(!ok);
        let PrepareReport::Failed(failure) = report else {
            panic!("prepare succeeded for {image}: {report:?}");
        };
        assert_eq!(failure.reason, FailureReason::BuilderImagePullFailed);
        assert!(failure.message.contains(&image), "{}", failure.message);
        // The builder is looked up first: nothing was fetched or written.
        assert!(!dir.path().join("workspace/Dockerfile").exists());
    }

    let mounts = PrepareMounts {
        source: SourceMounts {
            git_secret_dir: None,
            configmap_dir: "/nonexistent".into(),
            ..SourceMounts::default()
        },
        docker_config: "/nonexistent/config.json".into(),
        oci_docker_config: None,
        results_dir: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let (workspace, scratch) = volumes(dir.path(), "unknown");
    let error = prepare_build(
        &request(&setup, &app, &format!("{host}/s2i/no-such-builder:1")),
        &mounts,
        &workspace,
        &scratch,
    )
    .unwrap_err();
    assert!(matches!(error, PrepareError::BuilderImage(_)), "{error}");
    assert_eq!(error.reason(), FailureReason::BuilderImagePullFailed);
}
