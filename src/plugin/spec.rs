//! The SourceBuild that `kubectl sourcebuild build` applies, made from its arguments. Checked in
//! full (the controller's own validation) before anything is pushed, so a bad argument leaves
//! nothing behind.

use std::path::Path;

use super::PluginError;
use crate::api::{
    Builder, EnvVar, OciSource, Output, SecretReference, Source, SourceBuild, SourceBuildSpec,
};
use crate::validation::{is_object_name, validate_spec};

/// What `build` was asked for, the directory aside.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BuildRequest {
    /// The SourceBuild's name.
    pub name: String,
    /// `--image`: the output image.
    pub image: String,
    /// `--source-repository`: where the source artifact goes (default `<image repo>/source`).
    pub source_repository: Option<String>,
    /// `--builder-image`.
    pub builder_image: Option<String>,
    /// `--env K=V`, as given.
    pub env: Vec<String>,
    /// `--push-secret`.
    pub push_secret: Option<String>,
    /// `--timeout`, a Go duration.
    pub timeout: Option<String>,
}

pub use crate::pod::image_repository as repository;

/// Where the source artifact of `request` is pushed (a repository, no tag).
pub fn source_repository(request: &BuildRequest) -> String {
    request
        .source_repository
        .as_deref()
        .map(|r| repository(r).to_string())
        .unwrap_or_else(|| format!("{}/source", repository(&request.image)))
}

/// The default SourceBuild name for a directory: its base name, lowercased, with every run of
/// other characters than `[a-z0-9]` made one `-`.
pub fn default_name(dir: &Path) -> Option<String> {
    let base = std::fs::canonicalize(dir).ok()?;
    let base = base.file_name()?.to_string_lossy().to_lowercase();
    let mut name = String::new();
    for c in base.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            name.push(c);
        } else if !name.ends_with('-') {
            name.push('-');
        }
    }
    let name = name.trim_matches('-').chars().take(63).collect::<String>();
    let name = name.trim_end_matches('-').to_string();
    (!name.is_empty()).then_some(name)
}

fn parse_env(raw: &str) -> Result<EnvVar, PluginError> {
    let (name, value) = raw.split_once('=').ok_or_else(|| {
        PluginError::BadInput(format!(
            "--env {raw:?}: expected NAME=VALUE (for example --env DEBUG=1)"
        ))
    })?;
    Ok(EnvVar {
        name: name.to_string(),
        value: value.to_string(),
    })
}

/// The SourceBuild for `request`, its source the artifact `source_image`
/// (`<repository>@sha256:...`). Every argument is checked, as the controller would.
pub fn source_build(
    request: &BuildRequest,
    source_image: &str,
) -> Result<SourceBuild, PluginError> {
    if !is_object_name(&request.name) {
        return Err(PluginError::BadInput(format!(
            "--name {:?}: not a valid name (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters)",
            request.name
        )));
    }
    let env = request
        .env
        .iter()
        .map(|raw| parse_env(raw))
        .collect::<Result<Vec<_>, _>>()?;
    let timeout = request
        .timeout
        .as_deref()
        .map(|raw| {
            raw.parse::<kube::core::Duration>().map_err(|e| {
                PluginError::BadInput(format!(
                    "--timeout {raw:?}: {e} (a Go duration, for example 30m)"
                ))
            })
        })
        .transpose()?;
    let spec = SourceBuildSpec {
        source: Source {
            oci: Some(Box::new(OciSource {
                image: source_image.to_string(),
                secret_ref: None,
            })),
            ..Source::default()
        },
        builder: Builder {
            image: request.builder_image.clone(),
            ..Builder::default()
        },
        output: Output {
            image: request.image.clone(),
            push_secret_ref: request
                .push_secret
                .clone()
                .map(|name| SecretReference { name }),
            ..Output::default()
        },
        env,
        timeout,
        ..SourceBuildSpec::default()
    };
    validate_spec(&spec).map_err(|invalid| {
        // The spec's field names, said as the flags that set them.
        let text = invalid
            .to_string()
            .replace("spec.output.image", "--image")
            .replace("spec.builder.image", "--builder-image")
            .replace("spec.output.pushSecretRef.name", "--push-secret")
            .replace("spec.source.oci.image", "--source-repository")
            .replace("spec.timeout", "--timeout");
        let text = regex::Regex::new(r"spec\.env\[\d+\]\.name")
            .expect("a constant pattern")
            .replace_all(&text, "--env")
            .into_owned();
        PluginError::BadInput(text)
    })?;
    Ok(SourceBuild::new(&request.name, spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> BuildRequest {
        BuildRequest {
            name: "my-app".into(),
            image: "registry.example.com:5000/team/app:1.0".into(),
            env: vec!["A=1".into(), "B=x=y".into(), "C=".into()],
            ..BuildRequest::default()
        }
    }

    const SOURCE: &str = "registry.example.com:5000/team/app/source@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn repositories_drop_tags_and_digests_but_not_ports() {
        assert_eq!(
            repository("r.example.com:5000/a/b:1"),
            "r.example.com:5000/a/b"
        );
        assert_eq!(
            repository("r.example.com:5000/a/b"),
            "r.example.com:5000/a/b"
        );
        assert_eq!(repository("a/b@sha256:00"), "a/b");
        assert_eq!(
            source_repository(&request()),
            "registry.example.com:5000/team/app/source"
        );
    }

    #[test]
    fn the_spec_pins_the_artifact_and_keeps_env_values_whole() {
        let sb = source_build(&request(), SOURCE).unwrap();
        assert_eq!(sb.metadata.name.as_deref(), Some("my-app"));
        assert_eq!(sb.spec.source.oci.as_ref().unwrap().image, SOURCE);
        let env: Vec<_> = sb
            .spec
            .env
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_str()))
            .collect();
        assert_eq!(env, [("A", "1"), ("B", "x=y"), ("C", "")]);
        assert_eq!(sb.spec.output.image, request().image);
    }

    #[test]
    fn bad_arguments_are_named_as_flags() {
        let mut bad = request();
        bad.env.push("NOEQUALS".into());
        let error = source_build(&bad, SOURCE).unwrap_err().to_string();
        assert!(
            error.starts_with("--env \"NOEQUALS\": expected NAME=VALUE"),
            "{error}"
        );
        let mut bad = request();
        bad.env = vec!["1BAD=x".into()];
        let error = source_build(&bad, SOURCE).unwrap_err().to_string();
        assert!(error.starts_with("--env: "), "{error}");
        let mut bad = request();
        bad.name = "My_App".into();
        let error = source_build(&bad, SOURCE).unwrap_err().to_string();
        assert!(error.starts_with("--name \"My_App\""), "{error}");
        let mut bad = request();
        bad.image = "Not An Image".into();
        let error = source_build(&bad, SOURCE).unwrap_err().to_string();
        assert!(error.starts_with("--image: "), "{error}");
        let mut bad = request();
        bad.timeout = Some("soon".into());
        assert!(
            source_build(&bad, SOURCE)
                .unwrap_err()
                .to_string()
                .starts_with("--timeout")
        );
    }

    #[test]
    fn default_names_come_from_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("My App_v2");
        std::fs::create_dir(&app).unwrap();
        assert_eq!(default_name(&app).as_deref(), Some("my-app-v2"));
        assert_eq!(default_name(&dir.path().join("missing")), None);
    }
}
