//! The in-toto Statement v1 with a SLSA v1 provenance predicate, from plain values (no I/O).

use serde_json::{Map, Value, json};

/// `_type` of an in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// `predicateType` of SLSA provenance v1.
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";

/// `buildDefinition.buildType` of every statement we write. Its parameters:
///
/// - `externalParameters`: the SourceBuild's `.spec` as applied (a JSON object, as the controller
///   saw it; Secret *names* only, never their contents).
/// - `internalParameters`: `operatorVersion` (the sourcebuild-operator version that built),
///   `kanikoImage` (the Kaniko executor image reference the build Pod ran),
///   `dockerfileSha256` (hex sha256 of the Dockerfile the operator generated).
/// - `resolvedDependencies`: first the source (named `source`), then the builder image (named
///   `builderImage`):
///   - git: `uri` `git+<url>`, `digest.gitCommit` the commit built;
///   - archive: `uri` the archive URL, `digest.sha256` the archive's sha256;
///   - ConfigMap: `uri` `k8s://<namespace>/configmaps/<name>`, `digest.sha256` of the content
///     when known, `annotations.resourceVersion` when known;
///   - OCI artifact: `uri` `oci://<reference>`, `digest.sha256` of the artifact's manifest;
///   - builder image: `uri` `oci://<reference as written in the spec>`, `digest.sha256` of the
///     manifest the build ran on.
/// - `runDetails.builder.id`: who built (the operator's identity and its cluster, configurable);
///   `runDetails.builder.version.sourcebuild-operator`: the operator version.
/// - `runDetails.metadata.invocationId`: the SourceBuild's uid, generation and build number;
///   `startedOn` / `finishedOn`: RFC 3339 UTC times of the build.
pub const BUILD_TYPE: &str = "https://sourcebuild.dev/SourceBuild/v1";

/// Where the source of a build came from, resolved to exact content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResolvedSource {
    /// A git repository at a commit.
    Git { url: String, commit: String },
    /// An archive download; `sha256` as `sha256:<hex>` or bare hex.
    Archive { url: String, sha256: String },
    /// A ConfigMap; at least one of `content_sha256` (`sha256:<hex>` or hex) and
    /// `resource_version` should be known.
    ConfigMap {
        namespace: String,
        name: String,
        content_sha256: Option<String>,
        resource_version: Option<String>,
    },
    /// An OCI artifact; `digest` its manifest's `sha256:<hex>`.
    Oci { reference: String, digest: String },
}

/// Everything a statement says, as plain values.
#[derive(Clone, Debug, PartialEq)]
pub struct ProvenanceInput {
    /// The output repository, without tag or digest (the subject's name).
    pub image: String,
    /// The output image's manifest digest, `sha256:<hex>`.
    pub digest: String,
    /// The SourceBuild's spec as applied (a JSON object).
    pub external_parameters: Value,
    pub source: ResolvedSource,
    /// The builder image as written in the spec.
    pub builder_image: String,
    /// Its manifest digest, `sha256:<hex>`.
    pub builder_digest: String,
    pub operator_version: String,
    pub kaniko_image: String,
    /// Hex (or `sha256:<hex>`) sha256 of the generated Dockerfile.
    pub dockerfile_sha256: String,
    pub builder_id: String,
    pub invocation_id: String,
    /// RFC 3339, UTC.
    pub started_on: String,
    /// RFC 3339, UTC.
    pub finished_on: String,
}

/// Why a statement could not be written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StatementError {
    /// A digest field is not `sha256:` followed by 64 lowercase hex digits.
    #[error("{field} is not a sha256 digest (sha256:<64 hex digits>): {value:?}")]
    InvalidDigest { field: &'static str, value: String },
    /// `external_parameters` is not a JSON object (SLSA requires one).
    #[error("external parameters must be a JSON object")]
    ExternalParametersNotObject,
}

/// The 64 hex digits of a sha256 digest given as `sha256:<hex>` (or bare hex when `bare_ok`).
fn sha256_hex<'a>(
    field: &'static str,
    value: &'a str,
    bare_ok: bool,
) -> Result<&'a str, StatementError> {
    let hex = match value.strip_prefix("sha256:") {
        Some(hex) => hex,
        None if bare_ok => value,
        None => "",
    };
    if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(hex)
    } else {
        Err(StatementError::InvalidDigest {
            field,
            value: value.to_string(),
        })
    }
}

