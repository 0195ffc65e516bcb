//! The git fetcher against real transports on loopback: `git daemon` (git://) and
//! `git http-backend` behind a small HTTP server (http://, basic auth).

mod support;

use std::fs;
use std::path::Path;

use sourcebuild::api::{GitSource, Source};
use sourcebuild::source::{FetchError, GitError, SourceMounts, fetch};
use support::{GitDaemon, TestRepo, git, git_http_server, make_repo};

fn git_source(url: &str, revision: Option<&str>) -> Source {
    Source {
        git: Some(GitSource {
            url: url.to_string(),
            revision: revision.map(Into::into),
            secret_ref: None,
            poll_interval: None,
        }),
        ..Source::default()
    }
}

fn mounts(secret: Option<&Path>) -> SourceMounts {
    SourceMounts {
        git_secret_dir: secret.map(Path::to_path_buf),
        configmap_dir: "/nonexistent".into(),
        ..SourceMounts::default()
    }
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

/// Depth of the history that arrived: 1 for a shallow clone.
fn commit_count(dest: &Path) -> usize {
    git(dest, &["rev-list", "--count", "HEAD"]).parse().unwrap()
}

struct Served {
    _tmp: tempfile::TempDir,
    repo: TestRepo,
    daemon: GitDaemon,
    dest_root: std::path::PathBuf,
}

fn served() -> Served {
    let tmp = tempfile::tempdir().unwrap();
    let repo = make_repo(&tmp.path().join("srv"));
    let daemon = GitDaemon::start(&repo.base);
    let dest_root = tmp.path().join("dest");
    fs::create_dir(&dest_root).unwrap();
    Served {
        _tmp: tmp,
        repo,
        daemon,
        dest_root,
    }
}

#[test]
fn git_daemon_default_head_is_a_shallow_clone_of_main() {
    let s = served();
    let dest = s.dest_root.join("head");
    let url = s.daemon.url("repo.git");
    let fetched = fetch(&git_source(&url, None), &mounts(None), &dest).unwrap();
    assert_eq!(fetched.root, dest);
    assert_eq!(fetched.revision.as_deref(), Some(s.repo.c3.as_str()));
    assert_eq!(fetched.location, url);
    assert_eq!(read(&dest.join("a.txt")), "three\n");
    assert_eq!(commit_count(&dest), 1);
}

#[test]
fn git_daemon_branch() {
    let s = served();
    let dest = s.dest_root.join("branch");
    let fetched = fetch(
        &git_source(&s.daemon.url("repo.git"), Some("feature")),
        &mounts(None),
        &dest,
    )
    .unwrap();
    assert_eq!(fetched.revision.as_deref(), Some(s.repo.feature.as_str()));
    assert_eq!(read(&dest.join("feature.txt")), "feature\n");
    assert_eq!(read(&dest.join("a.txt")), "one\n");
    assert_eq!(commit_count(&dest), 1);
}

#[test]
fn git_daemon_annotated_tag_resolves_to_its_commit() {
    let s = served();
    let dest = s.dest_root.join("tag");
    let fetched = fetch(
        &git_source(&s.daemon.url("repo.git"), Some("v1.0")),
        &mounts(None),
        &dest,
    )
    .unwrap();
    assert_eq!(fetched.revision.as_deref(), Some(s.repo.c2.as_str()));
    assert_eq!(read(&dest.join("a.txt")), "two\n");
    assert!(!dest.join("feature.txt").exists());
}

#[test]
fn git_daemon_commit_that_is_no_branch_tip() {
    let s = served();
    let dest = s.dest_root.join("sha");
    let fetched = fetch(
        &git_source(&s.daemon.url("repo.git"), Some(&s.repo.c1)),
        &mounts(None),
        &dest,
    )
    .unwrap();
    assert_eq!(fetched.revision.as_deref(), Some(s.repo.c1.as_str()));
    assert_eq!(read(&dest.join("a.txt")), "one\n");
    assert_eq!(commit_count(&dest), 1);
}

#[test]
fn git_daemon_unknown_branch_names_revision_and_url() {
    let s = served();
    let dest = s.dest_root.join("nope");
    let url = s.daemon.url("repo.git");
    let err = fetch(
        &git_source(&url, Some("no-such-branch")),
        &mounts(None),
        &dest,
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, FetchError::Git(GitError::RevisionNotFound { .. })),
        "{err:?}"
    );
    assert!(message.contains("no-such-branch"), "{message}");
    assert!(message.contains(&url), "{message}");
    assert_eq!(err.reason(), "SourceFetchFailed");
}

