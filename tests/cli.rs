//! The `sourcebuild` binary as a build Pod and a user run it: `prepare` against a real local git
//! repository and a real local registry holding the builder image, `render` on good and bad
//! manifests, `crd`.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use sha2::{Digest, Sha256};
use support::registry::Registry;

const BIN: &str = env!("CARGO_BIN_EXE_sourcebuild");

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.email=t@example.com",
            "-c",
            "user.name=t",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A repository with S2I hooks, an environment file and an ignore file, two commits on main.
fn app_repository(root: &Path) -> (String, String) {
    let repo = root.join("app");
    std::fs::create_dir_all(repo.join(".s2i/bin")).unwrap();
    git(&repo, &["init", "-q"]);
    std::fs::write(repo.join("service.py"), "print('v1')\n").unwrap();
    std::fs::write(repo.join(".s2i/environment"), "APP_FILE=service.py\n").unwrap();
    std::fs::write(
        repo.join(".s2i/bin/assemble"),
        "#!/bin/sh\n\"$STI_SCRIPTS_PATH/assemble\"\n",
    )
    .unwrap();
    std::fs::write(
        repo.join(".s2i/bin/run"),
        "#!/bin/sh\nexec \"$STI_SCRIPTS_PATH/run\"\n",
    )
    .unwrap();
    std::fs::write(repo.join(".s2iignore"), "*.log\n").unwrap();
    std::fs::write(repo.join("debug.log"), "noise\n").unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "v1"]);
    let first = git(&repo, &["rev-parse", "HEAD"]);
    std::fs::write(repo.join("service.py"), "print('v2')\n").unwrap();
    git(&repo, &["commit", "-qam", "v2"]);
    let second = git(&repo, &["rev-parse", "HEAD"]);
    (first, second)
}

fn prepare(root: &Path, request: serde_json::Value) -> (Output, serde_json::Value) {
    let workspace = root.join("workspace");
    let scratch = root.join("scratch");
    std::fs::create_dir_all(&workspace).unwrap();
    std::fs::create_dir_all(&scratch).unwrap();
    let termination_log = root.join("termination-log");
    let output = Command::new(BIN)
        .args(["prepare", "--workspace"])
        .arg(&workspace)
        .arg("--scratch")
        .arg(&scratch)
        .arg("--termination-log")
        .arg(&termination_log)
        .env("SOURCEBUILD_PREPARE_REQUEST", request.to_string())
        .output()
        .unwrap();
    let report = std::fs::read_to_string(&termination_log).expect("prepare writes its report");
    assert!(report.len() <= 4096);
    (output, serde_json::from_str(&report).unwrap())
}

/// A one-layer builder image in `registry` with sclorg's scripts label and `USER 1001`; returns
/// its tag reference.
fn builder_image(registry: &Registry) -> String {
    let dir = tempfile::tempdir().unwrap();
    let layer = dir.path().join("layer.tar");
    let mut tar = tar::Builder::new(std::fs::File::create(&layer).unwrap());
    let script = b"#!/bin/sh\necho assemble\n";
    let mut header = tar::Header::new_gnu();
    header.set_size(script.len() as u64);
    header.set_mode(0o755);
    header.set_cksum();
    tar.append_data(&mut header, "usr/libexec/s2i/assemble", &script[..])
        .unwrap();
    tar.into_inner().unwrap();
    let image = format!("{}/s2i/tiny:1", registry.host());
    registry.crane(&["append", "-f", layer.to_str().unwrap(), "-t", &image]);
    registry.crane(&[
        "mutate",
        &image,
        "-t",
        &image,
        "--label",
        "io.openshift.s2i.scripts-url=image:///usr/libexec/s2i",
        "--user",
        "1001",
    ]);
    image
}

fn request(registry: &Registry, builder: &str, url: &str, revision: &str) -> serde_json::Value {
    serde_json::json!({
        "source": {"git": {"url": url, "revision": revision}},
        "builderImage": builder,
        "env": [{"name": "WEB_CONCURRENCY", "value": "2"}],
        "outputImage": "registry.example.com/team/app:1.0",
        "insecureRegistries": [registry.host()]
    })
}

