//! Which assemble, run and save-artifacts scripts a build uses, where the source lands in the
//! image, and which user runs assemble: s2i's precedence rules, with every path and user
//! validated before it reaches the Dockerfile.

use super::USER;

/// The S2I scripts a builder or a source can provide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Script {
    /// Builds the application inside the builder image.
    Assemble,
    /// The image's command.
    Run,
    /// Streams build artifacts out for incremental builds.
    SaveArtifacts,
}

impl Script {
    /// Every script, in a fixed order.
    pub const ALL: [Script; 3] = [Script::Assemble, Script::Run, Script::SaveArtifacts];

    /// The script's file name, the same in the source's `.s2i/bin` and in the image.
    pub fn file_name(self) -> &'static str {
        match self {
            Script::Assemble => "assemble",
            Script::Run => "run",
            Script::SaveArtifacts => "save-artifacts",
        }
    }

    /// Whether a downloaded script set must include this one.
    pub fn is_required(self) -> bool {
        !matches!(self, Script::SaveArtifacts)
    }
}

/// Builder image label naming where the stock scripts are.
pub const SCRIPTS_URL_LABEL: &str = "io.openshift.s2i.scripts-url";
/// Builder image label naming where source and scripts are copied.
pub const DESTINATION_LABEL: &str = "io.openshift.s2i.destination";
/// Builder image label naming the user that runs assemble.
pub const ASSEMBLE_USER_LABEL: &str = "io.openshift.s2i.assemble-user";
/// Where the stock scripts are when nothing else says.
pub const DEFAULT_SCRIPTS_DIR: &str = "/usr/libexec/s2i";
/// Where source and scripts go when the builder has no destination label.
pub const DEFAULT_DESTINATION: &str = "/tmp";
/// The sclorg convention (user `default`, uid 1001, gid 0) s2i falls back to.
pub const DEFAULT_ASSEMBLE_USER: &str = "1001";

/// What is known about the builder image. `Default` means nothing is known, and the s2i
/// defaults apply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuilderMetadata {
    /// Label `io.openshift.s2i.scripts-url`.
    pub scripts_url: Option<String>,
    /// Label `io.openshift.s2i.destination`.
    pub destination: Option<String>,
    /// Label `io.openshift.s2i.assemble-user`.
    pub assemble_user: Option<String>,
    /// The image config's `USER`. `Some("")` means the config is known to set no user (the
    /// image runs as root, as Daeploy's builders do); `None` means it is not known.
    pub user: Option<String>,
}

/// Where a scripts URL points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScriptsUrl {
    /// A directory inside the builder image (absolute, normalized).
    Image(String),
    /// A base URL prepare downloads the scripts from.
    Http(String),
}

/// A bad scripts URL, destination or user.
#[derive(Debug, thiserror::Error)]
pub enum ScriptsError {
    /// Neither `image://` nor `http(s)://`.
    #[error("{field}: {url:?} is not an image:// or http(s):// scripts URL")]
    UnsupportedUrl { field: String, url: String },
    /// An `http(s)://` scripts URL on the builder image: s2i would download from whatever URL
    /// an image label names, which we do not do.
    #[error(
        "{field}: {url:?}: only image:// scripts URLs are supported in builder image labels; set spec.builder.scriptsUrl instead"
    )]
    RemoteLabelUrl { field: String, url: String },
    /// A path that is not a plain absolute path.
    #[error("{field}: invalid path {path:?}: {reason}")]
    InvalidPath {
        field: String,
        path: String,
        reason: &'static str,
    },
    /// A user that does not match `api::USER_PATTERN`.
    #[error(
        "{field}: invalid user {user:?}: must be a name or uid, optionally ':group' ([A-Za-z0-9_][A-Za-z0-9_.-]*)"
    )]
    InvalidUser { field: String, user: String },
}

/// Parses a scripts URL (`field` names where it came from, for errors). `image://.s2i/bin`
/// is relative to the image root, as Daeploy's builders write it.
pub fn parse_scripts_url(field: &str, url: &str) -> Result<ScriptsUrl, ScriptsError> {
    if let Some(path) = url.strip_prefix("image://") {
        let absolute = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        return Ok(ScriptsUrl::Image(validate_image_path(field, &absolute)?));
    }
    let lower = url.to_ascii_lowercase();
    if (lower.starts_with("http://") || lower.starts_with("https://"))
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Ok(ScriptsUrl::Http(url.trim_end_matches('/').to_string()));
    }
    Err(ScriptsError::UnsupportedUrl {
        field: field.to_string(),
        url: url.to_string(),
    })
}

