//! Archive unpacking: a tar (or gzip'd tar) built from fuzzed entries, or raw fuzzed bytes, is
//! unpacked into `<tmp>/tree/src` with small limits. Never a panic; nothing ever appears outside
//! the destination; no symlink in it resolves outside; the limits hold.
#![no_main]

use std::fs;
use std::io::Write;
use std::path::Path;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sourcebuild::source::ArchiveLimits;
use sourcebuild::source::archive::unpack_archive;

const LIMITS: ArchiveLimits = ArchiveLimits {
    max_download_bytes: 1 << 20,
    max_unpacked_bytes: 64 << 10,
    max_entries: 32,
};

#[derive(Arbitrary, Debug)]
struct Entry {
    kind: u8,
    name: Name,
    link: Name,
    data: Vec<u8>,
    mode: u16,
}

/// Names from a small alphabet of path pieces, so `..`, `/`, links and clashes are common.
#[derive(Arbitrary, Debug)]
struct Name(Vec<u8>);

impl Name {
    fn bytes(&self) -> Vec<u8> {
        const PIECES: [&[u8]; 12] = [
            b"a", b"b", b"/", b"..", b".", b"/etc", b"x/", b"\xff", b"../", b"a/b", b"c", b"//",
        ];
        let mut out = Vec::new();
        for &i in self.0.iter().take(8) {
            out.extend_from_slice(PIECES[usize::from(i) % PIECES.len()]);
        }
        out.truncate(99);
        out
    }
}

#[derive(Arbitrary, Debug)]
enum Input {
    Raw(Vec<u8>),
    Entries { entries: Vec<Entry>, gzip: bool },
}

const KINDS: [tar::EntryType; 8] = [
    tar::EntryType::Regular,
    tar::EntryType::Directory,
    tar::EntryType::Symlink,
    tar::EntryType::Link,
    tar::EntryType::Fifo,
    tar::EntryType::Char,
    tar::EntryType::Block,
    tar::EntryType::GNUSparse,
];

fn build(entries: &[Entry], gzip: bool) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries.iter().take(48) {
        let name = entry.name.bytes();
        let link = entry.link.bytes();
        let mut header = tar::Header::new_old();
        {
            let old = header.as_old_mut();
            old.name[..name.len()].copy_from_slice(&name);
            old.linkname[..link.len()].copy_from_slice(&link);
        }
        header.set_entry_type(KINDS[usize::from(entry.kind) % KINDS.len()]);
        header.set_size(entry.data.len() as u64);
        header.set_mode(u32::from(entry.mode) & 0o7777);
        header.set_cksum();
        builder.append(&header, entry.data.as_slice()).unwrap();
    }
    let tar = builder.into_inner().unwrap();
    if !gzip {
        return tar;
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&tar).unwrap();
    encoder.finish().unwrap()
}

/// Checks every path under `dir` (not following symlinks); returns the regular files' bytes.
fn check_tree(root: &Path, dir: &Path) -> u64 {
    let mut bytes = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            // A link that resolves must stay inside (dangling or looping links are harmless).
            if let Ok(real) = fs::canonicalize(&path) {
                assert!(
                    real.starts_with(root),
                    "{} -> {}",
                    path.display(),
                    real.display()
                );
            }
        } else if meta.is_dir() {
            bytes += check_tree(root, &path);
        } else {
            assert!(meta.is_file(), "special file {}", path.display());
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(meta.permissions().mode() & 0o7000, 0, "{}", path.display());
            bytes += meta.len();
        }
    }
    bytes
}

fuzz_target!(|input: Input| {
    let bytes = match &input {
        Input::Raw(bytes) => bytes.clone(),
        Input::Entries { entries, gzip } => build(entries, *gzip),
    };
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    let dest = tree.join("src");
    fs::create_dir_all(&dest).unwrap();
    let result = unpack_archive(bytes.as_slice(), &dest, &LIMITS, "fuzz.tar");
    // Nothing next to the destination, where `..` or absolute names would land.
    let beside: Vec<_> = fs::read_dir(&tree)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside, ["src"]);
    let above: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(above, ["tree"]);
    let root = fs::canonicalize(&dest).unwrap();
    let written = check_tree(&root, &root);
    assert!(
        written <= LIMITS.max_unpacked_bytes,
        "{written} bytes written"
    );
    if let Ok(stats) = result {
        assert!(stats.entries <= LIMITS.max_entries);
        assert!(stats.bytes <= LIMITS.max_unpacked_bytes);
    }
});
