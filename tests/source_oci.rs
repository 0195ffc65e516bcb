//! The `oci` source against a real registry on loopback (`crane registry serve`): artifacts in
//! the Flux format pushed with our client, plain image layers pushed with `crane append`, and
//! the failures a user can meet (a missing artifact, no content layer, an archive escaping its
//! tree); a fake registry on the test HTTP server serves bytes that are not the ones their digest
//! names and asks for credentials.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use oci_client::secrets::RegistryAuth;
use sourcebuild::api::{OciSource, Source, SourceOrigin};
use sourcebuild::reason::FailureReason;
use sourcebuild::source::oci::{
    ANNOTATION_REVISION, ANNOTATION_SOURCE, Artifact, OciError, artifact_manifest, push_artifact,
    sha256_digest,
};
use sourcebuild::source::{FetchError, SourceMounts, fetch};
use support::registry::Registry;
use support::{HttpServer, Response};

/// A tar+gzip of `(path, content)` regular files.
fn tar_gz(files: &[(&str, &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, path, content.as_bytes())
            .unwrap();
    }
    let tar = builder.into_inner().unwrap();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&tar).unwrap();
    encoder.finish().unwrap()
}

fn push(registry: &Registry, image: &str, artifact: &Artifact) -> String {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(push_artifact(
            image,
            artifact,
            &RegistryAuth::Anonymous,
            &[registry.host()],
            Duration::from_secs(60),
        ))
        .unwrap()
}

fn source(image: &str) -> Source {
    Source {
        oci: Some(Box::new(OciSource {
            image: image.to_string(),
            secret_ref: None,
        })),
        ..Source::default()
    }
}

fn mounts(registry: &Registry) -> SourceMounts {
    SourceMounts {
        insecure_registries: vec![registry.host()],
        ..SourceMounts::default()
    }
}

fn read(dir: &Path, path: &str) -> String {
    std::fs::read_to_string(dir.join(path)).unwrap()
}

fn fetch_error(registry: &Registry, image: &str) -> (OciError, FailureReason, tempfile::TempDir) {
    let dest = tempfile::tempdir().unwrap();
    let error = fetch(&source(image), &mounts(registry), dest.path()).unwrap_err();
    let reason = error.reason();
    let FetchError::Oci(error) = error else {
        panic!("not an OCI error: {error}");
    };
    (error, reason, dest)
}

fn is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().next().is_none()
}

#[test]
fn a_flux_artifact_is_pulled_by_tag_and_by_digest() {
    let registry = Registry::start();
    let image = format!("{}/team/app/source:v1", registry.host());
    let artifact = Artifact {
        content: tar_gz(&[("app.py", "print('hi')\n"), (".s2i/environment", "A=1\n")]),
        annotations: BTreeMap::from([
            (
                ANNOTATION_SOURCE.to_string(),
                "https://example.com/team/app".to_string(),
            ),
            (
                ANNOTATION_REVISION.to_string(),
                "main@sha1:0123".to_string(),
            ),
        ]),
    };
    let digest = push(&registry, &image, &artifact);
    // What we computed is what the registry serves, and what crane reads as a Flux artifact.
    assert_eq!(digest, registry.digest(&image));
    let manifest = registry.manifest(&image);
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.cncf.flux.config.v1+json"
    );
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.cncf.flux.content.v1.tar+gzip"
    );

    let dest = tempfile::tempdir().unwrap();
    let fetched = fetch(&source(&image), &mounts(&registry), dest.path()).unwrap();
    assert_eq!(fetched.revision.as_deref(), Some(digest.as_str()));
    assert_eq!(fetched.location, format!("oci://{image}"));
    assert_eq!(
        fetched.origin,
        Some(SourceOrigin {
            source: Some("https://example.com/team/app".into()),
            revision: Some("main@sha1:0123".into()),
        })
    );
    assert_eq!(read(dest.path(), "app.py"), "print('hi')\n");
    assert_eq!(read(dest.path(), ".s2i/environment"), "A=1\n");

    // Retagging the repository does not change what a pinned reference builds.
    let pinned = format!("{}/team/app/source@{digest}", registry.host());
    push(
        &registry,
        &image,
        &Artifact {
            content: tar_gz(&[("app.py", "print('changed')\n")]),
            annotations: BTreeMap::new(),
        },
    );
    let dest = tempfile::tempdir().unwrap();
    let fetched = fetch(&source(&pinned), &mounts(&registry), dest.path()).unwrap();
    assert_eq!(fetched.revision.as_deref(), Some(digest.as_str()));
    assert_eq!(read(dest.path(), "app.py"), "print('hi')\n");
}

