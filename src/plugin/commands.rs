//! The plugin's commands, each against a connected client. Text for people goes to stderr
//! (progress) or stdout (what was asked for: an image, a summary, logs).

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{ListParams, LogParams, Patch, PatchParams};

use super::follow::{Target, finished, follow, outcome};
use super::spec::{BuildRequest, source_build, source_repository};
use super::{FIELD_MANAGER, PluginError, registry, show};
use crate::api::{REBUILD_ANNOTATION, SourceBuild};
use crate::pod::{LOG_CONTAINERS, build_pod_name};
use crate::s2i::pack::{PackedSource, pack_source};
use crate::source::oci::{Artifact, push_artifact};

/// What `build` needs besides the cluster.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// The directory to build.
    pub dir: PathBuf,
    /// `--context-dir`: the sub-directory of `dir` that is packed and built.
    pub context_dir: Option<String>,
    /// The SourceBuild's settings.
    pub request: BuildRequest,
    /// Registries reached over plain HTTP (`--insecure-registry`).
    pub insecure_registries: Vec<String>,
    /// How long the push may take.
    pub push_timeout: Duration,
    /// How long to follow before giving up (the build goes on).
    pub follow_limit: Duration,
    /// Whether to stream the build's logs while following.
    pub logs: bool,
}

/// A digest no artifact has: the dry run checks the spec and the user's rights before anything
/// is pushed, and needs some digest to pin.
const PLACEHOLDER_DIGEST: &str =
    "sha256:0000000000000000000000000000000000000000000000000000000000000000";

fn apply_params(dry_run: bool) -> PatchParams {
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    params.dry_run = dry_run;
    params
}

/// The tree to pack: `dir`, or its `context_dir` (relative, no `..`).
fn tree(options: &BuildOptions) -> Result<PathBuf, PluginError> {
    let Some(context_dir) = &options.context_dir else {
        return Ok(options.dir.clone());
    };
    let relative = std::path::Path::new(context_dir);
    if context_dir.is_empty()
        || relative.is_absolute()
        || relative
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(PluginError::BadInput(format!(
            "--context-dir {context_dir:?}: must be a relative path inside the directory, without '..'"
        )));
    }
    Ok(options.dir.join(relative))
}

/// What `build` checks and packs before it talks to the cluster or the registry: every
/// argument, then the directory. Nothing is written anywhere.
pub fn pack(options: &BuildOptions) -> Result<PackedSource, PluginError> {
    let repository = source_repository(&options.request);
    source_build(
        &options.request,
        &format!("{repository}@{PLACEHOLDER_DIGEST}"),
    )?;
    let packed = pack_source(&tree(options)?)?;
    for path in &packed.left_out {
        eprintln!("leaving out {path}: a fifo, socket or device");
    }
    eprintln!(
        "packed {} files ({} bytes, {} compressed)",
        packed.files,
        packed.bytes,
        packed.archive.len()
    );
    Ok(packed)
}

/// `build` of what [`pack`] made: the cluster's say first (RBAC, admission, the CRD's schema,
/// through a dry run), then push, apply pinned to the digest, follow. Returns the image.
pub async fn build(
    client: kube::Client,
    namespace: &str,
    options: &BuildOptions,
    packed: PackedSource,
) -> Result<String, PluginError> {
    let request = &options.request;
    let repository = source_repository(request);
    let checked = source_build(request, &format!("{repository}@{PLACEHOLDER_DIGEST}"))?;
    let builds: Api<SourceBuild> = Api::namespaced(client.clone(), namespace);
    builds
        .patch(&request.name, &apply_params(true), &Patch::Apply(&checked))
        .await
        .map_err(|e| {
            PluginError::api(
                format!(
                    "applying sourcebuild {} in namespace {namespace}",
                    request.name
                ),
                e,
            )
        })?;

    let registry_host = crate::builder_image::parse_reference(&repository)
        .map_err(|e| PluginError::BadInput(e.to_string()))?
        .registry()
        .to_string();
    let auth = registry::user_auth(&registry_host)?;
    let artifact = Artifact {
        content: packed.archive,
        annotations: Default::default(),
    };
    let digest = push_artifact(
        &repository,
        &artifact,
        &auth,
        &options.insecure_registries,
        options.push_timeout,
    )
    .await?;
    let source_image = format!("{repository}@{digest}");
    eprintln!("pushed the source as {source_image}");

    let sb = source_build(request, &source_image)?;
    let applied = builds
        .patch(&request.name, &apply_params(false), &Patch::Apply(&sb))
        .await
        .map_err(|e| PluginError::api(format!("applying sourcebuild {}", request.name), e))?;
    let target = Target {
        generation: applied.metadata.generation.unwrap_or_default(),
        rebuild: None,
    };
    if let Some(status) = &applied.status
        && finished(status, &target)
    {
        eprintln!(
            "sourcebuild {} unchanged (generation {}): its build already ended",
            request.name, target.generation
        );
        return outcome(status);
    }
    eprintln!(
        "sourcebuild {} applied (generation {})",
        request.name, target.generation
    );
    follow(
        client,
        namespace,
        &request.name,
        &target,
        options.follow_limit,
        options.logs,
    )
    .await
}