fn source_descriptor(source: &ResolvedSource) -> Result<Value, StatementError> {
    Ok(match source {
        ResolvedSource::Git { url, commit } => json!({
            "name": "source",
            "uri": format!("git+{url}"),
            "digest": {"gitCommit": commit},
        }),
        ResolvedSource::Archive { url, sha256 } => json!({
            "name": "source",
            "uri": url,
            "digest": {"sha256": sha256_hex("source.sha256", sha256, true)?},
        }),
        ResolvedSource::ConfigMap {
            namespace,
            name,
            content_sha256,
            resource_version,
        } => {
            let mut descriptor = Map::new();
            descriptor.insert("name".into(), "source".into());
            descriptor.insert(
                "uri".into(),
                format!("k8s://{namespace}/configmaps/{name}").into(),
            );
            if let Some(sha256) = content_sha256 {
                let hex = sha256_hex("source.content_sha256", sha256, true)?;
                descriptor.insert("digest".into(), json!({"sha256": hex}));
            }
            if let Some(version) = resource_version {
                descriptor.insert("annotations".into(), json!({"resourceVersion": version}));
            }
            Value::Object(descriptor)
        }
        ResolvedSource::Oci { reference, digest } => json!({
            "name": "source",
            "uri": format!("oci://{reference}"),
            "digest": {"sha256": sha256_hex("source.digest", digest, false)?},
        }),
    })
}

/// The statement as a JSON value.
pub fn statement(input: &ProvenanceInput) -> Result<Value, StatementError> {
    if !input.external_parameters.is_object() {
        return Err(StatementError::ExternalParametersNotObject);
    }
    let subject_hex = sha256_hex("digest", &input.digest, false)?;
    let builder_hex = sha256_hex("builder_digest", &input.builder_digest, false)?;
    let dockerfile_hex = sha256_hex("dockerfile_sha256", &input.dockerfile_sha256, true)?;
    Ok(sorted(json!({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": input.image, "digest": {"sha256": subject_hex}}],
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": input.external_parameters,
                "internalParameters": {
                    "operatorVersion": input.operator_version,
                    "kanikoImage": input.kaniko_image,
                    "dockerfileSha256": dockerfile_hex,
                },
                "resolvedDependencies": [
                    source_descriptor(&input.source)?,
                    {
                        "name": "builderImage",
                        "uri": format!("oci://{}", input.builder_image),
                        "digest": {"sha256": builder_hex},
                    },
                ],
            },
            "runDetails": {
                "builder": {
                    "id": input.builder_id,
                    "version": {"sourcebuild-operator": input.operator_version},
                },
                "metadata": {
                    "invocationId": input.invocation_id,
                    "startedOn": input.started_on,
                    "finishedOn": input.finished_on,
                },
            },
        },
    })))
}

/// The statement's bytes: compact JSON, keys sorted at every level, so the same input always
/// gives the same bytes (and the same attestation digest).
pub fn statement_bytes(input: &ProvenanceInput) -> Result<Vec<u8>, StatementError> {
    Ok(serde_json::to_vec(&statement(input)?).expect("a JSON value always serializes"))
}

