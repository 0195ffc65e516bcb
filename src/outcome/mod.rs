//! Build Pod -> [`BuildOutcome`]: where the build stands, its digest, or why it failed.
//!
//! Pure: [`BuildOutcome::from_pod`] reads only the Pod object (spec and status), so the
//! controller can call it on every watch event. What it relies on is set up by [`crate::pod`]:
//! the `prepare` init container reports a [`PrepareReport`] in its termination message (policy
//! `File`), the Kaniko `build` init container writes the digest to its termination message
//! (`--digest-file`) and falls back to its log tail when it fails (`FallbackToLogsOnError`), and
//! the `publish` container (and the `signing-key` check) report a [`PublishReport`]. Kaniko's
//! digest is the one truth about the image: publish's report must name the same one.

mod kaniko;
mod pod_view;
mod retry;
#[cfg(test)]
mod tests;
mod text;

use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};
use serde::Deserialize;

use crate::contract::{PrepareReport, PrepareResult, PublishReport, PublishResult};
use crate::pod::{
    BUILD_CONTAINER, PREPARE_CONTAINER, PUBLISH_CONTAINER, SIGNING_KEY_CONTAINER, image_repository,
};
use crate::reason::FailureReason;
use kaniko::{classify_kaniko_failure, kaniko_error_line};
use pod_view::PodView;
pub use retry::is_transient;
pub use text::{LOG_SNIPPET_MAX_BYTES, LOG_SNIPPET_MAX_LINES};
use text::{bounded_head, bounded_tail, log_snippet, strip_ansi};

/// Longest excerpt of untrusted text (a termination message) quoted in a failure message.
const QUOTE_MAX_BYTES: usize = 512;

/// Where a build Pod stands.
#[derive(Clone, Debug, PartialEq)]
pub enum BuildOutcome {
    /// Waiting for a node, an image or the source fetch; `message` says what is in the way when
    /// something is (an image pull error, an unschedulable Pod). The controller's timeout decides
    /// when waiting becomes failing.
    Pending {
        /// What the Pod waits on, when it is worth telling the user.
        message: Option<String>,
    },
    /// Kaniko is building, or the provenance is being published.
    Running,
    /// The image was built and pushed.
    Succeeded(BuildResult),
    /// The build ended without an image.
    Failed(BuildFailure),
}

/// A pushed image.
#[derive(Clone, Debug, PartialEq)]
pub struct BuildResult {
    /// `sha256:<64 lowercase hex>`.
    pub digest: String,
    /// `<output repository without tag>@<digest>`.
    pub image: String,
    /// What the image was built from.
    pub provenance: PrepareResult,
    /// What was published with it; none for a Pod made before provenance was published.
    pub published: Option<PublishResult>,
}

/// Why a build produced no image.
#[derive(Clone, Debug, PartialEq)]
pub struct BuildFailure {
    /// The status reason.
    pub reason: FailureReason,
    /// What went wrong, for the `Succeeded` condition's message.
    pub message: String,
    /// The last lines of the relevant log, bounded by [`LOG_SNIPPET_MAX_LINES`] and
    /// [`LOG_SNIPPET_MAX_BYTES`].
    pub log_snippet: Option<String>,
    /// What the build was made from, when prepare got that far.
    pub provenance: Option<PrepareResult>,
    /// `<repository>@<digest>` when the image was pushed before the build failed (its
    /// provenance could not be published).
    pub pushed_image: Option<String>,
}

/// Waiting reasons that mean an image cannot be pulled.
const IMAGE_PULL_REASONS: [&str; 3] = ["ErrImagePull", "ImagePullBackOff", "InvalidImageName"];

/// Exit codes of a container killed by SIGKILL or SIGTERM: what deleting a Pod does to it.
const KILLED_BY_SIGNAL: [i32; 2] = [137, 143];

