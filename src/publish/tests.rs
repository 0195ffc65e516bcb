use super::*;
use crate::api::{ArchiveSource, ConfigMapSource, GitSource, OciSource, Output, Source};

const DIGEST: &str = "sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945";
const BUILDER_DIGEST: &str =
    "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn request(source: Source) -> PublishRequest {
    let spec = SourceBuildSpec {
        source,
        output: Output {
            image: "registry.example.com:5000/team/app:1.0".into(),
            ..Output::default()
        },
        ..SourceBuildSpec::default()
    };
    PublishRequest {
        output_image: spec.output.image.clone(),
        spec: serde_json::to_value(&spec).unwrap(),
        namespace: "team".into(),
        name: "app".into(),
        uid: "uid-1".into(),
        generation: 4,
        build: 2,
        builder_id: "https://sourcebuild.dev/clusters/test".into(),
        operator_version: "0.1.0".into(),
        kaniko_image: "registry.example.com/kaniko:v1".into(),
        signing_key_secret: None,
        insecure_registries: vec![],
    }
}

fn prepared(revision: Option<&str>) -> PrepareResult {
    PrepareResult {
        revision: revision.map(str::to_string),
        origin: None,
        dockerfile_sha256: format!("sha256:{}", "d".repeat(64)),
        builder_image: format!("registry.example.com/s2i/python@{BUILDER_DIGEST}"),
        started: Some("2026-12-07T08:00:00Z".into()),
    }
}

#[test]
fn kanikos_digest_file_gives_the_digest_and_nothing_else() {
    let line = format!("registry.example.com:5000/team/app@{DIGEST}\n");
    assert_eq!(parse_digest_file(&line).as_deref(), Some(DIGEST));
    for bad in [
        String::new(),
        DIGEST.to_string(),
        format!("app@{}", DIGEST.to_uppercase()),
        format!("app@{DIGEST}\napp@{DIGEST}\n"),
        format!("app@{DIGEST}0"),
        format!("app@sha512:{}", "a".repeat(64)),
    ] {
        assert_eq!(parse_digest_file(&bad), None, "{bad:?}");
    }
}

#[test]
fn each_source_resolves_to_what_prepare_fetched() {
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let sha = format!("sha256:{}", "a".repeat(64));
    let cases = [
        (
            Source {
                git: Some(GitSource {
                    url: "https://git.example.com/app.git".into(),
                    ..GitSource::default()
                }),
                ..Source::default()
            },
            commit,
            ResolvedSource::Git {
                url: "https://git.example.com/app.git".into(),
                commit: commit.into(),
            },
        ),
        (
            Source {
                archive: Some(Box::new(ArchiveSource {
                    url: "https://files.example.com/app.tar.gz".into(),
                    ..ArchiveSource::default()
                })),
                ..Source::default()
            },
            sha.as_str(),
            ResolvedSource::Archive {
                url: "https://files.example.com/app.tar.gz".into(),
                sha256: sha.clone(),
            },
        ),
        (
            Source {
                config_map: Some(Box::new(ConfigMapSource {
                    name: "app-src".into(),
                    ..ConfigMapSource::default()
                })),
                ..Source::default()
            },
            sha.as_str(),
            ResolvedSource::ConfigMap {
                namespace: "team".into(),
                name: "app-src".into(),
                content_sha256: Some(sha.clone()),
                resource_version: None,
            },
        ),
        (
            Source {
                oci: Some(Box::new(OciSource {
                    image: "registry.example.com/team/app-source:main".into(),
                    ..OciSource::default()
                })),
                ..Source::default()
            },
            sha.as_str(),
            ResolvedSource::Oci {
                reference: "registry.example.com/team/app-source:main".into(),
                digest: sha.clone(),
            },
        ),
    ];
    for (source, revision, expected) in cases {
        let request = request(source);
        let input = provenance_input(
            &request,
            &prepared(Some(revision)),
            DIGEST,
            "2026-12-07T08:01:00Z",
        )
        .unwrap();
        assert_eq!(input.source, expected);
        assert_eq!(input.image, "registry.example.com:5000/team/app");
        assert_eq!(input.digest, DIGEST);
        assert_eq!(input.builder_image, "registry.example.com/s2i/python");
        assert_eq!(input.builder_digest, BUILDER_DIGEST);
        assert_eq!(input.external_parameters, request.spec);
        assert_eq!(input.invocation_id, "team/app/uid-1/generation/4/build/2");
        assert_eq!(input.started_on, "2026-12-07T08:00:00Z");
        assert_eq!(input.finished_on, "2026-12-07T08:01:00Z");
        assert_eq!(input.dockerfile_sha256, prepared(None).dockerfile_sha256);
    }
}

#[test]
fn what_cannot_be_attested_is_said() {
    let git = Source {
        git: Some(GitSource {
            url: "https://git.example.com/app.git".into(),
            ..GitSource::default()
        }),
        ..Source::default()
    };
    let error = provenance_input(&request(git.clone()), &prepared(None), DIGEST, "t").unwrap_err();
    assert!(error.contains("no source revision"), "{error}");
    let mut unpinned = prepared(Some("0123456789abcdef0123456789abcdef01234567"));
    unpinned.builder_image = "registry.example.com/s2i/python:3.12".into();
    let error = provenance_input(&request(git), &unpinned, DIGEST, "t").unwrap_err();
    assert!(error.contains("not pinned by digest"), "{error}");
}

#[test]
fn key_problems_are_signing_key_invalid_and_the_rest_provenance_push_failed() {
    let missing = PublishStepError::MissingKey {
        secret: "cosign".into(),
    };
    assert_eq!(missing.reason(), FailureReason::SigningKeyInvalid);
    assert!(missing.to_string().contains("cosign.key"), "{missing}");
    let key = PublishStepError::Key {
        secret: "cosign".into(),
        source: KeyError::PasswordRequired,
    };
    assert_eq!(key.reason(), FailureReason::SigningKeyInvalid);
    assert!(key.to_string().contains("\"cosign\""), "{key}");
    let input = PublishStepError::Input {
        what: "Kaniko's image digest file",
        path: PathBuf::from("/var/run/sourcebuild/digest/image"),
        problem: "unreadable".into(),
    };
    assert_eq!(input.reason(), FailureReason::ProvenancePushFailed);
}

#[test]
fn a_long_failure_still_fits_the_termination_message() {
    let report = PublishReport::Failed(PrepareFailure {
        reason: FailureReason::ProvenancePushFailed,
        message: "registry answered: ".to_string() + &"x".repeat(10_000),
    });
    let json = report_json(&report);
    assert!(json.len() <= TERMINATION_MESSAGE_LIMIT, "{}", json.len());
    let PublishReport::Failed(back) = serde_json::from_str(&json).unwrap() else {
        panic!("not a failure: {json}");
    };
    assert_eq!(back.reason, FailureReason::ProvenancePushFailed);
    assert!(back.message.starts_with("registry answered: xxx"));
}
