//! Build Pod -> [`BuildOutcome`]: where the build stands, its digest, or why it failed.
//!
//! Pure: reads only the Pod object (spec and status), so the controller can call it on every
//! watch event. What it relies on is set up by [`crate::pod`]: the `prepare` init container
//! reports a [`PrepareReport`] in its termination message (policy `File`), the Kaniko `build`
//! container writes the digest to its termination message (`--digest-file`) and falls back to its
//! log tail when it fails (`FallbackToLogsOnError`).

use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStatus, Pod};

use crate::pod::{BUILD_CONTAINER, PREPARE_CONTAINER, image_repository};
use crate::prepare::{PrepareReport, PrepareResult};

/// At most this many lines of log go into [`BuildFailure::log_snippet`].
pub const LOG_SNIPPET_MAX_LINES: usize = 20;
/// At most this many bytes of log go into [`BuildFailure::log_snippet`].
pub const LOG_SNIPPET_MAX_BYTES: usize = 2048;
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
    /// Kaniko is building.
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
}

/// Why a build failed, as the status reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureReason {
    /// The source could not be fetched.
    SourceFetchFailed,
    /// The source was fetched but is not buildable (bad `.s2i/environment`, missing scripts).
    InvalidSource,
    /// The assemble step (the Dockerfile's only `RUN`) failed.
    AssembleFailed,
    /// The image (or the push permission check) could not be pushed.
    PushFailed,
    /// Kaniko could not retrieve the builder image.
    BuilderImagePullFailed,
    /// Kaniko failed for another reason.
    BuildFailed,
    /// The build Pod's own images (prepare, Kaniko) could not be pulled.
    ImagePullFailed,
    /// A container ran out of memory.
    OOMKilled,
    /// The kubelet evicted the Pod.
    Evicted,
    /// The build did not finish within `spec.timeout`.
    Timeout,
    /// The build Pod was deleted before it finished.
    PodDeleted,
    /// The spec (or the Pod made from it) cannot be built.
    InvalidSpec,
    /// Kaniko exited 0 but did not report a well-formed digest.
    InvalidDigest,
    /// A Secret the build mounts (git or push credentials) does not exist.
    SecretNotFound,
    /// The source ConfigMap does not exist.
    ConfigMapNotFound,
    /// `spec.serviceAccountName` does not exist.
    ServiceAccountNotFound,
}

impl FailureReason {
    /// The status reason string (CamelCase, as Kubernetes condition reasons are).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::SourceFetchFailed => "SourceFetchFailed",
            FailureReason::InvalidSource => "InvalidSource",
            FailureReason::AssembleFailed => "AssembleFailed",
            FailureReason::PushFailed => "PushFailed",
            FailureReason::BuilderImagePullFailed => "BuilderImagePullFailed",
            FailureReason::BuildFailed => "BuildFailed",
            FailureReason::ImagePullFailed => "ImagePullFailed",
            FailureReason::OOMKilled => "OOMKilled",
            FailureReason::Evicted => "Evicted",
            FailureReason::Timeout => "Timeout",
            FailureReason::PodDeleted => "PodDeleted",
            FailureReason::InvalidSpec => "InvalidSpec",
            FailureReason::InvalidDigest => "InvalidDigest",
            FailureReason::SecretNotFound => "SecretNotFound",
            FailureReason::ConfigMapNotFound => "ConfigMapNotFound",
            FailureReason::ServiceAccountNotFound => "ServiceAccountNotFound",
        }
    }
}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Waiting reasons that mean a container cannot start without outside help. The Pod stays
/// Pending (the kubelet keeps retrying), but the user should see why.
const STUCK_WAITING_REASONS: [&str; 5] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];
const IMAGE_PULL_REASONS: [&str; 3] = ["ErrImagePull", "ImagePullBackOff", "InvalidImageName"];

/// Exit codes of a container killed by SIGKILL or SIGTERM: what deleting a Pod does to it.
const KILLED_BY_SIGNAL: [i32; 2] = [137, 143];

