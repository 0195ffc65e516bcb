//! SLSA provenance in the registry (`sourcebuild::provenance`) against real registries on
//! loopback and the pinned cosign and oras: a small image pushed with crane, a key pair made by
//! `cosign generate-key-pair`, published with our code; `cosign verify` and
//! `cosign verify-attestation` accept it with that key and refuse it with another, `oras
//! discover` lists the referrer, and the statement cosign returns names the digests we gave.
//! Both registry kinds: with the OCI 1.1 referrers API (`tools/oci-registry`) and without
//! (`crane registry serve`), where the tag-scheme fallback is written. No transparency log:
//! nothing leaves the machine.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use sourcebuild::builder_image::Credential;
use sourcebuild::provenance::key::{KeyError, load_private_key};
use sourcebuild::provenance::{
    KeySecretError, ProvenanceInput, PublishError, PublishRequest, Published, ReferrersMode,
    ResolvedSource, SigningKey, load_key_secret, publish, statement_bytes,
};
use support::registry::{Registry, free_port};
use support::tools::tool;

const BUILDER_DIGEST: &str =
    "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// A cosign key pair made by `cosign generate-key-pair` in its own directory.
struct KeyPair {
    dir: tempfile::TempDir,
    password: String,
}

impl KeyPair {
    fn generate(password: &str) -> KeyPair {
        let dir = tempfile::tempdir().unwrap();
        let output = cosign(dir.path(), &["generate-key-pair"], password);
        assert!(
            output.status.success(),
            "cosign generate-key-pair: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        KeyPair {
            dir,
            password: password.to_string(),
        }
    }

    fn private_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("cosign.key")).unwrap()
    }

    fn public(&self) -> PathBuf {
        self.dir.path().join("cosign.pub")
    }

    fn load(&self) -> SigningKey {
        load_private_key(&self.private_pem(), Some(self.password.as_bytes())).unwrap()
    }
}

