//! The reconciler against a mocked API server (the kube-rs `tower-test` pattern): each scenario
//! lists the exact requests the reconciler must make, answers them, and fails on any other.
//! Real control-plane behaviour (watch, GC, admission) is tested elsewhere against a real
//! kube-apiserver; these pin down the reconciler's decisions and its API traffic.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use http::{Method, Request, Response};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use sourcebuild::api::{Phase, SourceBuild, SourceBuildStatus, Trigger};
use sourcebuild::controller::cache::Caches;
use sourcebuild::controller::cache::pod_cache::PodCache;
use sourcebuild::controller::cache::slim_pod::SlimPod;
use sourcebuild::controller::context::{Context, Settings, Sinks};
use sourcebuild::controller::events::{Event, EventSink};
use sourcebuild::controller::reconcile::reconcile;
use sourcebuild::controller::status::NewBuild;
use sourcebuild::controller::throttle::Throttle;
use sourcebuild::controller::throttle::queue::Pending;
use sourcebuild::controller::throttle::write_gate::{Priority, WriteGate};
use sourcebuild::controller::writes::DEFER_FOR;
use sourcebuild::metrics::Metrics;
use sourcebuild::pod::{BuildSettings, build_pod, build_pod_name};
use tower_test::mock::{self, Handle};

type ApiHandle = Handle<Request<Body>, Response<Body>>;

const DIGEST: &str = "sha256:6a0e1b6bd2f5fb0f3bc3b1d2c9e0e8f4a7c1d3e5f60718293a4b5c6d7e8f9a0b";

#[derive(Default)]
struct RecordedEvents(Mutex<Vec<String>>);

#[async_trait]
impl EventSink for RecordedEvents {
    async fn publish(&self, _sb: &SourceBuild, note: &Event) {
        self.0.lock().unwrap().push(note.reason.clone());
    }
}

fn settings() -> BuildSettings {
    BuildSettings {
        default_builder_image: "quay.io/sclorg/python-312-c9s:c9s".into(),
        kaniko_image: "kaniko:test".into(),
        prepare_image: "sourcebuild-operator:test".into(),
        insecure_registries: vec![],
        user_namespaces: false,
        signing_key_secret: None,
        builder_id: "https://sourcebuild.dev/tests".to_string(),
    }
}

fn source_build(generation: i64, status: Option<SourceBuildStatus>) -> SourceBuild {
    let mut sb: SourceBuild = serde_json::from_value(json!({
        "apiVersion": "sourcebuild.dev/v1alpha1",
        "kind": "SourceBuild",
        "metadata": {"name": "app", "namespace": "team", "uid": "uid-1", "generation": generation},
        "spec": {
            "source": {"git": {"url": "https://example.com/acme/app.git", "revision": "main"}},
            "output": {"image": "registry.example.com/team/app:1.0"},
            "env": [{"name": "APP_FILE", "value": "service.py"}]
        }
    }))
    .unwrap();
    sb.status = status;
    sb
}

/// The Pod the controller would have created for `sb`, with the given status.
fn pod_for(sb: &SourceBuild, status: Value) -> Pod {
    let mut pod = build_pod(sb, &settings(), 1).unwrap();
    pod.metadata.creation_timestamp = Some(Time(Timestamp::now()));
    pod.status = Some(serde_json::from_value(status).unwrap());
    pod
}

fn running() -> Value {
    json!({"phase": "Running",
           "initContainerStatuses": [terminated("prepare", 0, prepared())],
           "containerStatuses": [{"name": "build", "ready": true, "restartCount": 0, "image": "kaniko", "imageID": "",
                                  "state": {"running": {}}}]})
}

fn prepared() -> String {
    json!({"prepared": {"revision": "0123456789abcdef0123456789abcdef01234567",
                        "dockerfileSha256": format!("sha256:{}", "d".repeat(64)),
                        "builderImage": "quay.io/sclorg/python-312-c9s:c9s"}})
    .to_string()
}

fn terminated(name: &str, code: i32, message: String) -> Value {
    json!({"name": name, "ready": false, "restartCount": 0, "image": "x", "imageID": "",
           "state": {"terminated": {"exitCode": code, "message": message,
                                    "reason": if code == 0 { "Completed" } else { "Error" }}}})
}

/// A Pod whose Kaniko step ended with `code` and `message`; after a success, the publish step
/// reports the provenance of that digest.
fn finished(code: i32, message: &str) -> Value {
    let publish: Vec<Value> = if code == 0 {
        let report = json!({"published": {"subject": message.trim(),
            "attestation": format!("sha256:{}", "e".repeat(64)), "referrers": "ReferrersAPI"}});
        vec![terminated("publish", 0, report.to_string())]
    } else {
        vec![]
    };
    json!({"phase": if code == 0 { "Succeeded" } else { "Failed" },
           "initContainerStatuses": [terminated("prepare", 0, prepared()),
                                     terminated("build", code, message.to_string())],
           "containerStatuses": publish})
}

/// The Pods as the controller's cache holds them.
fn store_with(pods: Vec<Pod>) -> PodCache {
    PodCache::listed(pods.iter().map(SlimPod::from_pod))
}

struct Harness {
    ctx: Arc<Context>,
    events: Arc<RecordedEvents>,
    handle: ApiHandle,
}

