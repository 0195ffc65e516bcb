//! The generated Dockerfile: `FROM` the builder, labels, environment, the source and scripts
//! copied in, assemble run at build time, run as the command.
//!
//! Unlike s2i, every value is encoded so no input can add an instruction or expand a variable,
//! and the output is byte-for-byte the same for the same input (labels sorted), so Kaniko's
//! layer cache hits and `dockerfileSha256` is meaningful.

use std::collections::{BTreeMap, HashMap};

use super::scripts::{ScriptsError, is_root, same_user, validate_image_path, validate_user};
use super::{ENV_NAME, IMAGE_REFERENCE, LABEL_KEY};

/// Everything the Dockerfile depends on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DockerfileSpec {
    /// The `FROM` image.
    pub builder_image: String,
    /// Image labels; rendered sorted by key.
    pub labels: BTreeMap<String, String>,
    /// `.s2i/environment` pairs then `spec.env`, in that order: a later pair wins.
    pub env: Vec<(String, String)>,
    /// The resolved assemble user (`name[:group]`).
    pub user: String,
    /// The builder image's `USER`, when known (`Some("")`: the image sets none).
    pub builder_user: Option<String>,
    /// Where `src` and `scripts` go in the image (absolute).
    pub destination: String,
    /// Whether `upload/scripts` is copied to `<destination>/scripts`.
    pub copy_scripts: bool,
    /// Absolute path of the assemble script in the image.
    pub assemble: String,
    /// Absolute path of the run script in the image.
    pub run: String,
}

