//! What prepare learns about the builder image from its registry: the S2I labels, the config's
//! `User` and the manifest digest the build's `FROM` is pinned to.
//!
//! The pure parts (image config JSON, references, docker `config.json` credentials) are
//! separate from the one function that talks to a registry, so `sourcebuild render` can reuse
//! them offline with a config file the user saved (`crane config IMAGE`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use oci_client::Reference;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::ImageIndexEntry;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

use crate::s2i::scripts::{
    ASSEMBLE_USER_LABEL, BuilderMetadata, DESTINATION_LABEL, SCRIPTS_URL_LABEL,
};

/// How long the whole look-up (token, manifest, index entry, config blob) may take.
pub const REGISTRY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long connecting to the registry may take, within [`REGISTRY_TIMEOUT`].
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Docker Hub's spellings in `config.json` keys and references: `docker login` writes
/// `https://index.docker.io/v1/`, references say `docker.io` or nothing.
const DOCKER_HUB_ALIASES: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];
/// The one name the aliases above are compared as.
const DOCKER_HUB: &str = "docker.io";

/// The builder image as the build uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuilderImage {
    /// What the Dockerfile's `FROM` names: `repo@sha256:...` once resolved, else the reference
    /// as the user wrote it.
    pub reference: String,
    /// Labels and user read from the image config (`Default` when not known).
    pub metadata: BuilderMetadata,
}

impl BuilderImage {
    /// The image as written, nothing known about it: the s2i defaults apply.
    pub fn unresolved(image: &str) -> BuilderImage {
        BuilderImage {
            reference: image.to_string(),
            metadata: BuilderMetadata::default(),
        }
    }
}

/// Why the builder image's metadata could not be had.
#[derive(Debug, thiserror::Error)]
pub enum BuilderImageError {
    /// The builder image is not a reference a registry can be asked about.
    #[error("builder image {image:?} is not a valid image reference: {reason}")]
    InvalidReference { image: String, reason: String },
    /// A digest that is not `sha256:` and 64 lowercase hex digits.
    #[error("{digest:?} is not a sha256 digest (sha256: and 64 lowercase hex digits)")]
    InvalidDigest { digest: String },
    /// The registry refused, did not know the image, or was not reachable.
    #[error("pulling builder image {image} from {registry}: {answer}")]
    Registry {
        image: String,
        registry: String,
        answer: String,
    },
    /// The registry did not finish answering in time.
    #[error("pulling builder image {image} from {registry}: no answer within {}s", timeout.as_secs())]
    Timeout {
        image: String,
        registry: String,
        timeout: Duration,
    },
    /// The image config blob is not an image config.
    #[error("builder image {image}: its config is not a valid image config: {reason}")]
    InvalidConfig { image: String, reason: String },
    /// The mounted docker `config.json` cannot be read or parsed.
    #[error("registry credentials {}: {reason}", path.display())]
    DockerConfig { path: PathBuf, reason: String },
    /// The runtime for the registry client could not be started.
    #[error("starting the registry client: {0}")]
    Runtime(#[source] std::io::Error),
}

/// The part of an image config (`application/vnd.oci.image.config.v1+json`) that S2I reads.
#[derive(Deserialize, Default)]
struct ImageConfigFile {
    #[serde(default)]
    config: Option<ImageConfig>,
}

#[derive(Deserialize, Default)]
struct ImageConfig {
    #[serde(rename = "User", default)]
    user: Option<String>,
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
}

/// Reads the S2I labels and `User` from an image config JSON document (what `crane config`
/// prints). A config without `User` is known to run as root: `user` is `Some("")`.
pub fn metadata_from_config(
    image: &str,
    json: &[u8],
) -> Result<BuilderMetadata, BuilderImageError> {
    let file: ImageConfigFile =
        serde_json::from_slice(json).map_err(|e| BuilderImageError::InvalidConfig {
            image: image.to_string(),
            reason: e.to_string(),
        })?;
    let config = file.config.unwrap_or_default();
    let labels = config.labels.unwrap_or_default();
    let label = |key: &str| labels.get(key).cloned();
    Ok(BuilderMetadata {
        scripts_url: label(SCRIPTS_URL_LABEL),
        destination: label(DESTINATION_LABEL),
        assemble_user: label(ASSEMBLE_USER_LABEL),
        user: Some(config.user.unwrap_or_default()),
    })
}

/// Parses `image` the way registries and Kaniko do (`python` is `docker.io/library/python:latest`).
pub fn parse_reference(image: &str) -> Result<Reference, BuilderImageError> {
    image
        .parse::<Reference>()
        .map_err(|e| BuilderImageError::InvalidReference {
            image: image.to_string(),
            reason: e.to_string(),
        })
}

/// Checks a `sha256:<64 lowercase hex>` digest.
pub fn validate_digest(digest: &str) -> Result<&str, BuilderImageError> {
    let hex = digest.strip_prefix("sha256:").unwrap_or("");
    if hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(digest)
    } else {
        Err(BuilderImageError::InvalidDigest {
            digest: digest.to_string(),
        })
    }
}

