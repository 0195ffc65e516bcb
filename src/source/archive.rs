//! Downloading a `.tar` / `.tar.gz` over http(s), verifying its sha256 and unpacking it so that
//! nothing is ever written outside the destination directory.
//!
//! What happens to each kind of hostile or odd entry (every case has a test):
//!
//! | entry | outcome |
//! | --- | --- |
//! | path with a `..` component | error [`ArchiveError::UnsafePath`] |
//! | absolute path | error [`ArchiveError::UnsafePath`] |
//! | symlink whose target is absolute or resolves outside the tree (also through other symlinks) | error [`ArchiveError::LinkOutside`] |
//! | hard link whose target is outside the tree, missing, or not a regular file | error [`ArchiveError::LinkOutside`] / [`ArchiveError::BadHardLink`] |
//! | any entry whose parent directory is a symlink extracted earlier | error [`ArchiveError::ThroughSymlink`] |
//! | a file at the path of an earlier symlink or file | the earlier one is unlinked and replaced, never written through (as GNU tar does) |
//! | character or block device, fifo | skipped with a warning: a build context has no use for them |
//! | name or link target that is not UTF-8 | error [`ArchiveError::NonUtf8Name`] |
//! | more entries than [`ArchiveLimits::max_entries`] | error [`ArchiveError::TooManyEntries`] |
//! | more file bytes than [`ArchiveLimits::max_unpacked_bytes`] | error [`ArchiveError::UnpackedTooLarge`] |
//!
//! Permission bits are kept without setuid, setgid and sticky; owners and times are not restored.
//! On error the destination is emptied again: a refused archive leaves nothing behind, not even a
//! link whose escape only shows once the whole chain of links exists.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::api::ArchiveSource;

/// Bounds on what one archive may cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArchiveLimits {
    /// Largest download accepted, compressed (bytes).
    pub max_download_bytes: u64,
    /// Largest total size of the files unpacked (bytes); stops decompression bombs.
    pub max_unpacked_bytes: u64,
    /// Most entries (files, directories, links...) accepted.
    pub max_entries: u64,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        ArchiveLimits {
            max_download_bytes: 1 << 30,
            max_unpacked_bytes: 2 << 30,
            max_entries: 200_000,
        }
    }
}

/// What a download produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownloadedArchive {
    /// `sha256:<hex>` of the downloaded bytes.
    pub revision: String,
    /// The URL without userinfo.
    pub location: String,
}