/// An input the Dockerfile cannot carry safely.
#[derive(Debug, thiserror::Error)]
pub enum DockerfileError {
    /// The builder image is not an image reference.
    #[error("builder image {image:?} is not a valid image reference")]
    InvalidImage { image: String },
    /// A label key outside `api::LABEL_KEY_PATTERN`.
    #[error("label key {key:?} is invalid: must match [A-Za-z0-9][A-Za-z0-9._/-]*")]
    InvalidLabelKey { key: String },
    /// A label value with a character no Dockerfile word can hold.
    #[error(
        "label {key:?}: the value contains a {what}, which cannot be written into a Dockerfile"
    )]
    UnsafeLabelValue { key: String, what: &'static str },
    /// An environment variable name outside `api::ENV_NAME_PATTERN`.
    #[error("environment variable name {name:?} is invalid: must match [A-Za-z_][A-Za-z0-9_]*")]
    InvalidEnvName { name: String },
    /// An environment value with a character no Dockerfile word can hold.
    #[error(
        "environment variable {name}: the value contains a {what}, which cannot be written into a Dockerfile"
    )]
    UnsafeEnvValue { name: String, what: &'static str },
    /// A bad path or user.
    #[error(transparent)]
    Invalid(#[from] ScriptsError),
}

/// Encodes `value` as a double-quoted Dockerfile word that BuildKit's and Kaniko's word
/// parsers read back byte for byte: inside double quotes they treat `\` as an escape only
/// before `\`, `"` and `$`, and expand nothing that is escaped. Returns the name of the
/// offending character when the value holds one that no encoding can carry: the parser splits
/// lines before it looks at quotes, so a newline or carriage return would end the
/// instruction, and NUL cannot be represented at all.
pub fn quote(value: &str) -> Result<String, &'static str> {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\n' => return Err("newline"),
            '\r' => return Err("carriage return"),
            '\0' => return Err("NUL character"),
            '\\' | '"' | '$' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

/// Renders the Dockerfile.
///
/// Deliberate difference from s2i: `RUN` and `CMD` use the exec (JSON array) form, so no shell
/// sits between the container runtime and the run script: the image's command is the script
/// itself and signals (SIGTERM on Pod deletion) reach it. s2i writes the shell form.
///
/// The file starts with `FROM`, never with a comment, so nothing in it can be taken for a
/// parser directive (`# syntax=`, `# escape=`).
pub fn render_dockerfile(spec: &DockerfileSpec) -> Result<String, DockerfileError> {
    if !IMAGE_REFERENCE.is_match(&spec.builder_image) {
        return Err(DockerfileError::InvalidImage {
            image: spec.builder_image.clone(),
        });
    }
    let user = validate_user("assemble user", &spec.user)?;
    let destination = validate_image_path("destination", &spec.destination)?;
    let assemble = validate_image_path("assemble script", &spec.assemble)?;
    let run = validate_image_path("run script", &spec.run)?;
    let dest = destination.trim_end_matches('/');

    let mut out = format!("FROM {}\n", spec.builder_image);

    let mut labels = Vec::with_capacity(spec.labels.len());
    for (key, value) in &spec.labels {
        if !LABEL_KEY.is_match(key) {
            return Err(DockerfileError::InvalidLabelKey { key: key.clone() });
        }
        let value = quote(value).map_err(|what| DockerfileError::UnsafeLabelValue {
            key: key.clone(),
            what,
        })?;
        // The key pattern admits nothing that needs escaping; quoting it anyway matches s2i.
        labels.push(format!("\"{key}\"={value}"));
    }
    push_instruction(&mut out, "LABEL", &labels);

    let mut env = Vec::new();
    for (name, value) in merge_env(&spec.env) {
        if !ENV_NAME.is_match(name) {
            return Err(DockerfileError::InvalidEnvName {
                name: name.to_string(),
            });
        }
        let value = quote(value).map_err(|what| DockerfileError::UnsafeEnvValue {
            name: name.to_string(),
            what,
        })?;
        env.push(format!("{name}={value}"));
    }
    push_instruction(&mut out, "ENV", &env);

    // A user that names its group keeps it; otherwise group 0, the OpenShift convention that
    // lets an arbitrary uid of group 0 write the files.
    let chown = if user.contains(':') {
        user.clone()
    } else {
        format!("{user}:0")
    };
    if spec.copy_scripts {
        out.push_str(&format!(
            "COPY --chown={chown} upload/scripts {dest}/scripts\n"
        ));
    }
    out.push_str(&format!("COPY --chown={chown} upload/src {dest}/src\n"));

    let builder_differs = spec
        .builder_user
        .as_deref()
        .is_some_and(|builder| !same_user(builder, &user));
    if !is_root(&user) {
        out.push_str(&format!("USER {user}\n"));
    } else if builder_differs {
        out.push_str(
            "# The builder image runs as another user: switch to root explicitly so assemble runs as requested.\n",
        );
        out.push_str(&format!("USER {user}\n"));
    }
    out.push_str(&format!("RUN {}\n", exec_form(&assemble)));
    out.push_str(&format!("CMD {}\n", exec_form(&run)));
    Ok(out)
}

/// One instruction, its arguments on continuation lines aligned under the first.
fn push_instruction(out: &mut String, instruction: &str, args: &[String]) {
    if args.is_empty() {
        return;
    }
    let indent = " ".repeat(instruction.len() + 1);
    out.push_str(instruction);
    out.push(' ');
    out.push_str(&args.join(&format!(" \\\n{indent}")));
    out.push('\n');
}

/// Each name once, at the place it first appears, with the value it was given last.
fn merge_env(env: &[(String, String)]) -> Vec<(&str, &str)> {
    let mut merged: Vec<(&str, &str)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (name, value) in env {
        match index.get(name.as_str()) {
            Some(&i) => merged[i].1 = value,
            None => {
                index.insert(name, merged.len());
                merged.push((name, value));
            }
        }
    }
    merged
}

fn exec_form(path: &str) -> String {
    serde_json::to_string(&[path]).expect("a string array always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn spec() -> DockerfileSpec {
        DockerfileSpec {
            builder_image: "quay.io/sclorg/python-312-c9s:c9s".into(),
            labels: BTreeMap::from([
                (
                    "io.openshift.s2i.build.image".into(),
                    "quay.io/sclorg/python-312-c9s:c9s".into(),
                ),
                (
                    "io.k8s.display-name".into(),
                    "registry.example.com/app:1".into(),
                ),
            ]),
            env: vec![("APP_FILE".into(), "service.py".into())],
            user: "1001".into(),
            builder_user: None,
            destination: "/tmp".into(),
            copy_scripts: false,
            assemble: "/usr/libexec/s2i/assemble".into(),
            run: "/usr/libexec/s2i/run".into(),
        }
    }

    /// The lines that start an instruction (not continuations, not comments).
    fn instructions(text: &str) -> Vec<String> {
        let mut result = Vec::new();
        let mut continued = false;
        for line in text.lines() {
            if !continued && !line.starts_with('#') {
                result.push(line.split_whitespace().next().unwrap_or("").to_string());
            }
            continued = line.ends_with('\\') && !line.ends_with("\\\\");
        }
        result
    }

    #[test]
    fn renders_the_typical_build() {
        let got = render_dockerfile(&spec()).unwrap();
        assert_eq!(
            got,
            "FROM quay.io/sclorg/python-312-c9s:c9s\n\
             LABEL \"io.k8s.display-name\"=\"registry.example.com/app:1\" \\\n      \
             \"io.openshift.s2i.build.image\"=\"quay.io/sclorg/python-312-c9s:c9s\"\n\
             ENV APP_FILE=\"service.py\"\n\
             COPY --chown=1001:0 upload/src /tmp/src\n\
             USER 1001\n\
             RUN [\"/usr/libexec/s2i/assemble\"]\n\
             CMD [\"/usr/libexec/s2i/run\"]\n"
        );
    }

    #[test]
    fn copies_scripts_only_when_asked() {
        let mut s = spec();
        assert!(!render_dockerfile(&s).unwrap().contains("upload/scripts"));
        s.copy_scripts = true;
        s.destination = "/opt/app".into();
        let got = render_dockerfile(&s).unwrap();
        assert!(got.contains("COPY --chown=1001:0 upload/scripts /opt/app/scripts\nCOPY --chown=1001:0 upload/src /opt/app/src\n"));
    }

    #[test]
    fn env_later_wins_each_name_once() {
        let mut s = spec();
        s.env = vec![
            ("A".into(), "1".into()),
            ("B".into(), "2".into()),
            ("A".into(), "3".into()),
        ];
        let got = render_dockerfile(&s).unwrap();
        assert!(got.contains("ENV A=\"3\" \\\n    B=\"2\"\n"), "{got}");
        s.env.clear();
        assert!(!render_dockerfile(&s).unwrap().contains("ENV"));
    }

    #[test]
    fn user_rules() {
        let mut s = spec();
        s.user = "0".into();
        let got = render_dockerfile(&s).unwrap();
        assert!(!got.contains("USER"), "{got}");
        assert!(got.contains("--chown=0:0"));

        // The builder says it runs as 1001: root must be requested explicitly.
        s.builder_user = Some("1001".into());
        let got = render_dockerfile(&s).unwrap();
        assert!(
            got.contains("# The builder image runs as another user"),
            "{got}"
        );
        assert!(got.contains("\nUSER 0\nRUN"), "{got}");

        // An image without USER runs as root already.
        s.builder_user = Some(String::new());
        assert!(!render_dockerfile(&s).unwrap().contains("USER"));

        s.user = "1001:1001".into();
        let got = render_dockerfile(&s).unwrap();
        assert!(got.contains("COPY --chown=1001:1001 upload/src"), "{got}");
        assert!(got.contains("\nUSER 1001:1001\n"));
    }

    #[test]
    fn hostile_values_are_escaped_not_expanded() {
        let mut s = spec();
        s.env = vec![
            ("HOME_REF".into(), "$HOME ${PATH}".into()),
            ("QUOTE".into(), "a\"b".into()),
            ("BACKSLASH".into(), "c:\\dir\\".into()),
            ("FAKE".into(), "\\nRUN evil".into()),
        ];
        s.labels
            .insert("evil".into(), "x\" \\\nRUN evil $HOME".replace('\n', " "));
        let got = render_dockerfile(&s).unwrap();
        assert!(got.contains("HOME_REF=\"\\$HOME \\${PATH}\""), "{got}");
        assert!(got.contains("QUOTE=\"a\\\"b\""), "{got}");
        assert!(got.contains("BACKSLASH=\"c:\\\\dir\\\\\""), "{got}");
        assert!(got.contains("FAKE=\"\\\\nRUN evil\""), "{got}");
        assert!(
            got.contains("\"evil\"=\"x\\\" \\\\ RUN evil \\$HOME\""),
            "{got}"
        );
        assert_eq!(
            instructions(&got),
            ["FROM", "LABEL", "ENV", "COPY", "USER", "RUN", "CMD"]
        );
    }

    #[test]
    fn newline_cr_and_nul_are_refused_naming_the_variable_or_label() {
        for (bad, what) in [
            ("x\nRUN evil", "newline"),
            ("x\rRUN evil", "carriage return"),
            ("x\0", "NUL character"),
        ] {
            let mut s = spec();
            s.env.push(("EVIL".into(), bad.into()));
            let err = render_dockerfile(&s).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "environment variable EVIL: the value contains a {what}, which cannot be written into a Dockerfile"
                )
            );
            let mut s = spec();
            s.labels.insert("org.example.evil".into(), bad.into());
            let err = render_dockerfile(&s).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "label \"org.example.evil\": the value contains a {what}, which cannot be written into a Dockerfile"
                )
            );
        }
    }

    #[test]
    fn hostile_names_keys_images_paths_and_users_are_refused() {
        for name in ["A\nRUN evil", "$HOME", "A\"", "A\\", "1A", ""] {
            let mut s = spec();
            s.env.push((name.into(), "v".into()));
            assert!(
                matches!(
                    render_dockerfile(&s),
                    Err(DockerfileError::InvalidEnvName { .. })
                ),
                "{name:?}"
            );
        }
        for key in ["a\nRUN evil", "a b", "a\"", "$HOME", "-a", ""] {
            let mut s = spec();
            s.labels.insert(key.into(), "v".into());
            assert!(
                matches!(
                    render_dockerfile(&s),
                    Err(DockerfileError::InvalidLabelKey { .. })
                ),
                "{key:?}"
            );
        }
        for image in [
            "a\nRUN evil",
            "registry.example.com/UPPER",
            "img AS x",
            "$IMG",
            "a b",
            "",
        ] {
            let mut s = spec();
            s.builder_image = image.into();
            assert!(
                matches!(
                    render_dockerfile(&s),
                    Err(DockerfileError::InvalidImage { .. })
                ),
                "{image:?}"
            );
        }
        let mut s = spec();
        s.destination = "/tmp\nRUN evil".into();
        assert!(
            render_dockerfile(&s)
                .unwrap_err()
                .to_string()
                .starts_with("destination: invalid path")
        );
        let mut s = spec();
        s.run = "/x/$HOME".into();
        assert!(
            render_dockerfile(&s)
                .unwrap_err()
                .to_string()
                .starts_with("run script: invalid path")
        );
        let mut s = spec();
        s.assemble = "relative/assemble".into();
        assert!(render_dockerfile(&s).is_err());
        let mut s = spec();
        s.user = "1001\nUSER root".into();
        assert!(
            render_dockerfile(&s)
                .unwrap_err()
                .to_string()
                .starts_with("assemble user: invalid user")
        );
    }

    #[test]
    fn output_is_deterministic_and_starts_with_from() {
        let a = spec();
        let mut b = spec();
        // Same labels inserted in another order.
        b.labels = a
            .labels
            .iter()
            .rev()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let rendered = render_dockerfile(&a).unwrap();
        assert_eq!(rendered, render_dockerfile(&b).unwrap());
        assert!(rendered.starts_with("FROM "));
    }

    #[test]
    fn quote_escapes_exactly_backslash_quote_dollar() {
        assert_eq!(
            quote("plain 'single' `tick` \t").unwrap(),
            "\"plain 'single' `tick` \t\""
        );
        assert_eq!(quote("\\\"$").unwrap(), "\"\\\\\\\"\\$\"");
        assert_eq!(quote("").unwrap(), "\"\"");
        assert_eq!(quote("a\nb"), Err("newline"));
    }
}
