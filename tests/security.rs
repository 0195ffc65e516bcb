//! Least privilege, proven on a real kube-apiserver (tests/support/control_plane.rs):
//!
//! - RBAC: the chart's rendered RBAC grants the operator's ServiceAccount exactly the documented
//!   verbs per resource (SubjectAccessReview as admin over a matrix, SelfSubjectRulesReview as
//!   the operator, and real refused calls); in namespace mode nothing outside the watched
//!   namespace, and the operator run with `--namespace a` builds in a and ignores b.
//! - Pod Security admission: build Pods are admitted under `baseline`; the whole build Pod is
//!   refused under `restricted` (Kaniko runs as root) while its prepare container alone passes
//!   `restricted`; the chart's Deployment passes `restricted`.
//! - Secrets never leak: proven with real builds on the node (tests/node.rs).
//!
//! The tests on the shared control plane use the one operator of `ChartOperator` (a second
//! cluster-wide operator would reconcile the same SourceBuilds); the namespace-mode test starts
//! a control plane of its own for the same reason. Needs root and the pinned tools, like
//! tests/e2e_build.rs.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectRulesReview, SelfSubjectRulesReviewSpec, SubjectAccessReview,
    SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, ServiceAccount};
use kube::Client;
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use sourcebuild::api::SourceBuild;
use support::chart_operator::ChartOperator;
use support::operator::{
    CHART_NAMESPACE, Operator, SERVICE_ACCOUNT, install_chart_release, render_chart,
};
use support::{ControlPlane, control_plane, eventually};

const WAIT: Duration = Duration::from_secs(60);

