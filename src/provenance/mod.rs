//! SLSA v1 provenance for built images, attached in the registry as an OCI 1.1 referrer and
//! signed with a cosign key pair when one is given; `cosign verify` and
//! `cosign verify-attestation` check what this writes.
//!
//! - [`statement`]: the in-toto statement (pure).
//! - [`key`]: cosign private keys (pure).
//! - [`signing`]: DSSE envelopes and cosign's simple-signing payload (pure).
//! - [`layout`]: the manifests, blobs and tags (pure).
//! - [`publish`](mod@publish): pushing them (I/O).
//! - [`secret`]: reading a mounted cosign key Secret (I/O).
//!
//! Verifying what this writes, with the key pair's public half (`tests/provenance.rs` runs
//! exactly these, offline, so without the transparency log; a plain-HTTP registry also needs
//! `--allow-http-registry --allow-insecure-registry`):
//!
//! ```text
//! cosign verify --key cosign.pub --insecure-ignore-tlog=true REGISTRY/REPO@sha256:...
//! cosign verify-attestation --key cosign.pub --type slsaprovenance1 --insecure-ignore-tlog=true REGISTRY/REPO@sha256:...
//! oras discover REGISTRY/REPO@sha256:...      # lists the referrer, artifactType application/vnd.in-toto+json
//! ```
//!
//! Whether the registry has the referrers API is judged after the push: when its referrers
//! listing (`GET /v2/<name>/referrers/<digest>`) includes the attestation, nothing more is
//! written; otherwise (a 404, as `crane registry serve` answers) the tag-scheme fallback index
//! is written or merged.

pub mod key;
pub mod layout;
pub mod publish;
pub mod secret;
pub mod signing;
pub mod statement;

pub use key::{KeyError, SECRET_PASSWORD, SECRET_PRIVATE_KEY, SigningKey, load_private_key};
pub use publish::{PublishError, PublishRequest, Published, ReferrersMode, publish};
pub use secret::{KeySecretError, load_key_secret};
pub use statement::{
    BUILD_TYPE, ProvenanceInput, ResolvedSource, SLSA_PROVENANCE_V1, StatementError, statement,
    statement_bytes,
};
