//! Fetching the source a SourceBuild names (git, ConfigMap, archive) into a local directory.
//! Runs only inside the build Pod's init step (`sourcebuild prepare`).

use std::path::{Path, PathBuf};

use crate::api::Source;

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
    /// Interface placeholder until the fetchers land; never returned once they do.
    #[error("source fetching is not available in this build")]
    NotAvailable,
}

/// Fetches `source` into `dest` (an empty directory).
pub fn fetch(
    source: &Source,
    mounts: &SourceMounts,
    dest: &Path,
) -> Result<FetchedSource, FetchError> {
    let _ = (source, mounts, dest);
    Err(FetchError::NotAvailable)
}