/// `rebuild`: a new value of the rebuild annotation, then follow like `build`.
pub async fn rebuild(
    client: kube::Client,
    namespace: &str,
    name: &str,
    follow_limit: Duration,
    logs: bool,
) -> Result<String, PluginError> {
    let builds: Api<SourceBuild> = Api::namespaced(client.clone(), namespace);
    let value = Timestamp::now().as_nanosecond().to_string();
    let patch = serde_json::json!({"metadata": {"annotations": {REBUILD_ANNOTATION: value}}});
    let patched = builds
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| not_found_or(e, name, namespace, "annotating"))?;
    let target = Target {
        generation: patched.metadata.generation.unwrap_or_default(),
        rebuild: Some(value),
    };
    eprintln!("asked sourcebuild {name} for a rebuild");
    follow(client, namespace, name, &target, follow_limit, logs).await
}

fn not_found_or(error: kube::Error, name: &str, namespace: &str, action: &str) -> PluginError {
    match error {
        kube::Error::Api(ref status) if status.code == 404 => PluginError::NotFound {
            name: name.to_string(),
            namespace: namespace.to_string(),
        },
        error => PluginError::api(format!("{action} sourcebuild {name}"), error),
    }
}

async fn get(
    builds: &Api<SourceBuild>,
    name: &str,
    namespace: &str,
) -> Result<SourceBuild, PluginError> {
    builds
        .get(name)
        .await
        .map_err(|e| not_found_or(e, name, namespace, "reading"))
}

/// `status NAME`.
pub async fn status(
    client: kube::Client,
    namespace: &str,
    name: &str,
) -> Result<String, PluginError> {
    let builds: Api<SourceBuild> = Api::namespaced(client, namespace);
    let sb = get(&builds, name, namespace).await?;
    Ok(show::summary(&sb, Timestamp::now()))
}

/// `list`.
pub async fn list(client: kube::Client, namespace: &str) -> Result<String, PluginError> {
    let builds: Api<SourceBuild> = Api::namespaced(client, namespace);
    let items = builds.list(&ListParams::default()).await.map_err(|e| {
        PluginError::api(format!("listing sourcebuilds in namespace {namespace}"), e)
    })?;
    if items.items.is_empty() {
        return Ok(format!("no sourcebuilds in namespace {namespace}\n"));
    }
    Ok(show::table(&items.items, Timestamp::now()))
}

/// `logs NAME [-f] [--build N]`: prints the prepare and build logs of the current build, or of
/// build `N` of the current generation, to stdout.
pub async fn logs(
    client: kube::Client,
    namespace: &str,
    name: &str,
    follow_logs: bool,
    build: Option<i64>,
) -> Result<(), PluginError> {
    let builds: Api<SourceBuild> = Api::namespaced(client.clone(), namespace);
    let sb = get(&builds, name, namespace).await?;
    let status = sb.status.unwrap_or_default();
    let generation = status.observed_generation.ok_or_else(|| {
        PluginError::NoLogs(format!("sourcebuild {name} has not started a build yet"))
    })?;
    let pod = match build {
        None => status.pod_name.clone().ok_or_else(|| {
            PluginError::NoLogs(format!("sourcebuild {name} has no build Pod yet"))
        })?,
        Some(number) => build_pod_name(name, generation, number),
    };
    let pods: Api<Pod> = Api::namespaced(client, namespace);
    let gone = || {
        let kept: Vec<String> = status
            .history
            .iter()
            .filter(|r| {
                r.pod_name.as_deref() == Some(pod.as_str()) || build.is_none_or(|b| r.build == b)
            })
            .map(show::record)
            .collect();
        let kept = if kept.is_empty() {
            "nothing for this build".to_string()
        } else {
            kept.join("\n")
        };
        PluginError::NoLogs(format!(
            "build Pod {pod} is gone (deleted by spec.retention or by hand), and its logs with it; status.history keeps:\n{kept}"
        ))
    };
    match pods.get_opt(&pod).await {
        Ok(Some(_)) => {}
        Ok(None) => return Err(gone()),
        Err(e) => return Err(PluginError::api(format!("reading pod {pod}"), e)),
    }
    for container in LOG_CONTAINERS {
        let params = LogParams {
            container: Some(container.to_string()),
            follow: follow_logs,
            ..LogParams::default()
        };
        println!("==> {pod} {container} <==");
        if follow_logs {
            // The Pod exists (checked above): wait for each container and print as it comes.
            let (lines, mut received) = tokio::sync::mpsc::unbounded_channel();
            let (pods, pod) = (pods.clone(), pod.clone());
            let task = tokio::spawn(async move {
                super::follow::stream_container_logs(&pods, &pod, container, false, &lines).await
            });
            while let Some(line) = received.recv().await {
                println!("{line}");
            }
            let _ = task.await;
        } else {
            match pods.logs(&pod, &params).await {
                Ok(text) => print!("{text}"),
                Err(kube::Error::Api(ref s)) if s.code == 404 => return Err(gone()),
                Err(kube::Error::Api(ref s)) if s.code == 400 => {
                    println!("(not started: {})", s.message);
                }
                Err(e) => return Err(PluginError::api(format!("reading the logs of {pod}"), e)),
            }
        }
    }
    Ok(())
}