#[test]
fn a_plain_image_layer_pushed_by_crane_is_a_source() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let layer = dir.path().join("layer.tar.gz");
    std::fs::write(&layer, tar_gz(&[("app.py", "print('plain')\n")])).unwrap();
    for (tag, oci) in [("docker", false), ("oci", true)] {
        let image = format!("{}/team/plain:{tag}", registry.host());
        let mut args = vec!["append", "-f", layer.to_str().unwrap(), "-t", &image];
        if oci {
            args.push("--oci-empty-base");
        }
        registry.crane(&args);
        let dest = tempfile::tempdir().unwrap();
        let fetched = fetch(&source(&image), &mounts(&registry), dest.path()).unwrap();
        assert_eq!(fetched.revision, Some(registry.digest(&image)));
        assert_eq!(fetched.origin, None);
        assert_eq!(read(dest.path(), "app.py"), "print('plain')\n");
    }
}

#[test]
fn a_missing_artifact_names_itself() {
    let registry = Registry::start();
    for image in [
        format!("{}/team/none:v1", registry.host()),
        format!("{}/team/none@sha256:{}", registry.host(), "0".repeat(64)),
    ] {
        let (error, reason, dest) = fetch_error(&registry, &image);
        assert!(matches!(error, OciError::NotFound { .. }), "{error}");
        assert_eq!(reason, FailureReason::SourceFetchFailed);
        assert!(
            error
                .to_string()
                .starts_with(&format!("OCI artifact {image} not found in")),
            "{error}"
        );
        assert!(is_empty(dest.path()));
    }
    // A registry that does not answer at all.
    let port = support::registry::free_port();
    let image = format!("127.0.0.1:{port}/team/app:v1");
    let dest = tempfile::tempdir().unwrap();
    let mounts = SourceMounts {
        insecure_registries: vec![format!("127.0.0.1:{port}")],
        ..SourceMounts::default()
    };
    let error = fetch(&source(&image), &mounts, dest.path()).unwrap_err();
    assert_eq!(error.reason(), FailureReason::SourceFetchFailed);
    assert!(
        error
            .to_string()
            .contains(&format!("pulling OCI artifact {image}")),
        "{error}"
    );
}

/// Pushes a manifest whose layers have the given media types (each layer the same blob).
fn push_raw(registry: &Registry, image: &str, blob: &[u8], media_types: &[&str]) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = oci_client::Client::new(oci_client::client::ClientConfig {
        protocol: oci_client::client::ClientProtocol::HttpsExcept(vec![registry.host()]),
        use_monolithic_push: true,
        ..Default::default()
    });
    let reference: oci_client::Reference = image.parse().unwrap();
    let layers: Vec<_> = media_types
        .iter()
        .map(|m| serde_json::json!({"mediaType": m, "digest": sha256_digest(blob), "size": blob.len()}))
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256_digest(b"{}"), "size": 2},
        "layers": layers,
    }))
    .unwrap();
    runtime.block_on(async {
        client
            .store_auth_if_needed(reference.resolve_registry(), &RegistryAuth::Anonymous)
            .await;
        // crane's registry answers 201 without a Location header, which the client reports.
        let stored = |pushed: Result<String, oci_client::errors::OciDistributionError>| {
            if let Err(error) = pushed {
                assert!(
                    matches!(
                        error,
                        oci_client::errors::OciDistributionError::RegistryNoLocationError
                    ),
                    "{error}"
                );
            }
        };
        stored(
            client
                .push_blob(&reference, b"{}".to_vec(), &sha256_digest(b"{}"))
                .await,
        );
        stored(
            client
                .push_blob(&reference, blob.to_vec(), &sha256_digest(blob))
                .await,
        );
        stored(
            client
                .push_manifest_raw(
                    &reference,
                    manifest,
                    "application/vnd.oci.image.manifest.v1+json"
                        .parse()
                        .unwrap(),
                )
                .await,
        );
    });
}

#[test]
fn an_artifact_without_exactly_one_tar_gzip_layer_is_invalid() {
    let registry = Registry::start();
    let blob = tar_gz(&[("app.py", "x")]);
    let image = format!("{}/team/helm:v1", registry.host());
    push_raw(
        &registry,
        &image,
        &blob,
        &["application/vnd.cncf.helm.chart.content.v1.tar+gzip"],
    );
    let (error, reason, _) = fetch_error(&registry, &image);
    assert!(matches!(error, OciError::NoContentLayer { .. }), "{error}");
    assert_eq!(reason, FailureReason::InvalidSource);
    assert!(
        error
            .to_string()
            .contains("[application/vnd.cncf.helm.chart.content.v1.tar+gzip]"),
        "{error}"
    );

    let image = format!("{}/team/two:v1", registry.host());
    push_raw(
        &registry,
        &image,
        &blob,
        &[
            "application/vnd.cncf.flux.content.v1.tar+gzip",
            "application/vnd.oci.image.layer.v1.tar+gzip",
        ],
    );
    let (error, reason, _) = fetch_error(&registry, &image);
    assert!(
        matches!(error, OciError::SeveralContentLayers { count: 2, .. }),
        "{error}"
    );
    assert_eq!(reason, FailureReason::InvalidSource);
}