/// Reads the build Pod and says where the build stands.
pub fn observe(pod: &Pod) -> BuildOutcome {
    let view = PodView::new(pod);
    let provenance = view.provenance();

    if let Some(t) = view.build_terminated().filter(|t| t.exit_code == 0) {
        return succeeded(&view, t, provenance);
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

    if let Some(t) = view.prepare_terminated().filter(|t| t.exit_code != 0) {
        return prepare_failed(t);
    }
    if let Some(t) = view.build_terminated() {
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

    if view.build_running() {
        return BuildOutcome::Running;
    }
    BuildOutcome::Pending {
        message: view.waiting_message(),
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
    })
}

fn succeeded(
    view: &PodView<'_>,
    t: &ContainerStateTerminated,
    provenance: Option<PrepareResult>,
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
    match provenance {
        Some(provenance) => BuildOutcome::Succeeded(BuildResult {
            digest: digest.to_string(),
            image,
            provenance,
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
    let stage = if view.build_started() {
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
        Ok(PrepareReport::Failed(failure)) => match failure.reason.as_str() {
            "InvalidSource" => (FailureReason::InvalidSource, failure.message),
            "InvalidSpec" => (FailureReason::InvalidSpec, failure.message),
            "SourceFetchFailed" => (FailureReason::SourceFetchFailed, failure.message),
            "BuilderImagePullFailed" => (FailureReason::BuilderImagePullFailed, failure.message),
            other => (
                FailureReason::SourceFetchFailed,
                format!("{} (prepare reported reason {other:?})", failure.message),
            ),
        },
        Ok(PrepareReport::Prepared(_)) => (
            FailureReason::SourceFetchFailed,
            format!(
                "container {PREPARE_CONTAINER} reported success but exited with code {}",
                t.exit_code
            ),
        ),
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
    };
    // prepare failed before any build context existed: there is no provenance to attach.
    failed(reason, message, None, None)
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

/// Whether retrying a build that failed with this reason, message and log can help: the cause
/// is outside the build itself (the node, the network, a registry's server error). A bad
/// source, Dockerfile, spec or credential fails the same way again, so it never qualifies.
pub fn is_transient(reason: &str, message: &str, log: Option<&str>, pod: Option<&Pod>) -> bool {
    let text = format!("{message}\n{}", log.unwrap_or(""));
    match reason {
        "Evicted" => true,
        // Only a deletion the cluster made (node drain, taint manager, preemption, kubelet
        // pressure) sets DisruptionTarget; a Pod a person deleted was meant to stop.
        "PodDeleted" => pod.is_some_and(has_disruption_target),
        "PushFailed" => {
            if registry_refused(&text) {
                return false;
            }
            // Kaniko checks push permissions before building, so a push that fails after the
            // image was built (the digest was written) has passed authorization already.
            text.contains("while pushing it") || network_or_server_error(&text)
        }
        "ImagePullFailed" => {
            !registry_refused(&text)
                && !text.contains("InvalidImageName")
                && !text.contains("not found")
                && !text.contains("manifest unknown")
                && (text.contains("ErrImagePull") || text.contains("ImagePullBackOff"))
        }
        _ => false,
    }
}

fn has_disruption_target(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| {
            c.iter()
                .any(|c| c.type_ == "DisruptionTarget" && c.status == "True")
        })
}

/// The registry said no: bad credentials or no permission (HTTP 401/403).
fn registry_refused(text: &str) -> bool {
    static REFUSED: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"(?i)\b(UNAUTHORIZED|DENIED|forbidden|authentication required)\b|status(?: code)?:? ?40[13]\b|\b40[13] (Unauthorized|Forbidden)",
        )
        .expect("valid regex")
    });
    REFUSED.is_match(text)
}

/// A network failure or a 5xx (or 429) answer from the registry.
fn network_or_server_error(text: &str) -> bool {
    static TRANSIENT: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"(?i)connection (refused|reset)|i/o timeout|TLS handshake timeout|no such host|broken pipe|unexpected EOF|: EOF\b|timeout exceeded|deadline exceeded|TOOMANYREQUESTS|status(?: code)?:? ?(5\d\d|429)\b|\b(500 Internal Server Error|502 Bad Gateway|503 Service Unavailable|504 Gateway Timeout|429 Too Many Requests)",
        )
        .expect("valid regex")
    });
    TRANSIENT.is_match(text)
}

/// Kaniko's own error texts (`cmd/executor/cmd/root.go`, `pkg/executor`, `pkg/commands/run.go`),
/// which end its log when it fails: `exit` prints the wrapped error chain as the last line.
mod kaniko {
    /// `root.go`: the top-level wrap of `DoBuild` errors.
    pub const BUILD_ERROR: &str = "error building image";
    /// `root.go`: the top-level wrap of `DoPush` errors.
    pub const PUSH_ERROR: &str = "error pushing image";
    /// `root.go`: `CheckPushPermissions` runs before the build and fails early.
    pub const PUSH_PERMISSION_ERROR: &str = "error checking push permissions";
    /// `push.go`: the push itself, after retries.
    pub const PUSH_DESTINATION_ERROR: &str = "failed to push to destination";
    /// `build.go`: a stage's build failed; what follows says why.
    pub const STAGE_ERROR: &str = "error building stage";
    /// `build.go` + `run.go`: a `RUN` command ran and exited non-zero, or could not start.
    pub const RUN_FAILED: [&str; 2] = [
        "failed to execute command: waiting for process to exit",
        "failed to execute command: starting command",
    ];
    /// `build.go`: unpacking the base image's layers failed (a layer download or extraction).
    pub const BASE_FS_ERROR: &str = "failed to get filesystem from image";
    /// `remote.go`: logged right before the base image's manifest is fetched. Its errors are
    /// returned unwrapped, so `error building image: <registry error>` follows directly.
    pub const RETRIEVING_IMAGE: &str = "Retrieving image";
    /// go-containerregistry / distribution error codes seen when a manifest cannot be fetched.
    pub const REGISTRY_ERRORS: [&str; 7] = [
        "MANIFEST_UNKNOWN",
        "NAME_UNKNOWN",
        "UNAUTHORIZED",
        "DENIED",
        "TOOMANYREQUESTS",
        "/manifests/",
        "no child with platform",
    ];
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
        _ => "Kaniko failed",
    };
    let detail = match error_line {
        Some(line) => bounded_head(line, QUOTE_MAX_BYTES).to_string(),
        None => format!("exit code {}", t.exit_code),
    };
    let snippet = log_snippet(&log);
    failed(reason, format!("{summary}: {detail}"), snippet, provenance)
}

/// The last line of the log that is one of Kaniko's fatal error chains.
fn kaniko_error_line(log: &str) -> Option<&str> {
    log.lines().map(str::trim).rev().find(|line| {
        [
            kaniko::BUILD_ERROR,
            kaniko::PUSH_ERROR,
            kaniko::PUSH_PERMISSION_ERROR,
        ]
        .iter()
        .any(|prefix| line.starts_with(prefix))
    })
}

