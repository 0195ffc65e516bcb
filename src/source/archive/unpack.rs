//! Unpacking a tar stream so that nothing is ever written outside the destination directory,
//! under the rules in the `archive` module's documentation.

use std::collections::VecDeque;
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use tracing::warn;

use super::error::{ArchiveError, ArchiveLimits};

/// Counts of what was unpacked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Entries read, skipped ones included.
    pub entries: u64,
    /// Bytes of regular files written.
    pub bytes: u64,
    /// Whether the stream was gzip-compressed.
    pub gzip: bool,
}

/// Unpacks a tar or gzip-compressed tar (told apart by the gzip magic bytes) from `reader`
/// into `dest` under the rules in the module documentation. `location` names the archive in
/// errors. `archive::fetch` calls this after the download; tests and fuzzing call it directly.
pub fn unpack_archive<R: io::BufRead>(
    mut reader: R,
    dest: &Path,
    limits: &ArchiveLimits,
    location: &str,
) -> Result<Stats, ArchiveError> {
    let head = reader.fill_buf().map_err(|source| ArchiveError::Corrupt {
        url: location.to_string(),
        source,
    })?;
    // Shorter than two bytes: not gzip, and the tar reader reports what is wrong.
    let result = if head.starts_with(&[0x1f, 0x8b]) {
        unpack(flate2::read::GzDecoder::new(reader), dest, limits, location).map(|stats| Stats {
            gzip: true,
            ..stats
        })
    } else {
        unpack(reader, dest, limits, location)
    };
    if result.is_err() {
        // A refused archive leaves nothing behind: entries unpacked before the fault, and links
        // whose escape only shows once the whole chain exists (`a -> .`, `b -> a/..`).
        empty_dir(dest);
    }
    result
}

/// Removes everything in `dir` without following links.
fn empty_dir(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_dir = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
        let removed = if is_dir {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        if let Err(error) = removed {
            tracing::warn!(path = %path.display(), %error, "could not remove a refused archive's entry");
        }
    }
}

