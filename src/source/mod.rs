//! Fetching the source a SourceBuild names (git, ConfigMap, archive) into a local directory.
//! Runs only inside the build Pod's init step (`sourcebuild prepare`).
//!
//! Every fetcher is blocking (gix and reqwest's blocking client run their own I/O): call
//! [`fetch`] from a plain thread or `tokio::task::spawn_blocking`, never from inside an async task.

use std::path::{Path, PathBuf};

use crate::api::Source;
use crate::prepare::{REASON_INVALID_SOURCE, REASON_SOURCE_FETCH_FAILED};

pub mod archive;
pub mod configmap;
pub mod git;

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
    pub fn reason(&self) -> &'static str {
        match self {
            FetchError::InvalidSource(_) => REASON_INVALID_SOURCE,
            FetchError::Git(GitError::InvalidUrl { .. })
            | FetchError::Archive(ArchiveError::InvalidUrl { .. })
            | FetchError::ConfigMap(ConfigMapError::InvalidPath { .. }) => REASON_INVALID_SOURCE,
            _ => REASON_SOURCE_FETCH_FAILED,
        }
    }
}

/// Fetches `source` into `dest` (an empty directory).
pub fn fetch(
    source: &Source,
    mounts: &SourceMounts,
    dest: &Path,
) -> Result<FetchedSource, FetchError> {
    let (revision, location) = match (&source.git, &source.config_map, &source.archive) {
        (Some(git), None, None) => {
            let fetched = git::clone(git, mounts.git_secret_dir.as_deref(), dest)?;
            (Some(fetched.commit), fetched.location)
        }
        (None, Some(config_map), None) => {
            configmap::copy(config_map, &mounts.configmap_dir, dest)?;
            (None, format!("configmap:{}", config_map.name))
        }
        (None, None, Some(archive)) => {
            let fetched = archive::fetch(archive, dest, &ArchiveLimits::default())?;
            (Some(fetched.revision), fetched.location)
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
        location,
    })
}