/// `image` pinned to `digest`: the repository as the user wrote it, without its tag or an
/// earlier digest, then `@digest`. The tag is left out because a registry client (Kaniko's
/// go-containerregistry included) ignores it once a digest is given: keeping it would suggest
/// the tag is still checked. The tag stays on record in the `io.openshift.s2i.build.image`
/// label.
pub fn pinned_reference(image: &str, digest: &str) -> Result<String, BuilderImageError> {
    parse_reference(image)?;
    let digest = validate_digest(digest)?;
    let name = image.split_once('@').map_or(image, |(name, _)| name);
    // A ':' after the last '/' starts the tag; one before it is a registry port.
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let repository = match name[last_slash..].find(':') {
        Some(colon) => &name[..last_slash + colon],
        None => name,
    };
    Ok(format!("{repository}@{digest}"))
}

/// The registry host a `config.json` key or a reference's registry names, compared
/// case-insensitively, without scheme or path, with Docker Hub's aliases as one.
pub fn normalize_registry(key: &str) -> String {
    let key = key.to_ascii_lowercase();
    let host = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(&key);
    let host = host.split('/').next().unwrap_or(host).to_string();
    if DOCKER_HUB_ALIASES.contains(&host.as_str()) {
        DOCKER_HUB.to_string()
    } else {
        host
    }
}

/// A docker `config.json` (`kubernetes.io/dockerconfigjson`'s `.dockerconfigjson`).
#[derive(Deserialize, Default, Debug)]
pub struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
}

/// One `auths` entry. Not `Debug`: it holds secrets.
#[derive(Deserialize, Default)]
struct DockerAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
}

impl std::fmt::Debug for DockerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DockerAuth(<redacted>)")
    }
}

/// Credentials for one registry. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// HTTP basic auth (also sent to the registry's token service).
    Basic { username: String, password: String },
    /// A registry token, sent as `Authorization: Bearer`.
    Token(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Basic { username, .. } => {
                write!(
                    f,
                    "Basic {{ username: {username:?}, password: <redacted> }}"
                )
            }
            Credential::Token(_) => f.write_str("Token(<redacted>)"),
        }
    }
}

impl Credential {
    /// What the log may say about it.
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::Basic { .. } => "basic",
            Credential::Token(_) => "token",
        }
    }
}

/// Why a `config.json` entry is unusable; the text never quotes the secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DockerConfigError {
    /// Not JSON of the `config.json` shape.
    #[error("not a docker config.json: {0}")]
    Parse(String),
    /// `auth` is not base64 of `user:password`.
    #[error("auths[{key:?}].auth is not base64 of username:password")]
    InvalidAuth { key: String },
}

/// Parses a docker `config.json`.
pub fn parse_docker_config(json: &[u8]) -> Result<DockerConfig, DockerConfigError> {
    serde_json::from_slice(json).map_err(|e| DockerConfigError::Parse(e.to_string()))
}

impl DockerConfig {
    /// The credential for `registry` (a reference's registry, e.g. `docker.io` or
    /// `127.0.0.1:5000`): the entry whose key names that host, preferring a key written exactly
    /// so. `registrytoken` wins, then `username`/`password`, then `auth`. An entry with none
    /// of them (only an OAuth `identitytoken`, which needs a token exchange the client does not
    /// do) gives `None`: the pull is then anonymous.
    pub fn credential_for(&self, registry: &str) -> Result<Option<Credential>, DockerConfigError> {
        let wanted = normalize_registry(registry);
        let entry = self.auths.get_key_value(registry).or_else(|| {
            self.auths
                .iter()
                .find(|(key, _)| normalize_registry(key) == wanted)
        });
        let Some((key, entry)) = entry else {
            return Ok(None);
        };
        if let Some(token) = entry.registrytoken.as_ref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credential::Token(token.clone())));
        }
        if let (Some(username), Some(password)) = (&entry.username, &entry.password)
            && !username.is_empty()
        {
            return Ok(Some(Credential::Basic {
                username: username.clone(),
                password: password.clone(),
            }));
        }
        let Some(auth) = entry.auth.as_ref().filter(|a| !a.is_empty()) else {
            return Ok(None);
        };
        let invalid = || DockerConfigError::InvalidAuth { key: key.clone() };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| invalid())?;
        let decoded = String::from_utf8(decoded).map_err(|_| invalid())?;
        let (username, password) = decoded.split_once(':').ok_or_else(invalid)?;
        Ok(Some(Credential::Basic {
            username: username.to_string(),
            password: password.to_string(),
        }))
    }
}

