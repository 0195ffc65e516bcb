//! What an archive may cost, and why one could not be fetched.

use std::io;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_limits_are_the_documented_ones() {
        let limits = ArchiveLimits::default();
        assert_eq!(limits.max_unpacked_bytes, 2 * 1024 * 1024 * 1024);
        assert_eq!(limits.max_entries, 200_000);
    }
}