impl BuildOutcome {
    /// Reads the build Pod and says where the build stands.
    pub fn from_pod(pod: &Pod) -> BuildOutcome {
        let view = PodView::new(pod);
        let provenance = view.provenance();

        if let Some(t) = view.build_terminated().filter(|t| t.exit_code == 0) {
            // A Pod of an older release has no publish step: Kaniko's push ends its build.
            if view.container_spec(PUBLISH_CONTAINER).is_none() {
                return succeeded(&view, t, provenance, None);
            }
            if let Some(published) = view.terminated(PUBLISH_CONTAINER) {
                return publish_ended(&view, t, published, provenance);
            }
            // What Kaniko left is already no image of known origin: publishing cannot mend it.
            if let failure @ BuildOutcome::Failed(_) = succeeded(&view, t, provenance.clone(), None)
            {
                return failure;
            }
        }

        for (container, t) in view.terminated_containers() {
            if t.reason.as_deref() == Some("OOMKilled") {
                let limit = view.memory_limit(container).map_or_else(
                    || "no memory limit is set".to_string(),
                    |l| format!("memory limit {l}"),
                );
                return failed(
                    FailureReason::OOMKilled,
                    format!("container {container} ran out of memory ({limit})"),
                    None,
                    provenance,
                );
            }
        }

        match view.pod_reason() {
            Some("DeadlineExceeded") => return deadline_exceeded(&view, provenance),
            Some("Evicted") => {
                let message = view
                    .pod_message()
                    .unwrap_or("the kubelet evicted the build Pod");
                return failed(
                    FailureReason::Evicted,
                    message.to_string(),
                    None,
                    provenance,
                );
            }
            _ => {}
        }

        let failed_on_its_own = view
            .terminated_containers()
            .any(|(_, t)| t.exit_code != 0 && !KILLED_BY_SIGNAL.contains(&t.exit_code));
        if view.is_being_deleted() && !failed_on_its_own {
            return failed(
                FailureReason::PodDeleted,
                format!(
                    "build Pod {} was deleted before the build finished",
                    pod.metadata.name.as_deref().unwrap_or_default()
                ),
                None,
                provenance,
            );
        }

        if let Some(t) = view
            .terminated(SIGNING_KEY_CONTAINER)
            .filter(|t| t.exit_code != 0)
        {
            return signing_key_failed(t);
        }
        if let Some(t) = view.prepare_terminated().filter(|t| t.exit_code != 0) {
            return prepare_failed(t);
        }
        if let Some(t) = view.build_terminated().filter(|t| t.exit_code != 0) {
            return build_failed(t, provenance);
        }

        match view.phase() {
            Some("Failed") => {
                let reason = view.pod_reason().unwrap_or("no reason given");
                let message = view
                    .pod_message()
                    .map_or(String::new(), |m| format!(": {m}"));
                return failed(
                    FailureReason::BuildFailed,
                    format!("the build Pod failed ({reason}){message}"),
                    None,
                    provenance,
                );
            }
            Some("Succeeded") => {
                return failed(
                    FailureReason::BuildFailed,
                    format!(
                        "the build Pod succeeded but container {BUILD_CONTAINER} reports no result"
                    ),
                    None,
                    provenance,
                );
            }
            _ => {}
        }

        // The kubelet cannot start a container whose Secret or ConfigMap is missing and retries
        // until the timeout; nothing in the build can fix that, so it fails now.
        for (container, reason, message) in view.stuck_waiting() {
            if reason != "CreateContainerConfigError" {
                continue;
            }
            if let Some(missing) = message.and_then(missing_reference) {
                return failed(
                    missing.reason,
                    format!(
                        "container {container} cannot start: {}",
                        missing.describe(message.unwrap_or_default())
                    ),
                    None,
                    provenance,
                );
            }
        }

        if view.build_running() || view.running(PUBLISH_CONTAINER) {
            return BuildOutcome::Running;
        }
        BuildOutcome::Pending {
            message: view.waiting_message(),
        }
    }
}

fn failed(
    reason: FailureReason,
    message: String,
    log_snippet: Option<String>,
    provenance: Option<PrepareResult>,
) -> BuildOutcome {
    BuildOutcome::Failed(BuildFailure {
        reason,
        message,
        log_snippet,
        provenance,
        pushed_image: None,
    })
}

