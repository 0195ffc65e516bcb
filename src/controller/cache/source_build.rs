//! SourceBuilds as the controller caches them.
//!
//! The kube-runtime Controller reconciles what its reflector store holds, so the cached type
//! is the reconciled one. A `SourceBuild` is wide before it holds a string (mostly empty
//! options), and each of its strings is an allocation of its own. [`CachedSourceBuild`]
//! keeps the metadata as [`prune_source_build`] leaves it but for the uid, which it holds
//! beside it (in the metadata it would be copied into the reflector store's key too), and spec
//! and status [packed](crate::controller::cache::pack) against a typical finished
//! build's. A reconcile unpacks the one SourceBuild it works on, and everything past its first
//! line reads a `SourceBuild`.

use std::borrow::Cow;
use std::sync::LazyLock;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde::{Deserialize, Deserializer, Serialize};

use crate::api::{REBUILD_ANNOTATION, SourceBuild, SourceBuildSpec, SourceBuildStatus};
use crate::controller::cache::pack::{self, PackError};

/// A cached SourceBuild: pruned metadata, its uid, and spec and status packed (see the module's
/// comment). Its [`Resource::meta`] has no uid: read the SourceBuild [`unpack`](Self::unpack)
/// gives.
#[derive(Clone, Debug, PartialEq)]
pub struct CachedSourceBuild {
    metadata: ObjectMeta,
    uid: Option<Box<str>>,
    packed: Box<[u8]>,
}

/// Why a cached SourceBuild could not be packed or unpacked (a bug: it is our own JSON).
#[derive(Debug, thiserror::Error)]
#[error("the cached SourceBuild {name}: {source}")]
pub struct UnpackError {
    name: String,
    source: PackError,
}

/// Drops what the controller never reads of a cached SourceBuild's metadata: managedFields,
/// labels, and annotations but the rebuild request (kubectl's last-applied-configuration alone
/// is a copy of the whole object). Status writes are patches of the status subresource, so
/// nothing pruned here is ever written back.
pub fn prune_source_build(sb: &mut SourceBuild) {
    sb.managed_fields_mut().clear();
    sb.metadata.labels = None;
    if let Some(annotations) = sb.metadata.annotations.as_mut() {
        annotations.retain(|key, _| key == REBUILD_ANNOTATION);
        if annotations.is_empty() {
            sb.metadata.annotations = None;
        }
    }
}

/// What packed SourceBuilds are compressed against: the packed JSON of a typical finished
/// build, so that it follows the API types as they change.
static DICTIONARY: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let typical: SourceBuild = serde_json::from_value(typical())
        .expect("the typical SourceBuild is a SourceBuild (a test checks it)");
    pack::dictionary(&PackedRef {
        spec: &typical.spec,
        status: &typical.status,
    })
});

/// A finished build as the controller's status writes leave it; values where most builds
/// have the same (or the same start of) one.
fn typical() -> serde_json::Value {
    let at = "2026-01-01T00:00:00Z";
    let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    serde_json::json!({
        "apiVersion": "sourcebuild.dev/v1alpha1", "kind": "SourceBuild",
        "metadata": {"name": "app"},
        "spec": {"source": {"git": {"url": "https://github.com/example/app.git", "revision": "main"}},
            "builder": {"image": "registry.example.com/s2i/python:latest"},
            "output": {"image": "registry.example.com/example/app:latest", "pushSecretRef": {"name": "push"}},
            "env": [{"name": "APP_FILE", "value": "app.py"}]},
        "status": {"phase": "Succeeded", "observedGeneration": 1, "podName": "app-build-1",
            "build": 1, "trigger": "ConfigChange", "attempt": 1, "startTime": at, "completionTime": at,
            "latestImage": format!("registry.example.com/example/app:latest@{digest}"), "digest": digest,
            "sourceRevision": "0123456789abcdef0123456789abcdef01234567",
            "builderImage": format!("registry.example.com/s2i/python@{digest}"),
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "Succeeded",
                 "message": format!("built registry.example.com/example/app:latest@{digest}"),
                 "lastTransitionTime": at, "observedGeneration": 1},
                {"type": "Succeeded", "status": "True", "reason": "Succeeded",
                 "message": "the build pushed the image", "lastTransitionTime": at, "observedGeneration": 1}],
            "history": [{"generation": 1, "build": 1, "attempt": 1, "trigger": "ConfigChange",
                "podName": "app-build-1", "phase": "Succeeded", "reason": "Succeeded",
                "sourceRevision": "0123456789abcdef0123456789abcdef01234567", "digest": digest,
                "startTime": at, "completionTime": at}]}
    })
}

#[derive(Serialize)]
struct PackedRef<'a> {
    spec: &'a SourceBuildSpec,
    status: &'a Option<SourceBuildStatus>,
}