/// Every verb RBAC knows for resources (`*` aside), checked for every resource of the matrix.
const VERBS: [&str; 8] = [
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

/// (API group, resource, subresource): the resources the matrix asks about. Everything the
/// operator uses, plus what a compromised operator would want: Secrets, ConfigMaps, tokens,
/// exec into Pods, RBAC, workloads.
const MATRIX: [(&str, &str, &str); 20] = [
    ("sourcebuild.dev", "sourcebuilds", ""),
    ("sourcebuild.dev", "sourcebuilds", "status"),
    ("", "pods", ""),
    ("", "pods", "status"),
    ("", "pods", "log"),
    ("", "pods", "exec"),
    ("", "pods", "attach"),
    ("", "pods", "portforward"),
    ("", "pods", "ephemeralcontainers"),
    ("", "events", ""),
    ("events.k8s.io", "events", ""),
    ("", "secrets", ""),
    ("", "configmaps", ""),
    ("", "serviceaccounts", ""),
    ("", "serviceaccounts", "token"),
    ("coordination.k8s.io", "leases", ""),
    ("apps", "deployments", ""),
    ("batch", "jobs", ""),
    ("rbac.authorization.k8s.io", "roles", ""),
    ("rbac.authorization.k8s.io", "rolebindings", ""),
];

type Key = (String, String, String);

fn key(group: &str, resource: &str, sub: &str) -> Key {
    (group.to_string(), resource.to_string(), sub.to_string())
}

/// The documented least-privilege set (README "Security"): the chart's rules in a namespace the
/// operator watches. `with_leases`: the release namespace, where leader election adds its Role.
fn documented(watched: bool, with_leases: bool) -> BTreeMap<Key, BTreeSet<String>> {
    let mut m = BTreeMap::new();
    let mut put = |g: &str, r: &str, s: &str, verbs: &[&str]| {
        m.insert(key(g, r, s), verbs.iter().map(|v| v.to_string()).collect());
    };
    if watched {
        put("sourcebuild.dev", "sourcebuilds", "", &["list", "watch"]);
        put("sourcebuild.dev", "sourcebuilds", "status", &["patch"]);
        put(
            "",
            "pods",
            "",
            &["get", "list", "watch", "create", "delete"],
        );
        put("events.k8s.io", "events", "", &["create", "patch"]);
        put("", "events", "", &["list", "watch"]);
    }
    if with_leases {
        put(
            "coordination.k8s.io",
            "leases",
            "",
            &["get", "create", "patch"],
        );
    }
    m
}

fn user_of(service_account: &str) -> String {
    format!("system:serviceaccount:{CHART_NAMESPACE}:{service_account}")
}

/// What the API server's authorizer allows `service_account` on the matrix in `namespace`
/// (`None`: all namespaces at once), one SubjectAccessReview per resource and verb, as admin.
async fn allowed_matrix(
    admin: &Client,
    service_account: &str,
    namespace: Option<&str>,
) -> BTreeMap<Key, BTreeSet<String>> {
    let api: Api<SubjectAccessReview> = Api::all(admin.clone());
    let mut allowed: BTreeMap<Key, BTreeSet<String>> = BTreeMap::new();
    for (group, resource, sub) in MATRIX {
        for verb in VERBS {
            let review = SubjectAccessReview {
                spec: SubjectAccessReviewSpec {
                    user: Some(user_of(service_account)),
                    groups: Some(vec![
                        "system:serviceaccounts".to_string(),
                        format!("system:serviceaccounts:{CHART_NAMESPACE}"),
                        "system:authenticated".to_string(),
                    ]),
                    resource_attributes: Some(ResourceAttributes {
                        group: Some(group.to_string()),
                        resource: Some(resource.to_string()),
                        subresource: (!sub.is_empty()).then(|| sub.to_string()),
                        verb: Some(verb.to_string()),
                        namespace: namespace.map(str::to_string),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            };
            let answer = api
                .create(&PostParams::default(), &review)
                .await
                .expect("create SubjectAccessReview");
            if answer.status.expect("a review's status").allowed {
                allowed
                    .entry(key(group, resource, sub))
                    .or_default()
                    .insert(verb.to_string());
            }
        }
    }
    allowed
}

/// What the operator itself is told it may do in `namespace` (SelfSubjectRulesReview), as
/// (group, resource, subresource) -> verbs. The rules every authenticated user has (creating
/// the self-reviews of authorization.k8s.io and authentication.k8s.io) are left out, and a `*`
/// fails the test: it would grant more than any list can show.
async fn self_rules(operator: &Client, namespace: &str) -> BTreeMap<Key, BTreeSet<String>> {
    let review = SelfSubjectRulesReview {
        spec: SelfSubjectRulesReviewSpec {
            namespace: Some(namespace.to_string()),
        },
        ..Default::default()
    };
    let answer = Api::<SelfSubjectRulesReview>::all(operator.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("create SelfSubjectRulesReview");
    let status = answer.status.expect("rules review status");
    assert!(
        !status.incomplete,
        "the rules review is incomplete: {:?}",
        status.evaluation_error
    );
    let mut rules: BTreeMap<Key, BTreeSet<String>> = BTreeMap::new();
    for rule in status.resource_rules {
        let groups = rule.api_groups.unwrap_or_default();
        let resources = rule.resources.unwrap_or_default();
        for group in &groups {
            if matches!(
                group.as_str(),
                "authorization.k8s.io" | "authentication.k8s.io"
            ) && resources.iter().all(|r| r.starts_with("self"))
            {
                continue;
            }
            for resource in &resources {
                assert!(
                    group != "*" && resource != "*" && !rule.verbs.iter().any(|v| v == "*"),
                    "a wildcard rule: {group}/{resource} {:?}",
                    rule.verbs
                );
                let (resource, sub) = resource.split_once('/').unwrap_or((resource, ""));
                rules
                    .entry(key(group, resource, sub))
                    .or_default()
                    .extend(rule.verbs.iter().cloned());
            }
        }
    }
    rules
}

fn forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>, what: &str) {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => {
            assert!(
                status.message.contains("forbidden"),
                "{what}: {}",
                status.message
            )
        }
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    }
}

/// The shared control plane with the chart installed and `ChartOperator`'s operator.
fn env() -> Option<(&'static ControlPlane, &'static ChartOperator)> {
    static ENV: OnceLock<ChartOperator> = OnceLock::new();
    let cp = control_plane()?;
    let env = ENV.get_or_init(|| {
        let env = ChartOperator::start(cp);
        eprintln!("security logs (operator.log): {}", env.logs.display());
        env
    });
    Some((cp, env))
}

/// `kubectl create --dry-run=server` of `manifest` in `ns`: (success, stderr with warnings).
fn kubectl_dry_run(cp: &ControlPlane, ns: &str, manifest: &str) -> (bool, String) {
    let mut child = cp
        .kubectl()
        .args(["create", "--dry-run=server", "-n", ns, "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(manifest.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// A fresh namespace enforcing Pod Security `level` (and warning at it too).
async fn pod_security_namespace(cp: &ControlPlane, prefix: &str, level: &str) -> String {
    let ns = cp.namespace(prefix).await;
    let patch = json!({"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": level,
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/warn": level,
    }}});
    Api::<Namespace>::all(cp.client().await)
        .patch(&ns, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("label the namespace");
    ns
}

fn source_build(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: sourcebuild.dev/v1alpha1\nkind: SourceBuild\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}

async fn wait_for_pod(client: &Client, ns: &str, name: &str) -> Pod {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    eventually(&format!("Pod {ns}/{name}"), WAIT, || async {
        pods.get_opt(name).await.ok().flatten()
    })
    .await
}

/// A Pod to dry-run: `spec` under fresh metadata.
fn pod_of(name: &str, spec: k8s_openapi::api::core::v1::PodSpec) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        spec: Some(spec),
        ..Default::default()
    }
}

fn dry_run() -> PostParams {
    PostParams {
        dry_run: true,
        ..Default::default()
    }
}

/// (1) Cluster mode: the verb set per resource is exactly the documented one, in a watched
/// namespace, across all namespaces and in the release namespace (plus the Lease); Secrets and
/// ConfigMaps are refused on real calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_grants_exactly_the_documented_verbs() {
    let Some((cp, _env)) = env() else { return };
    let admin = cp.client().await;
    let ns = cp.namespace("rbac").await;

    for (namespace, leases) in [
        (Some(ns.as_str()), false),
        (None, false),
        (Some(CHART_NAMESPACE), true),
    ] {
        assert_eq!(
            allowed_matrix(&admin, SERVICE_ACCOUNT, namespace).await,
            documented(true, leases),
            "SubjectAccessReview matrix in namespace {namespace:?}"
        );
    }

    let operator = cp
        .client_for_service_account(CHART_NAMESPACE, SERVICE_ACCOUNT)
        .await;
    // All the operator can do, not only the matrix: any extra rule shows up here.
    assert_eq!(self_rules(&operator, &ns).await, documented(true, false));
    assert_eq!(
        self_rules(&operator, CHART_NAMESPACE).await,
        documented(true, true)
    );

    // Real requests: a Secret that exists, ConfigMaps that exist (kube-root-ca.crt).
    Api::<Secret>::namespaced(admin.clone(), &ns)
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some("not-for-the-operator".to_string()),
                    ..Default::default()
                },
                string_data: Some([("token".to_string(), "x".to_string())].into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(operator.clone(), &ns);
    forbidden(secrets.get("not-for-the-operator").await, "get a Secret");
    forbidden(
        secrets.list(&ListParams::default()).await,
        "list Secrets in a namespace",
    );
    forbidden(
        Api::<Secret>::all(operator.clone())
            .list(&ListParams::default())
            .await,
        "list Secrets in all namespaces",
    );
    forbidden(
        Api::<Secret>::namespaced(operator.clone(), CHART_NAMESPACE)
            .list(&ListParams::default())
            .await,
        "list Secrets in its own namespace",
    );
    let configmaps: Api<ConfigMap> = Api::namespaced(operator.clone(), &ns);
    forbidden(configmaps.get("kube-root-ca.crt").await, "get a ConfigMap");
    forbidden(
        configmaps.list(&ListParams::default()).await,
        "list ConfigMaps",
    );
    forbidden(
        Api::<ServiceAccount>::namespaced(operator.clone(), &ns)
            .list(&ListParams::default())
            .await,
        "list ServiceAccounts",
    );
    // And what it may do, really: list Pods everywhere.
    Api::<Pod>::all(operator.clone())
        .list(&ListParams::default().limit(1))
        .await
        .expect("the operator lists Pods");
}

/// (1) Namespace mode (`watchNamespaces={a}`): a Role in a only; nothing in b or cluster-wide;
/// the operator run with `--namespace a` builds in a and ignores b. On a control plane of its
/// own, so that no cluster-wide operator reconciles a or b.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_mode_grants_nothing_outside_the_watched_namespace() {
    if support::skip_control_plane() {
        return;
    }
    let cp = tokio::task::block_in_place(ControlPlane::start).expect("own control plane");
    let admin = cp.client().await;
    let a = cp.namespace("watched").await;
    let b = cp.namespace("unwatched").await;
    let release = "nsmode";
    let account = "nsmode-sourcebuild-operator";
    let set = format!("watchNamespaces={{{a}}}");
    tokio::task::block_in_place(|| install_chart_release(&cp, release, &[&set]));
    cp.install_crds(&admin).await;

    assert_eq!(
        allowed_matrix(&admin, account, Some(&a)).await,
        documented(true, false),
        "in the watched namespace"
    );
    assert_eq!(
        allowed_matrix(&admin, account, Some(&b)).await,
        documented(false, false),
        "in another namespace"
    );
    assert_eq!(
        allowed_matrix(&admin, account, None).await,
        documented(false, false),
        "across all namespaces"
    );
    let operator = cp
        .client_for_service_account(CHART_NAMESPACE, account)
        .await;
    assert_eq!(self_rules(&operator, &a).await, documented(true, false));
    assert_eq!(self_rules(&operator, &b).await, documented(false, false));

    forbidden(
        Api::<SourceBuild>::namespaced(operator.clone(), &b)
            .list(&ListParams::default())
            .await,
        "list SourceBuilds in b",
    );
    forbidden(
        Api::<SourceBuild>::all(operator.clone())
            .list(&ListParams::default())
            .await,
        "list SourceBuilds in all namespaces",
    );
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "intruder"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    forbidden(
        Api::<Pod>::namespaced(operator.clone(), &b)
            .create(&PostParams::default(), &pod)
            .await,
        "create a Pod in b",
    );
    Api::<SourceBuild>::namespaced(operator.clone(), &a)
        .list(&ListParams::default())
        .await
        .expect("list SourceBuilds in a");

    // The operator, as that account, watching a only.
    let logs = tempfile::Builder::new()
        .prefix("sourcebuild-security-ns-")
        .tempdir()
        .unwrap();
    let running = Operator::start_as(&cp, account, &["--namespace", &a], logs.path());
    let spec = "  source:\n    git:\n      url: https://example.com/acme/app.git\n  \
                output:\n    image: registry.example.com/team/app:1.0\n";
    support::sourcebuilds::apply(&cp, &b, &source_build("app", spec));
    support::sourcebuilds::apply(&cp, &a, &source_build("app", spec));
    wait_for_pod(&admin, &a, "app-build-1").await;
    let in_a: Api<SourceBuild> = Api::namespaced(admin.clone(), &a);
    eventually("the SourceBuild in a to get a status", WAIT, || async {
        in_a.get("app").await.ok()?.status?.phase
    })
    .await;
    // a's build was seen after b's SourceBuild was applied: an operator that watched b would
    // have acted on it by now (it acted on a's, applied later).
    let sb_b = Api::<SourceBuild>::namespaced(admin.clone(), &b)
        .get("app")
        .await
        .unwrap();
    // Only the CRD's default status (generation 0 observed) means the operator never wrote one.
    let unobserved = sb_b.status.as_ref().and_then(|s| s.observed_generation) == Some(0);
    let untouched = sb_b
        .status
        .as_ref()
        .is_some_and(|s| s.phase.is_none() && unobserved);
    assert!(untouched, "b was reconciled: {:?}", sb_b.status);
    let pods_b = Api::<Pod>::namespaced(admin.clone(), &b)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(pods_b.items.is_empty(), "Pods in b: {:?}", pods_b.items);
    let log = running.log();
    assert!(
        !log.contains("forbidden") && !log.contains(&b),
        "the operator touched b or was refused something:\n{log}"
    );
    drop(running);
}

/// (2) Pod Security admission: the operator's build Pod is admitted under `baseline`, refused
/// whole under `restricted` (Kaniko runs as root), while its own steps (prepare, publish) alone
/// pass `restricted`; the chart's Deployment passes `restricted`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_pods_meet_baseline_and_prepare_and_the_operator_meet_restricted() {
    let Some((cp, _env)) = env() else { return };
    let admin = cp.client().await;
    let baseline = pod_security_namespace(cp, "psa-baseline", "baseline").await;
    let restricted = pod_security_namespace(cp, "psa-restricted", "restricted").await;

    // A real create by the operator (no node runs it): the Pod's admission is the point.
    support::sourcebuilds::apply(
        cp,
        &baseline,
        &source_build(
            "app",
            "  source:\n    git:\n      url: http://127.0.0.1:9/nothing.git\n  \
             output:\n    image: registry.example.com/team/app:1.0\n",
        ),
    );
    let pod = wait_for_pod(&admin, &baseline, "app-build-1").await;
    let spec = pod.spec.clone().unwrap();
    assert_eq!(spec.init_containers.as_ref().map(Vec::len), Some(2));
    assert_eq!(spec.containers.len(), 1);
    // `--user-namespaces auto` on an API server that keeps the field: a user namespace.
    assert_eq!(spec.host_users, Some(false));
    // With the node's users (`spec.hostUsers: true`, or `--user-namespaces off`) the same Pod
    // is admitted under baseline too: the user namespace changes nothing Pod Security checks
    // (its relaxation for user namespaces is behind an alpha feature gate in 1.34).
    let mut with_host_users = spec.clone();
    with_host_users.host_users = None;
    with_host_users.node_name = None;
    Api::<Pod>::namespaced(admin.clone(), &baseline)
        .create(&dry_run(), &pod_of("host-users", with_host_users.clone()))
        .await
        .expect("the build Pod with the node's users passes baseline");
    let refused = Api::<Pod>::namespaced(admin.clone(), &restricted)
        .create(&dry_run(), &pod_of("host-users", with_host_users))
        .await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(s)) if s.code == 403),
        "the build Pod with the node's users was admitted under restricted: {refused:?}"
    );

    // The same spec, under restricted: refused, naming what restricted forbids of Kaniko.
    let pods_restricted: Api<Pod> = Api::namespaced(admin.clone(), &restricted);
    let refused = pods_restricted
        .create(&dry_run(), &pod_of("whole-build-pod", spec.clone()))
        .await;
    match refused {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "{status:?}");
            for needle in [
                "violates PodSecurity \"restricted:latest\"",
                "runAsUser=0 (container \"build\" must not set runAsUser=0)",
                "unrestricted capabilities (container \"build\"",
            ] {
                assert!(
                    status.message.contains(needle),
                    "{needle:?} not in: {}",
                    status.message
                );
            }
            for ours in ["prepare", "publish"] {
                assert!(
                    !status.message.contains(&format!("container \"{ours}\"")),
                    "the {ours} container is named as a violation: {}",
                    status.message
                );
            }
        }
        other => panic!("the whole build Pod was admitted under restricted: {other:?}"),
    }

    // Our own steps (prepare, publish) as they are in the build Pod, without Kaniko, with the
    // Pod's volumes and Pod-level security context: admitted under restricted.
    let mut ours_only = spec.clone();
    let init = ours_only.init_containers.take().unwrap();
    ours_only.containers = init
        .into_iter()
        .chain(spec.containers.clone())
        .filter(|c| c.name != "build")
        .collect();
    assert_eq!(ours_only.containers.len(), 2);
    ours_only.node_name = None;
    pods_restricted
        .create(&dry_run(), &pod_of("ours-only", ours_only))
        .await
        .expect("the prepare and publish containers alone pass restricted");

    // The chart's Deployment as helm renders it: its Pod template passes restricted (as a Pod,
    // enforced), and the Deployment draws no Pod Security warning. The ServiceAccount it names
    // exists there, as in the release namespace.
    let manifests = tokio::task::block_in_place(|| render_chart(&[]));
    let deployment: Value = serde_norway::Deserializer::from_str(&manifests)
        .map(|doc| <Value as serde::Deserialize>::deserialize(doc).unwrap())
        .find(|v| v["kind"] == "Deployment")
        .expect("a Deployment in the chart");
    Api::<ServiceAccount>::namespaced(admin.clone(), &restricted)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": SERVICE_ACCOUNT}})).unwrap(),
        )
        .await
        .unwrap();
    let template = &deployment["spec"]["template"];
    let operator_pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "operator", "labels": template["metadata"]["labels"]},
        "spec": template["spec"],
    }))
    .unwrap();
    pods_restricted
        .create(&dry_run(), &operator_pod)
        .await
        .expect("the operator's Pod passes restricted");
    let mut in_restricted = deployment.clone();
    in_restricted["metadata"]["namespace"] = json!(restricted);
    let (ok, stderr) = kubectl_dry_run(cp, &restricted, &in_restricted.to_string());
    assert!(ok, "dry-run create of the Deployment: {stderr}");
    assert!(
        !stderr.contains("PodSecurity"),
        "Pod Security warnings on the chart's Deployment: {stderr}"
    );
    // The same check on a Deployment of the build Pod's spec warns: the warning path works.
    // (Without what a Deployment's Pods may not have: a Never restart policy and a deadline.)
    let mut spec = spec;
    spec.restart_policy = None;
    spec.active_deadline_seconds = None;
    let build_deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "build-as-deployment"},
        "spec": {"selector": {"matchLabels": {"x": "y"}},
                 "template": {"metadata": {"labels": {"x": "y"}}, "spec": spec}},
    });
    let (ok, stderr) = kubectl_dry_run(cp, &restricted, &build_deployment.to_string());
    assert!(ok, "dry-run create of the build Deployment: {stderr}");
    assert!(
        stderr.contains("would violate PodSecurity \"restricted:latest\""),
        "no Pod Security warning for the build Pod's spec: {stderr}"
    );
}

