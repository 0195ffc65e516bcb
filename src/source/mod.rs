//! Fetching the source a SourceBuild names (git, ConfigMap, archive) into a local directory.
//! Runs only inside the build Pod's init step (`sourcebuild prepare`).
//!
//! Every fetcher is blocking (gix and reqwest's blocking client run their own I/O): call
//! [`fetch`] from a plain thread or `tokio::task::spawn_blocking`, never from inside an async task.

use std::path::{Path, PathBuf};

use crate::api::Source;
use crate::reason::FailureReason;
use userinfo::strip_userinfo;

pub mod archive;
pub mod configmap;
pub mod git;
mod userinfo;

pub use archive::{ArchiveError, ArchiveLimits};
pub use configmap::ConfigMapError;
pub use git::GitError;

/// Where the build Pod mounts what a source may need.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceMounts {
    /// The `kubernetes.io/basic-auth` git Secret (files `username`, `password`), when one is set.
    pub git_secret_dir: Option<PathBuf>,
    /// The ConfigMap volume, for a `configMap` source.
    pub configmap_dir: PathBuf,
}

/// A source tree on local disk.
#[derive(Clone, Debug, PartialEq)]
pub struct FetchedSource {
    /// Root of the fetched tree (before `contextDir` is applied).
    pub root: PathBuf,
    /// Resolved commit SHA for git, `sha256:<hex>` for an archive, none for a ConfigMap.
    pub revision: Option<String>,
    /// Where the source came from, for the image's `io.openshift.s2i.build.source-location`
    /// label: the git or archive URL without credentials, or `configmap:<name>`.
    pub location: String,
}

/// Why a source could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The `Source` does not name exactly one kind of source.
    #[error("invalid source: {0}")]
    InvalidSource(String),
    /// Cloning the git repository failed.
    #[error(transparent)]
    Git(#[from] GitError),
    /// Downloading or unpacking the archive failed.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// Copying the ConfigMap's files failed.
    #[error(transparent)]
    ConfigMap(#[from] ConfigMapError),
}

impl FetchError {
    /// The status reason this failure maps to: `InvalidSource` when the spec itself can never
    /// work, `SourceFetchFailed` when fetching it did not.
    pub fn reason(&self) -> FailureReason {
        match self {
            FetchError::InvalidSource(_) => FailureReason::InvalidSource,
            FetchError::Git(GitError::InvalidUrl { .. })
            | FetchError::Archive(ArchiveError::InvalidUrl { .. })
            | FetchError::ConfigMap(ConfigMapError::InvalidPath { .. }) => {
                FailureReason::InvalidSource
            }
            _ => FailureReason::SourceFetchFailed,
        }
    }
}

/// Fetches `source` into `dest` (an empty directory).
pub fn fetch(
    source: &Source,
    mounts: &SourceMounts,
    dest: &Path,
) -> Result<FetchedSource, FetchError> {
    let revision = match (&source.git, &source.config_map, &source.archive) {
        (Some(git), None, None) => {
            Some(git::clone(git, mounts.git_secret_dir.as_deref(), dest)?.commit)
        }
        (None, Some(config_map), None) => {
            configmap::copy(config_map, &mounts.configmap_dir, dest)?;
            None
        }
        (None, None, Some(archive)) => {
            Some(archive::fetch(archive, dest, &ArchiveLimits::default())?.revision)
        }
        (None, None, None) => {
            return Err(FetchError::InvalidSource(
                "no source set: exactly one of git, configMap or archive is required".into(),
            ));
        }
        _ => {
            return Err(FetchError::InvalidSource(
                "several sources set: exactly one of git, configMap or archive is allowed".into(),
            ));
        }
    };
    Ok(FetchedSource {
        root: dest.to_path_buf(),
        revision,
        location: location(source),
    })
}

/// Where a source comes from, as the image label `io.openshift.s2i.build.source-location` shows
/// it: the URL without any userinfo, or `configmap:<name>`. Derived from the spec alone, so
/// `sourcebuild render` writes the same label (and the same Dockerfile bytes) as the build Pod.
pub fn location(source: &Source) -> String {
    if let Some(git) = &source.git {
        strip_userinfo(&git.url)
    } else if let Some(archive) = &source.archive {
        strip_userinfo(&archive.url)
    } else if let Some(config_map) = &source.config_map {
        format!("configmap:{}", config_map.name)
    } else {
        String::new()
    }
}

#[cfg(test)]
mod location_tests {
    use super::*;
    use crate::api::{ConfigMapSource, GitSource};

    #[test]
    fn location_drops_credentials() {
        let git = Source {
            git: Some(GitSource {
                url: "https://user:s3cret@example.com/a/b.git?x=@".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(location(&git), "https://example.com/a/b.git?x=@");
        let cm = Source {
            config_map: Some(Box::new(ConfigMapSource {
                name: "app".into(),
                items: vec![],
            })),
            ..Default::default()
        };
        assert_eq!(location(&cm), "configmap:app");
    }
}
