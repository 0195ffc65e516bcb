//! `kubectl sourcebuild`: from a directory on the user's machine to an image, and a person's
//! view of SourceBuilds. The binary (`src/bin/kubectl-sourcebuild.rs`) parses arguments and
//! maps [`PluginError`]s to exit codes; everything else is here.
//!
//! - [`spec`]: the SourceBuild `build` applies, from the arguments (pure).
//! - [`registry`]: the user's registry credentials and the artifact push.
//! - [`follow`]: phase lines, the spinner and the logs while a build runs.
//! - [`show`]: `status`, `list` and the history `logs` falls back to (pure text).

pub mod commands;
pub mod follow;
pub mod registry;
pub mod show;
pub mod spec;

use std::time::Duration;

use crate::s2i::pack::PackError;
use crate::source::oci::PushError;

/// The field manager of the plugin's server-side applies.
pub const FIELD_MANAGER: &str = "kubectl-sourcebuild";

/// Exit status: the build (or the command) succeeded.
pub const EXIT_OK: i32 = 0;
/// Exit status: the build failed or was cancelled, or its logs are gone.
pub const EXIT_BUILD_FAILED: i32 = 1;
/// Exit status: bad arguments or a directory that cannot be built; nothing was pushed or written.
pub const EXIT_BAD_INPUT: i32 = 2;
/// Exit status: the registry refused the source or did not answer; no SourceBuild was written.
pub const EXIT_REGISTRY: i32 = 3;
/// Exit status: the cluster refused or could not be reached (kubeconfig, context, RBAC).
pub const EXIT_CLUSTER: i32 = 4;
/// Exit status: following was stopped (Ctrl-C or `--follow-timeout`); the build goes on.
pub const EXIT_STOPPED: i32 = 130;

/// Why a plugin command did not succeed. Each maps to one exit status.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// An argument is wrong; the message names it.
    #[error("{0}")]
    BadInput(String),
    /// The directory cannot be packed.
    #[error(transparent)]
    Pack(#[from] PackError),
    /// The user's registry credentials cannot be read.
    #[error("registry credentials for {registry}: {reason}")]
    Credentials { registry: String, reason: String },
    /// Pushing the source failed.
    #[error(transparent)]
    Push(#[from] PushError),
    /// The kubeconfig or its context cannot be used.
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    /// The API server refused or could not be reached.
    #[error("{action}: {answer}")]
    Api { action: String, answer: String },
    /// The SourceBuild does not exist.
    #[error("sourcebuild {name:?} not found in namespace {namespace:?}")]
    NotFound { name: String, namespace: String },
    /// The build ended without an image.
    #[error("build {phase}: {reason}: {message}")]
    BuildFailed {
        phase: String,
        reason: String,
        message: String,
    },
    /// The logs asked for are gone.
    #[error("{0}")]
    NoLogs(String),
    /// Following stopped before the build ended; it goes on in the cluster.
    #[error("stopped following after {}s; the build goes on: kubectl sourcebuild logs -f {name} -n {namespace}", elapsed.as_secs())]
    Stopped {
        name: String,
        namespace: String,
        elapsed: Duration,
    },
}

impl PluginError {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            PluginError::BadInput(_) | PluginError::Pack(_) => EXIT_BAD_INPUT,
            PluginError::Credentials { .. } | PluginError::Push(_) => EXIT_REGISTRY,
            PluginError::Kubeconfig(_) | PluginError::Api { .. } | PluginError::NotFound { .. } => {
                EXIT_CLUSTER
            }
            PluginError::BuildFailed { .. } | PluginError::NoLogs(_) => EXIT_BUILD_FAILED,
            PluginError::Stopped { .. } => EXIT_STOPPED,
        }
    }

    /// An API error: the API server's own message when it answered (kube's text would add
    /// the whole status object), else the transport's error and its causes.
    pub fn api(action: impl Into<String>, error: kube::Error) -> PluginError {
        let answer = match &error {
            kube::Error::Api(status) => format!("{} ({})", status.message, status.reason),
            other => crate::builder_image::with_causes(other),
        };
        PluginError::Api {
            action: action.into(),
            answer,
        }
    }
}

/// Where the cluster is: kubeconfig (`KUBECONFIG` or `~/.kube/config`, in-cluster as a
/// fallback), optionally another context, and the namespace (`-n`, else the context's, else
/// `default`).
pub async fn connect(
    context: Option<&str>,
    namespace: Option<&str>,
) -> Result<(kube::Client, String), PluginError> {
    let options = kube::config::KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = match kube::Config::from_kubeconfig(&options).await {
        Ok(config) => config,
        // No kubeconfig at all and no context asked for: inside a Pod, use its ServiceAccount.
        Err(kubeconfig_error) if context.is_none() => kube::Config::incluster()
            .map_err(|_| PluginError::Kubeconfig(kubeconfig_error.to_string()))?,
        Err(error) => return Err(PluginError::Kubeconfig(error.to_string())),
    };
    let namespace = namespace
        .map(str::to_string)
        .unwrap_or_else(|| config.default_namespace.clone());
    let client =
        kube::Client::try_from(config).map_err(|e| PluginError::Kubeconfig(e.to_string()))?;
    Ok((client, namespace))
}