fn classify_kaniko_failure(log: &str, error_line: Option<&str>) -> FailureReason {
    let line = error_line.unwrap_or("");
    if line.starts_with(kaniko::PUSH_ERROR)
        || line.starts_with(kaniko::PUSH_PERMISSION_ERROR)
        || line.contains(kaniko::PUSH_DESTINATION_ERROR)
    {
        return FailureReason::PushFailed;
    }
    if kaniko::RUN_FAILED.iter().any(|m| line.contains(m)) {
        return FailureReason::AssembleFailed;
    }
    if line.contains(kaniko::BASE_FS_ERROR) {
        return FailureReason::BuilderImagePullFailed;
    }
    if let Some(rest) = line
        .strip_prefix(kaniko::BUILD_ERROR)
        .map(|r| r.trim_start_matches(':').trim_start())
        && !rest.starts_with(kaniko::STAGE_ERROR)
    {
        let registry_error = kaniko::REGISTRY_ERRORS.iter().any(|m| rest.contains(m));
        let after_retrieving = log
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty() && !l.starts_with(kaniko::BUILD_ERROR))
            .is_some_and(|l| l.contains(kaniko::RETRIEVING_IMAGE));
        if registry_error || after_retrieving {
            return FailureReason::BuilderImagePullFailed;
        }
    }
    FailureReason::BuildFailed
}

/// The last lines of `log`, at most [`LOG_SNIPPET_MAX_LINES`] lines and
/// [`LOG_SNIPPET_MAX_BYTES`] bytes; `None` when there is nothing to show.
fn log_snippet(log: &str) -> Option<String> {
    let trimmed = log.trim_end();
    let lines: Vec<&str> = trimmed.lines().collect();
    let start = lines.len().saturating_sub(LOG_SNIPPET_MAX_LINES);
    let tail = lines[start..].join("\n");
    let bounded = bounded_tail(&tail, LOG_SNIPPET_MAX_BYTES);
    // Prefer starting at a line boundary when the byte bound cut a line in half.
    let bounded = if bounded.len() < tail.len() {
        bounded.split_once('\n').map_or(bounded, |(_, rest)| rest)
    } else {
        bounded
    };
    let bounded = bounded.trim_start_matches('\n');
    (!bounded.trim().is_empty()).then(|| bounded.to_string())
}

