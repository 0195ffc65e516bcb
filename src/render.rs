//! `sourcebuild render`: what the controller and the build Pod would produce, offline.
//!
//! The manifest is validated the way the controller validates it; a local directory stands in
//! for the spec's source, so a user sees the exact Dockerfile (and its sha256, as status will
//! show it) before anything runs in a cluster.

use std::path::{Path, PathBuf};

use kube::ResourceExt;
use serde::Deserialize;

use crate::api::{GROUP, SourceBuild};
use crate::builder_image::{BuilderImage, metadata_from_config, pinned_reference};
use crate::contract::PrepareResult;
use crate::pod::{BuildSettings, build_pod, prepare_request};
use crate::prepare::prepare_workspace;
use crate::source::FetchedSource;
use crate::validation::validate_spec;

/// Why rendering failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The manifest file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A YAML document is malformed or not a valid SourceBuild.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Parser message with line and column.
        message: String,
    },
    /// No document in the file is a SourceBuild.
    #[error("{0}: no SourceBuild (apiVersion sourcebuild.dev/v1alpha1) in the file")]
    NoSourceBuild(PathBuf),
    /// The spec is invalid; names the fields.
    #[error("{path}: invalid SourceBuild {name}: {errors}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// metadata.name.
        name: String,
        /// Every field at fault.
        errors: crate::validation::InvalidSpec,
    },
    /// `--builder-config` or `--builder-digest` is unusable.
    #[error("{flag}: {source}")]
    Builder {
        /// The flag at fault.
        flag: &'static str,
        /// What is wrong with it.
        #[source]
        source: crate::builder_image::BuilderImageError,
    },
    /// Laying out the context failed.
    #[error(transparent)]
    Prepare(#[from] crate::prepare::PrepareError),
    /// The Pod could not be built.
    #[error(transparent)]
    Pod(#[from] crate::pod::PodError),
    /// The Pod could not be serialized.
    #[error("serializing the Pod: {0}")]
    Serialize(#[from] serde_norway::Error),
}

/// Reads the first SourceBuild from a YAML file that may hold several documents (an example may
/// carry its ConfigMap too) and validates it.
pub fn load_source_build(path: &Path) -> Result<SourceBuild, RenderError> {
    let text = std::fs::read_to_string(path).map_err(|source| RenderError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let parse_error = |e: serde_norway::Error| RenderError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    for document in serde_norway::Deserializer::from_str(&text) {
        let value = serde_norway::Value::deserialize(document).map_err(parse_error)?;
        let api_version = value
            .get("apiVersion")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let kind = value.get("kind").and_then(|v| v.as_str()).unwrap_or("");
        if kind != "SourceBuild" || !api_version.starts_with(&format!("{GROUP}/")) {
            continue;
        }
        let mut sb: SourceBuild = serde_norway::from_value(value).map_err(parse_error)?;
        if let Err(errors) = validate_spec(&sb.spec) {
            return Err(RenderError::Invalid {
                path: path.to_path_buf(),
                name: sb.name_any(),
                errors,
            });
        }
        // What the API server would fill in, so the Pod renders as the controller makes it.
        let meta = &mut sb.metadata;
        meta.namespace.get_or_insert_with(|| "default".into());
        meta.uid
            .get_or_insert_with(|| "00000000-0000-0000-0000-000000000000".into());
        meta.generation.get_or_insert(1);
        return Ok(sb);
    }
    Err(RenderError::NoSourceBuild(path.to_path_buf()))
}

/// The build Pod the controller would create, as YAML.
pub fn render_pod(sb: &SourceBuild, settings: &BuildSettings) -> Result<String, RenderError> {
    Ok(serde_norway::to_string(&build_pod(sb, settings, 1)?)?)
}

/// The checked-out commit when `dir` is a git work tree, so the rendered Dockerfile carries the
/// same commit label as the build of that commit will.
fn local_commit(dir: &Path) -> Option<String> {
    let repo = gix::open(dir).ok()?;
    let id = repo.head_id().ok()?;
    Some(id.to_string())
}

/// What render knows about the builder image offline: its config (`crane config IMAGE`
/// saved to a file) and its digest (`crane digest IMAGE`), each optional.
#[derive(Clone, Debug, Default)]
pub struct BuilderInputs {
    /// The image config JSON file (`--builder-config`).
    pub config: Option<PathBuf>,
    /// The manifest digest, `sha256:...` (`--builder-digest`).
    pub digest: Option<String>,
}

/// The builder image as prepare would resolve it, from what the user handed over. Returns the
/// notes a user should see when something had to be assumed (prepare reads the real values
/// from the registry, so the Dockerfile may differ from the build's).
pub fn resolve_builder(
    image: &str,
    inputs: &BuilderInputs,
) -> Result<(BuilderImage, Vec<String>), RenderError> {
    let mut builder = BuilderImage::unresolved(image);
    let mut notes = Vec::new();
    match &inputs.config {
        Some(path) => {
            let json = std::fs::read(path).map_err(|source| RenderError::Read {
                path: path.clone(),
                source,
            })?;
            builder.metadata = metadata_from_config(image, &json).map_err(|source| {
                RenderError::Builder {
                    flag: "--builder-config",
                    source,
                }
            })?;
        }
        None => notes.push(format!(
            "no --builder-config: using the s2i defaults for {image} (scripts in /usr/libexec/s2i, destination /tmp, assemble user 1001); the build reads the image's labels and USER instead"
        )),
    }
    match &inputs.digest {
        Some(digest) => {
            builder.reference =
                pinned_reference(image, digest).map_err(|source| RenderError::Builder {
                    flag: "--builder-digest",
                    source,
                })?;
        }
        None => notes.push(format!(
            "no --builder-digest: FROM names {image} as written; the build pins it to the digest it resolves"
        )),
    }
    Ok((builder, notes))
}

/// Prepares `source_dir` as the build Pod would prepare the fetched source, into `context_dir`,
/// with `builder` standing in for what prepare reads from the registry.
/// Returns the Dockerfile text and the provenance.
pub fn render_context(
    sb: &SourceBuild,
    settings: &BuildSettings,
    builder: &BuilderImage,
    source_dir: &Path,
    context_dir: &Path,
) -> Result<(String, PrepareResult), RenderError> {
    let request = prepare_request(sb, settings);
    let fetched = FetchedSource {
        root: source_dir.to_path_buf(),
        revision: local_commit(source_dir),
        origin: None,
        location: crate::source::location(&sb.spec.source),
    };
    let result = prepare_workspace(&fetched, &request, builder, context_dir)?;
    let dockerfile = std::fs::read_to_string(context_dir.join("Dockerfile")).map_err(|source| {
        RenderError::Read {
            path: context_dir.join("Dockerfile"),
            source,
        }
    })?;
    Ok((dockerfile, result))
}
