//! The ConfigMap fetcher against a directory laid out the way the kubelet lays out a ConfigMap
//! volume: keys in `..<timestamp>/`, `..data` pointing at it, each visible name a symlink into
//! `..data`.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use sourcebuild::api::{ConfigMapSource, KeyToPath, Source};
use sourcebuild::source::{ConfigMapError, FetchError, SourceMounts, fetch};

const TIMESTAMP_DIR: &str = "..2026_05_01_10_00_00.123456789";

/// Writes `files` (path, content, mode) as the kubelet would and returns the mount point.
fn kubelet_volume(root: &Path, files: &[(&str, &str, u32)]) -> PathBuf {
    let mount = root.join("configmap");
    let data = mount.join(TIMESTAMP_DIR);
    fs::create_dir_all(&data).unwrap();
    for (path, content, mode) in files {
        let file = data.join(path);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(&file, content).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(*mode)).unwrap();
    }
    symlink(TIMESTAMP_DIR, mount.join("..data")).unwrap();
    let mut top: Vec<&str> = files
        .iter()
        .map(|(path, _, _)| path.split('/').next().unwrap())
        .collect();
    top.dedup();
    for name in top {
        symlink(format!("..data/{name}"), mount.join(name)).unwrap();
    }
    mount
}

fn source(items: &[(&str, &str)]) -> Source {
    Source {
        config_map: Some(Box::new(ConfigMapSource {
            name: "app-src".into(),
            items: items
                .iter()
                .map(|(key, path)| KeyToPath {
                    key: key.to_string(),
                    path: path.to_string(),
                })
                .collect(),
        })),
        ..Source::default()
    }
}

fn mounts(mount: &Path) -> SourceMounts {
    SourceMounts {
        git_secret_dir: None,
        configmap_dir: mount.to_path_buf(),
        ..SourceMounts::default()
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn every_key_without_items_and_no_kubelet_bookkeeping() {
    let tmp = tempfile::tempdir().unwrap();
    let mount = kubelet_volume(
        tmp.path(),
        &[
            ("index.html", "<h1>hi</h1>\n", 0o644),
            ("package.json", "{}\n", 0o644),
        ],
    );
    let dest = tmp.path().join("dest");
    fs::create_dir(&dest).unwrap();
    let fetched = fetch(&source(&[]), &mounts(&mount), &dest).unwrap();
    assert_eq!(fetched.root, dest);
    // The revision is the content's digest: each file's path, length and bytes, in path order.
    let mut expected = Sha256::new();
    for (path, content) in [("index.html", "<h1>hi</h1>\n"), ("package.json", "{}\n")] {
        expected.update(format!("{path}\0{}\0{content}", content.len()).as_bytes());
    }
    let expected = format!("sha256:{}", hex::encode(expected.finalize()));
    assert_eq!(fetched.revision.as_deref(), Some(expected.as_str()));
    assert_eq!(fetched.location, "configmap:app-src");
    assert_eq!(names(&dest), ["index.html", "package.json"]);
    let index = dest.join("index.html");
    assert!(fs::symlink_metadata(&index).unwrap().file_type().is_file());
    assert_eq!(fs::read_to_string(index).unwrap(), "<h1>hi</h1>\n");
}

#[test]
fn items_go_to_their_paths_with_their_modes() {
    let tmp = tempfile::tempdir().unwrap();
    // With items, the kubelet writes each key at its path, so `<mount>/<path>` is the file.
    let mount = kubelet_volume(
        tmp.path(),
        &[
            ("app/server.js", "require('http')\n", 0o644),
            (".s2i/bin/assemble", "#!/bin/sh\nexit 0\n", 0o755),
        ],
    );
    let dest = tmp.path().join("dest");
    fs::create_dir(&dest).unwrap();
    fetch(
        &source(&[
            ("server", "app/server.js"),
            ("assemble", ".s2i/bin/assemble"),
        ]),
        &mounts(&mount),
        &dest,
    )
    .unwrap();
    assert_eq!(names(&dest), [".s2i", "app"]);
    assert_eq!(
        fs::read_to_string(dest.join("app/server.js")).unwrap(),
        "require('http')\n"
    );
    let assemble = dest.join(".s2i/bin/assemble");
    assert!(
        fs::symlink_metadata(&assemble)
            .unwrap()
            .file_type()
            .is_file()
    );
    assert_eq!(
        fs::metadata(&assemble).unwrap().permissions().mode() & 0o777,
        0o755
    );
}

#[test]
fn missing_item_names_key_and_path() {
    let tmp = tempfile::tempdir().unwrap();
    let mount = kubelet_volume(tmp.path(), &[("a.txt", "a", 0o644)]);
    let dest = tmp.path().join("dest");
    fs::create_dir(&dest).unwrap();
    let err = fetch(
        &source(&[("a", "a.txt"), ("script", "bin/run.sh")]),
        &mounts(&mount),
        &dest,
    )
    .unwrap_err();
    assert!(
        matches!(&err, FetchError::ConfigMap(ConfigMapError::MissingKey { key, path, .. }) if key == "script" && path == "bin/run.sh"),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("\"script\""), "{message}");
    assert!(message.contains("\"bin/run.sh\""), "{message}");
    assert!(message.contains("app-src"), "{message}");
}

#[test]
fn a_key_that_resolves_outside_the_mount_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mount = kubelet_volume(tmp.path(), &[("a.txt", "a", 0o644)]);
    let secret = tmp.path().join("pod-secret.txt");
    fs::write(&secret, "not yours").unwrap();
    symlink(&secret, mount.join("evil")).unwrap();
    let dest = tmp.path().join("dest");
    fs::create_dir(&dest).unwrap();

    let err = fetch(&source(&[]), &mounts(&mount), &dest).unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::ConfigMap(ConfigMapError::OutsideMount { .. })
        ),
        "{err:?}"
    );
    let err = fetch(&source(&[("evil", "evil")]), &mounts(&mount), &dest).unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::ConfigMap(ConfigMapError::OutsideMount { .. })
        ),
        "{err:?}"
    );
    assert!(!dest.join("evil").exists());
}

#[test]
fn a_nested_link_out_of_the_mount_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mount = kubelet_volume(tmp.path(), &[("dir/a.txt", "a", 0o644)]);
    symlink("/", mount.join(TIMESTAMP_DIR).join("dir/root")).unwrap();
    let dest = tmp.path().join("dest");
    fs::create_dir(&dest).unwrap();
    let err = fetch(&source(&[]), &mounts(&mount), &dest).unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::ConfigMap(ConfigMapError::OutsideMount { .. })
        ),
        "{err:?}"
    );
}

#[test]
fn item_path_with_parent_dir_is_invalid() {
    let tmp = tempfile::tempdir().unwrap();
    let mount = kubelet_volume(tmp.path(), &[("a.txt", "a", 0o644)]);
    let dest = tmp.path().join("dest");
    fs::create_dir(&dest).unwrap();
    let err = fetch(&source(&[("a", "../a.txt")]), &mounts(&mount), &dest).unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::ConfigMap(ConfigMapError::InvalidPath { .. })
        ),
        "{err:?}"
    );
    assert_eq!(err.reason(), "InvalidSource");
    assert!(!tmp.path().join("a.txt").exists());
}