/// Why an archive source could not be fetched. URLs in messages never carry userinfo.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The URL does not parse or is not http(s).
    #[error("invalid archive URL {url}: {reason}")]
    InvalidUrl {
        /// The URL with any userinfo masked.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The request failed before a response arrived, or the body could not be read.
    #[error("downloading {url} failed: {source}")]
    Download {
        /// The URL without userinfo.
        url: String,
        /// The transport error (its own copy of the URL removed).
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with a non-success status.
    #[error("downloading {url} failed: HTTP {status}")]
    HttpStatus {
        /// The URL without userinfo.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The download is larger than [`ArchiveLimits::max_download_bytes`].
    #[error("archive {url} is larger than the {limit}-byte download limit")]
    DownloadTooLarge {
        /// The URL without userinfo.
        url: String,
        /// The limit in force.
        limit: u64,
    },
    /// The bytes do not have the sha256 the spec asks for.
    #[error("archive {url} has sha256 {actual}, expected {expected}")]
    Sha256Mismatch {
        /// The URL without userinfo.
        url: String,
        /// `spec.source.archive.sha256`.
        expected: String,
        /// sha256 of what was downloaded.
        actual: String,
    },
    /// The temporary copy of the download could not be written or read.
    #[error("cannot buffer the download of {url}: {source}")]
    Spool {
        /// The URL without userinfo.
        url: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The archive is not a readable tar (or gzip-compressed tar).
    #[error("archive {url} is not a valid tar or tar.gz: {source}")]
    Corrupt {
        /// The URL without userinfo.
        url: String,
        /// What the tar or gzip reader reported.
        #[source]
        source: io::Error,
    },
    /// An entry's path is absolute or has a `..` component.
    #[error("archive entry {entry:?} is unsafe: {reason}")]
    UnsafePath {
        /// The entry's name as stored.
        entry: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// An entry's name or link target is not UTF-8.
    #[error("archive entry {entry:?} has a name that is not UTF-8")]
    NonUtf8Name {
        /// The name with invalid bytes replaced by U+FFFD.
        entry: String,
    },
    /// A symlink or hard link points outside the destination.
    #[error("archive entry {entry:?} links to {target:?}, outside the source tree")]
    LinkOutside {
        /// The link entry.
        entry: String,
        /// Its target as stored.
        target: String,
    },
    /// A hard link names a target that was not extracted as a regular file before it.
    #[error(
        "archive entry {entry:?} is a hard link to {target:?}, which is not a file extracted earlier"
    )]
    BadHardLink {
        /// The link entry.
        entry: String,
        /// Its target as stored.
        target: String,
    },
    /// An entry would be written through a symlink extracted earlier.
    #[error("archive entry {entry:?} would be written through the symlink {symlink:?}")]
    ThroughSymlink {
        /// The entry.
        entry: String,
        /// The symlink on its path, relative to the tree root.
        symlink: String,
    },
    /// An entry needs a directory where a file of another kind already is.
    #[error("archive entry {entry:?} conflicts with {existing:?}, which is not a directory")]
    NotADirectory {
        /// The entry.
        entry: String,
        /// The path in the way, relative to the tree root.
        existing: String,
    },
    /// A file entry where a directory was already extracted.
    #[error("archive entry {entry:?} is a file but a directory of that name was extracted earlier")]
    DirectoryInTheWay {
        /// The entry.
        entry: String,
    },
    /// More entries than [`ArchiveLimits::max_entries`].
    #[error("archive has more than {limit} entries")]
    TooManyEntries {
        /// The limit in force.
        limit: u64,
    },
    /// More unpacked bytes than [`ArchiveLimits::max_unpacked_bytes`].
    #[error("archive unpacks to more than {limit} bytes (reached at entry {entry:?})")]
    UnpackedTooLarge {
        /// The limit in force.
        limit: u64,
        /// The entry that crossed it.
        entry: String,
    },
    /// Writing an entry to disk failed.
    #[error("cannot write archive entry {entry:?}: {source}")]
    Write {
        /// The entry.
        entry: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// Downloads `source.url`, verifies it and unpacks it into `dest` (an empty directory).
pub fn fetch(
    source: &ArchiveSource,
    dest: &Path,
    limits: &ArchiveLimits,
) -> Result<DownloadedArchive, ArchiveError> {
    let (url, location) = parse_url(&source.url)?;
    info!(url = %location, "downloading archive source");
    let spool_dir = dest.parent().unwrap_or(dest);
    let (mut file, digest) = download(url, &location, spool_dir, limits)?;
    if let Some(expected) = &source.sha256
        && !expected.eq_ignore_ascii_case(&digest)
    {
        return Err(ArchiveError::Sha256Mismatch {
            url: location,
            expected: expected.clone(),
            actual: digest,
        });
    }
    let spool = |source| ArchiveError::Spool {
        url: location.clone(),
        source,
    };
    file.seek(SeekFrom::Start(0)).map_err(spool)?;
    let stats = unpack_archive(BufReader::new(file), dest, limits, &location)?;
    info!(url = %location, sha256 = %digest, gzip = stats.gzip, entries = stats.entries, bytes = stats.bytes, "archive source unpacked");
    Ok(DownloadedArchive {
        revision: format!("sha256:{digest}"),
        location,
    })
}

/// Parses the URL and returns it with the userinfo-free form used in messages and labels.
fn parse_url(raw: &str) -> Result<(reqwest::Url, String), ArchiveError> {
    let invalid = |reason: String| ArchiveError::InvalidUrl {
        url: super::git::mask_userinfo(raw),
        reason,
    };
    let url = reqwest::Url::parse(raw).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!("unsupported scheme {}", url.scheme())));
    }
    let mut clean = url.clone();
    // Only fails for URLs that cannot have userinfo, which http(s) URLs always can.
    let _ = clean.set_username("");
    let _ = clean.set_password(None);
    Ok((url, clean.to_string()))
}

/// Streams the body into an anonymous temporary file, hashing it on the way.
fn download(
    url: reqwest::Url,
    location: &str,
    spool_dir: &Path,
    limits: &ArchiveLimits,
) -> Result<(File, String), ArchiveError> {
    let transport = |e: reqwest::Error| ArchiveError::Download {
        url: location.to_string(),
        // reqwest's message would repeat the URL, userinfo included.
        source: e.without_url(),
    };
    let spool = |source| ArchiveError::Spool {
        url: location.to_string(),
        source,
    };
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .timeout(Duration::from_secs(30 * 60))
        .build()
        .map_err(transport)?;
    // reqwest sends userinfo in the URL as basic auth, so credentials in the URL keep working.
    let response = client.get(url).send().map_err(transport)?;
    let status = response.status();
    if !status.is_success() {
        return Err(ArchiveError::HttpStatus {
            url: location.to_string(),
            status: status.as_u16(),
        });
    }
    let too_large = || ArchiveError::DownloadTooLarge {
        url: location.to_string(),
        limit: limits.max_download_bytes,
    };
    if response
        .content_length()
        .is_some_and(|len| len > limits.max_download_bytes)
    {
        return Err(too_large());
    }
    let file = tempfile::tempfile_in(spool_dir)
        .or_else(|_| tempfile::tempfile())
        .map_err(spool)?;
    let mut writer = HashingWriter {
        inner: io::BufWriter::new(file),
        hasher: Sha256::new(),
    };
    let mut body = response.take(limits.max_download_bytes + 1);
    let copied = io::copy(&mut body, &mut writer).map_err(|e| {
        // A body read error wraps the reqwest error; pull it out so the message stays clean.
        match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
        {
            Some(_) => match e.into_inner().map(|b| b.downcast::<reqwest::Error>()) {
                Some(Ok(reqwest_error)) => transport(*reqwest_error),
                _ => spool(io::Error::other("body read failed")),
            },
            None => spool(e),
        }
    })?;
    if copied > limits.max_download_bytes {
        return Err(too_large());
    }
    let digest = hex::encode(writer.hasher.finalize());
    let file = writer
        .inner
        .into_inner()
        .map_err(|e| spool(e.into_error()))?;
    Ok((file, digest))
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

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
/// errors. [`fetch`] calls this after the download; tests and fuzzing call it directly.
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

    #[test]
    fn default_limits_are_the_documented_ones() {
        let limits = ArchiveLimits::default();
        assert_eq!(limits.max_unpacked_bytes, 2 * 1024 * 1024 * 1024);
        assert_eq!(limits.max_entries, 200_000);
    }
}
