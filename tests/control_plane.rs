//! The test control plane itself (tests/support), and what the API server alone enforces for
//! SourceBuilds: the CRD's OpenAPI schema and CEL rules.

mod support;

use std::time::Duration;

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, ObjectMeta, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, Error};
use serde_json::{Value, json};

fn sourcebuild_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("sourcebuild.dev", "v1alpha1", "SourceBuild"),
        "sourcebuilds",
    )
}

fn sourcebuilds(client: Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client, ns, &sourcebuild_resource())
}

/// Every YAML document of every file in `examples/`, as JSON.
fn example_documents() -> Vec<(String, Value)> {
    let dir = support::repo_root().join("examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("read examples/")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for file in files
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
    {
        let text = std::fs::read_to_string(&file).expect("read example");
        for doc in serde_norway::Deserializer::from_str(&text) {
            let value = <Value as serde::Deserialize>::deserialize(doc).expect("example YAML");
            if !value.is_null() {
                docs.push((
                    file.file_name().unwrap().to_string_lossy().to_string(),
                    value,
                ));
            }
        }
    }
    docs
}

fn example_sourcebuilds() -> Vec<(String, Value)> {
    example_documents()
        .into_iter()
        .filter(|(_, d)| d["kind"] == "SourceBuild")
        .collect()
}

fn to_object(value: Value) -> DynamicObject {
    serde_json::from_value(value).expect("a Kubernetes object")
}

#[tokio::test]
async fn control_plane_reports_the_pinned_version() {
    let Some(cp) = support::control_plane() else {
        return;
    };
    let client = cp.client().await;
    let version = client.apiserver_version().await.expect("GET /version");
    let pinned = support::pinned_kubernetes_version();
    let pinned_minor = pinned.split('.').nth(1).expect("minor").to_string();
    if std::env::var_os("SOURCEBUILD_KUBE_APISERVER").is_none() {
        assert_eq!(
            version.git_version, pinned,
            "kube-apiserver built from tools/kubernetes"
        );
        assert_eq!(
            (version.major.as_str(), version.minor.as_str()),
            ("1", pinned_minor.as_str())
        );
    }
    assert!(
        !version.git_version.contains("v0.0.0"),
        "unstamped build: {version:?}"
    );

    // kubectl from the same tools module talks to it, and is stamped too.
    let out = cp
        .kubectl()
        .args(["version", "-o", "json"])
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl version: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("kubectl version JSON");
    assert_eq!(
        v["serverVersion"]["gitVersion"],
        version.git_version.as_str()
    );
    if std::env::var_os("SOURCEBUILD_KUBECTL").is_none() {
        assert_eq!(v["clientVersion"]["gitVersion"], pinned.as_str());
    }
}

#[tokio::test]
async fn crd_applies_server_side_and_becomes_established() {
    let Some(cp) = support::control_plane() else {
        return;
    };
    let client = cp.client().await;
    let names = cp.install_crds(&client).await;
    assert_eq!(names, vec!["sourcebuilds.sourcebuild.dev".to_string()]);
    // Applying again is a no-op, not a conflict.
    assert_eq!(cp.install_crds(&client).await, names);
    let ns = cp.namespace("crd").await;
    let list = sourcebuilds(client, &ns)
        .list(&ListParams::default())
        .await
        .expect("list sourcebuilds");
    assert!(list.items.is_empty());
}

#[tokio::test]
async fn example_sourcebuilds_are_accepted() {
    let Some(cp) = support::control_plane() else {
        return;
    };
    let client = cp.client().await;
    cp.install_crds(&client).await;
    let ns = cp.namespace("examples").await;
    let api = sourcebuilds(client, &ns);
    let examples = example_sourcebuilds();
    assert!(
        examples.len() >= 3,
        "examples/ should hold SourceBuilds: {examples:?}"
    );
    for (file, doc) in examples {
        let created = api
            .create(&PostParams::default(), &to_object(doc.clone()))
            .await
            .unwrap_or_else(|e| panic!("{file}: the API server rejected the example: {e}"));
        // Round trip: what is stored is what was sent (no pruning of unknown fields).
        assert_eq!(
            created.data["spec"]["output"], doc["spec"]["output"],
            "{file}"
        );
        assert_eq!(
            created.data["spec"]["source"], doc["spec"]["source"],
            "{file}"
        );
    }
}

#[tokio::test]
async fn invalid_sourcebuilds_are_rejected_naming_the_field() {
    let Some(cp) = support::control_plane() else {
        return;
    };
    let client = cp.client().await;
    cp.install_crds(&client).await;
    let ns = cp.namespace("invalid").await;
    let api = sourcebuilds(client, &ns);
    let (_, base) = example_sourcebuilds()
        .into_iter()
        .find(|(_, d)| d["spec"]["source"].get("git").is_some())
        .expect("a git example");

    type Mutation = fn(&mut Value);
    let cases: Vec<(&str, Mutation, &[&str])> = vec![
        (
            "no source",
            |d| {
                d["spec"].as_object_mut().unwrap().remove("source");
            },
            &["spec.source", "Required value"],
        ),
        (
            "two sources",
            |d| {
                d["spec"]["source"]["configMap"] = json!({"name": "hello-source"});
            },
            &[
                "spec.source",
                "exactly one of git, configMap, archive or oci",
            ],
        ),
        (
            "env name 1BAD",
            |d| {
                d["spec"]["env"] = json!([{"name": "1BAD", "value": "x"}]);
            },
            &["spec.env[0].name"],
        ),
        (
            "contextDir ../x",
            |d| {
                d["spec"]["source"]["contextDir"] = json!("../x");
            },
            &["spec.source.contextDir", "without '..' segments"],
        ),
        (
            "output image with spaces",
            |d| {
                d["spec"]["output"]["image"] = json!("Not An Image");
            },
            &["spec.output.image"],
        ),
        (
            "negative timeout",
            |d| {
                d["spec"]["timeout"] = json!("-5m");
            },
            &["spec.timeout", "timeout must be a positive duration"],
        ),
    ];
    for (i, (case, mutate, wanted)) in cases.into_iter().enumerate() {
        let mut doc = base.clone();
        doc["metadata"]["name"] = json!(format!("invalid-{i}"));
        mutate(&mut doc);
        match api.create(&PostParams::default(), &to_object(doc)).await {
            Ok(_) => panic!("{case}: the API server accepted an invalid SourceBuild"),
            Err(Error::Api(status)) => {
                assert_eq!(status.code, 422, "{case}: {status:?}");
                for w in wanted {
                    assert!(
                        status.message.contains(w),
                        "{case}: message should name {w:?}: {}",
                        status.message
                    );
                }
            }
            Err(e) => panic!("{case}: unexpected error {e}"),
        }
    }
}

#[tokio::test]
async fn owned_pod_is_garbage_collected_after_its_owner_is_deleted() {
    let Some(cp) = support::control_plane() else {
        return;
    };
    let client = cp.client().await;
    let ns = cp.namespace("gc").await;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client, &ns);

    let owner = configmaps
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("owner".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .expect("create owner");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {
            "name": "owned",
            "ownerReferences": [OwnerReference {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                name: "owner".into(),
                uid: owner.metadata.uid.clone().expect("uid"),
                ..Default::default()
            }],
        },
        "spec": {"containers": [{"name": "main", "image": "registry.invalid/none:1"}]},
    }))
    .expect("pod");
    let created = pods
        .create(&PostParams::default(), &pod)
        .await
        .expect("create owned pod");
    // ServiceAccount admission filled in the namespace's default account.
    assert_eq!(
        created
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.as_deref()),
        Some("default")
    );

    configmaps
        .delete("owner", &DeleteParams::background())
        .await
        .expect("delete owner");
    support::eventually(
        "the garbage collector to delete the owned Pod",
        Duration::from_secs(60),
        || async {
            pods.get_opt("owned")
                .await
                .expect("get pod")
                .is_none()
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn service_account_identity_gets_exactly_its_rbac() {
    let Some(cp) = support::control_plane() else {
        return;
    };
    let admin = cp.client().await;
    let ns = cp.namespace("rbac").await;
    let sa = cp.client_for_service_account(&ns, "robot").await;

    // The API server sees the ServiceAccount's user name and groups.
    let review = Api::<SelfSubjectReview>::all(sa.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .expect("SelfSubjectReview");
    let user = review.status.and_then(|s| s.user_info).expect("user info");
    assert_eq!(
        user.username.as_deref(),
        Some(format!("system:serviceaccount:{ns}:robot").as_str())
    );
    let groups = user.groups.unwrap_or_default();
    for g in [
        "system:serviceaccounts",
        &format!("system:serviceaccounts:{ns}"),
        "system:authenticated",
    ] {
        assert!(
            groups.iter().any(|x| x == g),
            "group {g} missing from {groups:?}"
        );
    }

    // No binding: Secrets are forbidden.
    match Api::<Secret>::namespaced(sa.clone(), &ns)
        .list(&ListParams::default())
        .await
    {
        Err(Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => {
            panic!("listing Secrets as a bare ServiceAccount should be forbidden, got {other:?}")
        }
    }

    // A RoleBinding to the ServiceAccount applies to this client: ConfigMaps become readable,
    // Secrets stay forbidden.
    Api::<Role>::namespaced(admin.clone(), &ns)
        .create(
            &PostParams::default(),
            &Role {
                metadata: ObjectMeta {
                    name: Some("read-configmaps".into()),
                    ..Default::default()
                },
                rules: Some(vec![PolicyRule {
                    api_groups: Some(vec![String::new()]),
                    resources: Some(vec!["configmaps".into()]),
                    verbs: vec!["get".into(), "list".into()],
                    ..Default::default()
                }]),
            },
        )
        .await
        .expect("create role");
    Api::<RoleBinding>::namespaced(admin, &ns)
        .create(
            &PostParams::default(),
            &RoleBinding {
                metadata: ObjectMeta {
                    name: Some("robot".into()),
                    ..Default::default()
                },
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".into(),
                    kind: "Role".into(),
                    name: "read-configmaps".into(),
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".into(),
                    name: "robot".into(),
                    namespace: Some(ns.clone()),
                    ..Default::default()
                }]),
            },
        )
        .await
        .expect("create rolebinding");
    let configmaps: Api<ConfigMap> = Api::namespaced(sa.clone(), &ns);
    // RBAC changes reach the authorizer through an informer: poll, do not assume.
    support::eventually(
        "the RoleBinding to take effect",
        Duration::from_secs(30),
        || async { configmaps.list(&ListParams::default()).await.ok() },
    )
    .await;
    match Api::<Secret>::namespaced(sa, &ns)
        .list(&ListParams::default())
        .await
    {
        Err(Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("Secrets should stay forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn deleted_namespace_goes_away() {
    let Some(cp) = support::control_plane() else {
        return;
    };
    let client = cp.client().await;
    let ns = cp.namespace("delete-me").await;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    configmaps
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("content".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .expect("create configmap");
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client);
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .expect("delete namespace");
    // The namespace controller empties it and removes the finalizer.
    support::eventually(
        "the namespace controller to finish deleting it",
        Duration::from_secs(90),
        || async {
            namespaces
                .get_opt(&ns)
                .await
                .expect("get namespace")
                .is_none()
                .then_some(())
        },
    )
    .await;
}

#[test]
fn owned_control_plane_is_torn_down_when_dropped() {
    if support::skip_control_plane() {
        return;
    }
    let cp = support::ControlPlane::start()
        .unwrap_or_else(|e| panic!("start an owned control plane:\n{e}"));
    let pids = cp.pids.clone();
    let dir = cp.dir.clone();
    assert_eq!(
        pids.len(),
        3,
        "etcd, kube-apiserver, kube-controller-manager"
    );
    for pid in &pids {
        assert!(
            std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "{pid} should run"
        );
    }
    assert!(dir.join("admin.kubeconfig").is_file());
    drop(cp);
    // Killed and reaped by the drop itself: nothing left to poll for.
    for pid in &pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "{pid} survived the drop"
        );
    }
    assert!(!dir.exists(), "{} survived the drop", dir.display());
}