/// Kaniko pushed the image and the publish step ended: with the provenance published (for the
/// image Kaniko pushed, nothing else), or with the image left without it.
fn publish_ended(
    view: &PodView<'_>,
    build: &ContainerStateTerminated,
    publish: &ContainerStateTerminated,
    provenance: Option<PrepareResult>,
) -> BuildOutcome {
    let text = publish.message.as_deref().unwrap_or("").trim();
    let report = serde_json::from_str::<PublishReport>(text);
    let outcome = match (publish.exit_code, report) {
        (0, Ok(PublishReport::Published(result))) => {
            return succeeded(view, build, provenance, Some(result));
        }
        (_, Ok(PublishReport::Failed(failure)))
            if matches!(
                failure.reason,
                FailureReason::ProvenancePushFailed | FailureReason::SigningKeyInvalid
            ) =>
        {
            (failure.reason, failure.message)
        }
        (_, Ok(PublishReport::Failed(failure))) => (
            FailureReason::ProvenancePushFailed,
            format!(
                "{} (publish reported reason {})",
                failure.message, failure.reason
            ),
        ),
        (code, _) => (
            FailureReason::ProvenancePushFailed,
            format!(
                "container {PUBLISH_CONTAINER} exited with code {code} without a readable report{}",
                if text.is_empty() {
                    String::new()
                } else {
                    format!(": {}", bounded_tail(&strip_ansi(text), QUOTE_MAX_BYTES))
                }
            ),
        ),
    };
    let pushed = match succeeded(view, build, provenance.clone(), None) {
        BuildOutcome::Succeeded(result) => result.image,
        other => return other,
    };
    BuildOutcome::Failed(BuildFailure {
        reason: outcome.0,
        message: format!(
            "the image was pushed as {pushed}, but its provenance was not published: {}",
            outcome.1
        ),
        log_snippet: None,
        provenance,
        pushed_image: Some(pushed),
    })
}

/// The key check before the build failed: the Secret's key cannot sign.
fn signing_key_failed(t: &ContainerStateTerminated) -> BuildOutcome {
    let text = t.message.as_deref().unwrap_or("").trim();
    let message = match serde_json::from_str::<PublishReport>(text) {
        Ok(PublishReport::Failed(failure)) => failure.message,
        _ if text.is_empty() => format!(
            "container {SIGNING_KEY_CONTAINER} exited with code {} without a report",
            t.exit_code
        ),
        _ => bounded_tail(&strip_ansi(text), QUOTE_MAX_BYTES).to_string(),
    };
    failed(FailureReason::SigningKeyInvalid, message, None, None)
}

fn succeeded(
    view: &PodView<'_>,
    t: &ContainerStateTerminated,
    provenance: Option<PrepareResult>,
    published: Option<PublishResult>,
) -> BuildOutcome {
    let message = t.message.as_deref().unwrap_or("");
    let Some(digest) = valid_digest(message) else {
        return failed(
            FailureReason::InvalidDigest,
            format!(
                "Kaniko exited 0 but its termination message is not a sha256 digest: {:?}",
                bounded_head(message.trim(), QUOTE_MAX_BYTES)
            ),
            None,
            provenance,
        );
    };
    let Some(destination) = view.destination() else {
        return failed(
            FailureReason::InvalidSpec,
            format!("container {BUILD_CONTAINER} has no --destination argument"),
            None,
            provenance,
        );
    };
    let image = format!("{}@{digest}", image_repository(destination));
    if let Some(published) = published.as_ref().filter(|p| p.subject != digest) {
        return failed(
            FailureReason::InvalidDigest,
            format!(
                "Kaniko pushed {image} but container {PUBLISH_CONTAINER} published provenance for \
                 {:?}",
                bounded_head(&published.subject, QUOTE_MAX_BYTES)
            ),
            None,
            provenance,
        );
    }
    match provenance {
        Some(provenance) => BuildOutcome::Succeeded(BuildResult {
            digest: digest.to_string(),
            image,
            provenance,
            published,
        }),
        // Without prepare's report the status could not say what the image was built from;
        // an image of unknown origin is not a successful build.
        None => failed(
            FailureReason::BuildFailed,
            format!(
                "the image was pushed as {image} but container {PREPARE_CONTAINER} left no \
                 readable report of what it was built from"
            ),
            None,
            None,
        ),
    }
}

/// `sha256:` + 64 lowercase hex, after trimming surrounding whitespace; nothing else.
fn valid_digest(message: &str) -> Option<&str> {
    let digest = message.trim();
    let hex = digest.strip_prefix("sha256:")?;
    let well_formed = hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    well_formed.then_some(digest)
}

