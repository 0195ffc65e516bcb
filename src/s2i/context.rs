//! Laying out the build context: `upload/src` (the source with `contextDir` applied, minus
//! `.git`, `.s2iignore`d paths and the hooks) and `upload/scripts` (the source's `.s2i/bin`
//! hooks, mode 0755).
//!
//! Nothing from outside the source tree may enter the context, because the context is built
//! into an image that other people pull: symlinks are never followed, only kept when their
//! target stays inside the tree; special files are left out; setuid/setgid bits are dropped.
//! "The tree" is the directory that becomes `upload/src` (the `contextDir` when set), since a
//! link out of it would point outside the context in the image.

use std::collections::HashSet;
use std::ffi::OsString;
use std::io::ErrorKind;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use super::environment::{EnvironmentError, parse_environment};
use super::ignore::{IgnoreError, IgnoreRules};
use super::scripts::Script;

/// The source's s2i environment file, relative to the tree.
pub const ENVIRONMENT_FILE: &str = ".s2i/environment";
/// The ignore file, relative to the tree.
pub const IGNORE_FILE: &str = ".s2iignore";
/// Hook directories, in precedence order (`.sti/bin` is s2i's deprecated spelling).
pub const HOOK_DIRS: [&str; 2] = [".s2i/bin", ".sti/bin"];

/// What was laid out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PreparedContext {
    /// Hooks moved to `upload/scripts`, in `Script::ALL` order.
    pub hooks: Vec<Script>,
    /// The pairs of `.s2i/environment`, in file order.
    pub environment: Vec<(String, String)>,
    /// Regular files copied to `upload/src`.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
    /// Symlinks kept (their targets stay inside the tree).
    pub symlinks: u64,
    /// Paths (relative to the tree) left out for safety: symlinks leaving the tree, fifos,
    /// sockets, devices. Ignored paths and `.git` are not listed.
    pub left_out: Vec<String>,
}