fn harness(pods: Vec<Pod>) -> Harness {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let events = Arc::new(RecordedEvents::default());
    let store = store_with(pods);
    let mut caches = Caches::new(tokio::sync::watch::channel(true).1);
    caches.pods = store;
    let ctx = Arc::new(Context {
        client: Client::new(service, "default"),
        caches,
        throttle: Throttle {
            gate: WriteGate::default(),
            pending: Pending::new(Metrics::new()),
        },
        settings: Settings {
            build: settings(),
            routine_events: true,
        },
        sinks: Sinks {
            events: events.clone(),
            metrics: Metrics::new(),
        },
    });
    Harness {
        ctx,
        events,
        handle,
    }
}

/// One expected request: method, path, and the answer (status code and JSON body).
struct Expect {
    method: Method,
    path: String,
    code: u16,
    answer: Value,
    /// Runs when the request has come, before it is answered.
    meanwhile: Option<Box<dyn FnOnce() + Send>>,
}

fn expect(method: Method, path: impl Into<String>, code: u16, answer: Value) -> Expect {
    Expect {
        method,
        path: path.into(),
        code,
        answer,
        meanwhile: None,
    }
}

/// Runs one reconcile against the scripted API; returns the JSON bodies the reconciler sent.
async fn run(sb: SourceBuild, harness: Harness, script: Vec<Expect>) -> (Vec<Value>, Vec<String>) {
    let (bodies, events, _) = run_for_action(sb, harness, script).await;
    (bodies, events)
}

/// [`run`], also returning what the reconcile asked the scheduler for.
async fn run_for_action(
    sb: SourceBuild,
    harness: Harness,
    script: Vec<Expect>,
) -> (Vec<Value>, Vec<String>, Action) {
    let Harness {
        ctx,
        events,
        mut handle,
    } = harness;
    let server = tokio::spawn(async move {
        let mut bodies = Vec::new();
        for step in script {
            let (request, send) = handle
                .next_request()
                .await
                .expect("the reconciler stopped early");
            assert_eq!(request.method(), step.method, "at {}", request.uri());
            assert_eq!(request.uri().path(), step.path);
            let bytes = request.into_body().collect_bytes().await.unwrap();
            bodies.push(if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap()
            });
            if let Some(meanwhile) = step.meanwhile {
                meanwhile();
            }
            let response = Response::builder()
                .status(step.code)
                .body(Body::from(serde_json::to_vec(&step.answer).unwrap()))
                .unwrap();
            send.send_response(response);
        }
        // Anything after the script is an unexpected request.
        if let Some((request, _)) = handle.next_request().await {
            panic!("unexpected request {} {}", request.method(), request.uri());
        }
        bodies
    });
    let action = reconcile(Arc::new(sb), ctx)
        .await
        .expect("reconcile failed");
    // The reconcile is over; dropping the last client closes the mock's channel.
    let bodies = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap();
    let events = events.0.lock().unwrap().clone();
    (bodies, events, action)
}

/// The API server accepting the create of `pod`.
fn pod_created(pod: &Pod) -> Expect {
    expect(
        Method::POST,
        "/api/v1/namespaces/team/pods",
        201,
        serde_json::to_value(pod).unwrap(),
    )
}

fn status_path() -> &'static str {
    "/apis/sourcebuild.dev/v1alpha1/namespaces/team/sourcebuilds/app/status"
}

fn status_of(patch: &Value) -> SourceBuildStatus {
    serde_json::from_value(patch["status"].clone()).unwrap()
}

fn not_found() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"})
}

/// The status right after the first build of generation 1 started at `at` (Running).
fn started(at: Timestamp) -> SourceBuildStatus {
    sourcebuild::controller::status::started(
        &Default::default(),
        &NewBuild {
            generation: 1,
            build: 1,
            pod_name: build_pod_name("app", 1, 1),
            trigger: Trigger::ConfigChange,
            attempt: 1,
            rebuild: None,
            revision: None,
        },
        at,
    )
}

/// The kubelet's core/v1 FailedMount Event about `pod`, as the Event watch delivers it.
fn failed_mount(pod: &Pod, message: &str) -> k8s_openapi::api::core::v1::Event {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{}.1", pod.name_any()), "namespace": "team"},
        "involvedObject": {"kind": "Pod", "name": pod.name_any(), "namespace": "team",
                           "uid": pod.metadata.uid},
        "reason": "FailedMount", "type": "Warning", "message": message}))
    .unwrap()
}

fn echo_status(sb: &SourceBuild) -> Value {
    serde_json::to_value(sb).unwrap()
}

#[tokio::test]
async fn a_new_build_creates_its_pod_then_records_running() {
    let sb = source_build(1, None);
    let pod = build_pod(&sb, &settings(), 1).unwrap();
    let script = vec![
        pod_created(&pod),
        expect(Method::PATCH, status_path(), 200, echo_status(&sb)),
    ];
    let (bodies, events) = run(sb, harness(vec![]), script).await;
    let created: Pod = serde_json::from_value(bodies[0].clone()).unwrap();
    assert_eq!(created.name_any(), build_pod_name("app", 1, 1));
    let status = status_of(&bodies[1]);
    assert_eq!(status.phase, Some(Phase::Running));
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.pod_name, Some(build_pod_name("app", 1, 1)));
    // kstatus's Reconciling rides in the same write: no request of its own.
    let reconciling = status.condition("Reconciling").unwrap();
    assert_eq!(
        (reconciling.status.as_str(), reconciling.reason.as_str()),
        ("True", "Building")
    );
    assert_eq!(events, ["BuildStarted"]);
}

