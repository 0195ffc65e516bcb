//! Copying a ConfigMap volume, as the kubelet lays it out, into the source tree.
//!
//! The kubelet writes the keys into a timestamped directory `..<timestamp>`, points the symlink
//! `..data` at it and makes each visible name a symlink to `..data/<name>`, so an update can swap
//! every file at once. Those symlinks are followed; anything that resolves outside the mount is
//! refused, so a crafted volume cannot make us copy files of the Pod's own filesystem.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use tracing::{debug, info};

use crate::api::ConfigMapSource;

/// Symlinks nested deeper than this are taken for a loop.
const MAX_DEPTH: usize = 32;

/// Why a ConfigMap source could not be copied.
#[derive(Debug, thiserror::Error)]
pub enum ConfigMapError {
    /// An item's path is absolute, empty or has a `..` component.
    #[error("ConfigMap {name}: item {key:?} has an invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The ConfigMap.
        name: String,
        /// The item's key.
        key: String,
        /// The item's path.
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// An item's file is not in the mounted volume.
    #[error("ConfigMap {name}: key {key:?} (path {path:?}) is not in the mounted volume {}", mount.display())]
    MissingKey {
        /// The ConfigMap.
        name: String,
        /// The item's key.
        key: String,
        /// The item's path.
        path: String,
        /// Where the volume is mounted.
        mount: PathBuf,
    },
    /// A file of the volume resolves to a place outside the mount.
    #[error("ConfigMap {name}: {} resolves to {}, outside the mounted volume", path.display(), resolved.display())]
    OutsideMount {
        /// The ConfigMap.
        name: String,
        /// The path inside the volume.
        path: PathBuf,
        /// Where it resolves to.
        resolved: PathBuf,
    },
    /// Directories nest deeper than any ConfigMap volume would: a symlink loop.
    #[error("ConfigMap {name}: {} nests deeper than {MAX_DEPTH} directories (a symlink loop?)", path.display())]
    TooDeep {
        /// The ConfigMap.
        name: String,
        /// Where the limit was hit.
        path: PathBuf,
    },
    /// Reading the volume or writing the copy failed.
    #[error("ConfigMap {name}: cannot copy {}: {source}", path.display())]
    Io {
        /// The ConfigMap.
        name: String,
        /// The file being read or written.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// Copies the ConfigMap mounted at `mount` into `dest`: the `items` to their paths, or every key
/// to a file of its own name when there are none. Returns `sha256:<hex>` of what was copied
/// ([`tree_digest`]): the revision of a ConfigMap source, whose resourceVersion the build Pod
/// cannot see.
pub fn copy(source: &ConfigMapSource, mount: &Path, dest: &Path) -> Result<String, ConfigMapError> {
    let copier = Copier {
        name: &source.name,
        mount_real: fs::canonicalize(mount).map_err(|e| ConfigMapError::Io {
            name: source.name.clone(),
            path: mount.to_path_buf(),
            source: e,
        })?,
    };
    let mut files = 0usize;
    if source.items.is_empty() {
        let entries = fs::read_dir(mount).map_err(|e| copier.io(mount, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| copier.io(mount, e))?;
            let file_name = entry.file_name();
            // `..data` and `..<timestamp>` are the kubelet's bookkeeping, not keys.
            if file_name.as_encoded_bytes().starts_with(b"..") {
                continue;
            }
            let real = copier.resolve(&entry.path())?;
            files += copier.copy_tree(&real, &dest.join(&file_name), 0)?;
        }
    } else {
        for item in &source.items {
            let relative = relative_path(&source.name, &item.key, &item.path)?;
            let in_mount = mount.join(&relative);
            let real = match fs::canonicalize(&in_mount) {
                Ok(real) => real,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(ConfigMapError::MissingKey {
                        name: source.name.clone(),
                        key: item.key.clone(),
                        path: item.path.clone(),
                        mount: mount.to_path_buf(),
                    });
                }
                Err(e) => return Err(copier.io(&in_mount, e)),
            };
            copier.check_inside(&in_mount, &real)?;
            files += copier.copy_tree(&real, &dest.join(&relative), 0)?;
        }
    }
    let digest = tree_digest(dest).map_err(|e| copier.io(dest, e))?;
    info!(configmap = %source.name, files, %digest, "ConfigMap source copied");
    Ok(digest)
}

/// `sha256:<hex>` over every regular file under `dir`, in path order: for each, its path
/// relative to `dir`, a NUL, its length in decimal, a NUL and its bytes. Same files, same digest.
pub fn tree_digest(dir: &Path) -> io::Result<String> {
    use sha2::{Digest, Sha256};
    fn walk(dir: &Path, prefix: &Path, out: &mut Vec<(PathBuf, PathBuf)>) -> io::Result<()> {
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let relative = prefix.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                walk(&entry.path(), &relative, out)?;
            } else {
                out.push((relative, entry.path()));
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, Path::new(""), &mut files)?;
    files.sort();
    let mut hasher = Sha256::new();
    for (relative, path) in files {
        let bytes = fs::read(&path)?;
        hasher.update(relative.as_os_str().as_encoded_bytes());
        hasher.update([0]);
        hasher.update(bytes.len().to_string().as_bytes());
        hasher.update([0]);
        hasher.update(&bytes);
    }
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}

/// Validates an item path (the CRD checks it too; this side must not trust that).
fn relative_path(name: &str, key: &str, path: &str) -> Result<PathBuf, ConfigMapError> {
    let invalid = |reason| ConfigMapError::InvalidPath {
        name: name.to_string(),
        key: key.to_string(),
        path: path.to_string(),
        reason,
    };
    let mut relative = PathBuf::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(part) => relative.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(invalid("it has a '..' component")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(invalid("it is an absolute path"));
            }
        }
    }
    if relative.as_os_str().is_empty() {
        return Err(invalid("it names no file"));
    }
    Ok(relative)
}

