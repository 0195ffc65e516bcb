//! Golden files for build Pods: each case's Pod, as YAML, must match
//! `tests/golden/pod/<case>.yaml` byte for byte.
//!
//! After an intended change, regenerate them with `UPDATE_GOLDEN=1 cargo test --test pod_golden`
//! and review the diff like any other code change.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use sourcebuild::api::{
    ArchiveSource, Builder, Cache, ConfigMapSource, EnvVar, GitSource, KeyToPath, Output,
    SecretReference, Source, SourceBuild, SourceBuildSpec,
};
use sourcebuild::pod::{BuildSettings, build_pod};

fn settings() -> BuildSettings {
    BuildSettings {
        default_builder_image: "registry.example.com/s2i/base:1".to_string(),
        kaniko_image: "registry.example.com/kaniko/executor:v1.24.0".to_string(),
        prepare_image: "registry.example.com/sourcebuild/operator:0.1.0".to_string(),
        insecure_registries: vec![],
        user_namespaces: false,
        signing_key_secret: None,
        builder_id: "https://sourcebuild.dev/tests".to_string(),
    }
}

fn source_build(name: &str, generation: i64, spec: SourceBuildSpec) -> SourceBuild {
    let mut sb = SourceBuild::new(name, spec);
    sb.metadata.namespace = Some("team-a".to_string());
    sb.metadata.uid = Some("0b9d3c1e-6f0a-4c4e-9d55-3f1f6a2b7c10".to_string());
    sb.metadata.generation = Some(generation);
    sb
}

fn spec(source: Source, image: &str) -> SourceBuildSpec {
    SourceBuildSpec {
        source,
        builder: Builder::default(),
        output: Output {
            image: image.to_string(),
            push_secret_ref: Some(SecretReference {
                name: "push-creds".to_string(),
            }),
            labels: Default::default(),
            signing: None,
        },
        env: vec![],
        timeout: None,
        cache: None,
        resources: None,
        service_account_name: None,
        ..SourceBuildSpec::default()
    }
}

fn git(secret: bool) -> Source {
    Source {
        git: Some(GitSource {
            url: "https://git.example.com/team/app.git".to_string(),
            revision: Some("v1.2.0".to_string()),
            secret_ref: secret.then(|| SecretReference {
                name: "git-creds".to_string(),
            }),
            poll_interval: None,
        }),
        ..Source::default()
    }
}

fn cases() -> Vec<(&'static str, SourceBuild)> {
    let mut git_with_secret = spec(git(true), "registry.example.com/team/app:1.2.0");
    git_with_secret.builder = Builder {
        image: Some("registry.example.com/s2i/python:3.12".to_string()),
        scripts_url: Some("image:///usr/libexec/s2i".to_string()),
        assemble_user: Some("1001:0".to_string()),
    };
    git_with_secret.env = vec![EnvVar {
        name: "PIP_INDEX_URL".to_string(),
        value: "https://pypi.example.com/simple".to_string(),
    }];
    git_with_secret.output.labels = [(
        "org.opencontainers.image.title".to_string(),
        "app".to_string(),
    )]
    .into();
    git_with_secret.service_account_name = Some("builder".to_string());
    git_with_secret.timeout = Some("45m".parse().unwrap());

    let config_map = spec(
        Source {
            config_map: Some(Box::new(ConfigMapSource {
                name: "hello-src".to_string(),
                items: vec![
                    KeyToPath {
                        key: "app.py".to_string(),
                        path: "app.py".to_string(),
                    },
                    KeyToPath {
                        key: "assemble".to_string(),
                        path: ".s2i/bin/assemble".to_string(),
                    },
                ],
            })),
            context_dir: None,
            ..Source::default()
        },
        "registry.example.com/team/hello:latest",
    );

    let mut archive = spec(
        Source {
            archive: Some(Box::new(ArchiveSource {
                url: "https://files.example.com/app-1.0.tar.gz".to_string(),
                sha256: Some(
                    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".to_string(),
                ),
            })),
            context_dir: Some("services/api".to_string()),
            ..Source::default()
        },
        "registry.example.com/team/api:1.0",
    );
    archive.output.push_secret_ref = None;

    let mut cache_default = spec(git(false), "registry.example.com:5000/team/app:dev");
    cache_default.cache = Some(Box::new(Cache {
        enabled: true,
        repo: None,
    }));
    let mut cache_repo = spec(git(false), "registry.example.com/team/app:dev");
    cache_repo.cache = Some(Box::new(Cache {
        enabled: true,
        repo: Some("registry.example.com/cache/app".to_string()),
    }));

    let mut resources = spec(git(false), "registry.example.com/team/app:1");
    resources.resources = Some(Box::new(ResourceRequirements {
        requests: Some(
            [
                ("cpu".to_string(), Quantity("500m".to_string())),
                ("memory".to_string(), Quantity("1Gi".to_string())),
            ]
            .into(),
        ),
        limits: Some([("memory".to_string(), Quantity("2Gi".to_string()))].into()),
        ..ResourceRequirements::default()
    }));

    let mut signed = spec(git(false), "registry.example.com/team/signed:1");
    signed.output.signing = Some(sourcebuild::api::Signing {
        key_secret_ref: SecretReference {
            name: "cosign-key".to_string(),
        },
    });
    let long_name = format!("payments.{}.frontend", "checkout-service".repeat(5));

    vec![
        ("git-with-secret", source_build("app", 4, git_with_secret)),
        ("configmap-with-items", source_build("hello", 1, config_map)),
        ("archive", source_build("api", 2, archive)),
        (
            "cache-default-repo",
            source_build("cached", 1, cache_default),
        ),
        (
            "cache-explicit-repo",
            source_build("cached2", 1, cache_repo),
        ),
        ("resources", source_build("sized", 9, resources)),
        ("signed", source_build("signed", 3, signed)),
        (
            "long-name",
            source_build(
                &long_name,
                12,
                spec(git(false), "registry.example.com/p/f:1"),
            ),
        ),
    ]
}

#[test]
fn build_pods_match_golden_files() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/pod");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    for (case, sb) in cases() {
        let pod = build_pod(&sb, &settings(), 1).unwrap();
        let yaml = serde_norway::to_string(&pod).unwrap();
        let path = dir.join(format!("{case}.yaml"));
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &yaml).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run UPDATE_GOLDEN=1 cargo test --test pod_golden",
                path.display()
            )
        });
        pretty_assertions::assert_eq!(expected, yaml, "golden file {case}.yaml");
    }
}
