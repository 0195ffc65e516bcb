use super::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + seconds).unwrap()
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

fn sb(generation: i64, extra: serde_json::Value) -> SourceBuild {
    let mut spec = json!({
        "source": {"git": {"url": "https://example.com/acme/app.git"}},
        "output": {"image": "registry.example.com/team/app:1.0"}
    });
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(json!({
        "apiVersion": "sourcebuild.dev/v1alpha1", "kind": "SourceBuild",
        "metadata": {"name": "app", "namespace": "team", "uid": "uid-1", "generation": generation},
        "spec": spec
    }))
    .unwrap()
}

fn pod_in(sb: &SourceBuild, name: &str, status: serde_json::Value) -> Pod {
    let mut pod = build_pod(sb, &settings(), 1).unwrap();
    pod.metadata.name = Some(name.into());
    pod.metadata.creation_timestamp = Some(Time(at(0)));
    pod.status = Some(serde_json::from_value(status).unwrap());
    pod
}

fn terminated(name: &str, code: i32, message: &str, finished: &str) -> serde_json::Value {
    json!({"name": name, "ready": false, "restartCount": 0, "image": "x", "imageID": "",
           "state": {"terminated": {"exitCode": code, "message": message, "finishedAt": finished,
                                    "reason": if code == 0 { "Completed" } else { "Error" }}}})
}

fn finished(code: i32, message: &str, finished_at: &str) -> serde_json::Value {
    let prepared = json!({"prepared": {"revision": "0123456789abcdef0123456789abcdef01234567",
        "dockerfileSha256": format!("sha256:{}", "d".repeat(64)),
        "builderImage": "quay.io/sclorg/python-312-c9s:c9s"}})
    .to_string();
    let mut publish = vec![];
    if code == 0 {
        let published = json!({"published": {"subject": message.trim(),
            "attestation": format!("sha256:{}", "e".repeat(64))}})
        .to_string();
        publish.push(terminated("publish", 0, &published, finished_at));
    }
    json!({"phase": if code == 0 { "Succeeded" } else { "Failed" },
           "initContainerStatuses": [terminated("prepare", 0, &prepared, finished_at),
                                     terminated("build", code, message, finished_at)],
           "containerStatuses": publish})
}

fn running() -> serde_json::Value {
    json!({"phase": "Running", "containerStatuses": [{"name": "build", "ready": true,
           "restartCount": 0, "image": "x", "imageID": "", "state": {"running": {}}}]})
}

const DIGEST: &str = "sha256:6a0e1b6bd2f5fb0f3bc3b1d2c9e0e8f4a7c1d3e5f60718293a4b5c6d7e8f9a0b";
const ASSEMBLE_FAILED: &str = "error building image: error building stage: failed to execute command: waiting for process to exit: exit status 1";

/// Runs the plan with the Pods as the cache would hold them, and feeds its status back.
/// Every plan is also made from the full Pods, and must not differ.
fn step(sb: &mut SourceBuild, pods: &[Pod], now: Timestamp) -> (Target, Plan) {
    let target = target(sb, now);
    let plan_from = |pods: &[Pod]| {
        let current = pods.iter().find(|p| p.name_any() == target.pod_name);
        let others: Vec<&Pod> = pods
            .iter()
            .filter(|p| p.name_any() != target.pod_name)
            .collect();
        plan(sb, &target, current, &others, &[], &settings(), now)
    };
    let cached: Vec<Pod> = pods
        .iter()
        .map(|p| crate::controller::cache::slim_pod::SlimPod::from_pod(p).to_pod())
        .collect();
    let plan = plan_from(&cached);
    assert_eq!(plan, plan_from(pods), "the cached Pods plan differently");
    if let Some(status) = &plan.status {
        sb.status = Some(status.clone());
    }
    (target, plan)
}

fn reasons(plan: &Plan) -> Vec<&str> {
    plan.events.iter().map(|n| n.reason.as_str()).collect()
}