#[tokio::test]
async fn a_pod_whose_watch_event_beats_its_create_answer_is_not_left_awaited() {
    // A local API server often sends the new Pod's watch event before the create's answer. Were
    // the create recorded only on its answer, the record would wait for an event already gone
    // and count as a create the API server has not shown us, which holds progress back.
    let sb = source_build(1, None);
    let pod = build_pod(&sb, &settings(), 1).unwrap();
    let harness = harness(vec![]);
    let caches = harness.ctx.caches.clone();
    let mut shown = pod.clone();
    shown.metadata.name = Some(build_pod_name("app", 1, 1));
    shown.metadata.namespace = Some("team".into());
    let shown = SlimPod::from_pod(&shown);
    let watch = caches.clone();
    let mut create = pod_created(&pod);
    create.meanwhile = Some(Box::new(move || {
        watch.apply_pod_event(&kube::runtime::watcher::Event::Apply(shown));
    }));
    let script = vec![
        create,
        expect(Method::PATCH, status_path(), 200, echo_status(&sb)),
    ];
    let (bodies, _) = run(sb, harness, script).await;
    assert_eq!(status_of(&bodies[1]).phase, Some(Phase::Running));
    assert_eq!(caches.created_pods.unseen(), 0, "no create is left awaited");
    assert!(
        !caches
            .created_pods
            .awaiting("team", &build_pod_name("app", 1, 1))
    );
}

#[tokio::test]
async fn a_pod_that_already_exists_is_not_an_error() {
    // A restart between the create and the status write: the create answers 409.
    let sb = source_build(1, None);
    let script = vec![
        expect(
            Method::POST,
            "/api/v1/namespaces/team/pods",
            409,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "AlreadyExists", "code": 409}),
        ),
        expect(Method::PATCH, status_path(), 200, echo_status(&sb)),
    ];
    let (bodies, _) = run(sb, harness(vec![]), script).await;
    assert_eq!(status_of(&bodies[1]).phase, Some(Phase::Running));
}

/// A Pod whose build container cannot pull its image.
fn stuck() -> Value {
    json!({"phase": "Pending",
           "initContainerStatuses": [terminated("prepare", 0, prepared())],
           "containerStatuses": [{"name": "build", "ready": false, "restartCount": 0, "image": "kaniko", "imageID": "",
                                  "state": {"waiting": {"reason": "ImagePullBackOff",
                                                        "message": "Back-off pulling image \"kaniko\""}}}]})
}

#[tokio::test]
async fn a_pod_on_its_way_costs_no_request() {
    // Recorded Running at the create; the Pod starting and running changes nothing.
    let started = started(Timestamp::now());
    let sb = source_build(1, Some(started));
    for pod in [
        pod_for(&sb, json!({"phase": "Pending"})),
        pod_for(&sb, running()),
    ] {
        let (bodies, events) = run(sb.clone(), harness(vec![pod]), vec![]).await;
        assert!(bodies.is_empty() && events.is_empty(), "{events:?}");
    }
}

#[tokio::test]
async fn a_stuck_pod_records_pending_and_a_warning() {
    let sb = source_build(1, Some(started(Timestamp::now())));
    let pod = pod_for(&sb, stuck());
    let script = vec![expect(Method::PATCH, status_path(), 200, echo_status(&sb))];
    let (bodies, events) = run(sb, harness(vec![pod]), script).await;
    let status = status_of(&bodies[0]);
    assert_eq!(status.phase, Some(Phase::Pending));
    let message = &status.condition("Succeeded").unwrap().message;
    assert!(message.contains("ImagePullBackOff"), "{message}");
    assert_eq!(events, ["PodPending"]);
}

#[tokio::test]
async fn routine_events_are_published_only_when_asked_for() {
    let sb = source_build(1, None);
    let pod = build_pod(&sb, &settings(), 1).unwrap();
    let mut quiet = harness(vec![]);
    Arc::get_mut(&mut quiet.ctx)
        .unwrap()
        .settings
        .routine_events = false;
    let script = vec![
        pod_created(&pod),
        expect(Method::PATCH, status_path(), 200, echo_status(&sb)),
    ];
    let (bodies, events) = run(sb, quiet, script).await;
    assert_eq!(status_of(&bodies[1]).phase, Some(Phase::Running));
    assert!(events.is_empty(), "{events:?}");

    let sb = source_build(1, Some(started(Timestamp::now())));
    for (pod, reasons) in [
        (finished(0, DIGEST), vec![]),
        (stuck(), vec!["PodPending"]),
        (finished(1, "exit status 1"), vec!["BuildFailed"]),
    ] {
        let mut quiet = harness(vec![pod_for(&sb, pod)]);
        Arc::get_mut(&mut quiet.ctx)
            .unwrap()
            .settings
            .routine_events = false;
        let script = vec![expect(Method::PATCH, status_path(), 200, echo_status(&sb))];
        let (_, events) = run(sb.clone(), quiet, script).await;
        assert_eq!(events, reasons);
    }
}