/// Checks that `path` is an absolute path inside an image made of conservative characters
/// (`[A-Za-z0-9._-]` segments), without `.`, `..` or empty segments, and returns it without
/// a trailing `/`. Such a path needs no quoting anywhere in a Dockerfile.
pub fn validate_image_path(field: &str, path: &str) -> Result<String, ScriptsError> {
    let invalid = |reason| ScriptsError::InvalidPath {
        field: field.to_string(),
        path: path.to_string(),
        reason,
    };
    if !path.starts_with('/') {
        return Err(invalid("must be absolute"));
    }
    if path == "/" {
        return Ok(path.to_string());
    }
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    for segment in trimmed[1..].split('/') {
        match segment {
            "" => return Err(invalid("must not contain an empty segment ('//')")),
            "." | ".." => return Err(invalid("must not contain '.' or '..' segments")),
            _ => {}
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(invalid(
                "may only contain the characters A-Z a-z 0-9 . _ - and /",
            ));
        }
    }
    Ok(trimmed.to_string())
}

/// Checks a user against `api::USER_PATTERN`.
pub fn validate_user(field: &str, user: &str) -> Result<String, ScriptsError> {
    if USER.is_match(user) {
        Ok(user.to_string())
    } else {
        Err(ScriptsError::InvalidUser {
            field: field.to_string(),
            user: user.to_string(),
        })
    }
}

/// Whether `user` (`name[:group]`) is root. An empty string is root too: it is what an image
/// config without `USER` means.
pub fn is_root(user: &str) -> bool {
    let name = user.split(':').next().unwrap_or(user);
    matches!(name, "" | "0" | "root")
}

/// Whether two users are the same account, treating the spellings of root alike.
pub fn same_user(a: &str, b: &str) -> bool {
    a == b || (is_root(a) && is_root(b) && group_of(a) == group_of(b))
}

fn group_of(user: &str) -> Option<&str> {
    user.split_once(':')
        .map(|(_, g)| g)
        .filter(|g| !matches!(*g, "0" | "root"))
}

/// The directory source and scripts go to: the builder's destination label, else `/tmp`.
pub fn resolve_destination(metadata: &BuilderMetadata) -> Result<String, ScriptsError> {
    match &metadata.destination {
        Some(dest) => validate_image_path(&format!("label {DESTINATION_LABEL}"), dest),
        None => Ok(DEFAULT_DESTINATION.to_string()),
    }
}

/// The user that runs assemble: spec, then the builder's assemble-user label, then the
/// image's `USER` (no `USER` means root, `0`), then `1001`.
pub fn resolve_assemble_user(
    spec_user: Option<&str>,
    metadata: &BuilderMetadata,
) -> Result<String, ScriptsError> {
    if let Some(user) = spec_user {
        return validate_user("spec.builder.assembleUser", user);
    }
    if let Some(user) = &metadata.assemble_user {
        return validate_user(&format!("label {ASSEMBLE_USER_LABEL}"), user);
    }
    if let Some(user) = &metadata.user {
        if user.is_empty() {
            return Ok("0".to_string());
        }
        return validate_user("builder image USER", user);
    }
    Ok(DEFAULT_ASSEMBLE_USER.to_string())
}

/// Where one script comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScriptOrigin {
    /// `spec.builder.scriptsUrl` as `image://`.
    SpecImage,
    /// `spec.builder.scriptsUrl` as `http(s)://`, downloaded into `upload/scripts`.
    SpecDownload,
    /// The source's `.s2i/bin` (or `.sti/bin`), moved into `upload/scripts`.
    SourceHook,
    /// The builder's `io.openshift.s2i.scripts-url` label.
    BuilderLabel,
    /// `/usr/libexec/s2i`.
    Default,
}

/// A script's path inside the image and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedScript {
    /// Absolute path in the image.
    pub path: String,
    /// Which rule chose it.
    pub origin: ScriptOrigin,
}

