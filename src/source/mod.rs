//! Fetching the source a SourceBuild names (git, ConfigMap, archive, OCI artifact) into a local
//! directory.
//! Runs only inside the build Pod's init step (`sourcebuild prepare`).
//!
//! Every fetcher is blocking (gix and reqwest's blocking client run their own I/O): call
//! [`fetch`] from a plain thread or `tokio::task::spawn_blocking`, never from inside an async task.

use std::path::{Path, PathBuf};

use crate::api::{Source, SourceOrigin};
use crate::reason::FailureReason;
use userinfo::strip_userinfo;

pub mod archive;
pub mod configmap;
pub mod git;
pub mod oci;
mod userinfo;

pub use archive::{ArchiveError, ArchiveLimits};
pub use configmap::ConfigMapError;
pub use git::GitError;
pub use oci::OciError;

/// Where the build Pod mounts what a source may need, and how registries are reached.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceMounts {
    /// The `kubernetes.io/basic-auth` git Secret (files `username`, `password`), when one is set.
    pub git_secret_dir: Option<PathBuf>,
    /// The ConfigMap volume, for a `configMap` source.
    pub configmap_dir: PathBuf,
    /// The docker `config.json` for an `oci` source's registry (a missing file is anonymous).
    pub oci_docker_config: Option<PathBuf>,
    /// Registries (`host[:port]`) reached over plain HTTP.
    pub insecure_registries: Vec<String>,
}

/// A source tree on local disk.
#[derive(Clone, Debug, PartialEq)]
pub struct FetchedSource {
    /// Root of the fetched tree (before `contextDir` is applied).
    pub root: PathBuf,
    /// Resolved commit SHA for git, `sha256:<hex>` for an archive or an OCI artifact's
    /// manifest, none for a ConfigMap.
    pub revision: Option<String>,
    /// What an OCI artifact's annotations say it was made from; none for other sources.
    pub origin: Option<SourceOrigin>,
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
    /// Pulling or unpacking the OCI artifact failed.
    #[error(transparent)]
    Oci(#[from] OciError),
}

impl FetchError {
    /// The status reason this failure maps to: `InvalidSource` when the spec itself can never
    /// work, `SourceFetchFailed` when fetching it did not.
    pub fn reason(&self) -> FailureReason {
        match self {
            FetchError::InvalidSource(_) => FailureReason::InvalidSource,
            FetchError::Oci(error) => error.reason(),
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
    let mut origin = None;
    let revision = match (
        &source.git,
        &source.config_map,
        &source.archive,
        &source.oci,
    ) {
        (Some(git), None, None, None) => {
            Some(git::clone(git, mounts.git_secret_dir.as_deref(), dest)?.commit)
        }
        (None, Some(config_map), None, None) => {
            Some(configmap::copy(config_map, &mounts.configmap_dir, dest)?)
        }
        (None, None, Some(archive), None) => {
            Some(archive::fetch(archive, dest, &ArchiveLimits::default())?.revision)
        }
        (None, None, None, Some(artifact)) => {
            let options = oci::OciOptions {
                insecure_registries: mounts.insecure_registries.clone(),
                docker_config: mounts.oci_docker_config.clone(),
            };
            let pulled = oci::fetch(artifact, &options, dest, &ArchiveLimits::default())?;
            origin = Some(pulled.origin).filter(|o| !o.is_empty());
            Some(pulled.digest)
        }
        (None, None, None, None) => {
            return Err(FetchError::InvalidSource(
                "no source set: exactly one of git, configMap, archive or oci is required".into(),
            ));
        }
        _ => {
            return Err(FetchError::InvalidSource(
                "several sources set: exactly one of git, configMap, archive or oci is allowed"
                    .into(),
            ));
        }
    };
    Ok(FetchedSource {
        root: dest.to_path_buf(),
        revision,
        origin,
        location: location(source),
    })
}

/// Where a source comes from, as the image label `io.openshift.s2i.build.source-location` shows
/// it: the URL without any userinfo, `oci://<image>`, or `configmap:<name>`. Derived from the spec alone, so
/// `sourcebuild render` writes the same label (and the same Dockerfile bytes) as the build Pod.
pub fn location(source: &Source) -> String {
    if let Some(git) = &source.git {
        strip_userinfo(&git.url)
    } else if let Some(archive) = &source.archive {
        strip_userinfo(&archive.url)
    } else if let Some(artifact) = &source.oci {
        oci::location(artifact)
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