/// Why the context could not be laid out.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// `contextDir` is not a plain relative path.
    #[error("contextDir {context_dir:?}: {reason}")]
    InvalidContextDir {
        context_dir: String,
        reason: &'static str,
    },
    /// `contextDir` does not exist in the source.
    #[error("contextDir {context_dir:?} does not exist in the source")]
    ContextDirNotFound { context_dir: String },
    /// `contextDir` is a file.
    #[error("contextDir {context_dir:?} is not a directory")]
    ContextDirNotDirectory { context_dir: String },
    /// `contextDir` is reached through a symlink that leaves the source.
    #[error("contextDir {context_dir:?} resolves outside the source tree (through a symlink)")]
    ContextDirEscapes { context_dir: String },
    /// A hook, the environment file or the ignore file resolves outside the tree.
    #[error("{path}: is a symlink (or under one) that leads outside the source tree")]
    OutsideTree { path: String },
    /// A hook, the environment file or the ignore file is not a regular file.
    #[error("{path}: is not a regular file")]
    NotRegularFile { path: String },
    /// A hook's `#!` line ends in a carriage return (CRLF line endings): the kernel would look
    /// for an interpreter whose name ends in `\r` and the build would fail with a baffling
    /// "no such file or directory". Refused rather than converted: the script is the user's,
    /// and a CRLF shell script breaks on every line anyway.
    #[error(
        "{path}: the #! line ends with a carriage return (CRLF line endings); convert the script to LF line endings"
    )]
    HookCrlf { path: String },
    /// The environment or ignore file is not UTF-8.
    #[error("{path}: is not valid UTF-8")]
    NotUtf8 { path: String },
    /// A bad line in `.s2i/environment`.
    #[error(transparent)]
    Environment(#[from] EnvironmentError),
    /// A bad pattern in `.s2iignore`.
    #[error(transparent)]
    Ignore(#[from] IgnoreError),
    /// The workspace already holds a context.
    #[error("{}: already exists; the workspace must start empty", path.display())]
    WorkspaceNotEmpty { path: PathBuf },
    /// A filesystem operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ContextError {
    /// Whether the error is about the source tree (as opposed to the workspace or the disk).
    pub fn is_source_problem(&self) -> bool {
        !matches!(
            self,
            ContextError::WorkspaceNotEmpty { .. } | ContextError::Io { .. }
        )
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ContextError {
    let path = path.to_path_buf();
    move |source| ContextError::Io {
        action,
        path,
        source,
    }
}

/// Lays out `<workspace>/upload/src` and `<workspace>/upload/scripts` from the source at
/// `source_root`, applying `context_dir`, and parses `.s2i/environment`.
///
/// Order follows s2i: `.s2iignore` applies first, so an ignored hook or environment file is as
/// good as absent.
pub fn lay_out_context(
    source_root: &Path,
    context_dir: Option<&str>,
    workspace: &Path,
) -> Result<PreparedContext, ContextError> {
    let root = std::fs::canonicalize(source_root).map_err(io("resolving", source_root))?;
    let tree = match context_dir {
        Some(dir) => resolve_context_dir(&root, dir)?,
        None => root,
    };

    let ignore = read_ignore_rules(&tree)?;
    let environment = match read_tree_file(&tree, ENVIRONMENT_FILE, &ignore)? {
        Some(content) => parse_environment(ENVIRONMENT_FILE, &content)?,
        None => Vec::new(),
    };

    let upload = workspace.join("upload");
    std::fs::create_dir_all(&upload).map_err(io("creating", &upload))?;
    let src = upload.join("src");
    let scripts = upload.join("scripts");
    for dir in [&src, &scripts] {
        std::fs::create_dir(dir).map_err(|source| match source.kind() {
            ErrorKind::AlreadyExists => ContextError::WorkspaceNotEmpty { path: dir.clone() },
            _ => io("creating", dir)(source),
        })?;
    }

    let mut context = PreparedContext {
        environment,
        ..Default::default()
    };
    let mut hook_paths = HashSet::new();
    for script in Script::ALL {
        for dir in HOOK_DIRS {
            let relative = format!("{dir}/{}", script.file_name());
            if is_excluded(&ignore, &relative) {
                continue;
            }
            let Some(real) = resolve_in_tree(&tree, &relative)? else {
                continue;
            };
            check_shebang(&real, &relative)?;
            let target = scripts.join(script.file_name());
            // The exec bit is ours to set: a hook committed without it still runs.
            std::fs::copy(&real, &target).map_err(io("copying hook", &real))?;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
                .map_err(io("setting the mode of", &target))?;
            tracing::info!(hook = %relative, "using the source's hook");
            context.hooks.push(script);
            hook_paths.insert(relative);
            break;
        }
    }

    walk_tree(&tree, &ignore, &hook_paths, &mut |entry| {
        copy_entry(&src, &mut context, entry)
    })?;
    tracing::info!(
        files = context.files,
        bytes = context.bytes,
        symlinks = context.symlinks,
        left_out = context.left_out.len(),
        hooks = ?context.hooks,
        "laid out the build context"
    );
    Ok(context)
}

/// Applies `contextDir`: a relative path without `..` that resolves to a directory inside the
/// source, symlinks included.
fn resolve_context_dir(root: &Path, context_dir: &str) -> Result<PathBuf, ContextError> {
    let invalid = |reason| ContextError::InvalidContextDir {
        context_dir: context_dir.to_string(),
        reason,
    };
    let path = Path::new(context_dir);
    if context_dir.is_empty() {
        return Err(invalid("must not be empty"));
    }
    // Found by tests/hostile_input.rs: a NUL reached `canonicalize` and came back as an I/O
    // error that named a scratch path instead of contextDir.
    if context_dir.contains('\0') {
        return Err(invalid("must not contain a NUL character"));
    }
    for component in path.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(invalid("must not contain '..'")),
            Component::RootDir | Component::Prefix(_) => return Err(invalid("must be relative")),
        }
    }
    let joined = root.join(path);
    let real = match std::fs::canonicalize(&joined) {
        Ok(real) => real,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
            return Err(ContextError::ContextDirNotFound {
                context_dir: context_dir.to_string(),
            });
        }
        Err(e) => return Err(io("resolving", &joined)(e)),
    };
    if !real.starts_with(root) {
        return Err(ContextError::ContextDirEscapes {
            context_dir: context_dir.to_string(),
        });
    }
    if !real.is_dir() {
        return Err(ContextError::ContextDirNotDirectory {
            context_dir: context_dir.to_string(),
        });
    }
    Ok(real)
}