/// Whether `user` may `verb` SourceBuilds in `namespace`, as the authorizer answers.
async fn may(admin: &Client, user: &str, verb: &str, namespace: &str) -> bool {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.to_string()),
            groups: Some(vec!["system:authenticated".to_string()]),
            resource_attributes: Some(ResourceAttributes {
                group: Some("sourcebuild.dev".to_string()),
                resource: Some("sourcebuilds".to_string()),
                verb: Some(verb.to_string()),
                namespace: Some(namespace.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<SubjectAccessReview>::all(admin.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("create SubjectAccessReview")
        .status
        .is_some_and(|s| s.allowed)
}

/// The chart's aggregated ClusterRoles: whoever holds the built-in `edit` in a namespace may
/// create SourceBuilds there (what `kubectl sourcebuild build` needs), `view` may only read
/// them, and neither reaches another namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_may_build_and_view_may_read_through_the_aggregated_roles() {
    let Some((cp, _env)) = env() else { return };
    let admin = cp.client().await;
    let ns = cp.namespace("aggregated").await;
    let other = cp.namespace("aggregated-other").await;
    for (user, role) in [("alice", "edit"), ("bob", "view")] {
        let binding: k8s_openapi::api::rbac::v1::RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": user},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}]
        }))
        .unwrap();
        Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(admin.clone(), &ns)
            .create(&PostParams::default(), &binding)
            .await
            .unwrap();
    }
    // The controller-manager aggregates the chart's rules into edit and view a moment later.
    eventually("edit to include SourceBuilds", WAIT, || async {
        may(&admin, "alice", "create", &ns).await.then_some(())
    })
    .await;
    eventually("view to include SourceBuilds", WAIT, || async {
        may(&admin, "bob", "list", &ns).await.then_some(())
    })
    .await;
    for verb in ["get", "list", "watch", "create", "patch", "delete"] {
        assert!(may(&admin, "alice", verb, &ns).await, "edit: {verb}");
        assert!(
            !may(&admin, "alice", verb, &other).await,
            "edit elsewhere: {verb}"
        );
    }
    for verb in ["get", "list", "watch"] {
        assert!(may(&admin, "bob", verb, &ns).await, "view: {verb}");
    }
    for verb in ["create", "patch", "delete"] {
        assert!(!may(&admin, "bob", verb, &ns).await, "view: {verb}");
    }
}