/// `value` with every object's keys in sorted order (whatever order serde_json's map keeps).
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn input(source: ResolvedSource) -> ProvenanceInput {
        ProvenanceInput {
            image: "registry.test/team/hello".into(),
            digest: format!("sha256:{}", "a".repeat(64)),
            external_parameters: json!({"source": {"git": {"url": "https://git.test/app.git"}}, "output": {"image": "registry.test/team/hello:1"}}),
            source,
            builder_image: "registry.test/s2i/python:3.12".into(),
            builder_digest: format!("sha256:{}", "b".repeat(64)),
            operator_version: "0.9.0".into(),
            kaniko_image: "registry.test/kaniko/executor:v1.25.16".into(),
            dockerfile_sha256: "c".repeat(64),
            builder_id: "https://sourcebuild.dev/operator@cluster.test".into(),
            invocation_id: "uid-1234/generation/3/build/7".into(),
            started_on: "2026-12-07T06:00:00Z".into(),
            finished_on: "2026-12-07T06:01:30Z".into(),
        }
    }

    #[test]
    fn golden_statement_for_a_git_source() {
        let bytes = statement_bytes(&input(ResolvedSource::Git {
            url: "https://git.test/app.git".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
        }))
        .unwrap();
        let expected = concat!(
            r#"{"_type":"https://in-toto.io/Statement/v1","predicate":{"buildDefinition":{"buildType":"https://sourcebuild.dev/SourceBuild/v1","#,
            r#""externalParameters":{"output":{"image":"registry.test/team/hello:1"},"source":{"git":{"url":"https://git.test/app.git"}}},"#,
            r#""internalParameters":{"dockerfileSha256":"cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc","kanikoImage":"registry.test/kaniko/executor:v1.25.16","operatorVersion":"0.9.0"},"#,
            r#""resolvedDependencies":[{"digest":{"gitCommit":"0123456789abcdef0123456789abcdef01234567"},"name":"source","uri":"git+https://git.test/app.git"},"#,
            r#"{"digest":{"sha256":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"},"name":"builderImage","uri":"oci://registry.test/s2i/python:3.12"}]},"#,
            r#""runDetails":{"builder":{"id":"https://sourcebuild.dev/operator@cluster.test","version":{"sourcebuild-operator":"0.9.0"}},"#,
            r#""metadata":{"finishedOn":"2026-12-07T06:01:30Z","invocationId":"uid-1234/generation/3/build/7","startedOn":"2026-12-07T06:00:00Z"}}},"#,
            r#""predicateType":"https://slsa.dev/provenance/v1","#,
            r#""subject":[{"digest":{"sha256":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},"name":"registry.test/team/hello"}]}"#,
        );
        assert_eq!(String::from_utf8(bytes).unwrap(), expected);
    }

    #[test]
    fn every_source_kind_is_a_resource_descriptor() {
        let deps = |source| {
            statement(&input(source)).unwrap()["predicate"]["buildDefinition"]
                ["resolvedDependencies"][0]
                .clone()
        };
        let hex = "d".repeat(64);
        assert_eq!(
            deps(ResolvedSource::Archive {
                url: "https://files.test/app.tar.gz".into(),
                sha256: format!("sha256:{hex}"),
            }),
            json!({"name": "source", "uri": "https://files.test/app.tar.gz", "digest": {"sha256": hex}})
        );
        assert_eq!(
            deps(ResolvedSource::ConfigMap {
                namespace: "team".into(),
                name: "app".into(),
                content_sha256: Some(hex.clone()),
                resource_version: Some("4711".into()),
            }),
            json!({"name": "source", "uri": "k8s://team/configmaps/app", "digest": {"sha256": hex},
                   "annotations": {"resourceVersion": "4711"}})
        );
        assert_eq!(
            deps(ResolvedSource::ConfigMap {
                namespace: "team".into(),
                name: "app".into(),
                content_sha256: None,
                resource_version: Some("4711".into()),
            }),
            json!({"name": "source", "uri": "k8s://team/configmaps/app",
                   "annotations": {"resourceVersion": "4711"}})
        );
        assert_eq!(
            deps(ResolvedSource::Oci {
                reference: "registry.test/team/src:v1".into(),
                digest: format!("sha256:{hex}"),
            }),
            json!({"name": "source", "uri": "oci://registry.test/team/src:v1", "digest": {"sha256": hex}})
        );
    }

    #[test]
    fn bad_digests_and_parameters_are_refused() {
        let mut bad = input(ResolvedSource::Git {
            url: "u".into(),
            commit: "c".into(),
        });
        bad.digest = "a".repeat(64);
        assert_eq!(
            statement(&bad),
            Err(StatementError::InvalidDigest {
                field: "digest",
                value: "a".repeat(64)
            })
        );
        let mut bad = input(ResolvedSource::Oci {
            reference: "r".into(),
            digest: "sha256:XYZ".into(),
        });
        assert!(matches!(
            statement(&bad),
            Err(StatementError::InvalidDigest {
                field: "source.digest",
                ..
            })
        ));
        bad.source = ResolvedSource::Git {
            url: "u".into(),
            commit: "c".into(),
        };
        bad.external_parameters = json!("spec");
        assert_eq!(
            statement(&bad),
            Err(StatementError::ExternalParametersNotObject)
        );
    }
}
