//! Cloning a git repository with gix: shallow where the revision allows it, worktree checked
//! out, credentials from the mounted basic-auth Secret handed to gix in memory only.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use gix::bstr::ByteSlice;
use tracing::{debug, info, warn};

use super::userinfo::mask_userinfo;
use crate::api::GitSource;

/// What a clone produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClonedRepo {
    /// Hex of the commit checked out.
    pub commit: String,
    /// The clone URL without userinfo.
    pub location: String,
}

/// Why a git source could not be cloned. No variant carries credentials.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The URL does not parse or uses a scheme this operator does not clone from.
    #[error("invalid git URL {url}: {reason}")]
    InvalidUrl {
        /// The URL with any userinfo masked.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The mounted git Secret lacks a key or cannot be read.
    #[error("cannot read git credential file {}: {source}", path.display())]
    Credentials {
        /// The file that could not be read (`username` or `password`).
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The remote has no branch, tag or reachable commit of that name.
    #[error("git revision {revision:?} not found in {url}")]
    RevisionNotFound {
        /// The URL without userinfo.
        url: String,
        /// The revision as written in the spec.
        revision: String,
        /// What gix reported.
        #[source]
        source: gix::Error,
    },
    /// Connecting to the remote or listing its refs failed.
    #[error("listing the refs of {url} failed: {source}")]
    ListRefs {
        /// The URL without userinfo.
        url: String,
        /// What gix reported.
        #[source]
        source: gix::Error,
    },
    /// Listing the remote's refs worked, but none has the name asked for.
    #[error("{url} has no branch or tag {revision:?}")]
    HeadNotFound {
        /// The URL without userinfo.
        url: String,
        /// The revision as written in the spec, or `HEAD`.
        revision: String,
    },
    /// Credentials were given for a plain `http://` URL: gix never sends them in clear text.
    #[error("refusing to send the git credentials to {url} in clear text: use an https:// URL")]
    InsecureCredentials {
        /// The URL without userinfo.
        url: String,
    },
    /// The remote refused the credentials (or demanded some and none were given).
    #[error("authentication to {url} failed (check the git secret's username and password)")]
    Unauthenticated {
        /// The URL without userinfo.
        url: String,
        /// What gix reported.
        #[source]
        source: gix::Error,
    },
    /// Connecting, negotiating or receiving the pack failed.
    #[error("cloning {url} at revision {revision} failed: {source}")]
    Clone {
        /// The URL without userinfo.
        url: String,
        /// The revision as written in the spec, or `HEAD`.
        revision: String,
        /// What gix reported.
        #[source]
        source: gix::Error,
    },
    /// The pack arrived but the worktree could not be written.
    #[error("checking out {url} at revision {revision} failed: {source}")]
    Checkout {
        /// The URL without userinfo.
        url: String,
        /// The revision as written in the spec, or `HEAD`.
        revision: String,
        /// What gix reported.
        #[source]
        source: gix::Error,
    },
}

/// A username and password, kept out of `Debug` output so they cannot reach a log by accident.
#[derive(Clone)]
struct Credentials {
    username: String,
    password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(<redacted>)")
    }
}

/// How the requested revision maps onto gix's clone options.
enum Target<'a> {
    /// The remote's HEAD.
    RemoteHead,
    /// A branch or tag name (branches win, as with `git clone --branch`).
    Name(&'a str),
    /// A full commit id.
    Commit(&'a str),
}

fn target(revision: Option<&str>) -> Target<'_> {
    match revision {
        None => Target::RemoteHead,
        Some(rev) if is_full_object_id(rev) => Target::Commit(rev),
        Some(rev) => Target::Name(rev),
    }
}