#[test]
fn a_pending_pod_is_looked_at_again_only_at_its_timeout() {
    // A mount failure wakes the controller through its Event watch, so a Pending Pod
    // (waiting for a node or an image) needs no timer but the timeout's.
    let mut sb = sb(1, json!({"timeout": "10m"}));
    let (_, p) = step(&mut sb, &[], at(0));
    assert!(p.create.is_some());
    let pending = pod_in(
        &sb,
        "app-build-1",
        json!({"phase": "Pending", "containerStatuses": [{"name": "build", "ready": false,
               "restartCount": 0, "image": "x", "imageID": "",
               "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
    );
    let (_, p) = step(&mut sb, &[pending], at(120));
    assert_eq!(p.requeue_after, Some(Duration::from_secs(480)));
}

#[test]
fn a_new_generation_builds_after_a_failed_build() {
    let mut sb = sb(1, json!({}));
    let (_, p) = step(&mut sb, &[], at(0));
    assert_eq!(p.create.unwrap().name_any(), "app-build-1");
    let failed = pod_in(
        &sb,
        "app-build-1",
        finished(1, ASSEMBLE_FAILED, "2023-11-14T22:14:00Z"),
    );
    let (_, p) = step(&mut sb, std::slice::from_ref(&failed), at(10));
    assert_eq!(p.status.unwrap().phase, Some(Phase::Failed));
    // The spec is fixed: generation 2 builds although generation 1 failed.
    sb.metadata.generation = Some(2);
    let (target, p) = step(&mut sb, &[failed], at(20));
    assert_eq!(target.start.unwrap().trigger, Trigger::ConfigChange);
    assert_eq!(p.create.unwrap().name_any(), "app-build-2");
    let status = p.status.unwrap();
    assert_eq!(
        (status.phase, status.build, status.trigger),
        (Some(Phase::Running), Some(1), Some(Trigger::ConfigChange))
    );
}

#[test]
fn a_successful_build_writes_status_twice() {
    // The create's status (Running) and the digest: a Pod on its way changes nothing.
    let mut sb = sb(1, json!({}));
    let (_, p) = step(&mut sb, &[], at(0));
    assert!(p.create.is_some());
    assert_eq!(p.status.as_ref().unwrap().phase, Some(Phase::Running));
    assert_eq!(reasons(&p), [BUILD_STARTED]);
    let on_its_way = [
        json!({"phase": "Pending"}),
        json!({"phase": "Pending", "initContainerStatuses": [{"name": "prepare",
               "ready": false, "restartCount": 0, "image": "x", "imageID": "",
               "state": {"running": {}}}]}),
        running(),
    ];
    for (i, status) in on_its_way.into_iter().enumerate() {
        let pod = pod_in(&sb, "app-build-1", status);
        let (_, p) = step(&mut sb, &[pod], at(1 + i as i64));
        assert_eq!(p.status, None, "step {i}");
        assert!(p.events.is_empty(), "step {i}: {:?}", p.events);
        assert!(p.create.is_none() && p.delete.is_empty(), "step {i}");
    }
    let done = pod_in(
        &sb,
        "app-build-1",
        finished(0, DIGEST, "2023-11-14T22:14:00Z"),
    );
    let (_, p) = step(&mut sb, &[done], at(10));
    assert_eq!(p.status.as_ref().unwrap().phase, Some(Phase::Succeeded));
    assert_eq!(reasons(&p), [BUILD_SUCCEEDED]);
    assert!(p.events.iter().all(Event::is_routine));
}

#[test]
fn a_stuck_pod_is_pending_with_a_warning_until_it_moves() {
    let mut sb = sb(1, json!({}));
    step(&mut sb, &[], at(0));
    let stuck = pod_in(
        &sb,
        "app-build-1",
        json!({"phase": "Pending", "containerStatuses": [{"name": "build", "ready": false,
               "restartCount": 0, "image": "x", "imageID": "",
               "state": {"waiting": {"reason": "ImagePullBackOff",
                                     "message": "Back-off pulling image"}}}]}),
    );
    let (_, p) = step(&mut sb, std::slice::from_ref(&stuck), at(5));
    let status = p.status.clone().unwrap();
    assert_eq!(status.phase, Some(Phase::Pending));
    let message = &status.condition(status::SUCCEEDED).unwrap().message;
    assert!(message.contains("ImagePullBackOff"), "{message}");
    assert_eq!(reasons(&p), [POD_PENDING]);
    assert_eq!(p.events[0].severity, Severity::Warning);
    assert!(!p.events[0].is_routine());
    // Status lost (a restart before it was written): the build is first seen stuck.
    let mut lost = sb.clone();
    lost.status = None;
    let (_, p) = step(&mut lost, std::slice::from_ref(&stuck), at(5));
    assert_eq!(p.status.as_ref().unwrap().phase, Some(Phase::Pending));
    assert_eq!(reasons(&p), [BUILD_STARTED, POD_PENDING]);
    // Still stuck: nothing new to say.
    let (_, p) = step(&mut sb, std::slice::from_ref(&stuck), at(6));
    assert!(p.status.is_none() && p.events.is_empty());
    // It moves: Running again, without an Event.
    let moving = pod_in(&sb, "app-build-1", running());
    let (_, p) = step(&mut sb, &[moving], at(7));
    assert_eq!(p.status.unwrap().phase, Some(Phase::Running));
    assert!(p.events.is_empty(), "{:?}", p.events);
}

/// The Pod's Kaniko image as the kubelet reports it stuck: `message` is the runtime's.
fn stuck_on_pull(sb: &SourceBuild, reason: &str, message: &str) -> Pod {
    pod_in(
        sb,
        "app-build-1",
        json!({"phase": "Pending", "containerStatuses": [{"name": "build", "ready": false,
               "restartCount": 0, "image": "registry.test/kaniko:nope", "imageID": "",
               "state": {"waiting": {"reason": reason, "message": message}}}]}),
    )
}

#[test]
fn an_image_that_does_not_exist_fails_the_build_at_once_and_a_slow_pull_at_its_timeout() {
    let mut sb = sb(1, json!({"timeout": "10m"}));
    step(&mut sb, &[], at(0));
    // The registry says the image does not exist: no reason to wait for the timeout.
    let missing = stuck_on_pull(
        &sb,
        "ErrImagePull",
        "rpc error: code = NotFound desc = failed to pull and unpack image \"registry.test/kaniko:nope\": not found",
    );
    let (_, p) = step(&mut sb.clone(), std::slice::from_ref(&missing), at(5));
    let status = p.status.clone().unwrap();
    assert_eq!(status.phase, Some(Phase::Failed));
    let condition = status.condition(status::SUCCEEDED).unwrap();
    assert_eq!(condition.reason, "ImagePullFailed");
    assert!(
        condition
            .message
            .contains("container build could not pull kaniko:test: ErrImagePull"),
        "{}",
        condition.message
    );
    assert_eq!(p.delete, ["app-build-1"]);
    // A registry that does not answer may come back: Pending until the timeout, then the pull
    // is what the failure names (not a bare Timeout).
    let unreachable = stuck_on_pull(
        &sb,
        "ImagePullBackOff",
        "Back-off pulling image \"registry.test/kaniko:nope\": connection refused",
    );
    let (_, p) = step(&mut sb.clone(), std::slice::from_ref(&unreachable), at(5));
    assert_eq!(p.status.unwrap().phase, Some(Phase::Pending));
    assert!(p.delete.is_empty());
    let (_, p) = step(&mut sb, std::slice::from_ref(&unreachable), at(601));
    let status = p.status.unwrap();
    let condition = status.condition(status::SUCCEEDED).unwrap();
    assert_eq!(
        (status.phase, condition.reason.as_str()),
        (Some(Phase::Failed), "ImagePullFailed")
    );
    assert!(
        condition
            .message
            .starts_with("build did not start within 10m: container build could not pull"),
        "{}",
        condition.message
    );
    assert_eq!(p.delete, ["app-build-1"]);
}

#[test]
fn a_new_rebuild_value_builds_the_same_generation_once() {
    let mut sb = sb(1, json!({}));
    step(&mut sb, &[], at(0));
    let done = pod_in(
        &sb,
        "app-build-1",
        finished(0, DIGEST, "2023-11-14T22:14:00Z"),
    );
    step(&mut sb, std::slice::from_ref(&done), at(10));
    assert_eq!(sb.status.as_ref().unwrap().phase, Some(Phase::Succeeded));

    sb.metadata
        .annotations
        .get_or_insert_default()
        .insert(REBUILD_ANNOTATION.into(), "r1".into());
    let (target, p) = step(&mut sb, std::slice::from_ref(&done), at(20));
    assert_eq!(target.pod_name, "app-build-1-2");
    assert_eq!(p.create.as_ref().unwrap().name_any(), "app-build-1-2");
    let status = sb.status.clone().unwrap();
    assert_eq!(
        (status.build, status.trigger, status.rebuild.as_deref()),
        (Some(2), Some(Trigger::Manual), Some("r1"))
    );
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(reasons(&p), ["BuildStarted"]);
    // The value was acted on: while it stays, nothing new starts.
    let second = pod_in(
        &sb,
        "app-build-1-2",
        finished(0, DIGEST, "2023-11-14T22:15:00Z"),
    );
    let pods = [done, second];
    let (_, p) = step(&mut sb, &pods, at(30));
    assert_eq!(p.status.unwrap().phase, Some(Phase::Succeeded));
    let (target, p) = step(&mut sb, &pods, at(40));
    assert!(target.start.is_none() && p.create.is_none() && p.status.is_none());
    let history = &sb.status.as_ref().unwrap().history;
    assert_eq!(
        history
            .iter()
            .map(|r| (r.build, r.trigger, r.phase))
            .collect::<Vec<_>>(),
        [
            (2, Some(Trigger::Manual), Phase::Succeeded),
            (1, Some(Trigger::ConfigChange), Phase::Succeeded)
        ]
    );
}

#[test]
fn a_lost_status_write_never_makes_a_second_pod() {
    // The rebuild's Pod was created but its status write was lost: the same name comes
    // out again, and the existing Pod is observed instead of created.
    let mut sb = sb(1, json!({}));
    step(&mut sb, &[], at(0));
    let done = pod_in(
        &sb,
        "app-build-1",
        finished(0, DIGEST, "2023-11-14T22:14:00Z"),
    );
    step(&mut sb, std::slice::from_ref(&done), at(10));
    sb.metadata
        .annotations
        .get_or_insert_default()
        .insert(REBUILD_ANNOTATION.into(), "r1".into());
    let before = sb.clone();
    let (_, p) = step(&mut sb, std::slice::from_ref(&done), at(20));
    let created = p.create.unwrap();
    let mut restarted = before;
    let running_pod = pod_in(&restarted, &created.name_any(), running());
    let (_, p) = step(&mut restarted, &[done, running_pod], at(30));
    assert!(p.create.is_none());
    assert_eq!(p.status.unwrap().phase, Some(Phase::Running));
}

#[test]
fn suspend_stops_the_running_build_and_resume_builds_the_current_spec() {
    let mut sb = sb(1, json!({}));
    step(&mut sb, &[], at(0));
    let pod = pod_in(&sb, "app-build-1", running());
    step(&mut sb, std::slice::from_ref(&pod), at(5));
    sb.spec.suspend = true;
    sb.metadata.generation = Some(2);
    let (target, p) = step(&mut sb, std::slice::from_ref(&pod), at(10));
    assert!(target.start.is_none() && p.create.is_none());
    assert_eq!(p.delete, ["app-build-1"]);
    let status = p.status.clone().unwrap();
    assert_eq!(status.phase, Some(Phase::Cancelled));
    assert_eq!(
        status.condition(status::SUCCEEDED).unwrap().reason,
        "Cancelled"
    );
    assert_eq!(
        (status.history[0].generation, status.history[0].phase),
        (1, Phase::Cancelled)
    );
    assert!(reasons(&p).contains(&"Cancelled"));
    // Still suspended: nothing starts, nothing changes.
    let mut deleted = pod;
    deleted.metadata.deletion_timestamp = Some(Time(at(11)));
    let (_, p) = step(&mut sb, std::slice::from_ref(&deleted), at(20));
    assert!(p.create.is_none() && p.status.is_none() && p.delete.is_empty());
    // Resumed: the new generation builds.
    sb.spec.suspend = false;
    sb.metadata.generation = Some(3);
    let (_, p) = step(&mut sb, &[], at(30));
    assert_eq!(p.create.unwrap().name_any(), "app-build-3");
}

#[test]
fn a_transient_failure_is_retried_with_backoff_and_a_bad_build_is_not() {
    let mut sb = sb(1, json!({"retry": {"limit": 1, "backoff": "10s"}}));
    step(&mut sb, &[], at(0));
    let evicted = pod_in(
        &sb,
        "app-build-1",
        json!({"phase": "Failed", "reason": "Evicted",
        "message": "The node was low on resource: memory."}),
    );
    let (_, p) = step(&mut sb, std::slice::from_ref(&evicted), at(10));
    let status = p.status.unwrap();
    assert_eq!(status.phase, Some(Phase::Failed));
    assert_eq!(status.next_attempt_time, Some(Time(at(20))));
    assert_eq!(p.requeue_after, Some(Duration::from_secs(10)));
    // Not yet due.
    let (target, p) = step(&mut sb, std::slice::from_ref(&evicted), at(15));
    assert!(target.start.is_none() && p.create.is_none());
    // Due: attempt 2, Pod -1-2.
    let (_, p) = step(&mut sb, std::slice::from_ref(&evicted), at(20));
    assert_eq!(p.create.as_ref().unwrap().name_any(), "app-build-1-2");
    assert_eq!(reasons(&p), ["Retrying", "BuildStarted"]);
    assert_eq!(sb.status.as_ref().unwrap().attempt, Some(2));
    // The limit is reached: the second eviction is final.
    let again = pod_in(
        &sb,
        "app-build-1-2",
        json!({"phase": "Failed", "reason": "Evicted"}),
    );
    let (_, p) = step(&mut sb, &[evicted, again], at(30));
    assert_eq!(p.status.unwrap().next_attempt_time, None);

    let mut sb2 = super::tests::sb(1, json!({"retry": {"limit": 3}}));
    step(&mut sb2, &[], at(0));
    let failed = pod_in(
        &sb2,
        "app-build-1",
        finished(1, ASSEMBLE_FAILED, "2023-11-14T22:14:00Z"),
    );
    let (_, p) = step(&mut sb2, &[failed], at(10));
    assert_eq!(p.status.unwrap().next_attempt_time, None);
}

#[test]
fn retention_keeps_the_newest_finished_pods_and_spares_the_unrecorded_one() {
    let mut sb = sb(
        4,
        json!({"retention": {"succeededLimit": 1, "failedLimit": 1}, "historyLimit": 2}),
    );
    let done = |name: &str, code: i32, t: &str| {
        pod_in(
            &sb,
            name,
            finished(code, if code == 0 { DIGEST } else { ASSEMBLE_FAILED }, t),
        )
    };
    let pods = [
        done("app-build-1", 0, "2023-11-14T22:10:00Z"),
        done("app-build-2", 1, "2023-11-14T22:11:00Z"),
        done("app-build-3", 0, "2023-11-14T22:12:00Z"),
        done("app-build-4", 1, "2023-11-14T22:13:00Z"),
    ];
    // Status still describes generation 3's build: generation 4 starts, nothing of its own
    // is finished yet, and the older Pods beyond the limits go.
    sb.status = Some(SourceBuildStatus {
        observed_generation: Some(4),
        build: Some(1),
        phase: Some(Phase::Running),
        pod_name: Some("app-build-4".into()),
        ..Default::default()
    });
    let (_, p) = step(&mut sb, &pods, at(0));
    let mut deleted = p.delete.clone();
    deleted.sort();
    // build-4 failed but its outcome is not recorded yet: spared. build-3 is the newest
    // success, build-2 the newest recorded failure.
    assert_eq!(deleted, ["app-build-1"]);
    // Once recorded, build-4 is the newest failure and build-2 goes.
    let (_, p) = step(&mut sb, &pods[1..], at(1));
    assert_eq!(p.delete, ["app-build-2"]);

    let ttl = super::tests::sb(1, json!({"retention": {"ttlAfterFinished": "1h"}}));
    let mut ttl = ttl;
    ttl.status = Some(SourceBuildStatus {
        observed_generation: Some(1),
        build: Some(1),
        phase: Some(Phase::Succeeded),
        pod_name: Some("app-build-1".into()),
        ..Default::default()
    });
    let old = pod_in(
        &ttl,
        "app-build-1",
        finished(0, DIGEST, "2023-11-14T22:13:20Z"),
    );
    let (_, p) = step(&mut ttl, std::slice::from_ref(&old), at(1800));
    assert!(p.delete.is_empty());
    assert_eq!(p.requeue_after, Some(Duration::from_secs(1800)));
    let (_, p) = step(&mut ttl, &[old], at(3600));
    assert_eq!(p.delete, ["app-build-1"]);
}

/// One reconcile with a look at the remote first, as the reconciler does it.
fn poll_step(
    sb: &mut SourceBuild,
    pods: &[Pod],
    answer: Option<poll::Answer>,
    now: Timestamp,
) -> (Target, Plan) {
    let stored = sb.clone();
    let mut observed = poll::record_answer(&stored, answer.as_ref(), now);
    let (target, planned) = step(&mut observed, pods, now);
    let planned = with_poll_answer(planned, &stored, &observed, answer.as_ref());
    if let Some(status) = &planned.status {
        sb.status = Some(status.clone());
    }
    (target, planned)
}

fn head(commit: char) -> String {
    commit.to_string().repeat(40)
}

fn pinned_revision(pod: &Pod) -> Option<String> {
    let env = pod.spec.as_ref()?.init_containers.as_ref()?[0]
        .env
        .as_ref()?;
    let request = env
        .iter()
        .find(|e| e.name == crate::contract::REQUEST_ENV)?
        .value
        .as_ref()?;
    let request: crate::contract::PrepareRequest = serde_json::from_str(request).ok()?;
    request.source.git?.revision
}

#[test]
fn a_moved_head_builds_once_pinned_to_the_commit_seen() {
    let mut sb = sb(
        1,
        json!({"source": {"git": {"url": "https://example.com/acme/app.git",
                                  "revision": "main", "pollInterval": "1m"}}}),
    );
    // The first look and the first build go together; that build covers the head seen.
    assert!(poll::due(&sb, at(0)));
    let (target, p) = poll_step(&mut sb, &[], Some(poll::Answer::Head(head('a'))), at(0));
    assert_eq!(target.start.unwrap().trigger, Trigger::ConfigChange);
    assert_eq!(
        pinned_revision(p.create.as_ref().unwrap()).as_deref(),
        Some("main")
    );
    let source = sb.status.as_ref().unwrap().source.clone().unwrap();
    assert_eq!(source.latest_revision, Some(head('a')));
    assert_eq!(source.built_revision, Some(head('a')));
    assert_eq!(p.requeue_after, Some(Duration::from_secs(60)));
    let first = pod_in(
        &sb,
        "app-build-1",
        finished(0, DIGEST, "2023-11-14T22:14:00Z"),
    );
    poll_step(&mut sb, std::slice::from_ref(&first), None, at(10));
    assert_eq!(sb.status.as_ref().unwrap().phase, Some(Phase::Succeeded));

    // Not due yet; then due, same head: nothing starts, only the check time moves.
    assert!(!poll::due(&sb, at(59)));
    assert!(poll::due(&sb, at(60)));
    let (target, p) = poll_step(
        &mut sb,
        std::slice::from_ref(&first),
        Some(poll::Answer::Head(head('a'))),
        at(60),
    );
    assert!(target.start.is_none() && p.create.is_none());
    assert_eq!(
        p.status.unwrap().source.unwrap().last_checked,
        Some(Time(at(60)))
    );

    // The branch moved: one SourceChange build of exactly that commit.
    let (target, p) = poll_step(
        &mut sb,
        std::slice::from_ref(&first),
        Some(poll::Answer::Head(head('b'))),
        at(120),
    );
    let start = target.start.unwrap();
    assert_eq!(
        (start.trigger, start.build, start.revision.clone()),
        (Trigger::SourceChange, 2, Some(head('b')))
    );
    let created = p.create.clone().unwrap();
    assert_eq!(created.name_any(), "app-build-1-2");
    assert_eq!(pinned_revision(&created), Some(head('b')));
    assert_eq!(reasons(&p), ["SourceChanged", "BuildStarted"]);
    let status = sb.status.clone().unwrap();
    assert_eq!(status.trigger, Some(Trigger::SourceChange));
    assert_eq!(status.source.unwrap().built_revision, Some(head('b')));

    // It fails; the same head, seen again, never builds a second time.
    let second = pod_in(
        &sb,
        "app-build-1-2",
        finished(1, ASSEMBLE_FAILED, "2023-11-14T22:16:00Z"),
    );
    let pods = [first, second];
    poll_step(&mut sb, &pods, None, at(130));
    assert_eq!(sb.status.as_ref().unwrap().phase, Some(Phase::Failed));
    let (target, p) = poll_step(&mut sb, &pods, Some(poll::Answer::Head(head('b'))), at(180));
    assert!(target.start.is_none() && p.create.is_none());
    assert_eq!(
        sb.status.as_ref().unwrap().history[0].trigger,
        Some(Trigger::SourceChange)
    );
}

/// A SourceBuild of the remote's HEAD polled every `interval`: the first look saw `a`, and
/// the first build (its Pod returned) succeeded at 10 s.
fn polled_and_built(interval: &str) -> (SourceBuild, Pod) {
    let mut sb = sb(
        1,
        json!({"source": {"git": {"url": "https://example.com/acme/app.git",
                                  "pollInterval": interval}}}),
    );
    poll_step(&mut sb, &[], Some(poll::Answer::Head(head('a'))), at(0));
    let done = pod_in(
        &sb,
        "app-build-1",
        finished(0, DIGEST, "2023-11-14T22:14:00Z"),
    );
    poll_step(&mut sb, std::slice::from_ref(&done), None, at(10));
    assert_eq!(sb.status.as_ref().unwrap().phase, Some(Phase::Succeeded));
    (sb, done)
}

#[test]
fn a_head_the_latest_build_already_resolved_does_not_build_again() {
    // A manual rebuild resolved the branch itself after it moved: polling then sees the
    // commit that build already has.
    let prepared_commit = "0123456789abcdef0123456789abcdef01234567";
    let (mut sb, done) = polled_and_built("1m");
    assert_eq!(
        sb.status.as_ref().unwrap().source_revision.as_deref(),
        Some(prepared_commit)
    );
    let (target, _) = poll_step(
        &mut sb,
        std::slice::from_ref(&done),
        Some(poll::Answer::Head(prepared_commit.into())),
        at(60),
    );
    assert!(target.start.is_none());
}

#[test]
fn a_failed_look_is_reported_and_leaves_the_build_alone() {
    let (mut sb, done) = polled_and_built("5m");
    let (target, p) = poll_step(
        &mut sb,
        std::slice::from_ref(&done),
        Some(poll::Answer::Failed("connection refused".into())),
        at(300),
    );
    assert!(target.start.is_none() && p.create.is_none());
    assert_eq!(reasons(&p), ["SourcePollFailed"]);
    assert!(p.events[0].message.contains("connection refused"));
    let status = p.status.unwrap();
    assert_eq!(status.phase, Some(Phase::Succeeded));
    assert_eq!(status.condition(status::SUCCEEDED).unwrap().status, "True");
    let reachable = status.condition(status::SOURCE_REACHABLE).unwrap();
    assert_eq!(
        (reachable.status.as_str(), reachable.reason.as_str()),
        ("False", "PollFailed")
    );
    assert!(
        reachable
            .message
            .contains("HEAD of https://example.com/acme/app.git")
    );
    // The head seen before stays; the next look is one interval away.
    assert_eq!(status.source.unwrap().latest_revision, Some(head('a')));
    assert_eq!(p.requeue_after, Some(Duration::from_secs(300)));

    // Suspended, or a secret the controller cannot use: no look at all. Polling turned
    // off: its traces go.
    assert!(poll::due(&sb, at(10_000)));
    sb.spec.suspend = true;
    assert!(!poll::due(&sb, at(10_000)));
    sb.spec.suspend = false;
    let mut with_secret = sb.clone();
    with_secret.spec.source.git.as_mut().unwrap().secret_ref = Some(crate::api::SecretReference {
        name: "git-creds".into(),
    });
    assert!(!poll::due(&with_secret, at(10_000)));
    sb.spec.source.git.as_mut().unwrap().poll_interval = None;
    sb.metadata.generation = Some(2);
    let (_, p) = poll_step(&mut sb, std::slice::from_ref(&done), None, at(10_000));
    let status = p.status.unwrap();
    assert_eq!(status.source, None);
    assert!(status.condition(status::SOURCE_REACHABLE).is_none());
}

#[test]
fn a_new_spec_is_looked_at_at_once_and_a_head_of_the_old_one_means_nothing() {
    let mut sb = sb(
        1,
        json!({"source": {"git": {"url": "https://example.com/acme/app.git",
                                                 "revision": "main", "pollInterval": "1h"}}}),
    );
    poll_step(&mut sb, &[], Some(poll::Answer::Head(head('a'))), at(0));
    sb.spec.source.git.as_mut().unwrap().revision = Some("release".into());
    sb.metadata.generation = Some(2);
    assert!(poll::due(&sb, at(1)));
    // The new branch cannot be resolved: its build starts anyway, unpinned, and the old
    // branch's head is forgotten rather than taken for the new one's.
    let (target, p) = poll_step(
        &mut sb,
        &[],
        Some(poll::Answer::Failed("no branch".into())),
        at(1),
    );
    assert_eq!(target.start.unwrap().trigger, Trigger::ConfigChange);
    assert_eq!(
        pinned_revision(p.create.as_ref().unwrap()).as_deref(),
        Some("release")
    );
    let source = sb.status.unwrap().source.unwrap();
    assert_eq!(
        (source.latest_revision, source.built_revision),
        (None, None)
    );
}

#[test]
fn a_failure_recorded_without_stalled_gains_it_in_one_write_then_none() {
    let mut sb = sb(1, json!({}));
    step(&mut sb, &[], at(0));
    let failed = pod_in(
        &sb,
        "app-build-1",
        finished(1, ASSEMBLE_FAILED, "2023-11-14T22:14:00Z"),
    );
    let pods = [failed];
    step(&mut sb, &pods, at(30));
    // The status an operator without kstatus conditions left behind.
    let status = sb.status.as_mut().unwrap();
    assert!(status.condition(status::STALLED).is_some());
    status.conditions.retain(|c| c.type_ != status::STALLED);
    let (_, p) = step(&mut sb, &pods, at(600));
    let written = p.status.expect("the missing Stalled is written");
    let stalled = written.condition(status::STALLED).unwrap();
    assert_eq!(stalled.reason, "AssembleFailed");
    assert!(p.events.is_empty(), "{:?}", p.events);
    let (_, p) = step(&mut sb, &pods, at(900));
    assert_eq!(p.status, None);
}

#[test]
fn a_suspension_recorded_with_ready_loses_it_in_one_write_then_none() {
    let mut sb = sb(1, json!({"suspend": true}));
    let (_, p) = step(&mut sb, &[], at(0));
    let status = p.status.unwrap();
    assert_eq!(status.phase, Some(Phase::Cancelled));
    assert_eq!(status.condition(status::READY), None);
    // As an operator without kstatus conditions recorded it: Ready=False, Cancelled.
    let mut legacy = status.clone();
    let mut ready = legacy.condition(status::SUCCEEDED).unwrap().clone();
    ready.type_ = status::READY.into();
    legacy.conditions.insert(0, ready);
    sb.status = Some(legacy);
    let (_, p) = step(&mut sb, &[], at(600));
    assert_eq!(p.status.as_ref(), Some(&status));
    assert!(p.events.is_empty(), "{:?}", p.events);
    let (_, p) = step(&mut sb, &[], at(900));
    assert_eq!(p.status, None);
}