/// Unpacks a tar stream into `dest` under the rules in the module documentation.
fn unpack<R: Read>(
    reader: R,
    dest: &Path,
    limits: &ArchiveLimits,
    location: &str,
) -> Result<Stats, ArchiveError> {
    let corrupt = |source| ArchiveError::Corrupt {
        url: location.to_string(),
        source,
    };
    let mut archive = tar::Archive::new(reader);
    let mut stats = Stats::default();
    let mut symlinks: Vec<(Vec<String>, String, String)> = Vec::new();
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        stats.entries += 1;
        if stats.entries > limits.max_entries {
            return Err(ArchiveError::TooManyEntries {
                limit: limits.max_entries,
            });
        }
        let name = utf8(&entry.path_bytes())?;
        let entry_type = entry.header().entry_type();
        let components = safe_components(&name)?;
        if components.is_empty() {
            // `./` or `/`-less root entries: the destination already exists.
            continue;
        }
        let write_error = |source| ArchiveError::Write {
            entry: name.clone(),
            source,
        };
        let target = dest.join(components.iter().collect::<PathBuf>());
        let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
        match entry_type {
            tar::EntryType::Directory => {
                ensure_dir(dest, &components, &name)?;
                fs::set_permissions(&target, fs::Permissions::from_mode(mode | 0o700))
                    .map_err(write_error)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let size = entry.size();
                stats.bytes = stats.bytes.saturating_add(size);
                if stats.bytes > limits.max_unpacked_bytes {
                    return Err(ArchiveError::UnpackedTooLarge {
                        limit: limits.max_unpacked_bytes,
                        entry: name,
                    });
                }
                prepare_leaf(dest, &components, &name)?;
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&target)
                    .map_err(write_error)?;
                // The header's size is what `entry` yields; `take` keeps a lying header honest.
                let written =
                    io::copy(&mut (&mut entry).take(size), &mut file).map_err(write_error)?;
                if written != size {
                    return Err(corrupt(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("entry {name:?} is truncated"),
                    )));
                }
                file.set_permissions(fs::Permissions::from_mode(mode))
                    .map_err(write_error)?;
            }
            tar::EntryType::Symlink => {
                let link = utf8(&entry.link_name_bytes().unwrap_or_default())?;
                let outside = || ArchiveError::LinkOutside {
                    entry: name.clone(),
                    target: link.clone(),
                };
                if link.is_empty() || Path::new(&link).is_absolute() {
                    return Err(outside());
                }
                // Quick lexical check; the pass after unpacking also follows symlink chains.
                let parent = &components[..components.len() - 1];
                if lexically_escapes(parent, &link) {
                    return Err(outside());
                }
                prepare_leaf(dest, &components, &name)?;
                std::os::unix::fs::symlink(&link, &target).map_err(write_error)?;
                symlinks.push((components, name, link));
            }
            tar::EntryType::Link => {
                let link = utf8(&entry.link_name_bytes().unwrap_or_default())?;
                let link_components =
                    safe_components(&link).map_err(|_| ArchiveError::LinkOutside {
                        entry: name.clone(),
                        target: link.clone(),
                    })?;
                if link_components.is_empty() {
                    return Err(ArchiveError::BadHardLink {
                        entry: name,
                        target: link,
                    });
                }
                // The target must be a file this archive put there, reached without symlinks, so
                // a link can never alias a file outside the tree.
                check_no_symlink_parents(dest, &link_components, &name)?;
                let source = dest.join(link_components.iter().collect::<PathBuf>());
                match fs::symlink_metadata(&source) {
                    Ok(meta) if meta.file_type().is_file() => {}
                    _ => {
                        return Err(ArchiveError::BadHardLink {
                            entry: name,
                            target: link,
                        });
                    }
                }
                prepare_leaf(dest, &components, &name)?;
                fs::hard_link(&source, &target).map_err(write_error)?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                warn!(entry = %name, kind = ?entry_type, "skipping device or fifo entry in archive");
            }
            // Metadata the tar reader already applied to the entries that follow.
            tar::EntryType::XGlobalHeader
            | tar::EntryType::XHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink => {}
            other => {
                warn!(entry = %name, kind = ?other, "skipping archive entry of unsupported type");
            }
        }
    }
    for (components, name, link) in &symlinks {
        if resolves_outside(dest, &components[..components.len() - 1], link) {
            return Err(ArchiveError::LinkOutside {
                entry: name.clone(),
                target: link.clone(),
            });
        }
    }
    Ok(stats)
}

fn utf8(bytes: &[u8]) -> Result<String, ArchiveError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| ArchiveError::NonUtf8Name {
        entry: String::from_utf8_lossy(bytes).into_owned(),
    })
}

/// The normal components of an entry name; refuses absolute names and `..`.
fn safe_components(name: &str) -> Result<Vec<String>, ArchiveError> {
    let unsafe_path = |reason| ArchiveError::UnsafePath {
        entry: name.to_string(),
        reason,
    };
    let mut components = Vec::new();
    for component in Path::new(name).components() {
        match component {
            Component::Normal(part) => {
                components.push(part.to_str().expect("from a str").to_string())
            }
            Component::CurDir => {}
            Component::ParentDir => return Err(unsafe_path("it has a '..' component")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(unsafe_path("it is an absolute path"));
            }
        }
    }
    Ok(components)
}

/// Walks `components` below `dest`, creating missing directories and refusing symlinks.
fn ensure_dir(dest: &Path, components: &[String], entry: &str) -> Result<(), ArchiveError> {
    let mut path = dest.to_path_buf();
    for (i, component) in components.iter().enumerate() {
        path.push(component);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_dir() => {}
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(ArchiveError::ThroughSymlink {
                    entry: entry.to_string(),
                    symlink: components[..=i].join("/"),
                });
            }
            Ok(_) => {
                return Err(ArchiveError::NotADirectory {
                    entry: entry.to_string(),
                    existing: components[..=i].join("/"),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&path).map_err(|source| ArchiveError::Write {
                    entry: entry.to_string(),
                    source,
                })?;
            }
            Err(source) => {
                return Err(ArchiveError::Write {
                    entry: entry.to_string(),
                    source,
                });
            }
        }
    }
    Ok(())
}