#[test]
fn git_daemon_unknown_commit_names_revision_and_url() {
    let s = served();
    let dest = s.dest_root.join("nosha");
    let url = s.daemon.url("repo.git");
    let missing = "0123456789abcdef0123456789abcdef01234567";
    let err = fetch(&git_source(&url, Some(missing)), &mounts(None), &dest).unwrap_err();
    let message = err.to_string();
    assert!(message.contains(missing), "{message}");
    assert!(message.contains(&url), "{message}");
}

#[test]
fn file_url_clones_too() {
    let s = served();
    let dest = s.dest_root.join("file");
    let url = format!("file://{}", s.repo.base.join("repo.git").display());
    let fetched = fetch(&git_source(&url, Some("main")), &mounts(None), &dest).unwrap();
    assert_eq!(fetched.revision.as_deref(), Some(s.repo.c3.as_str()));
    assert_eq!(read(&dest.join("a.txt")), "three\n");
}

fn write_secret(dir: &Path, user: &str, password: &str) {
    fs::create_dir_all(dir).unwrap();
    // kubectl --from-file secrets often end in a newline; it is not part of the credential.
    fs::write(dir.join("username"), format!("{user}\n")).unwrap();
    fs::write(dir.join("password"), password).unwrap();
}

#[test]
fn http_backend_anonymous_branch_tag_and_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = make_repo(&tmp.path().join("srv"));
    let server = git_http_server(repo.base.clone(), None);
    let url = server.url("/repo.git");
    for (name, revision, commit, a_txt) in [
        ("head", None, &repo.c3, "three\n"),
        ("branch", Some("feature"), &repo.feature, "one\n"),
        ("tag", Some("v1.0"), &repo.c2, "two\n"),
        ("sha", Some(repo.c1.as_str()), &repo.c1, "one\n"),
    ] {
        let dest = tmp.path().join(name);
        let fetched = fetch(&git_source(&url, revision), &mounts(None), &dest).unwrap();
        assert_eq!(fetched.revision.as_deref(), Some(commit.as_str()), "{name}");
        assert_eq!(fetched.location, url);
        assert_eq!(read(&dest.join("a.txt")), a_txt, "{name}");
        assert_eq!(commit_count(&dest), 1, "{name}");
    }
}

#[test]
fn http_backend_unknown_tag_names_revision_and_url() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = make_repo(&tmp.path().join("srv"));
    let server = git_http_server(repo.base.clone(), None);
    let url = server.url("/repo.git");
    let err = fetch(
        &git_source(&url, Some("v9.9")),
        &mounts(None),
        &tmp.path().join("d"),
    )
    .unwrap_err();
    assert!(
        matches!(err, FetchError::Git(GitError::RevisionNotFound { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("\"v9.9\""), "{err}");
    assert!(err.to_string().contains(&url), "{err}");
}

#[test]
fn http_backend_private_repository_without_credentials_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = make_repo(&tmp.path().join("srv"));
    let server = git_http_server(repo.base.clone(), Some(("builder", "pw")));
    let url = server.url("/repo.git");
    let err = fetch(
        &git_source(&url, None),
        &mounts(None),
        &tmp.path().join("d"),
    )
    .unwrap_err();
    assert!(err.to_string().contains(&url), "{err}");
    assert_eq!(err.reason(), "SourceFetchFailed");
}

/// gix sends basic auth only over https; a secret for an http:// URL is refused before any
/// connection, and the password shows up nowhere.
#[test]
fn credentials_for_plain_http_are_refused_without_leaking_them() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = make_repo(&tmp.path().join("srv"));
    let server = git_http_server(repo.base.clone(), Some(("builder", "s3cr3t-pw")));
    let secret = tmp.path().join("secret");
    write_secret(&secret, "builder", "s3cr3t-pw");
    let url = server.url("/repo.git");
    let err = fetch(
        &git_source(&url, None),
        &mounts(Some(&secret)),
        &tmp.path().join("d"),
    )
    .unwrap_err();
    assert!(
        matches!(err, FetchError::Git(GitError::InsecureCredentials { .. })),
        "{err:?}"
    );
    let full = format!("{err} / {err:?}");
    assert!(full.contains(&url), "{full}");
    assert!(!full.contains("s3cr3t-pw"), "{full}");

    let with_userinfo = url.replace("http://", "http://builder:url-pw@");
    let err = fetch(
        &git_source(&with_userinfo, None),
        &mounts(None),
        &tmp.path().join("e"),
    )
    .unwrap_err();
    let full = format!("{err} / {err:?}");
    assert!(full.contains(&url), "{full}");
    assert!(!full.contains("url-pw"), "{full}");
}

