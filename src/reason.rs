//! Why a build failed: the one list of status reasons, shared by the prepare step (which reports
//! them in its termination message), the source fetchers and the outcome of a build Pod.
//!
//! A leaf: it imports nothing from the crate, so every module can use it without a circle.

use serde::{Deserialize, Serialize};

/// Why a build failed, as the status reason. Serialized as the variant's name, which is the
/// reason string status conditions and prepare's termination message carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FailureReason {
    /// The source could not be fetched.
    SourceFetchFailed,
    /// The source was fetched but is not buildable (bad `.s2i/environment`, missing scripts).
    InvalidSource,
    /// The assemble step (the Dockerfile's only `RUN`) failed.
    AssembleFailed,
    /// The image (or the push permission check) could not be pushed.
    PushFailed,
    /// The builder image's manifest or config could not be retrieved.
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
    /// The build cannot run in its Pod's user namespace: the builder image holds files owned by
    /// user ids the namespace does not map.
    UserNamespaceUnsupported,
    /// The signing key Secret holds no usable cosign key: missing `cosign.key`, malformed, of
    /// an unsupported type, or its password is missing or wrong. Found before the build runs.
    SigningKeyInvalid,
    /// The image was pushed, but its provenance attestation (or signature) could not be.
    ProvenancePushFailed,
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
            FailureReason::UserNamespaceUnsupported => "UserNamespaceUnsupported",
            FailureReason::SigningKeyInvalid => "SigningKeyInvalid",
            FailureReason::ProvenancePushFailed => "ProvenancePushFailed",
        }
    }
}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status condition holds its reason as a string: a reason equals the string it is written as.
impl PartialEq<&str> for FailureReason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [FailureReason; 19] = [
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
        FailureReason::UserNamespaceUnsupported,
        FailureReason::SigningKeyInvalid,
        FailureReason::ProvenancePushFailed,
    ];

    #[test]
    fn reason_strings_match_the_variant_names() {
        for reason in ALL {
            assert_eq!(reason.as_str(), format!("{reason:?}"));
            assert_eq!(reason.to_string(), reason.as_str());
            assert_eq!(reason, reason.as_str());
        }
    }

    #[test]
    fn reasons_serialize_as_their_strings() {
        for reason in ALL {
            let json = serde_json::to_string(&reason).unwrap();
            assert_eq!(json, format!("\"{}\"", reason.as_str()));
            assert_eq!(
                serde_json::from_str::<FailureReason>(&json).unwrap(),
                reason
            );
        }
    }
}