fn is_full_object_id(rev: &str) -> bool {
    // SHA-1 (40) or SHA-256 (64) repositories; an abbreviated id cannot be asked of a remote.
    matches!(rev.len(), 40 | 64) && rev.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Clones `source.url` into `dest` at `source.revision` and checks out its worktree.
///
/// `secret_dir`, when set, holds the `username` and `password` files of a basic-auth Secret;
/// without it, userinfo in the URL (if any) is used instead. Either way the credentials only
/// live in memory: the URL recorded in the clone's `.git/config` carries no userinfo.
pub fn clone(
    source: &GitSource,
    secret_dir: Option<&Path>,
    dest: &Path,
) -> Result<ClonedRepo, GitError> {
    let (url, url_credentials) = parse_url(&source.url)?;
    let location = url.to_bstring().to_string();
    let credentials = match secret_dir {
        Some(dir) => Some(read_secret(dir)?),
        None => url_credentials,
    };
    if credentials.is_some() {
        match url.scheme {
            // gix refuses basic auth over plain http at the transport; failing here says why
            // before any connection is made.
            gix::url::Scheme::Http => {
                return Err(GitError::InsecureCredentials { url: location });
            }
            gix::url::Scheme::Https => {}
            _ => {
                warn!(url = %location, "git credentials are ignored: only http(s) remotes use them")
            }
        }
    }
    let revision_label = source.revision.clone().unwrap_or_else(|| "HEAD".into());
    let clone_error = |source: gix::Error| classify(source, &location, &revision_label);

    info!(url = %location, revision = %revision_label, authenticated = credentials.is_some(), "cloning git source");

    let depth = NonZeroU32::new(1).expect("1 is not zero");
    let mut prepare = gix::prepare_clone(url, dest)
        .map_err(clone_error)?
        .with_shallow(gix::remote::fetch::Shallow::DepthAtRemote(depth));
    prepare = match target(source.revision.as_deref()) {
        Target::RemoteHead => prepare,
        Target::Name(name) => prepare.with_ref_name(Some(name)).map_err(clone_error)?,
        // gix asks the remote for this one object (depth 1): fine for protocol v2 servers, which
        // answer any reachable commit, unlike the branch-tip-only default of protocol v0.
        Target::Commit(id) => prepare.with_revision(Some(id)).map_err(clone_error)?,
    };
    if let Some(credentials) = credentials {
        prepare = prepare.configure_connection(move |connection| {
            connection.set_credentials(credential_helper(credentials.clone()));
            Ok(())
        });
    }

    let interrupt = AtomicBool::new(false);
    let (mut checkout, _) = prepare
        .fetch_then_checkout(gix::progress::Discard, &interrupt)
        .map_err(clone_error)?;
    let (repo, outcome) = checkout
        .main_worktree(gix::progress::Discard, &interrupt)
        .map_err(|source| GitError::Checkout {
            url: location.clone(),
            revision: revision_label.clone(),
            source,
        })?;
    debug!(
        files = outcome.files_updated,
        bytes = outcome.bytes_written,
        "worktree checked out"
    );

    let commit = repo
        .head_id()
        .map_err(|source| GitError::Checkout {
            url: location.clone(),
            revision: revision_label.clone(),
            source: gix::Error::from_error(source),
        })?
        .detach();
    if let Target::Commit(wanted) = target(source.revision.as_deref())
        && !commit.to_hex().to_string().eq_ignore_ascii_case(wanted)
    {
        // Defensive: gix checks out what it fetched; a mismatch would mean a wrong build.
        return Err(GitError::Checkout {
            url: location,
            revision: revision_label,
            source: gix::Error::from_error(std::io::Error::other(format!(
                "checked out {commit} instead of the requested commit"
            ))),
        });
    }
    info!(url = %location, commit = %commit, "git source cloned");
    Ok(ClonedRepo {
        commit: commit.to_hex().to_string(),
        location,
    })
}

/// Answers gix's credential requests from `credentials` alone: nothing is remembered or
/// forgotten, the Secret (or the URL) is the only store.
fn credential_helper(
    credentials: Credentials,
) -> impl FnMut(
    gix::credentials::helper::Action,
) -> gix::Result<Option<gix::credentials::protocol::Outcome>>
+ Send
+ Sync
+ 'static {
    move |action| match action {
        gix::credentials::helper::Action::Get(context) => {
            Ok(Some(gix::credentials::protocol::Outcome {
                identity: gix::sec::identity::Account {
                    username: credentials.username.clone(),
                    password: credentials.password.clone(),
                    oauth_refresh_token: None,
                },
                next: context.into(),
            }))
        }
        gix::credentials::helper::Action::Store(_) | gix::credentials::helper::Action::Erase(_) => {
            Ok(None)
        }
    }
}

