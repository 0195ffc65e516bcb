//! The archive fetcher against archives served by an HTTP server on 127.0.0.1.

mod support;

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use sourcebuild::api::{ArchiveSource, Source};
use sourcebuild::source::archive::{self, ArchiveError, ArchiveLimits};
use sourcebuild::source::{FetchError, SourceMounts, fetch};
use support::{HttpServer, Response};

/// Serves fixed bodies by path; anything else is a 404.
fn serve(files: Vec<(&str, Vec<u8>)>) -> HttpServer {
    let files: HashMap<String, Vec<u8>> =
        files.into_iter().map(|(p, b)| (p.to_string(), b)).collect();
    HttpServer::start(move |request| match files.get(&request.target) {
        Some(body) => Response::ok(body.clone()),
        None => Response::status(404),
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Builds a tar with raw headers, so names the tar crate's builder would refuse can be written.
#[derive(Default)]
struct Tar {
    builder: Option<tar::Builder<Vec<u8>>>,
}

impl Tar {
    fn new() -> Self {
        Tar {
            builder: Some(tar::Builder::new(Vec::new())),
        }
    }

    fn raw(
        mut self,
        name: &[u8],
        kind: tar::EntryType,
        link: &[u8],
        data: &[u8],
        mode: u32,
    ) -> Self {
        let mut header = tar::Header::new_old();
        {
            let old = header.as_old_mut();
            old.name[..name.len()].copy_from_slice(name);
            old.linkname[..link.len()].copy_from_slice(link);
        }
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_cksum();
        self.builder
            .as_mut()
            .unwrap()
            .append(&header, data)
            .unwrap();
        self
    }

    fn file(self, name: &str, data: &str) -> Self {
        self.raw(
            name.as_bytes(),
            tar::EntryType::Regular,
            b"",
            data.as_bytes(),
            0o644,
        )
    }

    fn exec(self, name: &str, data: &str) -> Self {
        self.raw(
            name.as_bytes(),
            tar::EntryType::Regular,
            b"",
            data.as_bytes(),
            0o755,
        )
    }

    fn dir(self, name: &str) -> Self {
        self.raw(name.as_bytes(), tar::EntryType::Directory, b"", b"", 0o755)
    }

    fn symlink(self, name: &str, target: &str) -> Self {
        self.raw(
            name.as_bytes(),
            tar::EntryType::Symlink,
            target.as_bytes(),
            b"",
            0o777,
        )
    }

    fn hardlink(self, name: &str, target: &str) -> Self {
        self.raw(
            name.as_bytes(),
            tar::EntryType::Link,
            target.as_bytes(),
            b"",
            0o644,
        )
    }

    fn bytes(mut self) -> Vec<u8> {
        self.builder.take().unwrap().into_inner().unwrap()
    }
}

struct Case {
    tmp: tempfile::TempDir,
    _server: HttpServer,
    url: String,
    digest: String,
}

impl Case {
    fn new(body: Vec<u8>) -> Self {
        let digest = sha256_hex(&body);
        let server = serve(vec![("/src.tar", body)]);
        Case {
            tmp: tempfile::tempdir().unwrap(),
            url: server.url("/src.tar"),
            _server: server,
            digest,
        }
    }

    fn dest(&self) -> PathBuf {
        self.tmp.path().join("tree").join("src")
    }

    fn run(
        &self,
        sha256: Option<&str>,
        limits: &ArchiveLimits,
    ) -> Result<archive::DownloadedArchive, ArchiveError> {
        let dest = self.dest();
        fs::create_dir_all(&dest).unwrap();
        archive::fetch(
            &ArchiveSource {
                url: self.url.clone(),
                sha256: sha256.map(Into::into),
            },
            &dest,
            limits,
        )
    }

    fn unpack(&self) -> Result<archive::DownloadedArchive, ArchiveError> {
        self.run(None, &ArchiveLimits::default())
    }

    /// Nothing may appear next to the destination, where `..` entries would land.
    fn assert_nothing_outside(&self) {
        let names: Vec<_> = fs::read_dir(self.tmp.path().join("tree"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("src")]);
    }
}

fn sample() -> Vec<u8> {
    Tar::new()
        .dir("app/")
        .file("app/index.js", "console.log('hi')\n")
        .exec("app/.s2i/bin/assemble", "#!/bin/sh\necho assembling\n")
        .symlink("app/main.js", "index.js")
        .hardlink("app/copy.js", "app/index.js")
        .bytes()
}

fn assert_sample(dest: &Path) {
    assert_eq!(
        fs::read_to_string(dest.join("app/index.js")).unwrap(),
        "console.log('hi')\n"
    );
    assert_eq!(
        fs::read_to_string(dest.join("app/main.js")).unwrap(),
        "console.log('hi')\n"
    );
    assert_eq!(
        fs::read_link(dest.join("app/main.js")).unwrap(),
        Path::new("index.js")
    );
    assert_eq!(
        fs::read_to_string(dest.join("app/copy.js")).unwrap(),
        "console.log('hi')\n"
    );
    let mode = fs::metadata(dest.join("app/.s2i/bin/assemble"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
}

#[test]
fn plain_tar_through_fetch() {
    let body = sample();
    let case = Case::new(body);
    let dest = case.dest();
    fs::create_dir_all(&dest).unwrap();
    let source = Source {
        archive: Some(Box::new(ArchiveSource {
            url: case.url.clone(),
            sha256: None,
        })),
        ..Source::default()
    };
    let mounts = SourceMounts {
        git_secret_dir: None,
        configmap_dir: "/nonexistent".into(),
        ..SourceMounts::default()
    };
    let fetched = fetch(&source, &mounts, &dest).unwrap();
    assert_eq!(fetched.root, dest);
    assert_eq!(fetched.revision, Some(format!("sha256:{}", case.digest)));
    assert_eq!(fetched.location, case.url);
    assert_sample(&dest);
}

#[test]
fn gzip_tar_with_matching_sha256() {
    let body = gzip(&sample());
    let case = Case::new(body);
    let digest = case.digest.clone();
    let fetched = case.run(Some(&digest), &ArchiveLimits::default()).unwrap();
    assert_eq!(fetched.revision, format!("sha256:{digest}"));
    assert_sample(&case.dest());
}

#[test]
fn sha256_mismatch_shows_expected_and_actual_and_unpacks_nothing() {
    let case = Case::new(gzip(&sample()));
    let wrong = "0".repeat(64);
    let err = case
        .run(Some(&wrong), &ArchiveLimits::default())
        .unwrap_err();
    assert!(
        matches!(err, ArchiveError::Sha256Mismatch { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains(&wrong), "{message}");
    assert!(message.contains(&case.digest), "{message}");
    assert!(message.contains(&case.url), "{message}");
    assert_eq!(fs::read_dir(case.dest()).unwrap().count(), 0);
}

#[test]
fn not_found_is_an_http_status_error() {
    let server = serve(vec![]);
    let tmp = tempfile::tempdir().unwrap();
    let url = server.url("/missing.tar.gz");
    let err = archive::fetch(
        &ArchiveSource {
            url: url.clone(),
            sha256: None,
        },
        tmp.path(),
        &ArchiveLimits::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, ArchiveError::HttpStatus { status: 404, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(&url), "{err}");
}

#[test]
fn userinfo_is_sent_as_basic_auth_but_kept_out_of_location_and_errors() {
    let seen = Arc::new(Mutex::new(None));
    let server = {
        let seen = seen.clone();
        let body = sample();
        HttpServer::start(move |request| {
            *seen.lock().unwrap() = request.header("authorization").map(String::from);
            if request.target == "/src.tar" {
                Response::ok(body.clone())
            } else {
                Response::status(404)
            }
        })
    };
    let tmp = tempfile::tempdir().unwrap();
    let clean = server.url("/src.tar");
    let url = clean.replace("http://", "http://user:pa55word@");
    let fetched = archive::fetch(
        &ArchiveSource { url, sha256: None },
        tmp.path(),
        &ArchiveLimits::default(),
    )
    .unwrap();
    assert_eq!(fetched.location, clean);
    assert!(
        seen.lock()
            .unwrap()
            .as_deref()
            .is_some_and(|h| h.starts_with("Basic "))
    );

    let missing = server
        .url("/nope.tar")
        .replace("http://", "http://user:pa55word@");
    let err = archive::fetch(
        &ArchiveSource {
            url: missing,
            sha256: None,
        },
        &tmp.path().join("x"),
        &ArchiveLimits::default(),
    )
    .unwrap_err();
    assert!(!format!("{err} {err:?}").contains("pa55word"), "{err:?}");
}

#[test]
fn connection_refused_names_the_url_without_userinfo() {
    // Bind then drop: nothing listens on that port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tmp = tempfile::tempdir().unwrap();
    let err = archive::fetch(
        &ArchiveSource {
            url: format!("http://u:hunter22@127.0.0.1:{port}/a.tar"),
            sha256: None,
        },
        tmp.path(),
        &ArchiveLimits::default(),
    )
    .unwrap_err();
    let full = format!("{err} {err:?}");
    assert!(matches!(err, ArchiveError::Download { .. }), "{err:?}");
    assert!(
        full.contains(&format!("http://127.0.0.1:{port}/a.tar")),
        "{full}"
    );
    assert!(!full.contains("hunter22"), "{full}");
}

#[test]
fn garbage_is_reported_as_corrupt() {
    let case = Case::new(b"this is not a tar archive at all, just some text".repeat(20));
    let err = case.unpack().unwrap_err();
    assert!(matches!(err, ArchiveError::Corrupt { .. }), "{err:?}");
}

#[test]
fn parent_dir_entry_is_refused() {
    let case = Case::new(
        Tar::new()
            .file("ok.txt", "ok")
            .file("../evil.txt", "x")
            .bytes(),
    );
    let err = case.unpack().unwrap_err();
    assert!(
        matches!(&err, ArchiveError::UnsafePath { entry, .. } if entry == "../evil.txt"),
        "{err:?}"
    );
    assert!(err.to_string().contains("../evil.txt"));
    case.assert_nothing_outside();
}

#[test]
fn nested_parent_dir_entry_is_refused() {
    let case = Case::new(Tar::new().file("a/../../evil.txt", "x").bytes());
    let err = case.unpack().unwrap_err();
    assert!(matches!(err, ArchiveError::UnsafePath { .. }), "{err:?}");
    case.assert_nothing_outside();
}

#[test]
fn absolute_entry_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("evil.txt");
    let case = Case::new(Tar::new().file(target.to_str().unwrap(), "x").bytes());
    let err = case.unpack().unwrap_err();
    assert!(
        matches!(&err, ArchiveError::UnsafePath { reason, .. } if reason.contains("absolute")),
        "{err:?}"
    );
    assert!(!target.exists());
}

#[test]
fn symlink_climbing_out_is_refused() {
    let case = Case::new(Tar::new().symlink("up", "../../etc").bytes());
    let err = case.unpack().unwrap_err();
    assert!(
        matches!(&err, ArchiveError::LinkOutside { entry, target } if entry == "up" && target == "../../etc"),
        "{err:?}"
    );
}

#[test]
fn absolute_symlink_is_refused() {
    let case = Case::new(Tar::new().symlink("passwd", "/etc/passwd").bytes());
    let err = case.unpack().unwrap_err();
    assert!(matches!(err, ArchiveError::LinkOutside { .. }), "{err:?}");
}

#[test]
fn symlink_chain_that_escapes_only_when_followed_is_refused() {
    // `d1/d2/s` -> `../..` is the root; `d1/d2/t` -> `s/../../..` looks inside by text
    // (d1/d2/s/../../.. = root) but the kernel resolves s first: root/.. is outside.
    let case = Case::new(
        Tar::new()
            .dir("d1/")
            .dir("d1/d2/")
            .symlink("d1/d2/s", "../..")
            .symlink("d1/d2/t", "s/..")
            .bytes(),
    );
    let err = case.unpack().unwrap_err();
    assert!(
        matches!(&err, ArchiveError::LinkOutside { entry, .. } if entry == "d1/d2/t"),
        "{err:?}"
    );
}

#[test]
fn symlink_inside_the_tree_is_kept() {
    let case = Case::new(
        Tar::new()
            .file("lib/x.txt", "x")
            .symlink("a/b/link", "../../lib/x.txt")
            .bytes(),
    );
    case.unpack().unwrap();
    assert_eq!(
        fs::read_to_string(case.dest().join("a/b/link")).unwrap(),
        "x"
    );
}

#[test]
fn hard_link_out_of_the_tree_is_refused() {
    let case = Case::new(Tar::new().hardlink("shadow", "../../etc/shadow").bytes());
    let err = case.unpack().unwrap_err();
    assert!(
        matches!(&err, ArchiveError::LinkOutside { entry, .. } if entry == "shadow"),
        "{err:?}"
    );
    let case = Case::new(Tar::new().hardlink("shadow", "/etc/shadow").bytes());
    let err = case.unpack().unwrap_err();
    assert!(matches!(err, ArchiveError::LinkOutside { .. }), "{err:?}");
}

#[test]
fn hard_link_through_a_symlink_is_refused() {
    // Even a symlink that stays inside may not be a way to a hard link's target: the check
    // is structural, so no chain of links can make a hard link alias a file outside.
    let case = Case::new(
        Tar::new()
            .dir("inner/")
            .symlink("via", "inner")
            .hardlink("h", "via/file")
            .bytes(),
    );
    let err = case.unpack().unwrap_err();
    assert!(
        matches!(&err, ArchiveError::ThroughSymlink { entry, symlink } if entry == "h" && symlink == "via"),
        "{err:?}"
    );
}

#[test]
fn hard_link_to_a_missing_or_non_file_target_is_refused() {
    let case = Case::new(Tar::new().hardlink("h", "nothing-here").bytes());
    let err = case.unpack().unwrap_err();
    assert!(matches!(err, ArchiveError::BadHardLink { .. }), "{err:?}");
    let case = Case::new(
        Tar::new()
            .file("f", "x")
            .symlink("l", "f")
            .hardlink("h", "l")
            .bytes(),
    );
    let err = case.unpack().unwrap_err();
    assert!(matches!(err, ArchiveError::BadHardLink { .. }), "{err:?}");
}

#[test]
fn file_through_an_extracted_symlink_is_refused() {
    let case = Case::new(
        Tar::new()
            .dir("real/")
            .symlink("alias", "real")
            .file("alias/planted.txt", "x")
            .bytes(),
    );
    let err = case.unpack().unwrap_err();
    assert!(
        matches!(&err, ArchiveError::ThroughSymlink { entry, symlink } if entry == "alias/planted.txt" && symlink == "alias"),
        "{err:?}"
    );
    assert!(!case.dest().join("real/planted.txt").exists());
}

#[test]
fn file_at_the_path_of_a_symlink_replaces_the_link() {
    let case = Case::new(
        Tar::new()
            .file("target.txt", "original")
            .symlink("f", "target.txt")
            .file("f", "new")
            .bytes(),
    );
    case.unpack().unwrap();
    let dest = case.dest();
    assert!(
        fs::symlink_metadata(dest.join("f"))
            .unwrap()
            .file_type()
            .is_file()
    );
    assert_eq!(fs::read_to_string(dest.join("f")).unwrap(), "new");
    assert_eq!(
        fs::read_to_string(dest.join("target.txt")).unwrap(),
        "original"
    );
}

#[test]
fn devices_and_fifos_are_skipped() {
    let case = Case::new(
        Tar::new()
            .raw(b"dev/null", tar::EntryType::Char, b"", b"", 0o666)
            .raw(b"dev/sda", tar::EntryType::Block, b"", b"", 0o660)
            .raw(b"pipe", tar::EntryType::Fifo, b"", b"", 0o644)
            .file("kept.txt", "kept")
            .bytes(),
    );
    case.unpack().unwrap();
    let dest = case.dest();
    assert_eq!(fs::read_to_string(dest.join("kept.txt")).unwrap(), "kept");
    assert!(!dest.join("pipe").exists());
    assert!(!dest.join("dev/null").exists());
    assert!(!dest.join("dev/sda").exists());
}

#[test]
fn non_utf8_name_is_refused() {
    let case = Case::new(
        Tar::new()
            .raw(
                b"bad\xffname.txt",
                tar::EntryType::Regular,
                b"",
                b"x",
                0o644,
            )
            .bytes(),
    );
    let err = case.unpack().unwrap_err();
    assert!(
        matches!(&err, ArchiveError::NonUtf8Name { entry } if entry == "bad\u{fffd}name.txt"),
        "{err:?}"
    );
}

#[test]
fn too_many_entries() {
    let case = Case::new(
        Tar::new()
            .file("1", "")
            .file("2", "")
            .file("3", "")
            .file("4", "")
            .bytes(),
    );
    let limits = ArchiveLimits {
        max_entries: 3,
        ..ArchiveLimits::default()
    };
    let err = case.run(None, &limits).unwrap_err();
    assert!(
        matches!(err, ArchiveError::TooManyEntries { limit: 3 }),
        "{err:?}"
    );
    assert!(err.to_string().contains('3'));
}

#[test]
fn unpacked_size_limit_stops_a_compression_bomb() {
    let zeros = vec![0u8; 4 << 20];
    let bomb = gzip(
        &Tar::new()
            .raw(b"zeros.bin", tar::EntryType::Regular, b"", &zeros, 0o644)
            .bytes(),
    );
    assert!(bomb.len() < 64 << 10, "the test wants a small download");
    let case = Case::new(bomb);
    let limits = ArchiveLimits {
        max_unpacked_bytes: 1 << 20,
        ..ArchiveLimits::default()
    };
    let err = case.run(None, &limits).unwrap_err();
    assert!(
        matches!(&err, ArchiveError::UnpackedTooLarge { entry, .. } if entry == "zeros.bin"),
        "{err:?}"
    );
    assert!(!case.dest().join("zeros.bin").exists());
}

#[test]
fn download_size_limit() {
    let case = Case::new(sample());
    let limits = ArchiveLimits {
        max_download_bytes: 512,
        ..ArchiveLimits::default()
    };
    let err = case.run(None, &limits).unwrap_err();
    assert!(
        matches!(err, ArchiveError::DownloadTooLarge { limit: 512, .. }),
        "{err:?}"
    );
}

#[test]
fn invalid_source_kinds_are_errors() {
    let mounts = SourceMounts {
        git_secret_dir: None,
        configmap_dir: "/nonexistent".into(),
        ..SourceMounts::default()
    };
    let tmp = tempfile::tempdir().unwrap();
    let err = fetch(&Source::default(), &mounts, tmp.path()).unwrap_err();
    assert!(matches!(err, FetchError::InvalidSource(_)), "{err:?}");
    assert_eq!(err.reason(), "InvalidSource");
    let both = Source {
        archive: Some(Box::new(ArchiveSource {
            url: "http://127.0.0.1:9/a.tar".into(),
            sha256: None,
        })),
        git: Some(sourcebuild::api::GitSource {
            url: "git://127.0.0.1:9/a.git".into(),
            ..Default::default()
        }),
        ..Source::default()
    };
    let err = fetch(&both, &mounts, tmp.path()).unwrap_err();
    assert!(matches!(err, FetchError::InvalidSource(_)), "{err:?}");
    let err = fetch(
        &Source {
            archive: Some(Box::new(ArchiveSource {
                url: "ftp://127.0.0.1/a.tar".into(),
                sha256: None,
            })),
            ..Source::default()
        },
        &mounts,
        tmp.path(),
    )
    .unwrap_err();
    assert_eq!(err.reason(), "InvalidSource");
}