#[derive(Deserialize)]
struct Packed {
    spec: SourceBuildSpec,
    #[serde(default)]
    status: Option<SourceBuildStatus>,
}

impl CachedSourceBuild {
    /// `sb` pruned and packed.
    pub fn pack(mut sb: SourceBuild) -> Result<Self, UnpackError> {
        prune_source_build(&mut sb);
        let packed = pack::pack(
            &PackedRef {
                spec: &sb.spec,
                status: &sb.status,
            },
            &DICTIONARY,
        )
        .map_err(|source| UnpackError {
            name: sb.metadata.name.clone().unwrap_or_default(),
            source,
        })?;
        let uid = sb.metadata.uid.take().map(String::into_boxed_str);
        Ok(Self {
            metadata: sb.metadata,
            uid,
            packed,
        })
    }

    /// The SourceBuild as the watch showed it, pruned.
    pub fn unpack(&self) -> Result<SourceBuild, UnpackError> {
        let Packed { spec, status } =
            pack::unpack(&self.packed, &DICTIONARY).map_err(|source| UnpackError {
                name: self.metadata.name.clone().unwrap_or_default(),
                source,
            })?;
        Ok(SourceBuild {
            metadata: ObjectMeta {
                uid: self.uid.as_deref().map(str::to_string),
                ..self.metadata.clone()
            },
            spec,
            status,
        })
    }

    /// Its key as the rest of the controller names SourceBuilds.
    pub fn key(&self) -> ObjectRef<SourceBuild> {
        source_build_ref(&ObjectRef::from_obj(self))
    }
}

/// The same object's reference, typed as a `SourceBuild`.
pub fn source_build_ref(r: &ObjectRef<CachedSourceBuild>) -> ObjectRef<SourceBuild> {
    retype(r)
}

/// The same object's reference, typed as a `CachedSourceBuild` (what the Controller queues).
pub fn cached_ref(r: &ObjectRef<SourceBuild>) -> ObjectRef<CachedSourceBuild> {
    retype(r)
}

fn retype<A, B>(r: &ObjectRef<A>) -> ObjectRef<B>
where
    A: Resource<DynamicType = ()>,
    B: Resource<DynamicType = ()>,
{
    let mut to = ObjectRef::<B>::new(&r.name);
    to.namespace = r.namespace.clone();
    to.extra = r.extra.clone();
    to
}

impl<'de> Deserialize<'de> for CachedSourceBuild {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let sb = SourceBuild::deserialize(d)?;
        Self::pack(sb).map_err(serde::de::Error::custom)
    }
}