/// How to reach registries.
#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// Registries (`host[:port]`) reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// A docker `config.json`, when one is mounted.
    pub docker_config: Option<PathBuf>,
    /// Bound on the whole look-up.
    pub timeout: Duration,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            insecure_registries: Vec::new(),
            docker_config: None,
            timeout: REGISTRY_TIMEOUT,
        }
    }
}

/// The OCI name of the architecture this binary runs on. prepare runs in the build Pod, on the
/// node Kaniko builds on, so this is the platform Kaniko will pull too.
pub fn this_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// Picks the `linux/<this architecture>` entry of an image index.
fn resolve_platform(entries: &[ImageIndexEntry]) -> Option<String> {
    entries
        .iter()
        .find(|entry| {
            entry.platform.as_ref().is_some_and(|p| {
                p.os.to_string() == "linux" && p.architecture.to_string() == this_architecture()
            })
        })
        .map(|entry| entry.digest.clone())
}

/// Reads the builder image's manifest (through an index, the `linux/<this architecture>`
/// entry) and config from its registry and returns it pinned to that manifest's digest.
///
/// Blocking: it runs the async client on a current-thread runtime of its own, which is gone
/// when it returns, so callers stay outside any async context (the source fetchers use
/// blocking HTTP, which must not run inside one).
pub fn fetch_builder_image(
    image: &str,
    options: &FetchOptions,
) -> Result<BuilderImage, BuilderImageError> {
    let reference = parse_reference(image)?;
    let registry = reference.registry().to_string();
    let auth = match &options.docker_config {
        Some(path) => {
            registry_auth(path, &registry).map_err(|reason| BuilderImageError::DockerConfig {
                path: path.clone(),
                reason,
            })?
        }
        None => RegistryAuth::Anonymous,
    };
    let auth_kind = auth_kind(&auth);
    tracing::info!(image, %registry, auth = auth_kind, "reading the builder image's config");

    let config = ClientConfig {
        protocol: ClientProtocol::HttpsExcept(options.insecure_registries.clone()),
        platform_resolver: Some(Box::new(resolve_platform)),
        connect_timeout: Some(CONNECT_TIMEOUT.min(options.timeout)),
        read_timeout: Some(options.timeout),
        ..ClientConfig::default()
    };
    let client = oci_client::Client::new(config);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(BuilderImageError::Runtime)?;
    let pulled = runtime.block_on(async {
        tokio::time::timeout(
            options.timeout,
            client.pull_manifest_and_config(&reference, &auth),
        )
        .await
    });
    let (_, digest, config_json) = match pulled {
        Err(_elapsed) => {
            return Err(BuilderImageError::Timeout {
                image: image.to_string(),
                registry,
                timeout: options.timeout,
            });
        }
        Ok(Err(error)) => {
            return Err(BuilderImageError::Registry {
                image: image.to_string(),
                registry,
                answer: describe_registry_error(&error),
            });
        }
        Ok(Ok(pulled)) => pulled,
    };
    let metadata = metadata_from_config(image, config_json.as_bytes())?;
    let pinned = pinned_reference(image, &digest)?;
    tracing::info!(builder = %pinned, ?metadata, "builder image resolved");
    Ok(BuilderImage {
        reference: pinned,
        metadata,
    })
}

/// What the log may say about a registry credential.
pub(crate) fn auth_kind(auth: &RegistryAuth) -> &'static str {
    match auth {
        RegistryAuth::Anonymous => "anonymous",
        RegistryAuth::Basic(..) => "basic",
        RegistryAuth::Bearer(_) => "token",
    }
}

/// The registry's answer in words: the client's error and what caused it (a refused connection
/// is only named in the cause chain).
pub(crate) fn describe_registry_error(error: &oci_client::errors::OciDistributionError) -> String {
    use oci_client::errors::OciDistributionError;
    if let OciDistributionError::ImageManifestNotFoundError(what) = error
        && what.contains("platform")
    {
        return format!(
            "the image index has no linux/{} manifest",
            this_architecture()
        );
    }
    with_causes(error)
}