#[tokio::test]
async fn a_status_computed_from_an_outdated_source_build_is_refused_not_written() {
    // The write names the version it was computed from; the API server refuses it (409) when
    // the object changed since (a stale cache, a late write of a replica that lost its Lease).
    let mut sb = source_build(1, Some(started(Timestamp::now())));
    sb.metadata.resource_version = Some("42".into());
    let pod = pod_for(&sb, finished(0, DIGEST));
    let conflict = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                          "reason": "Conflict", "code": 409,
                          "message": "the object has been modified; please apply your changes to the latest version and try again"});
    let script = vec![expect(Method::PATCH, status_path(), 409, conflict)];
    let (bodies, events) = run(sb, harness(vec![pod]), script).await;
    assert_eq!(bodies[0]["metadata"]["resourceVersion"], "42");
    assert_eq!(status_of(&bodies[0]).phase, Some(Phase::Succeeded));
    // Not an error, and nothing announced for a transition that was not recorded.
    assert!(events.is_empty(), "{events:?}");
}

#[tokio::test]
async fn success_records_the_digest_and_provenance() {
    let started = started(Timestamp::now());
    let sb = source_build(1, Some(started));
    let pod = pod_for(&sb, finished(0, DIGEST));
    let script = vec![expect(Method::PATCH, status_path(), 200, echo_status(&sb))];
    let (bodies, events) = run(sb, harness(vec![pod]), script).await;
    let status = status_of(&bodies[0]);
    assert_eq!(status.phase, Some(Phase::Succeeded));
    assert_eq!(status.digest.as_deref(), Some(DIGEST));
    assert_eq!(
        status.latest_image,
        Some(format!("registry.example.com/team/app@{DIGEST}"))
    );
    assert_eq!(
        status.source_revision.as_deref(),
        Some("0123456789abcdef0123456789abcdef01234567")
    );
    assert_eq!(status.condition("Succeeded").unwrap().status, "True");
    // What the publish step pushed rides in the same write.
    let provenance = status.provenance.as_deref().unwrap();
    assert_eq!(Some(&provenance.image), status.latest_image.as_ref());
    let attestation = format!("sha256:{}", "e".repeat(64));
    assert_eq!(provenance.attestation.as_ref(), Some(&attestation));
    assert_eq!((provenance.signed, &provenance.signature), (false, &None));
    assert_eq!(provenance.referrers.as_deref(), Some("ReferrersAPI"));
    assert_eq!(status.history[0].attestation.as_ref(), Some(&attestation));
    assert_eq!(events, ["BuildSucceeded"]);
}

#[tokio::test]
async fn a_failed_build_records_reason_and_log_snippet() {
    let started = started(Timestamp::now());
    let sb = source_build(1, Some(started));
    let log = "STEP 6/6: RUN [\"/usr/libexec/s2i/assemble\"]\nERROR: No matching distribution found for flask==99\n\
               error building image: error building stage: failed to execute command: waiting for process to exit: exit status 1";
    let pod = pod_for(&sb, finished(1, log));
    let script = vec![expect(Method::PATCH, status_path(), 200, echo_status(&sb))];
    let (bodies, events) = run(sb, harness(vec![pod]), script).await;
    let status = status_of(&bodies[0]);
    assert_eq!(status.phase, Some(Phase::Failed));
    assert_eq!(
        status.condition("Succeeded").unwrap().reason,
        "AssembleFailed"
    );
    assert!(
        status
            .log_snippet
            .as_ref()
            .unwrap()
            .contains("No matching distribution")
    );
    assert_eq!(status.digest, None);
    // Failed for good (no spec.retry): Stalled with the reason, Reconciling gone, one write.
    let stalled = status.condition("Stalled").unwrap();
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "AssembleFailed")
    );
    assert_eq!(status.condition("Reconciling"), None);
    assert_eq!(events, ["AssembleFailed"]);
}

#[tokio::test]
async fn a_spec_change_stops_the_running_build_and_starts_the_new_one() {
    let gen1 = source_build(1, None);
    let old_pod = pod_for(&gen1, running());
    let running_status = sourcebuild::controller::status::in_progress(
        &Default::default(),
        1,
        &build_pod_name("app", 1, 1),
        Phase::Running,
        None,
        Time(Timestamp::now()),
        Timestamp::now(),
    );
    let sb = source_build(2, Some(running_status));
    let new_pod = build_pod(&sb, &settings(), 1).unwrap();
    let script = vec![
        expect(
            Method::DELETE,
            format!(
                "/api/v1/namespaces/team/pods/{}",
                build_pod_name("app", 1, 1)
            ),
            200,
            serde_json::to_value(&old_pod).unwrap(),
        ),
        pod_created(&new_pod),
        expect(Method::PATCH, status_path(), 200, echo_status(&sb)),
    ];
    let (bodies, events) = run(sb, harness(vec![old_pod]), script).await;
    let created: Pod = serde_json::from_value(bodies[1].clone()).unwrap();
    assert_eq!(created.name_any(), build_pod_name("app", 2, 1));
    let status = status_of(&bodies[2]);
    assert_eq!(
        (status.phase, status.observed_generation),
        (Some(Phase::Running), Some(2))
    );
    assert_eq!(events, ["Superseded", "BuildStarted"]);
}

#[tokio::test]
async fn a_restarted_controller_with_a_cold_cache_asks_before_creating() {
    // Status says the Pod was created; the cache does not have it yet; the API server does.
    let started = started(Timestamp::now());
    let sb = source_build(1, Some(started));
    let pod = pod_for(&sb, running());
    let script = vec![expect(
        Method::GET,
        format!(
            "/api/v1/namespaces/team/pods/{}",
            build_pod_name("app", 1, 1)
        ),
        200,
        serde_json::to_value(&pod).unwrap(),
    )];
    // Found, and running as recorded: nothing to write.
    let (bodies, _) = run(sb, harness(vec![]), script).await;
    assert_eq!(bodies.len(), 1);
}