impl Resource for CachedSourceBuild {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        SourceBuild::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        SourceBuild::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        SourceBuild::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        SourceBuild::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A SourceBuild with every part of the spec and the status set, as the API server sends it.
    fn everything() -> serde_json::Value {
        let at = "2026-01-01T00:00:00Z";
        let digest = format!("sha256:{}", "a".repeat(64));
        json!({
            "apiVersion": "sourcebuild.dev/v1alpha1", "kind": "SourceBuild",
            "metadata": {"name": "app", "namespace": "team", "uid": "u-1", "resourceVersion": "42",
                "generation": 3, "creationTimestamp": at,
                "labels": {"team": "a"},
                "annotations": {"sourcebuild.dev/rebuild": "1", "note": "x"},
                "managedFields": [{"manager": "kubectl", "operation": "Update"}]},
            "spec": {
                "source": {"git": {"url": "https://example.com/a.git", "revision": "main",
                    "secretRef": {"name": "git"}, "pollInterval": "5m"}, "contextDir": "app"},
                "builder": {"image": "registry.example.com/s2i/python:3.12",
                    "scriptsUrl": "image:///usr/libexec/s2i", "assembleUser": "1001"},
                "output": {"image": "registry.example.com/team/app:1", "pushSecretRef": {"name": "push"},
                    "labels": {"org.example/team": "a"}},
                "env": [{"name": "APP_FILE", "value": "main.py"}],
                "timeout": "30m", "cache": {"enabled": true, "repo": "registry.example.com/team/cache"},
                "resources": {"limits": {"memory": "2Gi"}, "requests": {"cpu": "500m"}},
                "serviceAccountName": "builder", "suspend": false, "historyLimit": 5,
                "retention": {"succeededLimit": 2, "failedLimit": 1, "ttlAfterFinished": "24h"},
                "retry": {"limit": 2, "backoff": "30s"}
            },
            "status": {"phase": "Succeeded", "observedGeneration": 3, "podName": "app-build-2",
                "build": 2, "trigger": "ConfigChange", "rebuild": "1", "attempt": 1,
                "startTime": at, "completionTime": at,
                "latestImage": format!("registry.example.com/team/app:1@{digest}"), "digest": digest,
                "sourceRevision": "b".repeat(40), "builderImage": "registry.example.com/s2i/python@sha256:c",
                "logSnippet": "line 1\nline \"2\"",
                "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded",
                    "message": "built", "lastTransitionTime": at, "observedGeneration": 3}],
                "history": [{"generation": 2, "build": 1, "attempt": 2, "trigger": "ConfigChange",
                    "podName": "app-build-1", "phase": "Failed", "reason": "AssembleFailed",
                    "startTime": at, "completionTime": at}],
                "source": {"latestRevision": "b".repeat(40), "lastChecked": at,
                    "checkedGeneration": 3, "builtRevision": "b".repeat(40)}}
        })
    }

    #[test]
    fn unpacks_to_the_pruned_source_build() {
        let sent: SourceBuild = serde_json::from_value(everything()).unwrap();
        assert!(sent.spec.retry.is_some() && sent.status.as_ref().unwrap().source.is_some());
        let cached: CachedSourceBuild = serde_json::from_value(everything()).unwrap();
        let mut pruned = sent.clone();
        prune_source_build(&mut pruned);
        assert_eq!(cached.unpack().unwrap(), pruned);
        assert_ne!(
            pruned, sent,
            "pruning dropped labels and foreign annotations"
        );
        assert_eq!(cached.meta().uid, None);
        assert_eq!(
            cached.unpack().unwrap().metadata.uid.as_deref(),
            Some("u-1")
        );
        assert_eq!(
            cached.meta(),
            &ObjectMeta {
                uid: None,
                ..pruned.metadata
            }
        );
    }

    #[test]
    fn the_dictionary_is_a_whole_typical_build() {
        let typical: SourceBuild = serde_json::from_value(typical()).unwrap();
        assert!(
            typical
                .status
                .as_ref()
                .is_some_and(|s| s.history.len() == 1)
        );
        assert!(DICTIONARY.len() > 1000, "{}", DICTIONARY.len());
        // It pays: a build like it packs to a fraction of its JSON.
        let mut like = typical.clone();
        like.metadata.name = Some("other".into());
        like.status.as_mut().unwrap().digest = Some(format!("sha256:{}", "9".repeat(64)));
        let json = serde_json::to_vec(&PackedRef {
            spec: &like.spec,
            status: &like.status,
        })
        .unwrap();
        let packed = CachedSourceBuild::pack(like.clone()).unwrap();
        assert!(
            packed.packed.len() * 4 < json.len(),
            "{} of {}",
            packed.packed.len(),
            json.len()
        );
        prune_source_build(&mut like);
        assert_eq!(packed.unpack().unwrap(), like);
    }

    #[test]
    fn the_uid_is_held_beside_the_metadata_and_read_back() {
        let mut value = everything();
        value["metadata"]["uid"] = json!("6d1e2f40-0000-4000-8000-000000000001");
        let cached: CachedSourceBuild = serde_json::from_value(value).unwrap();
        assert_eq!(
            cached.unpack().unwrap().metadata.uid.as_deref(),
            Some("6d1e2f40-0000-4000-8000-000000000001")
        );
        // Nor is it in the reflector store's key.
        assert_eq!(ObjectRef::from_obj(&cached).extra.uid, None);
    }

    #[test]
    fn a_damaged_pack_is_an_error_not_a_build() {
        let mut cached: CachedSourceBuild = serde_json::from_value(everything()).unwrap();
        let n = cached.packed.len();
        cached.packed[n / 2] ^= 0xff;
        cached.packed = cached.packed[..n - 3].into();
        let error = cached.unpack().unwrap_err().to_string();
        assert!(error.starts_with("the cached SourceBuild app:"), "{error}");
    }

    #[test]
    fn a_source_build_without_status_stays_without() {
        let mut value = everything();
        value.as_object_mut().unwrap().remove("status");
        let cached: CachedSourceBuild = serde_json::from_value(value).unwrap();
        assert_eq!(cached.unpack().unwrap().status, None);
    }

    #[test]
    fn is_addressed_as_a_source_build() {
        for namespace in [Some("team"), None] {
            assert_eq!(
                CachedSourceBuild::url_path(&(), namespace),
                SourceBuild::url_path(&(), namespace)
            );
        }
        assert_eq!(CachedSourceBuild::kind(&()), "SourceBuild");
        let cached: CachedSourceBuild = serde_json::from_value(everything()).unwrap();
        let key = cached.key();
        assert_eq!(key, ObjectRef::new("app").within("team"));
        assert_eq!(cached_ref(&key), ObjectRef::from_obj(&cached));
        // The Controller maps a build Pod's owner reference to the cached type.
        let owner = k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "sourcebuild.dev/v1alpha1".into(),
            kind: "SourceBuild".into(),
            name: "app".into(),
            uid: "u-1".into(),
            controller: Some(true),
            ..Default::default()
        };
        assert_eq!(
            ObjectRef::<CachedSourceBuild>::from_owner_ref(Some("team"), &owner, ()),
            Some(ObjectRef::from_obj(&cached))
        );
    }
}