/// The real path of `relative` when it exists, after checking it stays inside the tree and is
/// a regular file. Absent (or under a non-directory) is `None`.
fn resolve_in_tree(tree: &Path, relative: &str) -> Result<Option<PathBuf>, ContextError> {
    let path = tree.join(relative);
    match std::fs::symlink_metadata(&path) {
        Ok(_) => {}
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
            return Ok(None);
        }
        Err(e) => return Err(io("reading", &path)(e)),
    }
    let outside = || ContextError::OutsideTree {
        path: relative.to_string(),
    };
    // A dangling symlink cannot be resolved: treat it as leading nowhere safe.
    let real = std::fs::canonicalize(&path).map_err(|_| outside())?;
    if !real.starts_with(tree) {
        return Err(outside());
    }
    let metadata = std::fs::metadata(&real).map_err(io("reading", &real))?;
    if !metadata.is_file() {
        return Err(ContextError::NotRegularFile {
            path: relative.to_string(),
        });
    }
    Ok(Some(real))
}

/// Refuses a hook whose first line is a `#!` line ending in `\r`.
fn check_shebang(real: &Path, relative: &str) -> Result<(), ContextError> {
    use std::io::Read;
    let mut head = Vec::new();
    std::fs::File::open(real)
        .and_then(|file| file.take(4096).read_to_end(&mut head))
        .map_err(io("reading", real))?;
    if head.starts_with(b"#!") {
        let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
        if line.ends_with(b"\r") {
            return Err(ContextError::HookCrlf {
                path: relative.to_string(),
            });
        }
    }
    Ok(())
}

/// Reads a text file of the tree unless it is ignored or absent.
fn read_tree_file(
    tree: &Path,
    relative: &str,
    ignore: &IgnoreRules,
) -> Result<Option<String>, ContextError> {
    if is_excluded(ignore, relative) {
        return Ok(None);
    }
    let Some(real) = resolve_in_tree(tree, relative)? else {
        return Ok(None);
    };
    let bytes = std::fs::read(&real).map_err(io("reading", &real))?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| ContextError::NotUtf8 {
            path: relative.to_string(),
        })
}

/// Whether `relative` or a directory above it is `.git` or ignored.
fn is_excluded(ignore: &IgnoreRules, relative: &str) -> bool {
    let mut prefix = String::new();
    for segment in relative.split('/') {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(segment);
        if segment == ".git" || ignore.is_ignored(&prefix) {
            return true;
        }
    }
    false
}