#[tokio::test]
async fn a_pod_deleted_by_someone_else_fails_the_build() {
    let started = started(Timestamp::now());
    let sb = source_build(1, Some(started));
    let script = vec![
        expect(
            Method::GET,
            format!(
                "/api/v1/namespaces/team/pods/{}",
                build_pod_name("app", 1, 1)
            ),
            404,
            not_found(),
        ),
        expect(Method::PATCH, status_path(), 200, echo_status(&sb)),
    ];
    let (bodies, events) = run(sb, harness(vec![]), script).await;
    let status = status_of(&bodies[1]);
    assert_eq!(status.phase, Some(Phase::Failed));
    assert_eq!(status.condition("Succeeded").unwrap().reason, "PodDeleted");
    assert_eq!(events, ["PodDeleted"]);
}

#[tokio::test]
async fn a_finished_build_makes_no_request_at_all() {
    let started = started(Timestamp::now());
    let sb = source_build(1, Some(started));
    let pod = pod_for(&sb, finished(0, DIGEST));
    let (_, outcome) = {
        let script = vec![expect(Method::PATCH, status_path(), 200, echo_status(&sb))];
        run(sb.clone(), harness(vec![pod.clone()]), script).await
    };
    assert_eq!(outcome, ["BuildSucceeded"]);
    // Feed the recorded status back: a resync must be silent.
    let now = Timestamp::now();
    let target = sourcebuild::controller::plan::target(&sb, now);
    let done =
        sourcebuild::controller::plan::plan(&sb, &target, Some(&pod), &[], &[], &settings(), now)
            .status
            .unwrap();
    let sb = source_build(1, Some(done));
    let (bodies, events) = run(sb, harness(vec![pod]), vec![]).await;
    assert!(bodies.is_empty() && events.is_empty());
}

#[tokio::test]
async fn a_pending_build_past_its_timeout_is_stopped() {
    let long_ago = Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_hours(2);
    let started = started(long_ago);
    let sb = source_build(1, Some(started));
    let mut pod = pod_for(
        &sb,
        json!({"phase": "Pending", "containerStatuses": [
        {"name": "build", "ready": false, "restartCount": 0, "image": "kaniko", "imageID": "",
         "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]}),
    );
    pod.metadata.creation_timestamp = Some(Time(long_ago));
    let script = vec![
        // No request for the Pod's Events: mount failures come from a watch.
        expect(
            Method::DELETE,
            format!(
                "/api/v1/namespaces/team/pods/{}",
                build_pod_name("app", 1, 1)
            ),
            200,
            serde_json::to_value(&pod).unwrap(),
        ),
        expect(Method::PATCH, status_path(), 200, echo_status(&sb)),
    ];
    let (bodies, _) = run(sb, harness(vec![pod]), script).await;
    let status = status_of(&bodies[1]);
    // Stuck on its own image when time ran out: the pull is the cause the failure names.
    assert_eq!(
        status.condition("Succeeded").unwrap().reason,
        "ImagePullFailed"
    );
    assert!(
        status
            .condition("Succeeded")
            .unwrap()
            .message
            .contains("ImagePullBackOff")
    );
}

#[tokio::test]
async fn an_invalid_spec_fails_without_a_pod() {
    let mut sb = source_build(1, None);
    sb.spec.env[0].name = "NOT VALID".into();
    let script = vec![expect(Method::PATCH, status_path(), 200, echo_status(&sb))];
    let (bodies, events) = run(sb, harness(vec![]), script).await;
    let status = status_of(&bodies[0]);
    assert_eq!(status.condition("Succeeded").unwrap().reason, "InvalidSpec");
    assert!(
        status
            .condition("Succeeded")
            .unwrap()
            .message
            .contains("spec.env[0].name")
    );
    assert_eq!(events, ["InvalidSpec"]);
}

#[tokio::test]
async fn a_pending_pods_events_are_never_listed() {
    // Mount failures come from a watch on the kubelet's Events: a Pending Pod, new or a minute
    // old, costs no request.
    let sb = source_build(1, Some(started(Timestamp::now())));
    let mut pod = pod_for(
        &sb,
        json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "prepare", "ready": false, "restartCount": 0, "image": "x", "imageID": "",
             "state": {"waiting": {"reason": "PodInitializing"}}}]}),
    );
    pod.metadata.creation_timestamp = Some(Time(
        Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(60),
    ));
    let (bodies, _) = run(sb, harness(vec![pod]), vec![]).await;
    assert!(bodies.is_empty());
}

