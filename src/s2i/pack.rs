//! Packing a local source tree into a deterministic tar+gzip for `kubectl sourcebuild build`:
//! the same tree always gives the same bytes, so the same artifact digest and an unchanged
//! SourceBuild spec.
//!
//! The tree is read with the walk that lays out a build context ([`super::context`]): `.git`
//! and `.s2iignore`d paths stay out, symlinks are never followed, special files are left out.
//! A symlink leading outside the tree is an error here, not a warning: the user is at the
//! keyboard and can fix it, where prepare could only drop it.
//!
//! Entries are sorted by path, owned by 0:0 with no names, dated 0, and their modes are
//! normalized (0755 for directories and executable files, 0644 for other files), so the umask
//! or the checkout's times do not change the digest.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::context::{ContextError, Entry, read_ignore_rules, walk_tree};

/// The packed source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackedSource {
    /// The tar+gzip bytes.
    pub archive: Vec<u8>,
    /// Regular files packed.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
    /// Special files left out (fifos, sockets, devices), relative to the tree.
    pub left_out: Vec<String>,
}

/// Why a tree could not be packed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The directory does not exist or is not a directory.
    #[error("{}: not a directory", dir.display())]
    NotADirectory { dir: PathBuf },
    /// Nothing would be packed.
    #[error("{}: no files to build (empty, or everything is ignored by .s2iignore)", dir.display())]
    Empty { dir: PathBuf },
    /// A symlink points outside the tree: its target would not exist in the image.
    #[error("{path}: a symlink to {target:?}, outside {}; make it relative and inside the directory, or list it in .s2iignore", dir.display())]
    LinkOutside {
        dir: PathBuf,
        path: String,
        target: String,
    },
    /// A name a tar entry cannot carry portably (not UTF-8).
    #[error("{path:?}: the name is not valid UTF-8")]
    NonUtf8Name { path: String },
    /// Reading the tree failed or the tree breaks a rule of the build context.
    #[error(transparent)]
    Tree(#[from] ContextError),
    /// Writing the archive failed.
    #[error("packing {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Mode for a regular file: executable for everyone if any execute bit is set, else 0644.
fn normalized_file_mode(mode: u32) -> u32 {
    if mode & 0o111 != 0 { 0o755 } else { 0o644 }
}

fn header(entry_type: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(entry_type);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header
}

/// Packs `dir` into a deterministic tar+gzip.
pub fn pack_source(dir: &Path) -> Result<PackedSource, PackError> {
    if !dir.is_dir() {
        return Err(PackError::NotADirectory {
            dir: dir.to_path_buf(),
        });
    }
    let tree = std::fs::canonicalize(dir).map_err(|_| PackError::NotADirectory {
        dir: dir.to_path_buf(),
    })?;
    let ignore = read_ignore_rules(&tree)?;
    let encoder = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(encoder);
    let mut packed = PackedSource {
        archive: Vec::new(),
        files: 0,
        bytes: 0,
        left_out: Vec::new(),
    };
    let mut failure: Option<PackError> = None;
    let name = |relative: &Path| -> Result<String, PackError> {
        relative
            .to_str()
            .map(str::to_string)
            .ok_or_else(|| PackError::NonUtf8Name {
                path: relative.to_string_lossy().into_owned(),
            })
    };
    let write_error = |path: &str| {
        let path = path.to_string();
        move |source| PackError::Write { path, source }
    };
    let mut add = |entry: Entry<'_>| -> Result<(), PackError> {
        match entry {
            Entry::DirStart { relative } => {
                let path = format!("{}/", name(relative)?);
                let mut header = header(tar::EntryType::Directory, 0o755, 0);
                builder
                    .append_data(&mut header, &path, std::io::empty())
                    .map_err(write_error(&path))?;
            }
            Entry::DirEnd { .. } => {}
            Entry::File {
                relative,
                source,
                mode,
                size,
            } => {
                let path = name(relative)?;
                let file = std::fs::File::open(source).map_err(write_error(&path))?;
                let mut header = header(tar::EntryType::Regular, normalized_file_mode(mode), size);
                // Reads exactly `size` bytes: a file that grows while packed is cut, one that
                // shrinks fails, rather than writing an entry whose length lies.
                builder
                    .append_data(&mut header, &path, std::io::Read::take(file, size))
                    .map_err(write_error(&path))?;
                packed.files += 1;
                packed.bytes += size;
            }
            Entry::Symlink { relative, target } => {
                let path = name(relative)?;
                let target = name(target)?;
                let mut header = header(tar::EntryType::Symlink, 0o777, 0);
                builder
                    .append_link(&mut header, &path, &target)
                    .map_err(write_error(&path))?;
            }
            Entry::LeftOut {
                relative,
                target: Some(target),
            } => {
                return Err(PackError::LinkOutside {
                    dir: dir.to_path_buf(),
                    path: relative.to_string_lossy().into_owned(),
                    target: target.to_string_lossy().into_owned(),
                });
            }
            Entry::LeftOut {
                relative,
                target: None,
            } => packed
                .left_out
                .push(relative.to_string_lossy().into_owned()),
        }
        Ok(())
    };
    // The walk's errors are ContextError; ours ride alongside and stop it at once.
    let walked = walk_tree(&tree, &ignore, &HashSet::new(), &mut |entry| {
        add(entry).map_err(|error| {
            failure = Some(error);
            ContextError::Io {
                action: "packing",
                path: tree.clone(),
                source: std::io::Error::other("stopped"),
            }
        })
    });
    if let Some(error) = failure {
        return Err(error);
    }
    walked?;
    if packed.files == 0 {
        return Err(PackError::Empty {
            dir: dir.to_path_buf(),
        });
    }
    let encoder = builder
        .into_inner()
        .map_err(write_error("the archive's end"))?;
    packed.archive = encoder.finish().map_err(write_error("the archive's end"))?;
    Ok(packed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn entries(archive: &[u8]) -> Vec<(String, u32, u64, u64)> {
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
        tar.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                    h.uid().unwrap(),
                )
            })
            .collect()
    }

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join(".s2i/bin")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join(".git/HEAD"), "ref").unwrap();
        std::fs::write(root.join("b.py"), "b").unwrap();
        std::fs::write(root.join("a.py"), "a").unwrap();
        std::fs::write(root.join("debug.log"), "x").unwrap();
        std::fs::write(root.join(".s2iignore"), "*.log\n").unwrap();
        std::fs::write(root.join(".s2i/bin/assemble"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            root.join(".s2i/bin/assemble"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        symlink("a.py", root.join("link.py")).unwrap();
        dir
    }

    #[test]
    fn packs_sorted_normalized_and_without_ignored_files() {
        let dir = tree();
        let packed = pack_source(dir.path()).unwrap();
        let listed = entries(&packed.archive);
        let names: Vec<&str> = listed.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                ".s2i/",
                ".s2i/bin/",
                ".s2i/bin/assemble",
                ".s2iignore",
                "a.py",
                "b.py",
                "link.py"
            ]
        );
        let mode = |name: &str| listed.iter().find(|e| e.0 == name).unwrap().1;
        assert_eq!(mode(".s2i/bin/assemble"), 0o755);
        assert_eq!(mode("a.py"), 0o644);
        assert!(listed.iter().all(|e| e.2 == 0 && e.3 == 0));
        assert_eq!(packed.files, 4);
    }

    #[test]
    fn the_same_tree_gives_the_same_bytes() {
        let one = tree();
        let two = tree();
        // Other times and another umask: the bytes do not change.
        std::fs::set_permissions(
            two.path().join("b.py"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(two.path().join("a.py"), "a").unwrap();
        assert_eq!(
            pack_source(one.path()).unwrap().archive,
            pack_source(two.path()).unwrap().archive
        );
        std::fs::write(two.path().join("a.py"), "changed").unwrap();
        assert_ne!(
            pack_source(one.path()).unwrap().archive,
            pack_source(two.path()).unwrap().archive
        );
    }

    #[test]
    fn a_link_out_of_the_tree_or_an_empty_tree_is_refused() {
        let dir = tree();
        symlink("../../etc/passwd", dir.path().join("escape")).unwrap();
        let error = pack_source(dir.path()).unwrap_err();
        assert!(
            matches!(error, PackError::LinkOutside { ref path, .. } if path == "escape"),
            "{error}"
        );
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            pack_source(empty.path()),
            Err(PackError::Empty { .. })
        ));
        std::fs::write(empty.path().join(".s2iignore"), "*\n").unwrap();
        assert!(matches!(
            pack_source(empty.path()),
            Err(PackError::Empty { .. })
        ));
        assert!(matches!(
            pack_source(&empty.path().join("missing")),
            Err(PackError::NotADirectory { .. })
        ));
    }
}