/// An error's text followed by each cause's that it does not already contain: transport errors
/// (a refused connection, a TLS failure) only name what happened in their causes.
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        cause = inner.source();
    }
    text
}

/// The credential `config.json` at `path` holds for `registry`, anonymous when none (or when
/// there is no such file: the Secret is optional). `Err` says why the file is unusable.
pub(crate) fn registry_auth(path: &Path, registry: &str) -> Result<RegistryAuth, String> {
    Ok(auth_for(docker_config_credential(path, registry)?.as_ref()))
}

/// The credential `config.json` at `path` holds for `registry`; `None` when it holds none or
/// there is no such file (the Secret is optional). `Err` says why the file is unusable.
pub(crate) fn docker_config_credential(
    path: &Path,
    registry: &str,
) -> Result<Option<Credential>, String> {
    let json = match std::fs::read(path) {
        Ok(json) => json,
        // The Secret is optional: no push Secret, no file.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let config = parse_docker_config(&json).map_err(|e| e.to_string())?;
    config.credential_for(registry).map_err(|e| e.to_string())
}

/// What the OCI client sends for `credential`.
pub(crate) fn auth_for(credential: Option<&Credential>) -> RegistryAuth {
    match credential {
        Some(Credential::Basic { username, password }) => {
            RegistryAuth::Basic(username.clone(), password.clone())
        }
        Some(Credential::Token(token)) => RegistryAuth::Bearer(token.clone()),
        None => RegistryAuth::Anonymous,
    }
}

/// An OCI client that pushes: plain HTTP to `insecure_registries`, `timeout` per read.
pub(crate) fn push_client(insecure_registries: &[String], timeout: Duration) -> oci_client::Client {
    oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(insecure_registries.to_vec()),
        connect_timeout: Some(CONNECT_TIMEOUT.min(timeout)),
        read_timeout: Some(timeout),
        // One PUT a blob: the chunked upload needs a Location header on every PATCH, which not
        // every registry sends (crane's does not), and our blobs are small.
        use_monolithic_push: true,
        ..ClientConfig::default()
    })
}

/// Whether the registry said it does not have the manifest.
pub(crate) fn is_not_found(error: &OciDistributionError) -> bool {
    match error {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown | OciErrorCode::NotFound
            )
        }),
        OciDistributionError::ServerError { code: 404, .. } => true,
        _ => false,
    }
}