struct Copier<'a> {
    name: &'a str,
    mount_real: PathBuf,
}

impl Copier<'_> {
    fn io(&self, path: &Path, source: io::Error) -> ConfigMapError {
        ConfigMapError::Io {
            name: self.name.to_string(),
            path: path.to_path_buf(),
            source,
        }
    }

    fn resolve(&self, path: &Path) -> Result<PathBuf, ConfigMapError> {
        let real = fs::canonicalize(path).map_err(|e| self.io(path, e))?;
        self.check_inside(path, &real)?;
        Ok(real)
    }

    fn check_inside(&self, path: &Path, real: &Path) -> Result<(), ConfigMapError> {
        if real.starts_with(&self.mount_real) {
            Ok(())
        } else {
            Err(ConfigMapError::OutsideMount {
                name: self.name.to_string(),
                path: path.to_path_buf(),
                resolved: real.to_path_buf(),
            })
        }
    }

    /// Copies the file or directory at the resolved path `real` to `to`; returns files copied.
    fn copy_tree(&self, real: &Path, to: &Path, depth: usize) -> Result<usize, ConfigMapError> {
        if depth > MAX_DEPTH {
            return Err(ConfigMapError::TooDeep {
                name: self.name.to_string(),
                path: real.to_path_buf(),
            });
        }
        let meta = fs::metadata(real).map_err(|e| self.io(real, e))?;
        if meta.is_dir() {
            fs::create_dir_all(to).map_err(|e| self.io(to, e))?;
            let mut files = 0;
            for entry in fs::read_dir(real).map_err(|e| self.io(real, e))? {
                let entry = entry.map_err(|e| self.io(real, e))?;
                let child = self.resolve(&entry.path())?;
                files += self.copy_tree(&child, &to.join(entry.file_name()), depth + 1)?;
            }
            Ok(files)
        } else {
            if let Some(parent) = to.parent() {
                fs::create_dir_all(parent).map_err(|e| self.io(parent, e))?;
            }
            // fs::copy keeps the permission bits, so the volume's mode (an executable
            // `.s2i/bin/assemble`) survives.
            fs::copy(real, to).map_err(|e| self.io(real, e))?;
            debug!(from = %real.display(), to = %to.display(), "copied ConfigMap file");
            Ok(1)
        }
    }
}