#[test]
fn prepare_clones_a_commit_and_lays_out_the_context() {
    let root = tempfile::tempdir().unwrap();
    let (first, _) = app_repository(root.path());
    let url = format!("file://{}", root.path().join("app").display());
    let registry = Registry::start();
    let builder = builder_image(&registry);
    let (output, report) = prepare(root.path(), request(&registry, &builder, &url, &first));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let prepared = &report["prepared"];
    assert_eq!(prepared["revision"], first.as_str());
    let workspace = root.path().join("workspace");
    let dockerfile = std::fs::read(workspace.join("Dockerfile")).unwrap();
    let sha = format!("sha256:{}", hex::encode(Sha256::digest(&dockerfile)));
    assert_eq!(prepared["dockerfileSha256"], sha.as_str());

    let dockerfile = String::from_utf8(dockerfile).unwrap();
    // FROM the builder pinned to the digest the registry serves, as the report says.
    let pinned = format!("{}/s2i/tiny@{}", registry.host(), registry.digest(&builder));
    assert_eq!(prepared["builderImage"], pinned.as_str());
    assert!(
        dockerfile.starts_with(&format!("FROM {pinned}\n")),
        "{dockerfile}"
    );
    assert!(dockerfile.contains("\nUSER 1001\n"), "{dockerfile}");
    assert!(dockerfile.contains(&format!("\"io.openshift.s2i.build.commit.id\"=\"{first}\"")));
    assert!(
        dockerfile.contains("RUN [\"/tmp/scripts/assemble\"]"),
        "{dockerfile}"
    );
    assert!(
        dockerfile.contains("CMD [\"/tmp/scripts/run\"]"),
        "{dockerfile}"
    );
    assert!(
        dockerfile.contains("APP_FILE=\"service.py\""),
        "{dockerfile}"
    );
    // The requested commit, not the branch tip.
    let service = std::fs::read_to_string(workspace.join("upload/src/service.py")).unwrap();
    assert_eq!(service, "print('v1')\n");
    assert!(
        !workspace.join("upload/src/debug.log").exists(),
        ".s2iignore applies"
    );
    assert!(
        !workspace.join("upload/src/.git").exists(),
        "no git metadata in the image"
    );
    for hook in ["assemble", "run"] {
        let mode = std::fs::metadata(workspace.join("upload/scripts").join(hook))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755, "{hook}");
    }
}

#[test]
fn prepare_reports_an_unknown_revision_and_exits_non_zero() {
    let root = tempfile::tempdir().unwrap();
    app_repository(root.path());
    let url = format!("file://{}", root.path().join("app").display());
    let registry = Registry::start();
    let builder = builder_image(&registry);
    let (output, report) = prepare(
        root.path(),
        request(&registry, &builder, &url, "no-such-branch"),
    );
    assert!(!output.status.success());
    assert_eq!(report["failed"]["reason"], "SourceFetchFailed");
    assert!(
        report["failed"]["message"]
            .as_str()
            .unwrap()
            .contains("no-such-branch")
    );
}