/// The commit `source.revision` (a branch or tag; the remote's HEAD when unset) points at on the
/// remote now, like `git ls-remote URL REVISION`: only the refs are listed, nothing is fetched.
/// A branch wins over a tag of the same name (as in the clone); an annotated tag is peeled to
/// its commit. Blocking: run it on a blocking thread.
///
/// Anonymous, or with the URL's userinfo: polling never reads a Secret (see
/// [`crate::api::POLL_WITH_SECRET_MESSAGE`]).
pub fn ls_remote(source: &GitSource) -> Result<String, GitError> {
    let (url, credentials) = parse_url(&source.url)?;
    let location = url.to_bstring().to_string();
    if credentials.is_some() && url.scheme == gix::url::Scheme::Http {
        return Err(GitError::InsecureCredentials { url: location });
    }
    let revision_label = source.revision.clone().unwrap_or_else(|| "HEAD".into());
    let failed = |source: gix::Error| {
        if source.classify().is_unauthenticated() {
            GitError::Unauthenticated {
                url: location.clone(),
                source,
            }
        } else {
            GitError::ListRefs {
                url: location.clone(),
                source,
            }
        }
    };
    let wanted: Vec<String> = match source.revision.as_deref() {
        None => vec!["HEAD".into()],
        Some(name) => vec![format!("refs/heads/{name}"), format!("refs/tags/{name}")],
    };
    // gix lists refs through a repository's remote; an empty bare one in a temporary directory
    // holds nothing but that remote's settings.
    let scratch = tempfile::Builder::new()
        .prefix("sourcebuild-ls-remote-")
        .tempdir()
        .map_err(|e| failed(gix::Error::from_error(e)))?;
    let repo = gix::init_bare(scratch.path()).map_err(failed)?;
    let remote = repo
        .remote_at(url)
        .map_err(failed)?
        .with_fetch_tags(gix::remote::fetch::Tags::None)
        .with_refspecs(
            wanted.iter().map(String::as_str),
            gix::remote::Direction::Fetch,
        )
        .map_err(failed)?;
    let mut connection = remote
        .connect(gix::remote::Direction::Fetch)
        .map_err(failed)?;
    match credentials {
        Some(credentials) => {
            connection.set_credentials(credential_helper(credentials));
        }
        // Never the machine's credential helpers or a terminal prompt: the controller asks
        // anonymously.
        None => {
            connection.set_credentials(|_| Ok(None));
        }
    }
    let (ref_map, _) = connection
        .ref_map(gix::progress::Discard, Default::default())
        .map_err(failed)?;
    let head = wanted.iter().find_map(|name| {
        ref_map.remote_refs.iter().find_map(|r| {
            let (ref_name, target, peeled) = r.unpack();
            (ref_name == name.as_str())
                .then(|| peeled.or(target))
                .flatten()
        })
    });
    match head {
        Some(commit) => Ok(commit.to_hex().to_string()),
        None => Err(GitError::HeadNotFound {
            url: location,
            revision: revision_label,
        }),
    }
}

fn classify(source: gix::Error, url: &str, revision: &str) -> GitError {
    let classes = source.classify();
    if classes.is_unauthenticated() {
        return GitError::Unauthenticated {
            url: url.into(),
            source,
        };
    }
    if source.classify().is_not_found() && revision != "HEAD" {
        return GitError::RevisionNotFound {
            url: url.into(),
            revision: revision.into(),
            source,
        };
    }
    GitError::Clone {
        url: url.into(),
        revision: revision.into(),
        source,
    }
}

/// Parses the clone URL, returning it without userinfo plus the userinfo as credentials.
fn parse_url(raw: &str) -> Result<(gix::Url, Option<Credentials>), GitError> {
    let invalid = |reason: String| GitError::InvalidUrl {
        url: mask_userinfo(raw),
        reason,
    };
    let mut url = gix::url::parse(raw.as_bytes().as_bstr())
        .map_err(|e| invalid(e.to_string().replace(raw, &mask_userinfo(raw))))?;
    match url.scheme {
        gix::url::Scheme::Http | gix::url::Scheme::Https | gix::url::Scheme::Git => {}
        // file:// is accepted for local use and tests; the CRD admits only http(s) and git.
        gix::url::Scheme::File => {}
        ref other => return Err(invalid(format!("unsupported scheme {other}"))),
    }
    let credentials = match (url.user(), url.password()) {
        (Some(username), Some(password)) => Some(Credentials {
            username: username.to_string(),
            password: password.to_string(),
        }),
        _ => None,
    };
    url.set_user(None);
    url.set_password(None);
    Ok((url, credentials))
}

fn read_secret(dir: &Path) -> Result<Credentials, GitError> {
    let read = |key: &str| {
        let path = dir.join(key);
        std::fs::read_to_string(&path)
            // A Secret created with `kubectl create secret --from-file` often ends in a newline
            // that is not part of the credential.
            .map(|value| value.trim_end_matches(['\r', '\n']).to_string())
            .map_err(|source| GitError::Credentials { path, source })
    };
    Ok(Credentials {
        username: read("username")?,
        password: read("password")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_credentials_are_taken_out_of_the_url() {
        let (url, credentials) = parse_url("https://user:s3cret@example.com/org/a.git").unwrap();
        assert_eq!(url.to_bstring(), "https://example.com/org/a.git");
        let credentials = credentials.unwrap();
        assert_eq!(credentials.username, "user");
        assert_eq!(credentials.password, "s3cret");
        assert_eq!(format!("{credentials:?}"), "Credentials(<redacted>)");
    }

    #[test]
    fn revisions_are_told_apart() {
        assert!(matches!(target(None), Target::RemoteHead));
        assert!(matches!(target(Some("main")), Target::Name("main")));
        assert!(matches!(
            target(Some("0123456789abcdef0123456789abcdef01234567")),
            Target::Commit(_)
        ));
        assert!(matches!(target(Some("0123456")), Target::Name(_)));
    }
}
