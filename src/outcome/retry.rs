//! Whether a failed build is worth retrying.

use std::sync::LazyLock;

use k8s_openapi::api::core::v1::Pod;
use regex::Regex;

use crate::reason::FailureReason;

/// Whether retrying a build that failed with this reason, message and log can help: the cause
/// is outside the build itself (the node, the network, a registry's server error). A bad
/// source, Dockerfile, spec or credential fails the same way again, so it never qualifies.
pub fn is_transient(reason: &str, message: &str, log: Option<&str>, pod: Option<&Pod>) -> bool {
    let text = format!("{message}\n{}", log.unwrap_or(""));
    // The reason comes from a stored status condition, as its string.
    if FailureReason::Evicted == reason {
        true
    } else if FailureReason::PodDeleted == reason {
        // Only a deletion the cluster made (node drain, taint manager, preemption, kubelet
        // pressure) sets DisruptionTarget; a Pod a person deleted was meant to stop.
        pod.is_some_and(has_disruption_target)
    } else if FailureReason::PushFailed == reason {
        // Kaniko checks push permissions before building, so a push that fails after the
        // image was built (the digest was written) has passed authorization already.
        !registry_refused(&text)
            && (text.contains("while pushing it") || network_or_server_error(&text))
    } else if FailureReason::ProvenancePushFailed == reason {
        // The image is in the registry already; only the attestation is missing, and an
        // unreachable or overloaded registry may take it on the next try.
        !registry_refused(&text)
            && !text.contains("refused the credentials")
            && (text.contains("is unreachable while publishing")
                || text.contains("no answer within")
                || network_or_server_error(&text))
    } else if FailureReason::ImagePullFailed == reason {
        !registry_refused(&text)
            && !text.contains("InvalidImageName")
            && !text.contains("not found")
            && !text.contains("manifest unknown")
            && (text.contains("ErrImagePull") || text.contains("ImagePullBackOff"))
    } else {
        false
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
static REGISTRY_REFUSED: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r"(?i)\b(UNAUTHORIZED|DENIED|forbidden|authentication required)\b|status(?: code)?:? ?40[13]\b|\b40[13] (Unauthorized|Forbidden)",
    )
});

/// A network failure or a 5xx (or 429) answer from the registry.
static NETWORK_OR_SERVER_ERROR: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r"(?i)connection (refused|reset)|i/o timeout|TLS handshake timeout|no such host|broken pipe|unexpected EOF|: EOF\b|timeout exceeded|deadline exceeded|TOOMANYREQUESTS|status(?: code)?:? ?(5\d\d|429)\b|\b(500 Internal Server Error|502 Bad Gateway|503 Service Unavailable|504 Gateway Timeout|429 Too Many Requests)",
    )
});

fn compile(pattern: &str) -> Regex {
    // The patterns are constants of this module, exercised by the unit tests.
    Regex::new(pattern).expect("valid regex")
}

fn registry_refused(text: &str) -> bool {
    REGISTRY_REFUSED.is_match(text)
}

fn network_or_server_error(text: &str) -> bool {
    NETWORK_OR_SERVER_ERROR.is_match(text)
}

#[cfg(test)]
mod tests {
    use super::*;

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
                "ProvenancePushFailed",
                "registry.test:5000 is unreachable while publishing provenance for registry.test:5000/app:1: error sending request: Connection refused (os error 111)",
                None,
                true,
            ),
            (
                "ProvenancePushFailed",
                "registry.test:5000 refused the signature for registry.test:5000/app:1: 503 Service Unavailable",
                None,
                true,
            ),
            (
                "ProvenancePushFailed",
                "publishing provenance for registry.test:5000/app:1 to registry.test:5000: no answer within 120s",
                None,
                true,
            ),
            (
                "ProvenancePushFailed",
                "registry.test:5000 refused the credentials while publishing the attestation for registry.test:5000/app:1: 401 Unauthorized",
                None,
                false,
            ),
            (
                "ProvenancePushFailed",
                "registry.test:5000 refused the attestation for registry.test:5000/app:1: 400 MANIFEST_INVALID",
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
}