fn deadline_exceeded(view: &PodView<'_>, provenance: Option<PrepareResult>) -> BuildOutcome {
    let deadline = view
        .active_deadline_seconds()
        .map_or(String::new(), |s| format!(" of {s}s"));
    if let Some((container, reason, message)) = view
        .stuck_waiting()
        .find(|(_, reason, _)| IMAGE_PULL_REASONS.contains(reason))
    {
        let image = view.image_of(container).unwrap_or("its image");
        return failed(
            FailureReason::ImagePullFailed,
            format!(
                "container {container} could not pull {image} within the build timeout{deadline}: \
                 {reason}{}",
                message.map_or(String::new(), |m| format!(": {m}"))
            ),
            None,
            provenance,
        );
    }
    let stage = if view.started(PUBLISH_CONTAINER) {
        "while publishing the provenance"
    } else if view.build_started() {
        "while Kaniko was building"
    } else if view.prepare_started() {
        "while fetching the source"
    } else {
        "before the build started"
    };
    let waiting = view
        .stuck_waiting()
        .next()
        .map_or(String::new(), |(c, reason, _)| {
            format!(" (container {c}: {reason})")
        });
    failed(
        FailureReason::Timeout,
        format!(
            "the build did not finish within its timeout{deadline}: it ran out {stage}{waiting}"
        ),
        None,
        provenance,
    )
}

fn prepare_failed(t: &ContainerStateTerminated) -> BuildOutcome {
    let text = t.message.as_deref().unwrap_or("").trim();
    let (reason, message) = match serde_json::from_str::<PrepareReport>(text) {
        Ok(PrepareReport::Failed(failure)) => match failure.reason {
            FailureReason::InvalidSource
            | FailureReason::InvalidSpec
            | FailureReason::SourceFetchFailed
            | FailureReason::BuilderImagePullFailed => (failure.reason, failure.message),
            other => unexpected_reason(other.as_str(), &failure.message),
        },
        Ok(PrepareReport::Prepared(_)) => (
            FailureReason::SourceFetchFailed,
            format!(
                "container {PREPARE_CONTAINER} reported success but exited with code {}",
                t.exit_code
            ),
        ),
        // A reason this operator does not know: a prepare image of another release.
        Err(_) => match serde_json::from_str::<ForeignReport>(text) {
            Ok(ForeignReport::Failed { reason, message }) => unexpected_reason(&reason, &message),
            Err(_) if text.is_empty() => (
                FailureReason::SourceFetchFailed,
                format!(
                    "container {PREPARE_CONTAINER} exited with code {} without a report",
                    t.exit_code
                ),
            ),
            Err(_) => (
                FailureReason::SourceFetchFailed,
                bounded_tail(&strip_ansi(text), QUOTE_MAX_BYTES * 2).to_string(),
            ),
        },
    };
    // prepare failed before any build context existed: there is no provenance to attach.
    failed(reason, message, None, None)
}

/// A failure report whose reason is not one prepare gives, read as a fetch failure that names it.
fn unexpected_reason(reason: &str, message: &str) -> (FailureReason, String) {
    (
        FailureReason::SourceFetchFailed,
        format!("{message} (prepare reported reason {reason:?})"),
    )
}

/// A failure report read without knowing its reason.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
enum ForeignReport {
    Failed { reason: String, message: String },
}

/// A build Pod held back because the kubelet cannot pull one of its own images (prepare's or
/// Kaniko's; the builder image is Kaniko's to pull).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StuckPull {
    pub container: String,
    pub image: String,
    /// The waiting reason: `ErrImagePull`, `ImagePullBackOff` or `InvalidImageName`.
    pub reason: String,
    /// The kubelet's message, from the runtime.
    pub message: Option<String>,
}

impl StuckPull {
    /// Whether waiting cannot help: the name is invalid, or the registry answered that the
    /// image does not exist (the runtime's `NotFound`). A Pod's images cannot change, so such
    /// a build would only wait for its timeout.
    pub fn is_permanent(&self) -> bool {
        self.reason == "InvalidImageName"
            || self
                .message
                .as_deref()
                .is_some_and(|m| m.contains("code = NotFound") || m.contains("manifest unknown"))
    }

