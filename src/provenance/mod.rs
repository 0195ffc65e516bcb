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

pub mod key;
pub mod layout;
pub mod publish;
pub mod secret;
pub mod signing;
pub mod statement;

pub use key::{KeyError, SigningKey, load_private_key};
pub use publish::{PublishError, PublishRequest, Published, ReferrersMode, publish};
pub use secret::{KeySecretError, load_key_secret};
pub use statement::{
    BUILD_TYPE, ProvenanceInput, ResolvedSource, SLSA_PROVENANCE_V1, StatementError, statement,
    statement_bytes,
};