/// Whether a symlink at `link` (relative to the tree) with `target` points inside the tree,
/// judged on the path alone: absolute targets and targets that climb above the tree are out.
pub fn link_stays_inside(link: &Path, target: &Path) -> bool {
    let mut depth = link.parent().map_or(0, |p| {
        p.components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .count()
    });
    for component in target.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                if depth == 0 {
                    return false;
                }
                depth -= 1;
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// One thing [`walk_tree`] found, in sorted order, after `.git`, `.s2iignore` and the skipped
/// paths were taken out. Paths are relative to the tree.
pub(crate) enum Entry<'a> {
    /// A directory, before its contents.
    DirStart { relative: &'a Path },
    /// The same directory, after its contents.
    DirEnd { relative: &'a Path, mode: u32 },
    /// A regular file; `source` is where to read it.
    File {
        relative: &'a Path,
        source: &'a Path,
        mode: u32,
        size: u64,
    },
    /// A symlink whose target stays inside the tree.
    Symlink {
        relative: &'a Path,
        target: &'a Path,
    },
    /// Something that never enters a context: a symlink leading outside the tree (`target`
    /// set), or a fifo, socket or device (`target` unset).
    LeftOut {
        relative: &'a Path,
        target: Option<&'a Path>,
    },
}

/// Walks `tree` depth first in sorted name order, never following a symlink, and hands each
/// entry to `visit`: the one reading of the rules that laying out a context and packing a
/// source (`kubectl sourcebuild build`) share.
pub(crate) fn walk_tree(
    tree: &Path,
    ignore: &IgnoreRules,
    skip: &HashSet<String>,
    visit: &mut dyn FnMut(Entry<'_>) -> Result<(), ContextError>,
) -> Result<(), ContextError> {
    Walk { tree, ignore, skip }.walk(Path::new(""), visit)
}

struct Walk<'a> {
    tree: &'a Path,
    ignore: &'a IgnoreRules,
    skip: &'a HashSet<String>,
}

impl Walk<'_> {
    fn walk(
        &self,
        relative_dir: &Path,
        visit: &mut dyn FnMut(Entry<'_>) -> Result<(), ContextError>,
    ) -> Result<(), ContextError> {
        let dir = self.tree.join(relative_dir);
        let mut names: Vec<OsString> = std::fs::read_dir(&dir)
            .map_err(io("listing", &dir))?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io("listing", &dir))?;
        // Sorted, so counts, logs, `left_out` and packed archives come out the same every run.
        names.sort();
        for name in names {
            let relative = relative_dir.join(&name);
            let key = relative.to_string_lossy().into_owned();
            if name == ".git" {
                continue;
            }
            if self.ignore.is_ignored(&key) {
                tracing::debug!(path = %key, "ignored by .s2iignore");
                continue;
            }
            if self.skip.contains(&key) {
                continue;
            }
            let source = self.tree.join(&relative);
            let metadata = std::fs::symlink_metadata(&source).map_err(io("reading", &source))?;
            let file_type = metadata.file_type();
            let mode = metadata.permissions().mode();
            if file_type.is_dir() {
                visit(Entry::DirStart {
                    relative: &relative,
                })?;
                self.walk(&relative, visit)?;
                visit(Entry::DirEnd {
                    relative: &relative,
                    mode,
                })?;
            } else if file_type.is_file() {
                visit(Entry::File {
                    relative: &relative,
                    source: &source,
                    mode,
                    size: metadata.len(),
                })?;
            } else if file_type.is_symlink() {
                let target = std::fs::read_link(&source).map_err(io("reading link", &source))?;
                if self.link_is_safe(&relative, &source, &target) {
                    visit(Entry::Symlink {
                        relative: &relative,
                        target: &target,
                    })?;
                } else {
                    tracing::warn!(path = %key, target = %target.display(), "leaving out a symlink that points outside the source tree");
                    visit(Entry::LeftOut {
                        relative: &relative,
                        target: Some(&target),
                    })?;
                }
            } else {
                tracing::warn!(path = %key, "leaving out a special file (fifo, socket or device)");
                visit(Entry::LeftOut {
                    relative: &relative,
                    target: None,
                })?;
            }
        }
        Ok(())
    }

    fn link_is_safe(&self, relative: &Path, source: &Path, target: &Path) -> bool {
        if !link_stays_inside(relative, target) {
            return false;
        }
        // The path alone can be fooled by links inside the target (`d -> .` then `d/../x`):
        // when the target exists, the kernel's answer must agree. A dangling link (say, to a
        // file the build creates) is judged on its path.
        match std::fs::canonicalize(source) {
            Ok(real) => real.starts_with(self.tree),
            Err(_) => true,
        }
    }
}

/// Copies what [`walk_tree`] hands it under `dest`.
fn copy_entry(
    dest: &Path,
    context: &mut PreparedContext,
    entry: Entry<'_>,
) -> Result<(), ContextError> {
    match entry {
        Entry::DirStart { relative, .. } => {
            let target = dest.join(relative);
            std::fs::create_dir(&target).map_err(io("creating", &target))?;
        }
        Entry::DirEnd { relative, mode } => {
            // Set after the contents are in, so a read-only directory can still be filled.
            let target = dest.join(relative);
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode & 0o1777))
                .map_err(io("setting the mode of", &target))?;
        }
        Entry::File {
            relative,
            source,
            mode,
            ..
        } => {
            let target = dest.join(relative);
            let bytes = std::fs::copy(source, &target).map_err(io("copying", source))?;
            if mode & 0o6000 != 0 {
                tracing::warn!(path = %relative.display(), "dropping setuid/setgid bits");
            }
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode & 0o777))
                .map_err(io("setting the mode of", &target))?;
            context.files += 1;
            context.bytes += bytes;
        }
        Entry::Symlink { relative, target } => {
            let link = dest.join(relative);
            symlink(target, &link).map_err(io("creating symlink", &link))?;
            context.symlinks += 1;
        }
        Entry::LeftOut { relative, .. } => {
            context
                .left_out
                .push(relative.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

/// The tree's `.s2iignore` rules (none when the file is absent).
pub(crate) fn read_ignore_rules(tree: &Path) -> Result<IgnoreRules, ContextError> {
    Ok(
        match read_tree_file(tree, IGNORE_FILE, &IgnoreRules::default())? {
            Some(content) => IgnoreRules::parse(IGNORE_FILE, &content)?,
            None => IgnoreRules::default(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_targets_judged_on_the_path() {
        let inside = [
            ("a", "b"),
            ("dir/a", "../b"),
            ("dir/sub/a", "../../b"),
            ("a", "./b/../c"),
            ("dir/a", "."),
        ];
        for (link, target) in inside {
            assert!(
                link_stays_inside(Path::new(link), Path::new(target)),
                "{link} -> {target}"
            );
        }
        let outside = [
            ("a", "../b"),
            ("dir/a", "../../b"),
            ("a", "/etc/passwd"),
            ("a", "b/../../c"),
            ("dir/a", "/"),
        ];
        for (link, target) in outside {
            assert!(
                !link_stays_inside(Path::new(link), Path::new(target)),
                "{link} -> {target}"
            );
        }
    }

    #[test]
    fn exclusion_covers_ancestors_and_git() {
        let ignore = IgnoreRules::parse(".s2iignore", ".s2i\n").unwrap();
        assert!(is_excluded(&ignore, ".s2i/bin/assemble"));
        assert!(is_excluded(&IgnoreRules::default(), "sub/.git/config"));
        assert!(!is_excluded(&IgnoreRules::default(), ".s2i/bin/assemble"));
    }

    #[test]
    fn context_dir_must_be_a_plain_relative_directory() {
        let root = tempfile::tempdir().unwrap();
        let root_path = std::fs::canonicalize(root.path()).unwrap();
        std::fs::create_dir(root_path.join("app")).unwrap();
        std::fs::write(root_path.join("file"), "x").unwrap();
        symlink("/", root_path.join("out")).unwrap();
        symlink("app", root_path.join("alias")).unwrap();

        assert_eq!(
            resolve_context_dir(&root_path, "app").unwrap(),
            root_path.join("app")
        );
        assert_eq!(
            resolve_context_dir(&root_path, "alias").unwrap(),
            root_path.join("app")
        );
        let message = |dir: &str| {
            resolve_context_dir(&root_path, dir)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            message("missing"),
            "contextDir \"missing\" does not exist in the source"
        );
        assert_eq!(
            message("app\0x"),
            "contextDir \"app\\0x\": must not contain a NUL character"
        );
        assert_eq!(message("file"), "contextDir \"file\" is not a directory");
        assert_eq!(
            message("out"),
            "contextDir \"out\" resolves outside the source tree (through a symlink)"
        );
        assert_eq!(
            message("../x"),
            "contextDir \"../x\": must not contain '..'"
        );
        assert_eq!(message("/etc"), "contextDir \"/etc\": must be relative");
        assert_eq!(message(""), "contextDir \"\": must not be empty");
    }
}
