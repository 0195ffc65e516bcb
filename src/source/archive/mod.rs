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

mod error;
mod unpack;

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tracing::info;

use super::userinfo::mask_userinfo;
use crate::api::ArchiveSource;
pub use error::{ArchiveError, ArchiveLimits};
pub use unpack::{Stats, unpack_archive};

/// What a download produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownloadedArchive {
    /// `sha256:<hex>` of the downloaded bytes.
    pub revision: String,
    /// The URL without userinfo.
    pub location: String,
}

/// Downloads `source.url`, verifies it and unpacks it into `dest` (an empty directory).
pub fn fetch(
    source: &ArchiveSource,
    dest: &Path,
    limits: &ArchiveLimits,
) -> Result<DownloadedArchive, ArchiveError> {
    let (url, location) = parse_url(&source.url)?;
    info!(url = %location, "downloading archive source");
    // The download is spooled in `dest` itself, as an unnamed file that never shows among the
    // unpacked files: in the build Pod it is the writable volume, and the root filesystem
    // (the temporary directory's) is read-only.
    let (mut file, digest) = download(url, &location, dest, limits)?;
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
        url: mask_userinfo(raw),
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
    let file = tempfile::tempfile_in(spool_dir).map_err(spool)?;
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