#[tokio::test]
async fn a_failed_mount_of_a_missing_secret_fails_the_build_at_once() {
    let mut sb = source_build(1, Some(started(Timestamp::now())));
    sb.spec.output.push_secret_ref = Some(sourcebuild::api::SecretReference {
        name: "regcred".into(),
    });
    let pod = pod_for(
        &sb,
        json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "prepare", "ready": false, "restartCount": 0, "image": "x", "imageID": "",
             "state": {"waiting": {"reason": "PodInitializing"}}}]}),
    );
    let mut pod = pod;
    pod.metadata.uid = Some("pod-uid-1".into());
    let h = harness(vec![pod.clone()]);
    let owner = h.ctx.caches.mount_failures.record(
        &failed_mount(
            &pod,
            "MountVolume.SetUp failed for volume \"push-secret\" : secret \"regcred\" not found",
        ),
        &h.ctx.caches.pods,
    );
    assert_eq!(owner.map(|o| o.name), Some("app".to_string()));
    let script = vec![
        expect(
            Method::DELETE,
            format!(
                "/api/v1/namespaces/team/pods/{}",
                build_pod_name("app", 1, 1)
            ),
            200,
            serde_json::to_value(&pod).unwrap(),
        ),
        expect(Method::PATCH, status_path(), 200, echo_status(&sb)),
    ];
    let (bodies, events) = run(sb, h, script).await;
    let status = status_of(&bodies[1]);
    let succeeded = status.condition("Succeeded").unwrap();
    assert_eq!(
        (status.phase, succeeded.reason.as_str()),
        (Some(Phase::Failed), "SecretNotFound")
    );
    assert!(
        succeeded.message.contains("regcred"),
        "{}",
        succeeded.message
    );
    assert_eq!(events, ["SecretNotFound"]);
}

#[tokio::test]
async fn a_missing_service_account_fails_the_build_when_the_pod_is_refused() {
    let mut sb = source_build(1, None);
    sb.spec.service_account_name = Some("builder".into());
    let refusal = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
        "message": "pods \"app-build-1\" is forbidden: error looking up service account team/builder: serviceaccount \"builder\" not found"});
    let script = vec![
        expect(Method::POST, "/api/v1/namespaces/team/pods", 403, refusal),
        expect(Method::PATCH, status_path(), 200, echo_status(&sb)),
    ];
    let (bodies, events) = run(sb, harness(vec![]), script).await;
    let status = status_of(&bodies[1]);
    let succeeded = status.condition("Succeeded").unwrap();
    assert_eq!(
        (status.phase, succeeded.reason.as_str()),
        (Some(Phase::Failed), "ServiceAccountNotFound")
    );
    assert!(
        succeeded.message.contains("\"builder\""),
        "{}",
        succeeded.message
    );
    assert_eq!(status.pod_name, None);
    assert_eq!(events, ["ServiceAccountNotFound"]);
}

#[tokio::test]
async fn a_new_rebuild_value_creates_the_next_pod_of_the_same_generation() {
    let started = started(Timestamp::now());
    let built = source_build(1, Some(started.clone()));
    let pod = pod_for(&built, finished(0, DIGEST));
    let done = sourcebuild::controller::plan::plan(
        &built,
        &sourcebuild::controller::plan::target(&built, Timestamp::now()),
        Some(&pod),
        &[],
        &[],
        &settings(),
        Timestamp::now(),
    )
    .status
    .unwrap();
    let mut sb = source_build(1, Some(done));
    sb.metadata
        .annotations
        .get_or_insert_default()
        .insert("sourcebuild.dev/rebuild".into(), "2026-01-05".into());
    let mut second = build_pod(&sb, &settings(), 1).unwrap();
    second.metadata.name = Some("app-build-1-2".into());
    let script = vec![
        pod_created(&second),
        expect(Method::PATCH, status_path(), 200, echo_status(&sb)),
    ];
    // The finished first Pod stays (retention keeps a few); nothing else is asked.
    let (bodies, events) = run(sb, harness(vec![pod]), script).await;
    let created: Pod = serde_json::from_value(bodies[0].clone()).unwrap();
    assert_eq!(created.name_any(), "app-build-1-2");
    let status = status_of(&bodies[1]);
    assert_eq!(
        (
            status.phase,
            status.build,
            status.trigger,
            status.rebuild.as_deref()
        ),
        (
            Some(Phase::Running),
            Some(2),
            Some(Trigger::Manual),
            Some("2026-01-05")
        )
    );
    assert_eq!(status.history.len(), 1, "the first build is in history");
    assert_eq!(events, ["BuildStarted"]);
}

#[tokio::test]
async fn suspending_deletes_the_running_pod_and_records_cancelled() {
    let gen1 = source_build(1, Some(started(Timestamp::now())));
    let pod = pod_for(&gen1, running());
    let mut sb = source_build(2, gen1.status.clone());
    sb.spec.suspend = true;
    let script = vec![
        expect(
            Method::DELETE,
            format!(
                "/api/v1/namespaces/team/pods/{}",
                build_pod_name("app", 1, 1)
            ),
            200,
            serde_json::to_value(&pod).unwrap(),
        ),
        expect(Method::PATCH, status_path(), 200, echo_status(&sb)),
    ];
    let (bodies, events) = run(sb, harness(vec![pod]), script).await;
    let status = status_of(&bodies[1]);
    assert_eq!(status.phase, Some(Phase::Cancelled));
    assert_eq!(status.condition("Succeeded").unwrap().reason, "Cancelled");
    assert_eq!(events, ["Superseded", "Cancelled"]);
}