#[test]
fn prepare_builds_an_oci_artifact_pinned_to_its_digest_with_its_origin() {
    use sourcebuild::source::oci::{
        ANNOTATION_REVISION, ANNOTATION_SOURCE, Artifact, push_artifact,
    };
    let root = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let builder = builder_image(&registry);
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(12);
    header.set_mode(0o644);
    tar.append_data(&mut header, "app/app.py", &b"print('oci')"[..])
        .unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &tar.into_inner().unwrap()).unwrap();
    let artifact = Artifact {
        content: gz.finish().unwrap(),
        annotations: [
            (ANNOTATION_SOURCE, "https://example.com/team/app"),
            (ANNOTATION_REVISION, "main@sha1:0123abcd"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    };
    let image = format!("{}/team/app/source:latest", registry.host());
    let digest = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(push_artifact(
            &image,
            &artifact,
            &oci_client::secrets::RegistryAuth::Anonymous,
            &[registry.host()],
            std::time::Duration::from_secs(60),
        ))
        .unwrap();
    let request = serde_json::json!({
        "source": {"oci": {"image": image}, "contextDir": "app"},
        "builderImage": builder,
        "outputImage": "registry.example.com/team/app:1.0",
        "insecureRegistries": [registry.host()]
    });
    let (output, report) = prepare(root.path(), request);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let prepared = &report["prepared"];
    assert_eq!(prepared["revision"], registry.digest(&image).as_str());
    assert_eq!(prepared["revision"], digest.as_str());
    assert_eq!(
        prepared["origin"],
        serde_json::json!({"source": "https://example.com/team/app", "revision": "main@sha1:0123abcd"})
    );
    let workspace = root.path().join("workspace");
    let dockerfile = std::fs::read_to_string(workspace.join("Dockerfile")).unwrap();
    for label in [
        format!("\"io.openshift.s2i.build.source-location\"=\"oci://{image}\""),
        "\"org.opencontainers.image.source\"=\"https://example.com/team/app\"".to_string(),
        "\"org.opencontainers.image.revision\"=\"main@sha1:0123abcd\"".to_string(),
    ] {
        assert!(dockerfile.contains(&label), "{label} not in {dockerfile}");
    }
    assert!(!dockerfile.contains("commit.id"), "{dockerfile}");
    let app = std::fs::read_to_string(workspace.join("upload/src/app.py")).unwrap();
    assert_eq!(app, "print('oci')");
}

#[test]
fn prepare_without_a_request_names_the_variable() {
    let root = tempfile::tempdir().unwrap();
    let termination_log = root.path().join("termination-log");
    let output = Command::new(BIN)
        .args(["prepare", "--workspace"])
        .arg(root.path())
        .arg("--scratch")
        .arg(root.path())
        .arg("--termination-log")
        .arg(&termination_log)
        .env_remove("SOURCEBUILD_PREPARE_REQUEST")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let report = std::fs::read_to_string(&termination_log).unwrap();
    assert!(report.contains("SOURCEBUILD_PREPARE_REQUEST"), "{report}");
}

#[test]
fn render_prints_the_dockerfile_with_the_local_commit() {
    let root = tempfile::tempdir().unwrap();
    let (_, second) = app_repository(root.path());
    let manifest = root.path().join("sb.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: sourcebuild.dev/v1alpha1\nkind: SourceBuild\nmetadata: {name: app}\nspec:\n  \
         source: {git: {url: https://example.com/acme/app.git}}\n  output: {image: registry.example.com/team/app:1.0}\n",
    )
    .unwrap();
    let context = root.path().join("ctx");
    let output = Command::new(BIN)
        .args(["render", "-f"])
        .arg(&manifest)
        .arg("--source")
        .arg(root.path().join("app"))
        .arg("--context")
        .arg(&context)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        stdout,
        std::fs::read_to_string(context.join("Dockerfile")).unwrap()
    );
    assert!(stdout.starts_with("FROM quay.io/sclorg/python-312-c9s:c9s\n"));
    assert!(stdout.contains(&second));
    // Offline, nothing known about the builder: the defaults, and render says so.
    assert!(stdout.contains("\nUSER 1001\n"), "{stdout}");
    assert!(
        stdout.contains("RUN [\"/tmp/scripts/assemble\"]"),
        "{stdout}"
    );
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("no --builder-config"), "{stderr}");
    assert!(stderr.contains("no --builder-digest"), "{stderr}");

    // With the image's config and digest, the Dockerfile is the one prepare writes for it.
    let config = root.path().join("builder-config.json");
    std::fs::write(
        &config,
        r#"{"architecture":"amd64","os":"linux","config":{"Labels":{"io.openshift.s2i.scripts-url":"image://.s2i/bin"}}}"#,
    )
    .unwrap();
    let digest = format!("sha256:{}", "ab".repeat(32));
    let app = tempfile::tempdir().unwrap();
    std::fs::write(app.path().join("app.py"), "print('hi')\n").unwrap();
    let output = Command::new(BIN)
        .args(["render", "-f"])
        .arg(&manifest)
        .arg("--source")
        .arg(app.path())
        .arg("--builder-config")
        .arg(&config)
        .arg("--builder-digest")
        .arg(&digest)
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("note:"), "{stderr}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.starts_with(&format!("FROM quay.io/sclorg/python-312-c9s@{digest}\n")),
        "{stdout}"
    );
    assert!(!stdout.contains("\nUSER"), "{stdout}");
    assert!(stdout.contains("RUN [\"/.s2i/bin/assemble\"]"), "{stdout}");

    let output = Command::new(BIN)
        .args(["render", "-f"])
        .arg(&manifest)
        .arg("--source")
        .arg(app.path())
        .arg("--builder-digest")
        .arg("sha256:short")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("--builder-digest"), "{stderr}");
    assert!(stdout.contains(
        "\"io.openshift.s2i.build.source-location\"=\"https://example.com/acme/app.git\""
    ));
}