/// A push the registry accepted (201) without the `Location` header the client wants (crane's
/// registry never sends one): what it stored is checked afterwards instead.
pub(crate) fn accept_missing_location(
    pushed: Result<String, OciDistributionError>,
) -> Result<(), OciDistributionError> {
    match pushed {
        Ok(_) | Err(OciDistributionError::RegistryNoLocationError) => Ok(()),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn config_labels_and_user_become_metadata() {
        let json = br#"{"architecture":"amd64","os":"linux","config":{"User":"1001",
            "Labels":{"io.openshift.s2i.scripts-url":"image:///usr/libexec/s2i",
            "io.openshift.s2i.destination":"/opt/dest","io.openshift.s2i.assemble-user":"1002",
            "io.k8s.display-name":"x"}}}"#;
        assert_eq!(
            metadata_from_config("b", json).unwrap(),
            BuilderMetadata {
                scripts_url: Some("image:///usr/libexec/s2i".into()),
                destination: Some("/opt/dest".into()),
                assemble_user: Some("1002".into()),
                user: Some("1001".into()),
            }
        );
    }

    #[test]
    fn a_config_without_user_or_labels_is_root_with_no_labels() {
        for json in [
            &br#"{"config":{"Cmd":["/bin/sh"]}}"#[..],
            br#"{"config":{"User":"","Labels":null}}"#,
            br#"{"architecture":"amd64"}"#,
        ] {
            assert_eq!(
                metadata_from_config("b", json).unwrap(),
                BuilderMetadata {
                    user: Some(String::new()),
                    ..BuilderMetadata::default()
                }
            );
        }
        let error = metadata_from_config("reg/b:1", b"[1]").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("builder image reg/b:1: its config")
        );
    }

    #[test]
    fn references_are_pinned_without_tag() {
        for (image, pinned) in [
            (
                "quay.io/sclorg/python-312-c9s:c9s",
                "quay.io/sclorg/python-312-c9s",
            ),
            ("127.0.0.1:5000/s2i/python", "127.0.0.1:5000/s2i/python"),
            (
                "127.0.0.1:5000/s2i/python:3.12",
                "127.0.0.1:5000/s2i/python",
            ),
            ("python", "python"),
            ("python:3.12-slim", "python"),
            (
                "localhost:5000/a/b:1@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
                "localhost:5000/a/b",
            ),
        ] {
            assert_eq!(
                pinned_reference(image, DIGEST).unwrap(),
                format!("{pinned}@{DIGEST}"),
                "{image}"
            );
        }
        assert!(matches!(
            pinned_reference("python", "sha256:abc"),
            Err(BuilderImageError::InvalidDigest { .. })
        ));
        assert!(matches!(
            pinned_reference("not a reference", DIGEST),
            Err(BuilderImageError::InvalidReference { .. })
        ));
    }

    #[test]
    fn references_name_their_registry() {
        assert_eq!(parse_reference("python").unwrap().registry(), "docker.io");
        assert_eq!(
            parse_reference("127.0.0.1:5000/s2i/x").unwrap().registry(),
            "127.0.0.1:5000"
        );
        assert_eq!(
            parse_reference("quay.io/sclorg/python-312-c9s:c9s")
                .unwrap()
                .registry(),
            "quay.io"
        );
    }

    #[test]
    fn registry_keys_normalize_hosts_and_docker_hub_aliases() {
        for key in [
            "https://index.docker.io/v1/",
            "index.docker.io",
            "docker.io",
            "registry-1.docker.io",
            "HTTPS://Docker.IO",
        ] {
            assert_eq!(normalize_registry(key), "docker.io", "{key}");
        }
        assert_eq!(
            normalize_registry("http://127.0.0.1:5000/v2/"),
            "127.0.0.1:5000"
        );
        assert_eq!(normalize_registry("quay.io"), "quay.io");
        assert_ne!(
            normalize_registry("quay.io"),
            normalize_registry("quay.io:443")
        );
    }

    fn config(json: serde_json::Value) -> DockerConfig {
        parse_docker_config(json.to_string().as_bytes()).unwrap()
    }

    fn basic(username: &str, password: &str) -> Option<Credential> {
        Some(Credential::Basic {
            username: username.into(),
            password: password.into(),
        })
    }

    #[test]
    fn credentials_apply_to_their_registry_only() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("alice:s3cr:et");
        let config = config(serde_json::json!({"auths": {
            "https://index.docker.io/v1/": {"auth": encoded},
            "127.0.0.1:5000": {"username": "bob", "password": "pw"},
            "http://127.0.0.1:5000": {"username": "not-me", "password": "x"},
            "token.example.com": {"registrytoken": "tok", "auth": encoded},
            "oauth.example.com": {"identitytoken": "refresh"},
        }}));
        // Password keeps everything after the first ':'.
        assert_eq!(
            config.credential_for("docker.io").unwrap(),
            basic("alice", "s3cr:et")
        );
        // The key written exactly as the registry wins over an equivalent URL form.
        assert_eq!(
            config.credential_for("127.0.0.1:5000").unwrap(),
            basic("bob", "pw")
        );
        assert_eq!(
            config.credential_for("token.example.com").unwrap(),
            Some(Credential::Token("tok".into()))
        );
        assert_eq!(config.credential_for("oauth.example.com").unwrap(), None);
        assert_eq!(config.credential_for("quay.io").unwrap(), None);
        assert_eq!(config.credential_for("127.0.0.1:5001").unwrap(), None);
    }

    #[test]
    fn docker_config_errors_never_show_the_secret() {
        let config =
            config(serde_json::json!({"auths": {"r.example.com": {"auth": "!!notbase64"}}}));
        let error = config.credential_for("r.example.com").unwrap_err();
        assert_eq!(
            error,
            DockerConfigError::InvalidAuth {
                key: "r.example.com".into()
            }
        );
        assert!(!error.to_string().contains("notbase64"));
        let no_colon = base64::engine::general_purpose::STANDARD.encode("justuser");
        let config = super::tests::config(serde_json::json!({"auths": {"r": {"auth": no_colon}}}));
        assert!(config.credential_for("r").is_err());
        assert!(matches!(
            parse_docker_config(b"{\"auths\": []}"),
            Err(DockerConfigError::Parse(_))
        ));
        assert_eq!(parse_docker_config(b"{}").unwrap().auths.len(), 0);
        let shown = format!(
            "{:?} {:?}",
            basic("u", "hunter2").unwrap(),
            Credential::Token("hunter3".into())
        );
        assert!(!shown.contains("hunter"), "{shown}");
    }

    #[test]
    fn this_architecture_uses_oci_names() {
        let arch = this_architecture();
        assert!(!arch.is_empty());
        if cfg!(target_arch = "x86_64") {
            assert_eq!(arch, "amd64");
        }
    }
}