#[tokio::test]
async fn a_cache_behind_our_own_write_plans_from_the_write() {
    // The Pod watch wakes the reconcile again before the SourceBuild watch shows the status
    // just written: the second reconcile starts from the API server's answer to that write, so
    // it neither writes the same status again nor publishes its Event twice.
    let mut sb = source_build(1, Some(started(Timestamp::now())));
    sb.metadata.resource_version = Some("10".into());
    let pod = pod_for(&sb, stuck());
    let h = harness(vec![pod]);
    let Harness {
        ctx,
        events,
        mut handle,
    } = h;
    let server = tokio::spawn(async move {
        let (request, send) = handle.next_request().await.expect("a status write");
        assert_eq!(
            (request.method(), request.uri().path()),
            (&Method::PATCH, status_path())
        );
        let body: Value =
            serde_json::from_slice(&request.into_body().collect_bytes().await.unwrap()).unwrap();
        assert_eq!(body["metadata"]["resourceVersion"], "10", "{body}");
        // The API server's answer: the object as stored, one version on.
        let mut stored: Value = serde_json::to_value(source_build(1, None)).unwrap();
        stored["status"] = body["status"].clone();
        stored["metadata"]["resourceVersion"] = json!("11");
        send.send_response(
            Response::builder()
                .status(200)
                .body(Body::from(serde_json::to_vec(&stored).unwrap()))
                .unwrap(),
        );
        if let Some((request, _)) = handle.next_request().await {
            panic!("unexpected request {} {}", request.method(), request.uri());
        }
    });
    let stale = Arc::new(sb);
    reconcile(stale.clone(), ctx.clone()).await.unwrap();
    reconcile(stale, ctx.clone()).await.unwrap();
    assert_eq!(ctx.caches.status_memo.unconfirmed(), 1);
    drop(ctx);
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        *events.0.lock().unwrap(),
        ["PodPending"],
        "one Event, not two"
    );
}

#[tokio::test]
async fn a_pod_just_created_is_not_fetched_while_its_watch_event_is_on_the_way() {
    let mut sb = source_build(1, None);
    sb.metadata.resource_version = Some("10".into());
    let Harness {
        ctx,
        events,
        mut handle,
    } = harness(vec![]);
    let server = tokio::spawn(async move {
        let mut written = None;
        for (method, path) in [
            (Method::POST, "/api/v1/namespaces/team/pods"),
            (Method::PATCH, status_path()),
        ] {
            let (request, send) = handle.next_request().await.expect("a request");
            assert_eq!((request.method(), request.uri().path()), (&method, path));
            let body: Value =
                serde_json::from_slice(&request.into_body().collect_bytes().await.unwrap())
                    .unwrap();
            let answer = if method == Method::POST {
                body
            } else {
                let mut stored: Value = serde_json::to_value(source_build(1, None)).unwrap();
                stored["status"] = body["status"].clone();
                stored["metadata"]["resourceVersion"] = json!("11");
                written = Some(stored.clone());
                stored
            };
            send.send_response(
                Response::builder()
                    .status(if method == Method::POST { 201 } else { 200 })
                    .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                    .unwrap(),
            );
        }
        // No GET of the Pod: it was created a moment ago.
        if let Some((request, _)) = handle.next_request().await {
            panic!("unexpected request {} {}", request.method(), request.uri());
        }
        written.unwrap()
    });
    reconcile(Arc::new(sb), ctx.clone()).await.unwrap();
    assert_eq!(ctx.caches.created_pods.unseen(), 1);
    // The SourceBuild watch shows our status write; the Pod watch has not delivered the Pod.
    let mut cached = source_build(1, Some(started(Timestamp::now())));
    cached.metadata.resource_version = Some("11".into());
    reconcile(Arc::new(cached), ctx.clone()).await.unwrap();
    drop(ctx);
    let written = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        written["status"]["podName"],
        json!(build_pod_name("app", 1, 1))
    );
    assert_eq!(*events.0.lock().unwrap(), ["BuildStarted"]);
}

/// `harness(pods)` whose write gate has its one permit in use and another reconcile waiting
/// to create a Pod (the API server is the bottleneck). Once the reconcile under test queues
/// too, a third one queues behind it and the permit comes free: the one ahead takes it and
/// hands it on, so the reconcile under test runs while a build still waits for its Pod.
fn in_a_burst(pods: Vec<Pod>) -> Harness {
    let mut harness = harness(pods);
    let gate = WriteGate::new(1);
    let held = gate
        .acquire(Priority::Other)
        .now_or_never()
        .expect("a free permit");
    let waiter = |gate: &WriteGate| {
        let gate = gate.clone();
        tokio::spawn(async move { drop(gate.acquire(Priority::Start).await) })
    };
    waiter(&gate);
    let conductor = gate.clone();
    tokio::spawn(async move {
        while conductor.waiting() < 2 {
            tokio::task::yield_now().await;
        }
        waiter(&conductor);
        while conductor.waiting() < 3 {
            tokio::task::yield_now().await;
        }
        drop(held);
    });
    Arc::get_mut(&mut harness.ctx)
        .expect("not shared yet")
        .throttle
        .gate = gate;
    harness
}

/// Lets the first waiter of [`in_a_burst`] queue at the gate.
async fn queued(harness: Harness) -> Harness {
    while harness.ctx.throttle.gate.starts_waiting() == 0 {
        tokio::task::yield_now().await;
    }
    harness
}

#[tokio::test]
async fn in_a_burst_a_new_build_gets_its_pod_first_and_its_status_after() {
    let sb = source_build(1, None);
    let pod = build_pod(&sb, &settings(), 1).unwrap();
    let create = || pod_created(&pod);
    // Many builds wait to start: the Pod only; status and Events come later.
    let (bodies, events, action) =
        run_for_action(sb.clone(), queued(in_a_burst(vec![])).await, vec![create()]).await;
    assert_eq!(bodies.len(), 1);
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(action, Action::requeue(DEFER_FOR));

    // Nobody waits: Pod and status together.
    let (bodies, events) = run(
        sb,
        harness(vec![]),
        vec![
            create(),
            expect(
                Method::PATCH,
                status_path(),
                200,
                echo_status(&source_build(1, None)),
            ),
        ],
    )
    .await;
    assert_eq!(status_of(&bodies[1]).phase, Some(Phase::Running));
    assert_eq!(events, ["BuildStarted"]);
}