/// The last `max` bytes of `s`, on a character boundary.
fn bounded_tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// The first `max` bytes of `s`, on a character boundary.
fn bounded_head(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Removes ANSI escape sequences (Kaniko's default `color` log format forces colours) and
/// other control characters except newline and tab, so status text stays readable and inert.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // CSI: ESC [ parameters... final byte in @..~
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Read access to the parts of the Pod `observe` needs.
struct PodView<'a> {
    pod: &'a Pod,
}

impl<'a> PodView<'a> {
    fn new(pod: &'a Pod) -> Self {
        PodView { pod }
    }

    fn phase(&self) -> Option<&'a str> {
        self.pod.status.as_ref()?.phase.as_deref()
    }

    fn pod_reason(&self) -> Option<&'a str> {
        self.pod.status.as_ref()?.reason.as_deref()
    }

    fn pod_message(&self) -> Option<&'a str> {
        self.pod.status.as_ref()?.message.as_deref()
    }

    fn is_being_deleted(&self) -> bool {
        self.pod.metadata.deletion_timestamp.is_some()
    }

    fn active_deadline_seconds(&self) -> Option<i64> {
        self.pod.spec.as_ref()?.active_deadline_seconds
    }

    fn statuses(&self) -> impl Iterator<Item = &'a ContainerStatus> {
        let status = self.pod.status.as_ref();
        status
            .and_then(|s| s.init_container_statuses.as_ref())
            .into_iter()
            .flatten()
            .chain(
                status
                    .and_then(|s| s.container_statuses.as_ref())
                    .into_iter()
                    .flatten(),
            )
    }

    fn status(&self, name: &str) -> Option<&'a ContainerStatus> {
        self.statuses().find(|s| s.name == name)
    }

    fn terminated(&self, name: &str) -> Option<&'a ContainerStateTerminated> {
        self.status(name)?.state.as_ref()?.terminated.as_ref()
    }

    fn prepare_terminated(&self) -> Option<&'a ContainerStateTerminated> {
        self.terminated(PREPARE_CONTAINER)
    }

    fn build_terminated(&self) -> Option<&'a ContainerStateTerminated> {
        self.terminated(BUILD_CONTAINER)
    }

    fn terminated_containers(
        &self,
    ) -> impl Iterator<Item = (&'a str, &'a ContainerStateTerminated)> {
        self.statuses().filter_map(|s| {
            let t = s.state.as_ref()?.terminated.as_ref()?;
            Some((s.name.as_str(), t))
        })
    }

    fn started(&self, name: &str) -> bool {
        self.status(name)
            .and_then(|s| s.state.as_ref())
            .is_some_and(|st| st.running.is_some() || st.terminated.is_some())
    }

    fn prepare_started(&self) -> bool {
        self.started(PREPARE_CONTAINER)
    }

    fn build_started(&self) -> bool {
        self.started(BUILD_CONTAINER)
    }

    fn build_running(&self) -> bool {
        self.status(BUILD_CONTAINER)
            .and_then(|s| s.state.as_ref())
            .is_some_and(|st| st.running.is_some())
    }

    /// The provenance prepare reported, when it finished successfully.
    fn provenance(&self) -> Option<PrepareResult> {
        let t = self.prepare_terminated().filter(|t| t.exit_code == 0)?;
        match serde_json::from_str(t.message.as_deref()?.trim()).ok()? {
            PrepareReport::Prepared(result) => Some(result),
            PrepareReport::Failed(_) => None,
        }
    }

    /// Containers waiting for a reason that needs outside help: (name, reason, message).
    fn stuck_waiting(&self) -> impl Iterator<Item = (&'a str, &'a str, Option<&'a str>)> {
        self.statuses().filter_map(|s| {
            let waiting = s.state.as_ref()?.waiting.as_ref()?;
            let reason = waiting.reason.as_deref()?;
            STUCK_WAITING_REASONS.contains(&reason).then_some((
                s.name.as_str(),
                reason,
                waiting.message.as_deref(),
            ))
        })
    }

    fn waiting_message(&self) -> Option<String> {
        if let Some((container, reason, message)) = self.stuck_waiting().next() {
            let image = self
                .image_of(container)
                .map_or(String::new(), |i| format!(" ({i})"));
            let detail = message.map_or(String::new(), |m| format!(": {m}"));
            return Some(format!(
                "container {container}{image} is waiting: {reason}{detail}"
            ));
        }
        let unschedulable = self
            .pod
            .status
            .as_ref()?
            .conditions
            .iter()
            .flatten()
            .find(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("Unschedulable")
            });
        if let Some(condition) = unschedulable {
            let detail = condition.message.as_deref().unwrap_or("no node fits");
            return Some(format!("the build Pod cannot be scheduled: {detail}"));
        }
        None
    }

    fn container_spec(&self, name: &str) -> Option<&'a k8s_openapi::api::core::v1::Container> {
        let spec = self.pod.spec.as_ref()?;
        spec.init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
            .find(|c| c.name == name)
    }

    fn image_of(&self, name: &str) -> Option<&'a str> {
        self.container_spec(name)?.image.as_deref()
    }

    fn memory_limit(&self, name: &str) -> Option<&'a str> {
        let limits = self
            .container_spec(name)?
            .resources
            .as_ref()?
            .limits
            .as_ref()?;
        limits.get("memory").map(|q| q.0.as_str())
    }

    /// The image Kaniko pushes to, from its `--destination=` argument.
    fn destination(&self) -> Option<&'a str> {
        self.container_spec(BUILD_CONTAINER)?
            .args
            .iter()
            .flatten()
            .find_map(|a| a.strip_prefix("--destination="))
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_missing_secret_or_config_map_fails_the_pending_pod() {
        let waiting = |message: &str| {
            serde_json::from_value::<Pod>(serde_json::json!({
                "metadata": {"name": "app-build-1"},
                "status": {"phase": "Pending", "containerStatuses": [{"name": "build", "ready": false,
                    "restartCount": 0, "image": "kaniko", "imageID": "",
                    "state": {"waiting": {"reason": "CreateContainerConfigError", "message": message}}}]}
            }))
            .unwrap()
        };
        let f = failure(observe(&waiting("secret \"regcred\" not found")));
        assert_eq!(f.reason, FailureReason::SecretNotFound);
        assert!(
            f.message.contains("Secret \"regcred\" not found"),
            "{}",
            f.message
        );
        let f = failure(observe(&waiting("configmap \"app-source\" not found")));
        assert_eq!(f.reason, FailureReason::ConfigMapNotFound);
        // A missing key is not a missing object: the Pod waits (and times out) as before.
        assert!(matches!(
            observe(&waiting(
                "couldn't find key password in Secret team/git-creds"
            )),
            BuildOutcome::Pending { .. }
        ));
        let refused = "pods \"app-build-1\" is forbidden: error looking up service account team/builder: serviceaccount \"builder\" not found";
        let missing = missing_reference(refused).unwrap();
        assert_eq!(
            (missing.reason, missing.name.as_str()),
            (FailureReason::ServiceAccountNotFound, "builder")
        );
        let mount =
            "MountVolume.SetUp failed for volume \"push-secret\" : secret \"regcred\" not found";
        assert_eq!(
            missing_reference(mount).map(|m| m.name),
            Some("regcred".to_string())
        );
    }

    #[test]
    fn only_transient_failures_are_retryable() {
        let cases = [
            (
                "Evicted",
                "The node was low on resource: memory.",
                None,
                true,
            ),
            (
                "PushFailed",
                "Kaniko built the image (sha256:x) but exited with code 1 while pushing it",
                None,
                true,
            ),
            (
                "PushFailed",
                "the image could not be pushed: error pushing image: failed to push to destination r/a:1: Put \"https://r/v2/\": dial tcp 10.0.0.1:443: connect: connection refused",
                None,
                true,
            ),
            (
                "PushFailed",
                "the image could not be pushed: error pushing image: PUT https://r/v2/a/manifests/1: unexpected status code 503 Service Unavailable",
                None,
                true,
            ),
            (
                "PushFailed",
                "the image could not be pushed: error checking push permissions -- make sure you entered the correct tag name, and that you are authenticated correctly, and try again: checking push permission for \"r/a:1\": POST https://r/v2/a/blobs/uploads/: UNAUTHORIZED: authentication required",
                None,
                false,
            ),
            (
                "PushFailed",
                "the image could not be pushed: error pushing image: unexpected status code 403 Forbidden",
                None,
                false,
            ),
            (
                "PushFailed",
                "the image could not be pushed: exit code 1",
                None,
                false,
            ),
            (
                "ImagePullFailed",
                "container build could not pull kaniko:1 within the build timeout: ImagePullBackOff: Back-off pulling image: dial tcp: i/o timeout",
                None,
                true,
            ),
            (
                "ImagePullFailed",
                "container build could not pull kaniko:1 within the build timeout: ErrImagePull: manifest unknown",
                None,
                false,
            ),
            (
                "AssembleFailed",
                "the assemble step failed: connection refused",
                None,
                false,
            ),
            ("InvalidSpec", "spec.env[0].value: newline", None, false),
            (
                "BuildFailed",
                "Kaniko failed: 503 Service Unavailable",
                None,
                false,
            ),
            (
                "PodDeleted",
                "build Pod app-build-1 was deleted before the build finished",
                None,
                false,
            ),
        ];
        for (reason, message, log, transient) in cases {
            assert_eq!(
                is_transient(reason, message, log, None),
                transient,
                "{reason}: {message}"
            );
        }
        let drained: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "app-build-1"},
            "status": {"phase": "Failed", "conditions": [{"type": "DisruptionTarget", "status": "True",
                       "reason": "DeletionByTaintManager"}]}
        }))
        .unwrap();
        assert!(is_transient("PodDeleted", "deleted", None, Some(&drained)));
    }
    use super::*;
    use crate::api::{GitSource, Output, Source, SourceBuild, SourceBuildSpec};
    use crate::pod::{BuildSettings, build_pod};
    use crate::prepare::PrepareFailure;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateRunning, ContainerStateWaiting, PodCondition, PodStatus,
        ResourceRequirements,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    /// Every case here is also observed through the controller's cache, which keeps a narrowed
    /// Pod: narrowing must never change what a Pod says.
    fn observe(pod: &Pod) -> BuildOutcome {
        let full = super::observe(pod);
        let cached = crate::controller::cache::slim_pod::SlimPod::from_pod(pod).to_pod();
        assert_eq!(
            super::observe(&cached),
            full,
            "the cached Pod reads differently"
        );
        assert_eq!(
            is_transient("PodDeleted", "deleted", None, Some(&cached)),
            is_transient("PodDeleted", "deleted", None, Some(pod)),
        );
        full
    }

    const DIGEST: &str = "sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945";

    fn pod() -> Pod {
        let spec = SourceBuildSpec {
            source: Source {
                git: Some(GitSource {
                    url: "https://git.example.com/team/app.git".to_string(),
                    ..GitSource::default()
                }),
                ..Source::default()
            },
            builder: Default::default(),
            output: Output {
                image: "registry.example.com:5000/team/app:1.0".to_string(),
                ..Output::default()
            },
            env: vec![],
            timeout: None,
            cache: None,
            resources: Some(Box::new(ResourceRequirements {
                limits: Some([("memory".to_string(), Quantity("2Gi".to_string()))].into()),
                ..ResourceRequirements::default()
            })),
            service_account_name: None,
            ..SourceBuildSpec::default()
        };
        let mut sb = SourceBuild::new("app", spec);
        sb.metadata.namespace = Some("team-a".to_string());
        sb.metadata.uid = Some("uid-1".to_string());
        sb.metadata.generation = Some(1);
        let settings = BuildSettings {
            default_builder_image: "registry.example.com/s2i/base:1".to_string(),
            kaniko_image: "registry.example.com/kaniko/executor:v1.24.0".to_string(),
            prepare_image: "registry.example.com/sourcebuild/operator:0.1.0".to_string(),
            insecure_registries: vec![],
        };
        build_pod(&sb, &settings).unwrap()
    }

    fn provenance() -> PrepareResult {
        PrepareResult {
            revision: Some("0123456789abcdef0123456789abcdef01234567".to_string()),
            dockerfile_sha256: format!("sha256:{}", "d".repeat(64)),
            builder_image: "registry.example.com/s2i/base:1".to_string(),
        }
    }

    fn prepared_report() -> String {
        serde_json::to_string(&PrepareReport::Prepared(provenance())).unwrap()
    }

    fn terminated(name: &str, exit_code: i32, reason: &str, message: &str) -> ContainerStatus {
        status(
            name,
            ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code,
                    reason: Some(reason.to_string()),
                    message: (!message.is_empty()).then(|| message.to_string()),
                    ..ContainerStateTerminated::default()
                }),
                ..ContainerState::default()
            },
        )
    }

    fn running(name: &str) -> ContainerStatus {
        status(
            name,
            ContainerState {
                running: Some(ContainerStateRunning::default()),
                ..ContainerState::default()
            },
        )
    }

    fn waiting(name: &str, reason: &str, message: &str) -> ContainerStatus {
        status(
            name,
            ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.to_string()),
                    message: Some(message.to_string()),
                }),
                ..ContainerState::default()
            },
        )
    }

    fn status(name: &str, state: ContainerState) -> ContainerStatus {
        ContainerStatus {
            name: name.to_string(),
            state: Some(state),
            ..ContainerStatus::default()
        }
    }

    fn with_status(phase: &str, init: ContainerStatus, main: ContainerStatus) -> Pod {
        let mut pod = pod();
        pod.status = Some(PodStatus {
            phase: Some(phase.to_string()),
            init_container_statuses: Some(vec![init]),
            container_statuses: Some(vec![main]),
            ..PodStatus::default()
        });
        pod
    }

    fn prepared() -> ContainerStatus {
        terminated(PREPARE_CONTAINER, 0, "Completed", &prepared_report())
    }

    /// A Pod whose build container failed with `log` as its termination message.
    fn build_failed_with(log: &str) -> Pod {
        with_status(
            "Failed",
            prepared(),
            terminated(BUILD_CONTAINER, 1, "Error", log),
        )
    }

    fn failure(outcome: BuildOutcome) -> BuildFailure {
        match outcome {
            BuildOutcome::Failed(f) => f,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn success_reports_digest_image_and_provenance() {
        let pod = with_status(
            "Succeeded",
            prepared(),
            terminated(BUILD_CONTAINER, 0, "Completed", &format!("{DIGEST}\n")),
        );
        assert_eq!(
            observe(&pod),
            BuildOutcome::Succeeded(BuildResult {
                digest: DIGEST.to_string(),
                image: format!("registry.example.com:5000/team/app@{DIGEST}"),
                provenance: provenance(),
            })
        );
    }

    #[test]
    fn hostile_digests_are_invalid() {
        let hostile = [
            format!("{DIGEST} and then some"),
            format!("{DIGEST}\nsha256:{}", "0".repeat(64)),
            DIGEST.to_uppercase(),
            format!("sha256:{}", DIGEST["sha256:".len()..].to_uppercase()),
            format!("sha256:{}", "a".repeat(63)),
            format!("sha256:{}", "a".repeat(65)),
            format!("sha512:{}", "a".repeat(64)),
            format!("sha256:{}g", "a".repeat(63)),
            format!("registry.example.com/app@{DIGEST}"),
            String::new(),
            "x".repeat(4096),
        ];
        for message in hostile {
            let pod = with_status(
                "Succeeded",
                prepared(),
                terminated(BUILD_CONTAINER, 0, "Completed", &message),
            );
            let f = failure(observe(&pod));
            assert_eq!(f.reason, FailureReason::InvalidDigest, "{message:?}");
            assert!(f.message.len() < 700, "quoted text must be bounded");
            assert_eq!(f.provenance, Some(provenance()));
        }
    }

    #[test]
    fn success_without_a_prepare_report_is_not_a_success() {
        let pod = with_status(
            "Succeeded",
            terminated(PREPARE_CONTAINER, 0, "Completed", "not json"),
            terminated(BUILD_CONTAINER, 0, "Completed", DIGEST),
        );
        let f = failure(observe(&pod));
        assert_eq!(f.reason, FailureReason::BuildFailed);
        assert!(f.message.contains(DIGEST), "{}", f.message);
    }

    #[test]
    fn prepare_report_gives_reason_and_message() {
        for (reason, expected) in [
            ("InvalidSource", FailureReason::InvalidSource),
            ("SourceFetchFailed", FailureReason::SourceFetchFailed),
        ] {
            let report = serde_json::to_string(&PrepareReport::Failed(PrepareFailure {
                reason: reason.to_string(),
                message: ".s2i/environment:3: missing '='".to_string(),
            }))
            .unwrap();
            let pod = with_status(
                "Failed",
                terminated(PREPARE_CONTAINER, 1, "Error", &report),
                waiting(BUILD_CONTAINER, "PodInitializing", ""),
            );
            let f = failure(observe(&pod));
            assert_eq!(f.reason, expected);
            assert_eq!(f.message, ".s2i/environment:3: missing '='");
            assert_eq!(f.provenance, None);
        }
    }

    #[test]
    fn prepare_builder_image_pull_failure_keeps_its_reason() {
        let message = "pulling builder image 127.0.0.1:5000/s2i/none:1 from 127.0.0.1:5000: \
                       OCI API errors: [NAME_UNKNOWN]";
        let report = serde_json::to_string(&PrepareReport::Failed(PrepareFailure {
            reason: crate::prepare::REASON_BUILDER_IMAGE_PULL_FAILED.to_string(),
            message: message.to_string(),
        }))
        .unwrap();
        let pod = with_status(
            "Failed",
            terminated(PREPARE_CONTAINER, 1, "Error", &report),
            waiting(BUILD_CONTAINER, "PodInitializing", ""),
        );
        let f = failure(observe(&pod));
        assert_eq!(f.reason, FailureReason::BuilderImagePullFailed);
        assert_eq!(f.message, message);
        assert_eq!(f.provenance, None);
    }

    #[test]
    fn prepare_without_a_report_is_a_fetch_failure_with_its_text() {
        let pod = with_status(
            "Failed",
            terminated(PREPARE_CONTAINER, 2, "Error", "panicked at src/main.rs:1\n"),
            waiting(BUILD_CONTAINER, "PodInitializing", ""),
        );
        let f = failure(observe(&pod));
        assert_eq!(f.reason, FailureReason::SourceFetchFailed);
        assert_eq!(f.message, "panicked at src/main.rs:1");

        let pod = with_status(
            "Failed",
            terminated(PREPARE_CONTAINER, 2, "Error", ""),
            waiting(BUILD_CONTAINER, "PodInitializing", ""),
        );
        let f = failure(observe(&pod));
        assert_eq!(f.reason, FailureReason::SourceFetchFailed);
        assert!(f.message.contains("code 2"), "{}", f.message);
    }

    #[test]
    fn failed_run_is_assemble_failed_with_a_log_snippet() {
        let log = "\u{1b}[36mINFO\u{1b}[0m[0004] RUN /usr/libexec/s2i/assemble\n\
                   \u{1b}[36mINFO\u{1b}[0m[0004] Running: [/bin/sh -c /usr/libexec/s2i/assemble]\n\
                   ERROR: Could not find a version that satisfies the requirement flask==9.9\n\
                   error building image: error building stage: failed to execute command: \
                   waiting for process to exit: exit status 1\n";
        let f = failure(observe(&build_failed_with(log)));
        assert_eq!(f.reason, FailureReason::AssembleFailed);
        assert!(f.message.ends_with("exit status 1"), "{}", f.message);
        let snippet = f.log_snippet.unwrap();
        assert!(snippet.contains("flask==9.9"));
        assert!(!snippet.contains('\u{1b}'), "ANSI codes must be stripped");
        assert!(snippet.starts_with("INFO[0004] RUN"), "{snippet}");
        assert_eq!(f.provenance, Some(provenance()));
    }

    #[test]
    fn push_errors_are_push_failed() {
        for log in [
            "INFO[0010] Pushing image to registry.example.com:5000/team/app:1.0\n\
             error pushing image: failed to push to destination registry.example.com:5000/team/app:1.0: \
             PUT https://registry.example.com:5000/v2/team/app/manifests/1.0: UNAUTHORIZED: authentication required\n",
            "error checking push permissions -- make sure you entered the correct tag name, and \
             that you are authenticated correctly, and try again: checking push permission for \
             \"registry.example.com:5000/team/app:1.0\": POST https://registry.example.com:5000/v2/team/app/blobs/uploads/: \
             DENIED: requested access to the resource is denied\n",
        ] {
            let f = failure(observe(&build_failed_with(log)));
            assert_eq!(f.reason, FailureReason::PushFailed, "{log}");
            assert!(f.log_snippet.is_some());
        }
    }

    #[test]
    fn digest_with_a_failed_exit_is_a_failed_push() {
        let f = failure(observe(&build_failed_with(DIGEST)));
        assert_eq!(f.reason, FailureReason::PushFailed);
        assert!(f.message.contains(DIGEST), "{}", f.message);
    }

    #[test]
    fn builder_image_retrieval_errors_are_builder_image_pull_failed() {
        for log in [
            "INFO[0000] Retrieving image manifest registry.example.com/s2i/missing:1\n\
             INFO[0000] Retrieving image registry.example.com/s2i/missing:1 from registry registry.example.com\n\
             error building image: GET https://registry.example.com/v2/s2i/missing/manifests/1: \
             MANIFEST_UNKNOWN: manifest unknown; map[Tag:1]\n",
            "INFO[0000] Retrieving image registry.example.com/s2i/base:1 from registry registry.example.com\n\
             error building image: Get \"https://registry.example.com/v2/\": dial tcp: lookup registry.example.com: no such host\n",
            "INFO[0001] Unpacking rootfs as cmd COPY upload/src /tmp/src requires it.\n\
             error building image: error building stage: failed to get filesystem from image: \
             unexpected EOF\n",
        ] {
            let f = failure(observe(&build_failed_with(log)));
            assert_eq!(f.reason, FailureReason::BuilderImagePullFailed, "{log}");
        }
    }

    #[test]
    fn other_kaniko_errors_are_build_failed() {
        for log in [
            "error building image: parsing dockerfile: dockerfile parse error line 3: unknown instruction: FORM\n",
            "INFO[0002] COPY upload/src /tmp/src\n\
             error building image: error building stage: failed to execute command: \
             resolving src: lstat /workspace/upload/src: no such file or directory\n",
            "some unexpected crash without Kaniko's error line\n",
        ] {
            let f = failure(observe(&build_failed_with(log)));
            assert_eq!(f.reason, FailureReason::BuildFailed, "{log}");
        }
    }

    #[test]
    fn oom_killed_wins_and_names_the_memory_limit() {
        let log = "error building image: error building stage: failed to execute command: \
                   waiting for process to exit: signal: killed\n";
        let pod = with_status(
            "Failed",
            prepared(),
            terminated(BUILD_CONTAINER, 137, "OOMKilled", log),
        );
        let f = failure(observe(&pod));
        assert_eq!(f.reason, FailureReason::OOMKilled);
        assert!(f.message.contains("2Gi"), "{}", f.message);
        assert_eq!(f.provenance, Some(provenance()));

        let pod = with_status(
            "Failed",
            terminated(PREPARE_CONTAINER, 137, "OOMKilled", ""),
            waiting(BUILD_CONTAINER, "PodInitializing", ""),
        );
        let f = failure(observe(&pod));
        assert_eq!(f.reason, FailureReason::OOMKilled);
        assert!(
            f.message.contains("prepare") && f.message.contains("1Gi"),
            "{}",
            f.message
        );

        let mut pod = with_status(
            "Failed",
            prepared(),
            terminated(BUILD_CONTAINER, 137, "OOMKilled", ""),
        );
        pod.spec.as_mut().unwrap().containers[0].resources = None;
        let f = failure(observe(&pod));
        assert!(f.message.contains("no memory limit"), "{}", f.message);
    }

    fn failed_pod_with_reason(reason: &str, init: ContainerStatus, main: ContainerStatus) -> Pod {
        let mut pod = with_status("Failed", init, main);
        let status = pod.status.as_mut().unwrap();
        status.reason = Some(reason.to_string());
        status.message = Some(format!("Pod {reason}"));
        pod
    }

    #[test]
    fn deadline_exceeded_is_a_timeout() {
        let pod = failed_pod_with_reason(
            "DeadlineExceeded",
            prepared(),
            terminated(BUILD_CONTAINER, 137, "Error", "INFO[0100] RUN assemble\n"),
        );
        let f = failure(observe(&pod));
        assert_eq!(f.reason, FailureReason::Timeout);
        assert!(f.message.contains("1800s"), "{}", f.message);
        assert_eq!(f.provenance, Some(provenance()));
    }

    #[test]
    fn deadline_exceeded_while_pulling_an_image_is_image_pull_failed() {
        let pod = failed_pod_with_reason(
            "DeadlineExceeded",
            waiting(
                PREPARE_CONTAINER,
                "ImagePullBackOff",
                "Back-off pulling image",
            ),
            waiting(BUILD_CONTAINER, "PodInitializing", ""),
        );
        let f = failure(observe(&pod));
        assert_eq!(f.reason, FailureReason::ImagePullFailed);
        assert!(f.message.contains("prepare"), "{}", f.message);
        assert!(
            f.message
                .contains("registry.example.com/sourcebuild/operator:0.1.0"),
            "{}",
            f.message
        );
    }

    #[test]
    fn eviction_is_evicted() {
        let pod = failed_pod_with_reason(
            "Evicted",
            prepared(),
            terminated(BUILD_CONTAINER, 137, "Error", ""),
        );
        let f = failure(observe(&pod));
        assert_eq!(f.reason, FailureReason::Evicted);
        assert_eq!(f.message, "Pod Evicted");
    }

    #[test]
    fn image_pull_and_config_errors_stay_pending_with_a_message() {
        for (container, reason) in [
            (PREPARE_CONTAINER, "ErrImagePull"),
            (PREPARE_CONTAINER, "ImagePullBackOff"),
            (PREPARE_CONTAINER, "CreateContainerConfigError"),
        ] {
            let pod = with_status(
                "Pending",
                waiting(container, reason, "details"),
                waiting(BUILD_CONTAINER, "PodInitializing", ""),
            );
            match observe(&pod) {
                BuildOutcome::Pending { message: Some(m) } => {
                    assert!(m.contains(container) && m.contains(reason), "{m}");
                }
                other => panic!("{reason}: {other:?}"),
            }
        }
        let pod = with_status(
            "Pending",
            prepared(),
            waiting(BUILD_CONTAINER, "ErrImagePull", "not found"),
        );
        let BuildOutcome::Pending { message: Some(m) } = observe(&pod) else {
            panic!("expected Pending with a message");
        };
        assert!(m.contains("build") && m.contains("ErrImagePull"), "{m}");
        assert!(m.contains("kaniko/executor"), "{m}");
    }

    #[test]
    fn running_and_pending_states() {
        let pod = with_status("Running", prepared(), running(BUILD_CONTAINER));
        assert_eq!(observe(&pod), BuildOutcome::Running);

        let pod = with_status(
            "Pending",
            running(PREPARE_CONTAINER),
            waiting(BUILD_CONTAINER, "PodInitializing", ""),
        );
        assert_eq!(observe(&pod), BuildOutcome::Pending { message: None });

        let mut pod = super::tests::pod();
        assert_eq!(observe(&pod), BuildOutcome::Pending { message: None });
        pod.status = Some(PodStatus {
            phase: Some("Pending".to_string()),
            conditions: Some(vec![PodCondition {
                type_: "PodScheduled".to_string(),
                status: "False".to_string(),
                reason: Some("Unschedulable".to_string()),
                message: Some("0/3 nodes are available: 3 Insufficient memory.".to_string()),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        });
        let BuildOutcome::Pending { message: Some(m) } = observe(&pod) else {
            panic!("expected Pending with a message");
        };
        assert!(m.contains("Insufficient memory"), "{m}");
    }

    #[test]
    fn deleted_pod_is_pod_deleted_unless_it_failed_on_its_own() {
        let mut pod = with_status(
            "Failed",
            prepared(),
            terminated(BUILD_CONTAINER, 143, "Error", "INFO[0010] RUN assemble\n"),
        );
        pod.metadata.deletion_timestamp = Some(Time(Default::default()));
        let f = failure(observe(&pod));
        assert_eq!(f.reason, FailureReason::PodDeleted);

        let mut pod = build_failed_with(
            "error building image: error building stage: failed to execute command: \
             waiting for process to exit: exit status 1\n",
        );
        pod.metadata.deletion_timestamp = Some(Time(Default::default()));
        assert_eq!(failure(observe(&pod)).reason, FailureReason::AssembleFailed);

        let mut pod = with_status("Running", prepared(), running(BUILD_CONTAINER));
        pod.metadata.deletion_timestamp = Some(Time(Default::default()));
        assert_eq!(failure(observe(&pod)).reason, FailureReason::PodDeleted);
    }

    #[test]
    fn log_snippet_is_bounded_by_lines_and_bytes() {
        let many_lines: String = (1..=100).map(|i| format!("line {i}\n")).collect();
        let snippet = log_snippet(&many_lines).unwrap();
        assert_eq!(snippet.lines().count(), LOG_SNIPPET_MAX_LINES);
        assert!(snippet.starts_with("line 81\n") && snippet.ends_with("line 100"));

        let long_lines: String = (1..=10)
            .map(|i| format!("{i}:{}\n", "é".repeat(300)))
            .collect();
        let snippet = log_snippet(&long_lines).unwrap();
        assert!(snippet.len() <= LOG_SNIPPET_MAX_BYTES, "{}", snippet.len());
        assert!(snippet.ends_with('é'));
        assert!(
            snippet.lines().all(|l| l.len() == 602 || l.len() == 603),
            "whole lines only"
        );

        let one_huge_line = "x".repeat(10_000);
        let snippet = log_snippet(&one_huge_line).unwrap();
        assert_eq!(snippet.len(), LOG_SNIPPET_MAX_BYTES);

        assert_eq!(log_snippet(" \n\n"), None);
    }

    #[test]
    fn reason_strings_match_the_variant_names() {
        let all = [
            FailureReason::SourceFetchFailed,
            FailureReason::InvalidSource,
            FailureReason::AssembleFailed,
            FailureReason::PushFailed,
            FailureReason::BuilderImagePullFailed,
            FailureReason::BuildFailed,
            FailureReason::ImagePullFailed,
            FailureReason::OOMKilled,
            FailureReason::Evicted,
            FailureReason::Timeout,
            FailureReason::PodDeleted,
            FailureReason::InvalidSpec,
            FailureReason::InvalidDigest,
            FailureReason::SecretNotFound,
            FailureReason::ConfigMapNotFound,
            FailureReason::ServiceAccountNotFound,
        ];
        for reason in all {
            assert_eq!(reason.as_str(), format!("{reason:?}"));
            assert_eq!(reason.to_string(), reason.as_str());
        }
    }
}