/// Makes the parent directories of a file or link entry and clears a non-directory at its path.
fn prepare_leaf(dest: &Path, components: &[String], entry: &str) -> Result<(), ArchiveError> {
    let (_, parents) = components.split_last().expect("non-empty components");
    ensure_dir(dest, parents, entry)?;
    let path = dest.join(components.iter().collect::<PathBuf>());
    match fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_dir() => Err(ArchiveError::DirectoryInTheWay {
            entry: entry.to_string(),
        }),
        // Unlinking (never opening) an earlier file or symlink is what keeps a later entry
        // from being written through a symlink planted by an earlier one.
        Ok(_) => fs::remove_file(&path).map_err(|source| ArchiveError::Write {
            entry: entry.to_string(),
            source,
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ArchiveError::Write {
            entry: entry.to_string(),
            source,
        }),
    }
}

fn check_no_symlink_parents(
    dest: &Path,
    components: &[String],
    entry: &str,
) -> Result<(), ArchiveError> {
    let mut path = dest.to_path_buf();
    for (i, component) in components[..components.len() - 1].iter().enumerate() {
        path.push(component);
        if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(ArchiveError::ThroughSymlink {
                entry: entry.to_string(),
                symlink: components[..=i].join("/"),
            });
        }
    }
    Ok(())
}

/// Whether `link`, taken relative to the directory `parent`, climbs above the root by text alone.
fn lexically_escapes(parent: &[String], link: &str) -> bool {
    let mut depth = parent.len();
    for component in Path::new(link).components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return true,
            },
            Component::RootDir | Component::Prefix(_) => return true,
        }
    }
    false
}

/// Whether resolving `link` from the directory `parent` (relative to `root`) the way the kernel
/// does, following the symlinks now on disk, would leave `root` at any step.
fn resolves_outside(root: &Path, parent: &[String], link: &str) -> bool {
    // The kernel's own limit on symlink hops; past it resolution fails (ELOOP), which is safe.
    const MAX_HOPS: usize = 40;
    let mut resolved: Vec<std::ffi::OsString> = parent.iter().map(Into::into).collect();
    let mut pending: VecDeque<std::ffi::OsString> = VecDeque::new();
    if !push_target(&mut pending, Path::new(link)) {
        return true;
    }
    let mut hops = 0;
    while let Some(component) = pending.pop_front() {
        if component == "." || component.is_empty() {
            continue;
        }
        if component == ".." {
            if resolved.pop().is_none() {
                return true;
            }
            continue;
        }
        let candidate: PathBuf = root
            .join(resolved.iter().collect::<PathBuf>())
            .join(&component);
        match fs::read_link(&candidate) {
            Ok(target) => {
                hops += 1;
                if hops > MAX_HOPS {
                    return false;
                }
                if !push_target(&mut pending, &target) {
                    return true;
                }
            }
            Err(_) => resolved.push(component),
        }
    }
    false
}

/// Queues the components of a symlink target in front of what is left to resolve; `false` for
/// an absolute target, which leaves the root by definition.
fn push_target(pending: &mut VecDeque<std::ffi::OsString>, target: &Path) -> bool {
    let mut front = Vec::new();
    for component in target.components() {
        match component {
            Component::RootDir | Component::Prefix(_) => return false,
            other => front.push(other.as_os_str().to_os_string()),
        }
    }
    for component in front.into_iter().rev() {
        pending.push_front(component);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_escape() {
        let parent = ["a".to_string(), "b".to_string()];
        assert!(!lexically_escapes(&parent, "../../c"));
        assert!(lexically_escapes(&parent, "../../../c"));
        assert!(lexically_escapes(&[], "/etc/passwd"));
        assert!(!lexically_escapes(&[], "x/./y/.."));
    }
}