/// Resolves one script in s2i's precedence: spec scripts URL, source hook, builder label,
/// `/usr/libexec/s2i`. `uploaded` lists the scripts present in `upload/scripts` (hooks or
/// downloads), which land in `<destination>/scripts`.
pub fn resolve_script(
    script: Script,
    spec_url: Option<&ScriptsUrl>,
    hooks: &[Script],
    metadata: &BuilderMetadata,
    destination: &str,
) -> Result<ResolvedScript, ScriptsError> {
    let uploaded = || {
        format!(
            "{}/scripts/{}",
            destination.trim_end_matches('/'),
            script.file_name()
        )
    };
    let in_dir = |dir: &str| format!("{}/{}", dir.trim_end_matches('/'), script.file_name());
    match spec_url {
        Some(ScriptsUrl::Image(dir)) => {
            return Ok(ResolvedScript {
                path: in_dir(dir),
                origin: ScriptOrigin::SpecImage,
            });
        }
        Some(ScriptsUrl::Http(_)) => {
            return Ok(ResolvedScript {
                path: uploaded(),
                origin: ScriptOrigin::SpecDownload,
            });
        }
        None => {}
    }
    if hooks.contains(&script) {
        return Ok(ResolvedScript {
            path: uploaded(),
            origin: ScriptOrigin::SourceHook,
        });
    }
    if let Some(url) = &metadata.scripts_url {
        let field = format!("label {SCRIPTS_URL_LABEL}");
        return match parse_scripts_url(&field, url)? {
            ScriptsUrl::Image(dir) => Ok(ResolvedScript {
                path: in_dir(&dir),
                origin: ScriptOrigin::BuilderLabel,
            }),
            ScriptsUrl::Http(_) => Err(ScriptsError::RemoteLabelUrl {
                field,
                url: url.clone(),
            }),
        };
    }
    Ok(ResolvedScript {
        path: in_dir(DEFAULT_SCRIPTS_DIR),
        origin: ScriptOrigin::Default,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_file_names() {
        let names: Vec<_> = Script::ALL.iter().map(|s| s.file_name()).collect();
        assert_eq!(names, ["assemble", "run", "save-artifacts"]);
        assert!(Script::Assemble.is_required() && Script::Run.is_required());
        assert!(!Script::SaveArtifacts.is_required());
    }

    #[test]
    fn parses_image_urls_absolute_and_relative() {
        assert_eq!(
            parse_scripts_url("f", "image:///usr/libexec/s2i").unwrap(),
            ScriptsUrl::Image("/usr/libexec/s2i".into())
        );
        assert_eq!(
            parse_scripts_url("f", "image://.s2i/bin").unwrap(),
            ScriptsUrl::Image("/.s2i/bin".into())
        );
        assert_eq!(
            parse_scripts_url("f", "image:///opt/s2i/").unwrap(),
            ScriptsUrl::Image("/opt/s2i".into())
        );
        assert_eq!(
            parse_scripts_url("f", "https://example.com/s2i/").unwrap(),
            ScriptsUrl::Http("https://example.com/s2i".into())
        );
    }

    #[test]
    fn refuses_hostile_scripts_urls() {
        for url in [
            "image:///usr/../etc",
            "image:///a b",
            "image:///a\nRUN evil",
            "image:///$HOME/bin",
            "image:///a\"b",
            "image:///a\\b",
            "image:///a//b",
        ] {
            let err = parse_scripts_url("spec.builder.scriptsUrl", url).unwrap_err();
            assert!(
                matches!(err, ScriptsError::InvalidPath { ref field, .. } if field == "spec.builder.scriptsUrl"),
                "{url:?}: {err}"
            );
        }
        for url in [
            "ftp://x/y",
            "/usr/libexec/s2i",
            "https://x/a b",
            "https://x/a\nb",
        ] {
            assert!(
                matches!(
                    parse_scripts_url("f", url),
                    Err(ScriptsError::UnsupportedUrl { .. })
                ),
                "{url:?}"
            );
        }
    }

    #[test]
    fn validates_image_paths() {
        assert_eq!(validate_image_path("f", "/tmp/").unwrap(), "/tmp");
        assert_eq!(validate_image_path("f", "/").unwrap(), "/");
        let err = validate_image_path("label io.openshift.s2i.destination", "tmp").unwrap_err();
        assert_eq!(
            err.to_string(),
            "label io.openshift.s2i.destination: invalid path \"tmp\": must be absolute"
        );
        assert!(validate_image_path("f", "/a/./b").is_err());
        assert!(validate_image_path("f", "/a/..").is_err());
        assert!(validate_image_path("f", "/a\0b").is_err());
        assert!(validate_image_path("f", "/a\rb").is_err());
    }

    #[test]
    fn validates_users() {
        for ok in ["1001", "default", "1001:0", "root", "app_user.x-1:grp"] {
            assert_eq!(validate_user("f", ok).unwrap(), ok);
        }
        for bad in ["", ":0", "a b", "a\nUSER root", "$USER", "a:b:c", "-1"] {
            let err = validate_user("spec.builder.assembleUser", bad).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("spec.builder.assembleUser: invalid user"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn root_detection() {
        for root in ["", "0", "root", "0:0", "root:root"] {
            assert!(is_root(root), "{root:?}");
        }
        for user in ["1001", "rootless", "10", "1001:0"] {
            assert!(!is_root(user), "{user:?}");
        }
        assert!(same_user("", "0"));
        assert!(same_user("root", "0:0"));
        assert!(!same_user("0", "0:1001"));
        assert!(!same_user("1001", "0"));
        assert!(same_user("1001", "1001"));
    }

    #[test]
    fn destination_defaults_to_tmp_and_is_validated() {
        assert_eq!(
            resolve_destination(&BuilderMetadata::default()).unwrap(),
            "/tmp"
        );
        let meta = BuilderMetadata {
            destination: Some("/opt/app/".into()),
            ..Default::default()
        };
        assert_eq!(resolve_destination(&meta).unwrap(), "/opt/app");
        let meta = BuilderMetadata {
            destination: Some("/opt/$HOME".into()),
            ..Default::default()
        };
        assert!(
            resolve_destination(&meta)
                .unwrap_err()
                .to_string()
                .contains(DESTINATION_LABEL)
        );
    }

    #[test]
    fn assemble_user_precedence() {
        let full = BuilderMetadata {
            assemble_user: Some("label".into()),
            user: Some("imageuser".into()),
            ..Default::default()
        };
        assert_eq!(resolve_assemble_user(Some("spec"), &full).unwrap(), "spec");
        assert_eq!(resolve_assemble_user(None, &full).unwrap(), "label");
        let image_only = BuilderMetadata {
            user: Some("imageuser".into()),
            ..Default::default()
        };
        assert_eq!(
            resolve_assemble_user(None, &image_only).unwrap(),
            "imageuser"
        );
        let no_user = BuilderMetadata {
            user: Some(String::new()),
            ..Default::default()
        };
        assert_eq!(resolve_assemble_user(None, &no_user).unwrap(), "0");
        assert_eq!(
            resolve_assemble_user(None, &BuilderMetadata::default()).unwrap(),
            "1001"
        );
        let bad_label = BuilderMetadata {
            assemble_user: Some("a b".into()),
            ..Default::default()
        };
        assert!(
            resolve_assemble_user(None, &bad_label)
                .unwrap_err()
                .to_string()
                .contains(ASSEMBLE_USER_LABEL)
        );
        assert!(resolve_assemble_user(Some("x\nRUN evil"), &full).is_err());
    }

    #[test]
    fn script_precedence() {
        let label = BuilderMetadata {
            scripts_url: Some("image://.s2i/bin".into()),
            ..Default::default()
        };
        let spec_image = ScriptsUrl::Image("/opt/scripts".into());
        let spec_http = ScriptsUrl::Http("https://example.com/s".into());
        let hooks = [Script::Assemble];

        let got =
            resolve_script(Script::Assemble, Some(&spec_image), &hooks, &label, "/tmp").unwrap();
        assert_eq!(
            (got.path.as_str(), got.origin),
            ("/opt/scripts/assemble", ScriptOrigin::SpecImage)
        );
        let got =
            resolve_script(Script::Run, Some(&spec_http), &hooks, &label, "/opt/app").unwrap();
        assert_eq!(
            (got.path.as_str(), got.origin),
            ("/opt/app/scripts/run", ScriptOrigin::SpecDownload)
        );
        let got = resolve_script(Script::Assemble, None, &hooks, &label, "/tmp").unwrap();
        assert_eq!(
            (got.path.as_str(), got.origin),
            ("/tmp/scripts/assemble", ScriptOrigin::SourceHook)
        );
        let got = resolve_script(Script::Run, None, &hooks, &label, "/tmp").unwrap();
        assert_eq!(
            (got.path.as_str(), got.origin),
            ("/.s2i/bin/run", ScriptOrigin::BuilderLabel)
        );
        let got = resolve_script(
            Script::Run,
            None,
            &hooks,
            &BuilderMetadata::default(),
            "/tmp",
        )
        .unwrap();
        assert_eq!(
            (got.path.as_str(), got.origin),
            ("/usr/libexec/s2i/run", ScriptOrigin::Default)
        );
    }

    #[test]
    fn remote_or_bad_label_urls_are_errors() {
        let remote = BuilderMetadata {
            scripts_url: Some("https://example.com/s2i".into()),
            ..Default::default()
        };
        let err = resolve_script(Script::Run, None, &[], &remote, "/tmp").unwrap_err();
        assert!(matches!(err, ScriptsError::RemoteLabelUrl { .. }));
        assert!(err.to_string().contains(SCRIPTS_URL_LABEL));
        let bad = BuilderMetadata {
            scripts_url: Some("image:///a/../b".into()),
            ..Default::default()
        };
        assert!(resolve_script(Script::Run, None, &[], &bad, "/tmp").is_err());
        // A hook shadows even a bad label: the label is never consulted for that script.
        assert!(resolve_script(Script::Run, None, &[Script::Run], &bad, "/tmp").is_ok());
    }
}