/// A registry of one artifact (`team/app:v1`) on the test HTTP server, serving `blob` for the
/// content layer whatever the manifest says, and asking for basic auth when `user` is set.
fn fake_registry(
    content: Vec<u8>,
    blob: Vec<u8>,
    user: Option<(&'static str, &'static str)>,
) -> (HttpServer, String) {
    let manifest = artifact_manifest(&Artifact {
        content,
        annotations: BTreeMap::new(),
    });
    let digest = sha256_digest(&manifest);
    let expected = user.map(|(name, password)| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{name}:{password}"))
        )
    });
    let server = HttpServer::start(move |request| {
        if let Some(expected) = &expected
            && request.header("authorization") != Some(expected.as_str())
        {
            let mut response = Response::status(401);
            response
                .headers
                .push(("WWW-Authenticate".into(), "Basic realm=\"test\"".into()));
            return response;
        }
        let path = request.target.as_str();
        if path == "/v2/" {
            Response::ok(vec![])
        } else if path.starts_with("/v2/team/app/manifests/") {
            let mut response = Response::ok(manifest.clone());
            response.headers.push((
                "Content-Type".into(),
                "application/vnd.oci.image.manifest.v1+json".into(),
            ));
            response
        } else if path == format!("/v2/team/app/blobs/{}", sha256_digest(b"{}")) {
            Response::ok(b"{}".to_vec())
        } else if path.starts_with("/v2/team/app/blobs/") {
            Response::ok(blob.clone())
        } else {
            Response::status(404)
        }
    });
    (server, digest)
}

fn fake_mounts(server: &HttpServer, docker_config: Option<&Path>) -> SourceMounts {
    SourceMounts {
        insecure_registries: vec![format!("{}:{}", support::http::listen_ip(), server.port())],
        oci_docker_config: docker_config.map(Path::to_path_buf),
        ..SourceMounts::default()
    }
}

fn fake_image(server: &HttpServer) -> String {
    format!(
        "{}:{}/team/app:v1",
        support::http::listen_ip(),
        server.port()
    )
}

#[test]
fn a_blob_whose_bytes_do_not_match_its_digest_is_refused() {
    let content = tar_gz(&[("app.py", "print('hi')\n")]);
    let tampered = tar_gz(&[("app.py", "print('pwned')\n")]);
    let (server, _) = fake_registry(content.clone(), tampered.clone(), None);
    let dest = tempfile::tempdir().unwrap();
    let error = fetch(
        &source(&fake_image(&server)),
        &fake_mounts(&server, None),
        dest.path(),
    )
    .unwrap_err();
    assert_eq!(error.reason(), FailureReason::SourceFetchFailed);
    let FetchError::Oci(error) = error else {
        panic!("{error}")
    };
    assert!(
        matches!(error, OciError::BlobDigestMismatch { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains(&sha256_digest(&content)),
        "{error}"
    );
    assert!(
        error.to_string().contains(&sha256_digest(&tampered)),
        "{error}"
    );
    assert!(is_empty(dest.path()));
}

#[test]
fn credentials_come_from_the_mounted_docker_config() {
    let content = tar_gz(&[("app.py", "print('private')\n")]);
    let (server, digest) = fake_registry(content.clone(), content, Some(("alice", "s3cret")));
    let image = fake_image(&server);

    // Anonymous: the registry's 401 is the message.
    let dest = tempfile::tempdir().unwrap();
    let error = fetch(&source(&image), &fake_mounts(&server, None), dest.path()).unwrap_err();
    assert_eq!(error.reason(), FailureReason::SourceFetchFailed);
    assert!(
        error
            .to_string()
            .contains(&format!("pulling OCI artifact {image}")),
        "{error}"
    );

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    let registry = format!("{}:{}", support::http::listen_ip(), server.port());
    std::fs::write(
        &config,
        serde_json::json!({"auths": {registry: {"username": "alice", "password": "s3cret"}}})
            .to_string(),
    )
    .unwrap();
    let dest = tempfile::tempdir().unwrap();
    let fetched = fetch(
        &source(&image),
        &fake_mounts(&server, Some(&config)),
        dest.path(),
    )
    .unwrap();
    assert_eq!(fetched.revision, Some(digest));
    assert_eq!(read(dest.path(), "app.py"), "print('private')\n");
}

#[test]
fn an_artifact_escaping_its_tree_leaves_nothing() {
    let registry = Registry::start();
    let image = format!("{}/team/evil:v1", registry.host());
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_size(0);
    header.set_mode(0o777);
    builder
        .append_link(&mut header, "escape", "../../etc/passwd")
        .unwrap();
    let tar = builder.into_inner().unwrap();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&tar).unwrap();
    push(
        &registry,
        &image,
        &Artifact {
            content: encoder.finish().unwrap(),
            annotations: BTreeMap::new(),
        },
    );
    let (error, _, dest) = fetch_error(&registry, &image);
    assert!(
        matches!(
            error,
            OciError::Unpack(sourcebuild::source::ArchiveError::LinkOutside { .. })
        ),
        "{error}"
    );
    assert!(is_empty(dest.path()));
}