#[test]
fn missing_secret_file_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let secret = tmp.path().join("secret");
    fs::create_dir(&secret).unwrap();
    fs::write(secret.join("username"), "u").unwrap();
    let err = fetch(
        &git_source("http://127.0.0.1:9/repo.git", None),
        &mounts(Some(&secret)),
        &tmp.path().join("dest"),
    )
    .unwrap_err();
    assert!(
        matches!(err, FetchError::Git(GitError::Credentials { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("password"), "{err}");
}

/// `ls_remote` of the GitSource `git_source` builds.
fn head_of(url: &str, revision: Option<&str>) -> Result<String, GitError> {
    sourcebuild::source::git::ls_remote(git_source(url, revision).git.as_ref().unwrap())
}

#[test]
fn ls_remote_resolves_branches_tags_and_head_over_git_and_http() {
    let s = served();
    let url = s.daemon.url("repo.git");
    assert_eq!(head_of(&url, None).unwrap(), s.repo.c3);
    assert_eq!(head_of(&url, Some("main")).unwrap(), s.repo.c3);
    assert_eq!(head_of(&url, Some("feature")).unwrap(), s.repo.feature);
    // An annotated tag is peeled to its commit.
    assert_eq!(head_of(&url, Some("v1.0")).unwrap(), s.repo.c2);
    let server = git_http_server(s.repo.base.clone(), None);
    let http = server.url("/repo.git");
    assert_eq!(head_of(&http, Some("main")).unwrap(), s.repo.c3);
    assert_eq!(head_of(&http, Some("v1.0")).unwrap(), s.repo.c2);

    // The branch moves: the next look sees the new head, and nothing was fetched to see it.
    let work = s.repo.base.join("work");
    fs::write(work.join("a.txt"), "four\n").unwrap();
    git(&work, &["commit", "-q", "-am", "four"]);
    let c4 = git(&work, &["rev-parse", "HEAD"]);
    git(&work, &["push", "-q", "../repo.git", "main"]);
    assert_eq!(head_of(&url, Some("main")).unwrap(), c4);
    assert_eq!(head_of(&http, None).unwrap(), c4);
}

#[test]
fn ls_remote_failures_name_the_ref_and_the_url() {
    let s = served();
    let url = s.daemon.url("repo.git");
    let missing = head_of(&url, Some("no-such-branch")).unwrap_err();
    assert!(
        matches!(missing, GitError::HeadNotFound { .. }),
        "{missing:?}"
    );
    let text = missing.to_string();
    assert!(
        text.contains("no-such-branch") && text.contains(&url),
        "{text}"
    );
    let server = git_http_server(s.repo.base.clone(), Some(("builder", "pw")));
    let private = head_of(&server.url("/repo.git"), Some("main")).unwrap_err();
    assert!(
        matches!(private, GitError::Unauthenticated { .. }),
        "{private:?}"
    );
    // Nothing listens there.
    let closed = head_of("git://127.0.0.1:9/repo.git", None).unwrap_err();
    assert!(closed.to_string().contains("127.0.0.1:9"), "{closed}");
}