#[test]
fn render_knows_the_oci_source_and_its_secret() {
    let root = tempfile::tempdir().unwrap();
    let manifest = root.path().join("sb.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: sourcebuild.dev/v1alpha1\nkind: SourceBuild\nmetadata: {name: app, namespace: team}\nspec:\n  \
         source: {oci: {image: registry.example.com/team/app/source:main, secretRef: {name: artifact-creds}}}\n  \
         output: {image: registry.example.com/team/app:1.0}\n",
    )
    .unwrap();
    let output = Command::new(BIN)
        .args(["render", "--pod", "-f"])
        .arg(&manifest)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let pod: serde_json::Value = serde_norway::from_str(&stdout).unwrap();
    let volume = pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["secret"]["secretName"] == "artifact-creds")
        .unwrap_or_else(|| panic!("no artifact-creds volume: {stdout}"));
    let prepare = &pod["spec"]["initContainers"][0];
    assert!(
        prepare["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == volume["name"]
                && m["mountPath"] == "/var/run/secrets/sourcebuild/oci"),
        "{stdout}"
    );

    // A bad reference is named by its field.
    std::fs::write(
        &manifest,
        "apiVersion: sourcebuild.dev/v1alpha1\nkind: SourceBuild\nmetadata: {name: app, namespace: team}\nspec:\n  \
         source: {oci: {image: \"oci://registry.example.com/x\"}}\n  output: {image: registry.example.com/team/app:1.0}\n",
    )
    .unwrap();
    let output = Command::new(BIN)
        .args(["render", "--pod", "-f"])
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("spec.source.oci.image"), "{stderr}");
}

/// `render --pod --user-namespaces on|off` as the controller's flag decides: `on` gives the
/// build Pod `hostUsers: false` unless the SourceBuild asks for the node's users; `off`, the
/// default, leaves the field out; `auto` (a question to a cluster) is refused, saying why.
#[test]
fn render_pod_takes_the_controllers_user_namespaces() {
    let root = tempfile::tempdir().unwrap();
    let manifest = |host_users: &str| {
        let path = root.path().join(format!("sb{}.yaml", host_users.len()));
        std::fs::write(
            &path,
            format!(
                "apiVersion: sourcebuild.dev/v1alpha1\nkind: SourceBuild\nmetadata: {{name: app, namespace: team}}\nspec:\n  \
                 source: {{git: {{url: https://example.com/acme/app.git}}}}\n  \
                 output: {{image: registry.example.com/team/app:1.0}}\n{host_users}"
            ),
        )
        .unwrap();
        path
    };
    let render = |manifest: &std::path::Path, flags: &[&str]| {
        let output = Command::new(BIN)
            .args(["render", "--pod", "-f"])
            .arg(manifest)
            .args(flags)
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let host_users = |manifest: &std::path::Path, flags: &[&str]| {
        let (ok, stdout, stderr) = render(manifest, flags);
        assert!(ok, "render {flags:?}: {stderr}");
        let pod: serde_json::Value = serde_norway::from_str(&stdout).unwrap();
        pod["spec"]["hostUsers"].clone()
    };
    let plain = manifest("");
    let asks_for_the_nodes = manifest("  hostUsers: true\n");
    let seen = [
        host_users(&plain, &[]),
        host_users(&plain, &["--user-namespaces", "off"]),
        host_users(&plain, &["--user-namespaces", "on"]),
        host_users(&asks_for_the_nodes, &["--user-namespaces", "on"]),
        host_users(&asks_for_the_nodes, &["--user-namespaces", "off"]),
    ];
    use serde_json::Value::{Bool, Null};
    assert_eq!(seen, [Null, Null, Bool(false), Null, Null]);

    let (ok, stdout, stderr) = render(&plain, &["--user-namespaces", "auto"]);
    assert!(!ok && stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("--user-namespaces auto") && stderr.contains("say on or off"),
        "{stderr}"
    );
}

#[test]
fn render_names_every_bad_field_and_exits_non_zero() {
    let root = tempfile::tempdir().unwrap();
    let manifest = root.path().join("bad.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: sourcebuild.dev/v1alpha1\nkind: SourceBuild\nmetadata: {name: bad}\nspec:\n  source: {}\n  \
         output: {image: Not An Image}\n  env: [{name: 1BAD, value: x}]\n  timeout: -5m\n",
    )
    .unwrap();
    let output = Command::new(BIN)
        .args(["render", "--pod", "-f"])
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    for field in [
        "spec.source",
        "spec.output.image",
        "spec.env[0].name",
        "spec.timeout",
    ] {
        assert!(stderr.contains(field), "{field} missing from: {stderr}");
    }
}

#[test]
fn render_names_the_line_of_a_yaml_error() {
    let root = tempfile::tempdir().unwrap();
    let manifest = root.path().join("broken.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: sourcebuild.dev/v1alpha1\nkind: SourceBuild\nspec: [\n",
    )
    .unwrap();
    let output = Command::new(BIN)
        .args(["render", "--pod", "-f"])
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("broken.yaml") && stderr.contains("line"),
        "{stderr}"
    );
}