#[tokio::test]
async fn in_a_burst_progress_waits_and_results_do_not() {
    let sb = source_build(1, Some(started(Timestamp::now())));
    // Stuck Pending: no request at all, a look again soon.
    let pod = pod_for(&sb, stuck());
    let (bodies, events, action) =
        run_for_action(sb.clone(), queued(in_a_burst(vec![pod])).await, vec![]).await;
    assert!(bodies.is_empty());
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(action, Action::requeue(DEFER_FOR));

    // Finished: the digest is written at once, whatever waits.
    let pod = pod_for(&sb, finished(0, DIGEST));
    let (bodies, events) = run(
        sb.clone(),
        queued(in_a_burst(vec![pod])).await,
        vec![expect(Method::PATCH, status_path(), 200, echo_status(&sb))],
    )
    .await;
    let status = status_of(&bodies[0]);
    assert_eq!(status.phase, Some(Phase::Succeeded));
    assert_eq!(status.digest.as_deref(), Some(DIGEST));
    assert_eq!(events, ["BuildSucceeded"]);
}

#[tokio::test]
async fn progress_waits_while_our_own_creates_are_not_back_through_the_watch() {
    // The gate has no queue, but the API server has not shown us 16 of our creates yet.
    let sb = source_build(1, Some(started(Timestamp::now())));
    let pod = pod_for(&sb, stuck());
    let behind = harness(vec![pod.clone()]);
    for i in 0..sourcebuild::controller::writes::UNSEEN_CREATES {
        behind
            .ctx
            .caches
            .created_pods
            .expect("team", &format!("other-{i}-build-1"));
    }
    let (bodies, events, action) = run_for_action(sb.clone(), behind, vec![]).await;
    assert!(bodies.is_empty() && events.is_empty(), "{events:?}");
    assert_eq!(action, Action::requeue(DEFER_FOR));
    // One fewer: the stuck Pod's status is written at once.
    let nearly = harness(vec![pod]);
    for i in 1..sourcebuild::controller::writes::UNSEEN_CREATES {
        nearly
            .ctx
            .caches
            .created_pods
            .expect("team", &format!("other-{i}-build-1"));
    }
    let script = vec![expect(Method::PATCH, status_path(), 200, echo_status(&sb))];
    let (bodies, _) = run(sb, nearly, script).await;
    assert_eq!(status_of(&bodies[0]).phase, Some(Phase::Pending));
}

#[tokio::test]
async fn a_build_first_recorded_running_writes_one_status_and_its_start_event() {
    // The status of the create was put off (or lost) until the Pod already ran: one write.
    let sb = source_build(1, None);
    let pod = pod_for(&sb, running());
    let (bodies, events) = run(
        sb.clone(),
        harness(vec![pod]),
        vec![expect(Method::PATCH, status_path(), 200, echo_status(&sb))],
    )
    .await;
    let status = status_of(&bodies[0]);
    assert_eq!(status.phase, Some(Phase::Running));
    assert_eq!(status.pod_name, Some(build_pod_name("app", 1, 1)));
    assert_eq!(events, ["BuildStarted"]);
}

#[tokio::test]
async fn a_pod_created_with_its_status_put_off_is_not_created_again() {
    let sb = source_build(1, None);
    let pod = build_pod(&sb, &settings(), 1).unwrap();
    let Harness {
        ctx, mut handle, ..
    } = queued(in_a_burst(vec![])).await;
    let server = tokio::spawn(async move {
        let (request, send) = handle.next_request().await.expect("a request");
        assert_eq!(
            (request.method(), request.uri().path()),
            (&Method::POST, "/api/v1/namespaces/team/pods")
        );
        send.send_response(
            Response::builder()
                .status(201)
                .body(Body::from(serde_json::to_vec(&pod).unwrap()))
                .unwrap(),
        );
        // Neither a second create (a 409) nor a GET: the Pod is on its way through the watch.
        if let Some((request, _)) = handle.next_request().await {
            panic!("unexpected request {} {}", request.method(), request.uri());
        }
    });
    let first = reconcile(Arc::new(sb.clone()), ctx.clone()).await.unwrap();
    assert_eq!(first, Action::requeue(DEFER_FOR));
    // The requeue fires before the Pod watch delivers the Pod; the backlog is gone by then.
    assert_eq!(ctx.throttle.gate.starts_waiting(), 0);
    let second = reconcile(Arc::new(sb), ctx.clone()).await.unwrap();
    assert_eq!(
        second,
        Action::requeue(sourcebuild::controller::cache::created_pods::TRUSTED_FOR)
    );
    drop(ctx);
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_reconcile_in_flight_is_small() {
    // kube-runtime keeps up to a thousand reconciles in flight; what each holds while it waits
    // (for a permit, an answer) is this future. The plan of a pass lives on the heap only while
    // the pass runs.
    let harness = harness(vec![]);
    let future = reconcile(Arc::new(source_build(1, None)), harness.ctx.clone());
    let size = std::mem::size_of_val(&future);
    assert!(size <= 1024, "a reconcile future of {size} bytes");
}