    /// `container build could not pull <image>: <reason>: <message>`.
    pub fn describe(&self) -> String {
        format!(
            "container {} could not pull {}: {}{}",
            self.container,
            self.image,
            self.reason,
            self.message
                .as_deref()
                .map(|m| format!(": {}", bounded_head(m.trim(), QUOTE_MAX_BYTES)))
                .unwrap_or_default()
        )
    }
}

/// The first of the Pod's containers stuck on pulling its image, if any.
pub fn stuck_pull(pod: &Pod) -> Option<StuckPull> {
    let view = PodView::new(pod);
    let (container, reason, message) = view
        .stuck_waiting()
        .find(|(_, reason, _)| IMAGE_PULL_REASONS.contains(reason))?;
    Some(StuckPull {
        container: container.to_string(),
        image: view.image_of(container).unwrap_or("its image").to_string(),
        reason: reason.to_string(),
        message: message.map(str::to_string),
    })
}

/// An object the build needs that the kubelet or the API server reported missing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingReference {
    /// `SecretNotFound`, `ConfigMapNotFound` or `ServiceAccountNotFound`.
    pub reason: FailureReason,
    /// The object's kind as the message names it (`secret`, `configmap`, `serviceaccount`).
    pub kind: String,
    /// The missing object's name.
    pub name: String,
}

impl MissingReference {
    /// A status message naming the object, with the original text for context.
    pub fn describe(&self, original: &str) -> String {
        let kind = match self.reason {
            FailureReason::SecretNotFound => "Secret",
            FailureReason::ConfigMapNotFound => "ConfigMap",
            _ => "ServiceAccount",
        };
        format!(
            "{kind} {:?} not found ({})",
            self.name,
            bounded_head(original.trim(), QUOTE_MAX_BYTES)
        )
    }
}

/// Finds `secret "x" not found`, `configmap "x" not found` or `serviceaccount "x" not found`
/// in a kubelet message (a `CreateContainerConfigError` waiting state, a `FailedMount` Event) or
/// an API server refusal (the ServiceAccount admission plugin).
pub fn missing_reference(text: &str) -> Option<MissingReference> {
    static MISSING: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r#"\b(secret|configmap|serviceaccount)s? "([^"]+)" not found"#)
            .expect("valid regex")
    });
    let captures = MISSING.captures(text)?;
    let kind = captures[1].to_string();
    let reason = match kind.as_str() {
        "secret" => FailureReason::SecretNotFound,
        "configmap" => FailureReason::ConfigMapNotFound,
        _ => FailureReason::ServiceAccountNotFound,
    };
    Some(MissingReference {
        reason,
        kind,
        name: captures[2].to_string(),
    })
}

fn build_failed(t: &ContainerStateTerminated, provenance: Option<PrepareResult>) -> BuildOutcome {
    let raw = t.message.as_deref().unwrap_or("");
    // Kaniko writes the digest file before it pushes, and the kubelet only falls back to the
    // log when the termination message file is empty: a digest with a non-zero exit means the
    // image was built and the push (the only step left) failed.
    if let Some(digest) = valid_digest(raw) {
        return failed(
            FailureReason::PushFailed,
            format!(
                "Kaniko built the image ({digest}) but exited with code {} while pushing it; \
                 the push error is in container {BUILD_CONTAINER}'s log",
                t.exit_code
            ),
            None,
            provenance,
        );
    }
    let log = strip_ansi(raw);
    let error_line = kaniko_error_line(&log);
    let reason = classify_kaniko_failure(&log, error_line);
    let summary = match reason {
        FailureReason::AssembleFailed => "the assemble step failed",
        FailureReason::PushFailed => "the image could not be pushed",
        FailureReason::BuilderImagePullFailed => "Kaniko could not retrieve the builder image",
        FailureReason::UserNamespaceUnsupported => {
            "the builder image holds files owned by a user id the build Pod's user namespace \
             does not map (set spec.hostUsers: true to build it with the node's users)"
        }
        _ => "Kaniko failed",
    };
    let detail = match error_line {
        Some(line) => bounded_head(line, QUOTE_MAX_BYTES).to_string(),
        None => format!("exit code {}", t.exit_code),
    };
    let snippet = log_snippet(&log);
    failed(reason, format!("{summary}: {detail}"), snippet, provenance)
}