/// `crds/` must be exactly what `sourcebuild crd` prints: regenerate with `scripts/update-crd.sh`.
#[test]
fn crd_subcommand_prints_the_checked_in_crd() {
    let output = Command::new(BIN).arg("crd").output().unwrap();
    assert!(output.status.success());
    let checked_in = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("crds/sourcebuild.dev_sourcebuilds.yaml"),
    )
    .unwrap();
    assert_eq!(String::from_utf8(output.stdout).unwrap(), checked_in);
}

/// The controller's arguments in the chart's Deployment, rendered with `sets`.
fn chart_controller_args(sets: &[&str]) -> Vec<String> {
    let rendered = support::operator::render_chart(sets);
    let deployment = serde_norway::Deserializer::from_str(&rendered)
        .map(|doc| <serde_json::Value as serde::Deserialize>::deserialize(doc).unwrap())
        .find(|v| v["kind"] == "Deployment")
        .expect("a Deployment in the chart");
    let args = &deployment["spec"]["template"]["spec"]["containers"][0]["args"];
    serde_json::from_value(args.clone()).unwrap()
}

#[test]
fn every_argument_the_chart_passes_is_one_the_controller_takes() {
    let quiet = chart_controller_args(&[]);
    assert!(!quiet.iter().any(|a| a == "--routine-events"), "{quiet:?}");
    assert!(
        quiet.contains(
            &"--builder-id=https://sourcebuild.dev/clusters/default/namespaces/sourcebuild-system/serviceaccounts/sb-sourcebuild-operator"
                .to_string()
        ),
        "{quiet:?}"
    );
    assert!(
        !quiet.iter().any(|a| a.starts_with("--signing-key-secret")),
        "{quiet:?}"
    );
    let chatty = chart_controller_args(&[
        "routineEvents=true",
        "watchNamespaces={a,b}",
        "provenance.clusterName=prod-eu",
        "provenance.signingKeySecret=cosign-key",
    ]);
    assert!(chatty.iter().any(|a| a == "--routine-events"), "{chatty:?}");
    assert!(
        chatty.contains(&"--signing-key-secret=cosign-key".to_string()),
        "{chatty:?}"
    );
    assert!(
        chatty
            .iter()
            .any(|a| a.starts_with("--builder-id=https://sourcebuild.dev/clusters/prod-eu/")),
        "{chatty:?}"
    );
    let custom = chart_controller_args(&["provenance.builderId=https://builds.example.com/eu"]);
    assert!(
        custom.contains(&"--builder-id=https://builds.example.com/eu".to_string()),
        "{custom:?}"
    );
    for args in [quiet, chatty, custom] {
        assert_eq!(args[0], "controller");
        // clap refuses an unknown flag or a bad value before it gets to --help.
        let output = Command::new(BIN)
            .args(&args)
            .arg("--help")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let help = String::from_utf8(output.stdout).unwrap();
        assert!(help.contains("--routine-events"), "{help}");
    }
}
