//! Kaniko's own error texts (`cmd/executor/cmd/root.go`, `pkg/executor`, `pkg/commands/run.go`),
//! which end its log when it fails (`exit` prints the wrapped error chain as the last line), and
//! the failure reason a failed build's log reads as.

use crate::reason::FailureReason;

/// `root.go`: the top-level wrap of `DoBuild` errors.
const BUILD_ERROR: &str = "error building image";
/// `root.go`: the top-level wrap of `DoPush` errors.
const PUSH_ERROR: &str = "error pushing image";
/// `root.go`: `CheckPushPermissions` runs before the build and fails early.
const PUSH_PERMISSION_ERROR: &str = "error checking push permissions";
/// `push.go`: the push itself, after retries.
const PUSH_DESTINATION_ERROR: &str = "failed to push to destination";
/// `build.go`: a stage's build failed; what follows says why.
const STAGE_ERROR: &str = "error building stage";
/// `build.go` + `run.go`: a `RUN` command ran and exited non-zero, or could not start.
const RUN_FAILED: [&str; 2] = [
    "failed to execute command: waiting for process to exit",
    "failed to execute command: starting command",
];
/// `build.go`: unpacking the base image's layers failed (a layer download or extraction).
const BASE_FS_ERROR: &str = "failed to get filesystem from image";
/// chown(2)'s answer for an id the caller's user namespace does not map.
const UNMAPPED_ID: &str = ": invalid argument";
/// `remote.go`: logged right before the base image's manifest is fetched. Its errors are
/// returned unwrapped, so `error building image: <registry error>` follows directly.
const RETRIEVING_IMAGE: &str = "Retrieving image";
/// go-containerregistry / distribution error codes seen when a manifest cannot be fetched.
const REGISTRY_ERRORS: [&str; 7] = [
    "MANIFEST_UNKNOWN",
    "NAME_UNKNOWN",
    "UNAUTHORIZED",
    "DENIED",
    "TOOMANYREQUESTS",
    "/manifests/",
    "no child with platform",
];

/// The last line of the log that is one of Kaniko's fatal error chains.
pub(super) fn kaniko_error_line(log: &str) -> Option<&str> {
    log.lines().map(str::trim).rev().find(|line| {
        [BUILD_ERROR, PUSH_ERROR, PUSH_PERMISSION_ERROR]
            .iter()
            .any(|prefix| line.starts_with(prefix))
    })
}

pub(super) fn classify_kaniko_failure(log: &str, error_line: Option<&str>) -> FailureReason {
    let line = error_line.unwrap_or("");
    if line.starts_with(PUSH_ERROR)
        || line.starts_with(PUSH_PERMISSION_ERROR)
        || line.contains(PUSH_DESTINATION_ERROR)
    {
        return FailureReason::PushFailed;
    }
    if RUN_FAILED.iter().any(|m| line.contains(m)) {
        return FailureReason::AssembleFailed;
    }
    // In a user namespace an id outside its map cannot own a file: unpacking such a layer
    // fails with EINVAL, which no registry or retry can fix.
    if line.contains(BASE_FS_ERROR) && line.contains("chown ") && line.ends_with(UNMAPPED_ID) {
        return FailureReason::UserNamespaceUnsupported;
    }
    if line.contains(BASE_FS_ERROR) {
        return FailureReason::BuilderImagePullFailed;
    }
    if let Some(rest) = line
        .strip_prefix(BUILD_ERROR)
        .map(|r| r.trim_start_matches(':').trim_start())
        && !rest.starts_with(STAGE_ERROR)
    {
        let registry_error = REGISTRY_ERRORS.iter().any(|m| rest.contains(m));
        let after_retrieving = log
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty() && !l.starts_with(BUILD_ERROR))
            .is_some_and(|l| l.contains(RETRIEVING_IMAGE));
        if registry_error || after_retrieving {
            return FailureReason::BuilderImagePullFailed;
        }
    }
    FailureReason::BuildFailed
}