/// Runs the pinned cosign in `dir` with its caches there too (no TUF, no network).
fn cosign(dir: &Path, args: &[&str], password: &str) -> Output {
    Command::new(tool("cosign"))
        .args(args)
        .current_dir(dir)
        .env("COSIGN_PASSWORD", password)
        .env("HOME", dir)
        .env("TUF_ROOT", dir.join("tuf"))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The flags cosign needs here: no transparency log, a plain-HTTP registry.
const OFFLINE: [&str; 3] = [
    "--insecure-ignore-tlog=true",
    "--allow-http-registry",
    "--allow-insecure-registry",
];

fn cosign_verify(public: &Path, image: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let key = public.to_str().unwrap();
    let mut args = vec!["verify", "--key", key];
    args.extend(OFFLINE);
    args.push(image);
    cosign(dir.path(), &args, "")
}

fn cosign_verify_attestation(public: &Path, image: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let key = public.to_str().unwrap();
    let mut args = vec![
        "verify-attestation",
        "--key",
        key,
        "--type",
        "slsaprovenance1",
    ];
    args.extend(OFFLINE);
    args.push(image);
    cosign(dir.path(), &args, "")
}

fn text(output: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `oras discover` of `image` (a digest reference) as JSON.
fn oras_discover(image: &str) -> Value {
    let output = Command::new(tool("oras"))
        .args(["discover", "--plain-http", "--format", "json", image])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "oras discover: {}", text(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The referrers `oras discover` lists: (digest, artifactType).
fn discovered(image: &str) -> Vec<(String, String)> {
    let listing = oras_discover(image);
    // oras 1.3 nests referrers under "referrers"; older ones used "manifests".
    let list = listing["referrers"]
        .as_array()
        .or_else(|| listing["manifests"].as_array())
        .unwrap_or_else(|| panic!("no referrers in {listing}"));
    list.iter()
        .map(|m| {
            (
                m["digest"].as_str().unwrap().to_string(),
                m["artifactType"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Pushes a one-file image with crane; returns (`host/repo:tag`, digest).
fn push_image(registry: &Registry, repository: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let layer = dir.path().join("layer.tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&layer).unwrap());
    let content = format!("hello from {repository}\n");
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    builder
        .append_data(&mut header, "hello.txt", content.as_bytes())
        .unwrap();
    builder.finish().unwrap();
    let image = format!("{}/{repository}:1", registry.host());
    registry.crane(&[
        "append",
        "--new_layer",
        layer.to_str().unwrap(),
        "--new_tag",
        &image,
    ]);
    let digest = registry.digest(&image);
    (image, digest)
}

fn input(repository: &str, digest: &str, finished_on: &str) -> ProvenanceInput {
    ProvenanceInput {
        image: repository.to_string(),
        digest: digest.to_string(),
        external_parameters: json!({"source": {"git": {"url": "https://git.test/app.git"}}}),
        source: ResolvedSource::Git {
            url: "https://git.test/app.git".into(),
            commit: COMMIT.into(),
        },
        builder_image: "registry.test/s2i/python:3.12".into(),
        builder_digest: BUILDER_DIGEST.into(),
        operator_version: "0.1.0".into(),
        kaniko_image: "registry.test/kaniko/executor:v1.25.16".into(),
        dockerfile_sha256: "2".repeat(64),
        builder_id: "https://sourcebuild.dev/operator@test".into(),
        invocation_id: "uid/1/1".into(),
        started_on: "2026-12-07T06:00:00Z".into(),
        finished_on: finished_on.into(),
    }
}

fn request(
    registry: &Registry,
    image: &str,
    digest: &str,
    key: Option<SigningKey>,
    finished_on: &str,
) -> PublishRequest {
    let repository = image.rsplit_once(':').unwrap().0;
    PublishRequest {
        image: image.to_string(),
        digest: digest.to_string(),
        statement: statement_bytes(&input(repository, digest, finished_on)).unwrap(),
        key,
        credential: None,
        insecure_registries: vec![registry.host()],
        created: finished_on.to_string(),
        timeout: Duration::from_secs(60),
    }
}

fn run(request: &PublishRequest) -> Result<Published, PublishError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(publish(request))
}

/// The statements `cosign verify-attestation` printed (one DSSE envelope per line).
fn attested_statements(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|line| {
            let envelope: Value = serde_json::from_str(line).unwrap();
            let payload = base64::engine::general_purpose::STANDARD
                .decode(envelope["payload"].as_str().unwrap())
                .unwrap();
            serde_json::from_slice(&payload).unwrap()
        })
        .collect()
}

/// Everything a signed publication must satisfy, whatever the registry kind.
fn check_signed(registry: &Registry, repository: &str, mode: ReferrersMode) {
    let (image, digest) = push_image(registry, repository);
    let keys = KeyPair::generate("correct horse");
    let published = run(&request(
        registry,
        &image,
        &digest,
        Some(keys.load()),
        "2026-12-07T06:01:00Z",
    ))
    .unwrap();
    assert!(published.signed);
    assert_eq!(published.referrers, mode);
    let signature_digest = published.signature_digest.clone().unwrap();
    let tag = |suffix: &str| {
        format!(
            "{}/{repository}:{}{suffix}",
            registry.host(),
            digest.replace(':', "-")
        )
    };
    assert_eq!(registry.digest(&tag(".sig")), signature_digest);
    assert_eq!(
        registry.digest(&tag(".att")),
        published.attestation_digest,
        "with no earlier attestation, the .att tag is the referrer itself"
    );

    let pinned = format!("{}/{repository}@{digest}", registry.host());
    let verified = cosign_verify(&keys.public(), &pinned);
    assert!(
        verified.status.success(),
        "cosign verify: {}",
        text(&verified)
    );
    assert!(String::from_utf8_lossy(&verified.stdout).contains(&digest));
    let attested = cosign_verify_attestation(&keys.public(), &pinned);
    assert!(
        attested.status.success(),
        "cosign verify-attestation: {}",
        text(&attested)
    );
    let statements = attested_statements(&attested);
    assert_eq!(statements.len(), 1, "{}", text(&attested));
    let statement = &statements[0];
    assert_eq!(statement["predicateType"], "https://slsa.dev/provenance/v1");
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"],
        digest.strip_prefix("sha256:").unwrap()
    );
    assert_eq!(
        statement["subject"][0]["name"],
        format!("{}/{repository}", registry.host())
    );
    let dependencies = &statement["predicate"]["buildDefinition"]["resolvedDependencies"];
    assert_eq!(dependencies[0]["digest"]["gitCommit"], COMMIT);
    assert_eq!(
        dependencies[1]["digest"]["sha256"],
        BUILDER_DIGEST.strip_prefix("sha256:").unwrap()
    );

    // Another key pair verifies nothing.
    let other = KeyPair::generate("");
    let refused = cosign_verify(&other.public(), &pinned);
    assert!(!refused.status.success(), "{}", text(&refused));
    let refused = cosign_verify_attestation(&other.public(), &pinned);
    assert!(!refused.status.success(), "{}", text(&refused));

    // A client other than ours finds the referrer, by API or by the fallback tag.
    let referrers = discovered(&pinned);
    assert!(
        referrers.contains(&(
            published.attestation_digest.clone(),
            "application/vnd.in-toto+json".to_string()
        )),
        "{referrers:?}"
    );
}

#[test]
fn signed_provenance_through_the_referrers_api() {
    let registry = Registry::start_with_referrers_api();
    check_signed(&registry, "team/api", ReferrersMode::Api);
    // No fallback tag where the API exists.
    let fallback = Command::new(registry.crane_path())
        .args(["--insecure", "manifest"])
        .arg(format!("{}/team/api:sha256-0", registry.host()))
        .output()
        .unwrap();
    assert!(!fallback.status.success());
}

#[test]
fn signed_provenance_through_the_tag_scheme_fallback() {
    let registry = Registry::start();
    check_signed(&registry, "team/fallback", ReferrersMode::TagSchema);
}

#[test]
fn the_fallback_index_is_merged_with_what_is_there() {
    let registry = Registry::start();
    let (image, digest) = push_image(&registry, "team/merge");
    let keys = KeyPair::generate("pw");
    let first = run(&request(
        &registry,
        &image,
        &digest,
        Some(keys.load()),
        "2026-12-07T06:01:00Z",
    ))
    .unwrap();
    let second = run(&request(
        &registry,
        &image,
        &digest,
        Some(keys.load()),
        "2026-12-07T07:01:00Z",
    ))
    .unwrap();
    assert_ne!(first.attestation_digest, second.attestation_digest);
    let index = registry.manifest(&format!(
        "{}/team/merge:{}",
        registry.host(),
        digest.replace(':', "-")
    ));
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let listed: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        vec![
            first.attestation_digest.as_str(),
            second.attestation_digest.as_str()
        ]
    );
    // The .att tag holds both attestations (cosign's append), and both verify.
    let att = registry.manifest(&format!(
        "{}/team/merge:{}.att",
        registry.host(),
        digest.replace(':', "-")
    ));
    assert_eq!(att["layers"].as_array().unwrap().len(), 2);
    let pinned = format!("{}/team/merge@{digest}", registry.host());
    let attested = cosign_verify_attestation(&keys.public(), &pinned);
    assert!(attested.status.success(), "{}", text(&attested));
    assert_eq!(attested_statements(&attested).len(), 2);
    // The same signature twice is one layer in .sig.
    assert_eq!(first.signature_digest, second.signature_digest);
}

#[test]
fn unsigned_provenance_is_a_referrer_with_the_bare_statement() {
    let registry = Registry::start_with_referrers_api();
    let (image, digest) = push_image(&registry, "team/unsigned");
    let request = request(&registry, &image, &digest, None, "2026-12-07T06:01:00Z");
    let published = run(&request).unwrap();
    assert!(!published.signed);
    assert_eq!(published.signature_digest, None);
    let pinned = format!("{}/team/unsigned@{digest}", registry.host());
    assert!(discovered(&pinned).contains(&(
        published.attestation_digest.clone(),
        "application/vnd.in-toto+json".to_string()
    )));
    let manifest = registry.manifest(&format!(
        "{}/team/unsigned@{}",
        registry.host(),
        published.attestation_digest
    ));
    let layer = &manifest["layers"][0];
    assert_eq!(layer["mediaType"], "application/vnd.in-toto+json");
    assert_eq!(
        layer["digest"],
        sourcebuild::provenance::layout::sha256_digest(&request.statement)
    );
    assert_eq!(manifest["subject"]["digest"], digest.as_str());
    // Nothing for cosign to verify.
    let keys = KeyPair::generate("");
    assert!(!cosign_verify(&keys.public(), &pinned).status.success());
}

#[test]
fn cosign_keys_load_and_each_failure_is_distinct() {
    let protected = KeyPair::generate("s3cret");
    let pem = protected.private_pem();
    assert!(pem.starts_with(b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"));
    let key = load_private_key(&pem, Some(b"s3cret")).unwrap();
    assert_eq!(
        key.public_key_pem().trim(),
        std::fs::read_to_string(protected.public()).unwrap().trim(),
        "the loaded key is the pair's"
    );
    let no_password = load_private_key(&pem, None).unwrap_err();
    assert_eq!(no_password, KeyError::PasswordRequired);
    let wrong = load_private_key(&pem, Some(b"guess")).unwrap_err();
    assert_eq!(wrong, KeyError::WrongPassword);
    let public = std::fs::read(protected.public()).unwrap();
    assert!(matches!(
        load_private_key(&public, None).unwrap_err(),
        KeyError::Malformed(what) if what.contains("PUBLIC KEY")
    ));
    let truncated = &pem[..pem.len() / 2];
    assert!(matches!(
        load_private_key(truncated, None).unwrap_err(),
        KeyError::Malformed(_)
    ));
    // Each error says something different, and none quotes the key or the password.
    let messages: Vec<String> = [no_password, wrong, KeyError::Malformed("x".into())]
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        messages
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        3
    );
    assert!(messages.iter().all(|m| !m.contains("s3cret")));

    // An empty password (COSIGN_PASSWORD="") needs none given.
    let open = KeyPair::generate("");
    load_private_key(&open.private_pem(), None).unwrap();

    // The Secret's files as mounted: cosign.key, cosign.password (empty means none given).
    let dir = protected.dir.path();
    assert!(matches!(
        load_key_secret(dir),
        Err(KeySecretError::Key(KeyError::PasswordRequired))
    ));
    std::fs::write(dir.join("cosign.password"), "").unwrap();
    assert!(matches!(
        load_key_secret(dir),
        Err(KeySecretError::Key(KeyError::PasswordRequired))
    ));
    std::fs::write(dir.join("cosign.password"), "nope").unwrap();
    assert!(matches!(
        load_key_secret(dir),
        Err(KeySecretError::Key(KeyError::WrongPassword))
    ));
    std::fs::write(dir.join("cosign.password"), "s3cret").unwrap();
    assert_eq!(
        load_key_secret(dir).unwrap().public_key_pem(),
        key.public_key_pem()
    );
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        load_key_secret(empty.path()),
        Err(KeySecretError::MissingKey { .. })
    ));
}

#[test]
fn registry_failures_name_the_image() {
    let closed = format!("127.0.0.1:{}", free_port());
    let image = format!("{closed}/team/app:1");
    let digest = format!("sha256:{}", "3".repeat(64));
    let mut unreachable = PublishRequest {
        image: image.clone(),
        digest: digest.clone(),
        statement: statement_bytes(&input(
            &format!("{closed}/team/app"),
            &digest,
            "2026-12-07T06:01:00Z",
        ))
        .unwrap(),
        key: None,
        credential: None,
        insecure_registries: vec![closed.clone()],
        created: "2026-12-07T06:01:00Z".into(),
        timeout: Duration::from_secs(20),
    };
    match run(&unreachable) {
        Err(error @ PublishError::Unreachable { .. }) => {
            assert!(error.to_string().contains(&image), "{error}")
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }

    let registry = Registry::start();
    unreachable.image = format!("{}/team/missing:1", registry.host());
    unreachable.insecure_registries = vec![registry.host()];
    unreachable.credential = Some(Credential::Basic {
        username: "u".into(),
        password: "never-logged".into(),
    });
    match run(&unreachable) {
        Err(error @ PublishError::ImageNotFound { .. }) => {
            let message = error.to_string();
            assert!(message.contains("team/missing"), "{message}");
            assert!(!message.contains("never-logged"), "{message}");
        }
        other => panic!("expected ImageNotFound, got {other:?}"),
    }
}
