use super::*;
use crate::api::{GitSource, Output, Source, SourceBuild, SourceBuildSpec};
use crate::contract::PrepareFailure;
use crate::pod::{BuildSettings, build_pod};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateWaiting, ContainerStatus, PodCondition,
    PodStatus, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

#[test]
fn a_missing_secret_or_config_map_fails_the_pending_pod() {
    let waiting = |message: &str| {
        serde_json::from_value::<Pod>(serde_json::json!({
            "metadata": {"name": "app-build-1"},
            "status": {"phase": "Pending", "containerStatuses": [{"name": "build", "ready": false,
                "restartCount": 0, "image": "kaniko", "imageID": "",
                "state": {"waiting": {"reason": "CreateContainerConfigError", "message": message}}}]}
        }))
        .unwrap()
    };
    let f = failure(from_pod(&waiting("secret \"regcred\" not found")));
    assert_eq!(f.reason, FailureReason::SecretNotFound);
    assert!(
        f.message.contains("Secret \"regcred\" not found"),
        "{}",
        f.message
    );
    let f = failure(from_pod(&waiting("configmap \"app-source\" not found")));
    assert_eq!(f.reason, FailureReason::ConfigMapNotFound);
    // A missing key is not a missing object: the Pod waits (and times out) as before.
    assert!(matches!(
        from_pod(&waiting(
            "couldn't find key password in Secret team/git-creds"
        )),
        BuildOutcome::Pending { .. }
    ));
    let refused = "pods \"app-build-1\" is forbidden: error looking up service account team/builder: serviceaccount \"builder\" not found";
    let missing = missing_reference(refused).unwrap();
    assert_eq!(
        (missing.reason, missing.name.as_str()),
        (FailureReason::ServiceAccountNotFound, "builder")
    );
    let mount =
        "MountVolume.SetUp failed for volume \"push-secret\" : secret \"regcred\" not found";
    assert_eq!(
        missing_reference(mount).map(|m| m.name),
        Some("regcred".to_string())
    );
}

/// Every case here is also observed through the controller's cache, which keeps a narrowed
/// Pod: narrowing must never change what a Pod says.
fn from_pod(pod: &Pod) -> BuildOutcome {
    let full = BuildOutcome::from_pod(pod);
    let cached = crate::controller::cache::slim_pod::SlimPod::from_pod(pod).to_pod();
    assert_eq!(
        BuildOutcome::from_pod(&cached),
        full,
        "the cached Pod reads differently"
    );
    assert_eq!(
        is_transient("PodDeleted", "deleted", None, Some(&cached)),
        is_transient("PodDeleted", "deleted", None, Some(pod)),
    );
    full
}

const DIGEST: &str = "sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945";

fn pod() -> Pod {
    let spec = SourceBuildSpec {
        source: Source {
            git: Some(GitSource {
                url: "https://git.example.com/team/app.git".to_string(),
                ..GitSource::default()
            }),
            ..Source::default()
        },
        builder: Default::default(),
        output: Output {
            image: "registry.example.com:5000/team/app:1.0".to_string(),
            ..Output::default()
        },
        env: vec![],
        timeout: None,
        cache: None,
        resources: Some(Box::new(ResourceRequirements {
            limits: Some([("memory".to_string(), Quantity("2Gi".to_string()))].into()),
            ..ResourceRequirements::default()
        })),
        service_account_name: None,
        ..SourceBuildSpec::default()
    };
    let mut sb = SourceBuild::new("app", spec);
    sb.metadata.namespace = Some("team-a".to_string());
    sb.metadata.uid = Some("uid-1".to_string());
    sb.metadata.generation = Some(1);
    let settings = BuildSettings {
        default_builder_image: "registry.example.com/s2i/base:1".to_string(),
        kaniko_image: "registry.example.com/kaniko/executor:v1.24.0".to_string(),
        prepare_image: "registry.example.com/sourcebuild/operator:0.1.0".to_string(),
        insecure_registries: vec![],
        user_namespaces: false,
        signing_key_secret: None,
        builder_id: "https://sourcebuild.dev/tests".to_string(),
    };
    build_pod(&sb, &settings, 1).unwrap()
}

fn provenance() -> PrepareResult {
    PrepareResult {
        revision: Some("0123456789abcdef0123456789abcdef01234567".to_string()),
        origin: None,
        dockerfile_sha256: format!("sha256:{}", "d".repeat(64)),
        builder_image: "registry.example.com/s2i/base:1".to_string(),
        started: None,
    }
}

fn prepared_report() -> String {
    serde_json::to_string(&PrepareReport::Prepared(provenance())).unwrap()
}

fn terminated(name: &str, exit_code: i32, reason: &str, message: &str) -> ContainerStatus {
    status(
        name,
        ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code,
                reason: Some(reason.to_string()),
                message: (!message.is_empty()).then(|| message.to_string()),
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        },
    )
}

fn running(name: &str) -> ContainerStatus {
    status(
        name,
        ContainerState {
            running: Some(ContainerStateRunning::default()),
            ..ContainerState::default()
        },
    )
}

fn waiting(name: &str, reason: &str, message: &str) -> ContainerStatus {
    status(
        name,
        ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.to_string()),
                message: Some(message.to_string()),
            }),
            ..ContainerState::default()
        },
    )
}

fn status(name: &str, state: ContainerState) -> ContainerStatus {
    ContainerStatus {
        name: name.to_string(),
        state: Some(state),
        ..ContainerStatus::default()
    }
}

fn with_status(phase: &str, init: ContainerStatus, main: ContainerStatus) -> Pod {
    let mut pod = pod();
    pod.status = Some(PodStatus {
        phase: Some(phase.to_string()),
        init_container_statuses: Some(vec![init]),
        container_statuses: Some(vec![main]),
        ..PodStatus::default()
    });
    pod
}

fn prepared() -> ContainerStatus {
    terminated(PREPARE_CONTAINER, 0, "Completed", &prepared_report())
}

/// A Pod whose build container failed with `log` as its termination message.
fn build_failed_with(log: &str) -> Pod {
    with_status(
        "Failed",
        prepared(),
        terminated(BUILD_CONTAINER, 1, "Error", log),
    )
}

fn failure(outcome: BuildOutcome) -> BuildFailure {
    match outcome {
        BuildOutcome::Failed(f) => f,
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// A Pod of the current shape: prepare and Kaniko done, then `publish` as given.
fn with_publish(phase: &str, publish: ContainerStatus) -> Pod {
    let mut pod = pod();
    pod.status = Some(PodStatus {
        phase: Some(phase.to_string()),
        init_container_statuses: Some(vec![
            prepared(),
            terminated(BUILD_CONTAINER, 0, "Completed", &format!("{DIGEST}\n")),
        ]),
        container_statuses: Some(vec![publish]),
        ..PodStatus::default()
    });
    pod
}

fn published_result(subject: &str) -> PublishResult {
    PublishResult {
        subject: subject.to_string(),
        attestation: format!("sha256:{}", "e".repeat(64)),
        signature: Some(format!("sha256:{}", "f".repeat(64))),
        referrers: Some("ReferrersAPI".to_string()),
    }
}

fn publish_report(report: &PublishReport) -> String {
    serde_json::to_string(report).unwrap()
}

#[test]
fn success_reports_digest_image_provenance_and_what_was_published() {
    let report = publish_report(&PublishReport::Published(published_result(DIGEST)));
    let pod = with_publish(
        "Succeeded",
        terminated(PUBLISH_CONTAINER, 0, "Completed", &report),
    );
    assert_eq!(
        from_pod(&pod),
        BuildOutcome::Succeeded(BuildResult {
            digest: DIGEST.to_string(),
            image: format!("registry.example.com:5000/team/app@{DIGEST}"),
            provenance: provenance(),
            published: Some(published_result(DIGEST)),
        })
    );
}

#[test]
fn a_pod_without_a_publish_step_succeeds_when_kaniko_does() {
    // Build Pods made by a release before provenance: Kaniko was the last (and main) container.
    let mut pod = with_status(
        "Succeeded",
        prepared(),
        terminated(BUILD_CONTAINER, 0, "Completed", &format!("{DIGEST}\n")),
    );
    let spec = pod.spec.as_mut().unwrap();
    let kaniko = spec.init_containers.as_mut().unwrap().pop().unwrap();
    assert_eq!(kaniko.name, BUILD_CONTAINER);
    spec.containers = vec![kaniko];
    assert_eq!(
        from_pod(&pod),
        BuildOutcome::Succeeded(BuildResult {
            digest: DIGEST.to_string(),
            image: format!("registry.example.com:5000/team/app@{DIGEST}"),
            provenance: provenance(),
            published: None,
        })
    );
}

#[test]
fn the_build_runs_until_the_provenance_is_published() {
    let pod = with_publish("Running", running(PUBLISH_CONTAINER));
    assert_eq!(from_pod(&pod), BuildOutcome::Running);
    // The kubelet has not started publish yet: Kaniko's success alone is no result.
    let pod = with_publish("Pending", waiting(PUBLISH_CONTAINER, "PodInitializing", ""));
    assert!(matches!(from_pod(&pod), BuildOutcome::Pending { .. }));
}

#[test]
fn a_failed_provenance_push_keeps_the_pushed_image() {
    let report = publish_report(&PublishReport::Failed(PrepareFailure {
        reason: FailureReason::ProvenancePushFailed,
        message: "registry.example.com:5000/team/app: pushing the attestation: 403 DENIED".into(),
    }));
    let pod = with_publish("Failed", terminated(PUBLISH_CONTAINER, 1, "Error", &report));
    let f = failure(from_pod(&pod));
    assert_eq!(f.reason, FailureReason::ProvenancePushFailed);
    let image = format!("registry.example.com:5000/team/app@{DIGEST}");
    assert_eq!(f.pushed_image.as_deref(), Some(image.as_str()));
    assert!(f.message.contains(&image), "{}", f.message);
    assert!(f.message.contains("403 DENIED"), "{}", f.message);
    assert_eq!(f.provenance, Some(provenance()));

    // No readable report (killed, or an image of another release): still the image is named.
    let pod = with_publish(
        "Failed",
        terminated(PUBLISH_CONTAINER, 2, "Error", "panic: oh"),
    );
    let f = failure(from_pod(&pod));
    assert_eq!(f.reason, FailureReason::ProvenancePushFailed);
    assert_eq!(f.pushed_image.as_deref(), Some(image.as_str()));
    assert!(f.message.contains("exited with code 2"), "{}", f.message);
    assert!(f.message.contains("panic: oh"), "{}", f.message);
}

#[test]
fn provenance_for_another_digest_is_no_success() {
    let other = format!("sha256:{}", "0".repeat(64));
    let report = publish_report(&PublishReport::Published(published_result(&other)));
    let pod = with_publish(
        "Succeeded",
        terminated(PUBLISH_CONTAINER, 0, "Completed", &report),
    );
    let f = failure(from_pod(&pod));
    assert_eq!(f.reason, FailureReason::InvalidDigest);
    assert!(f.message.contains(&other), "{}", f.message);
}

#[test]
fn a_bad_signing_key_fails_before_the_build_with_its_reason() {
    let report = publish_report(&PublishReport::Failed(PrepareFailure {
        reason: FailureReason::SigningKeyInvalid,
        message: "Secret \"cosign\": cosign.key is encrypted and cosign.password is missing".into(),
    }));
    let mut pod = pod();
    pod.status = Some(PodStatus {
        phase: Some("Failed".to_string()),
        init_container_statuses: Some(vec![
            terminated(SIGNING_KEY_CONTAINER, 1, "Error", &report),
            waiting(PREPARE_CONTAINER, "PodInitializing", ""),
        ]),
        ..PodStatus::default()
    });
    let f = failure(from_pod(&pod));
    assert_eq!(f.reason, FailureReason::SigningKeyInvalid);
    assert!(
        f.message.contains("cosign.password is missing"),
        "{}",
        f.message
    );
    assert_eq!(f.pushed_image, None);
}

#[test]
fn hostile_digests_are_invalid() {
    let hostile = [
        format!("{DIGEST} and then some"),
        format!("{DIGEST}\nsha256:{}", "0".repeat(64)),
        DIGEST.to_uppercase(),
        format!("sha256:{}", DIGEST["sha256:".len()..].to_uppercase()),
        format!("sha256:{}", "a".repeat(63)),
        format!("sha256:{}", "a".repeat(65)),
        format!("sha512:{}", "a".repeat(64)),
        format!("sha256:{}g", "a".repeat(63)),
        format!("registry.example.com/app@{DIGEST}"),
        String::new(),
        "x".repeat(4096),
    ];
    for message in hostile {
        let pod = with_status(
            "Succeeded",
            prepared(),
            terminated(BUILD_CONTAINER, 0, "Completed", &message),
        );
        let f = failure(from_pod(&pod));
        assert_eq!(f.reason, FailureReason::InvalidDigest, "{message:?}");
        assert!(f.message.len() < 700, "quoted text must be bounded");
        assert_eq!(f.provenance, Some(provenance()));
    }
}

#[test]
fn success_without_a_prepare_report_is_not_a_success() {
    let pod = with_status(
        "Succeeded",
        terminated(PREPARE_CONTAINER, 0, "Completed", "not json"),
        terminated(BUILD_CONTAINER, 0, "Completed", DIGEST),
    );
    let f = failure(from_pod(&pod));
    assert_eq!(f.reason, FailureReason::BuildFailed);
    assert!(f.message.contains(DIGEST), "{}", f.message);
}

#[test]
fn prepare_report_gives_reason_and_message() {
    for reason in [
        FailureReason::InvalidSource,
        FailureReason::SourceFetchFailed,
    ] {
        let report = serde_json::to_string(&PrepareReport::Failed(PrepareFailure {
            reason,
            message: ".s2i/environment:3: missing '='".to_string(),
        }))
        .unwrap();
        let pod = with_status(
            "Failed",
            terminated(PREPARE_CONTAINER, 1, "Error", &report),
            waiting(BUILD_CONTAINER, "PodInitializing", ""),
        );
        let f = failure(from_pod(&pod));
        assert_eq!(f.reason, reason);
        assert_eq!(f.message, ".s2i/environment:3: missing '='");
        assert_eq!(f.provenance, None);
    }
}

#[test]
fn prepare_builder_image_pull_failure_keeps_its_reason() {
    let message = "pulling builder image 127.0.0.1:5000/s2i/none:1 from 127.0.0.1:5000: \
                   OCI API errors: [NAME_UNKNOWN]";
    let report = serde_json::to_string(&PrepareReport::Failed(PrepareFailure {
        reason: FailureReason::BuilderImagePullFailed,
        message: message.to_string(),
    }))
    .unwrap();
    let pod = with_status(
        "Failed",
        terminated(PREPARE_CONTAINER, 1, "Error", &report),
        waiting(BUILD_CONTAINER, "PodInitializing", ""),
    );
    let f = failure(from_pod(&pod));
    assert_eq!(f.reason, FailureReason::BuilderImagePullFailed);
    assert_eq!(f.message, message);
    assert_eq!(f.provenance, None);
}

#[test]
fn prepare_reasons_it_does_not_give_are_fetch_failures_naming_them() {
    for reason in ["AssembleFailed", "SomethingNew"] {
        let report = format!(r#"{{"failed":{{"reason":"{reason}","message":"it broke"}}}}"#);
        let pod = with_status(
            "Failed",
            terminated(PREPARE_CONTAINER, 1, "Error", &report),
            waiting(BUILD_CONTAINER, "PodInitializing", ""),
        );
        let f = failure(from_pod(&pod));
        assert_eq!(f.reason, FailureReason::SourceFetchFailed);
        assert_eq!(
            f.message,
            format!("it broke (prepare reported reason \"{reason}\")")
        );
    }
}

#[test]
fn prepare_without_a_report_is_a_fetch_failure_with_its_text() {
    let pod = with_status(
        "Failed",
        terminated(PREPARE_CONTAINER, 2, "Error", "panicked at src/main.rs:1\n"),
        waiting(BUILD_CONTAINER, "PodInitializing", ""),
    );
    let f = failure(from_pod(&pod));
    assert_eq!(f.reason, FailureReason::SourceFetchFailed);
    assert_eq!(f.message, "panicked at src/main.rs:1");

    let pod = with_status(
        "Failed",
        terminated(PREPARE_CONTAINER, 2, "Error", ""),
        waiting(BUILD_CONTAINER, "PodInitializing", ""),
    );
    let f = failure(from_pod(&pod));
    assert_eq!(f.reason, FailureReason::SourceFetchFailed);
    assert!(f.message.contains("code 2"), "{}", f.message);
}

#[test]
fn failed_run_is_assemble_failed_with_a_log_snippet() {
    let log = "\u{1b}[36mINFO\u{1b}[0m[0004] RUN /usr/libexec/s2i/assemble\n\
               \u{1b}[36mINFO\u{1b}[0m[0004] Running: [/bin/sh -c /usr/libexec/s2i/assemble]\n\
               ERROR: Could not find a version that satisfies the requirement flask==9.9\n\
               error building image: error building stage: failed to execute command: \
               waiting for process to exit: exit status 1\n";
    let f = failure(from_pod(&build_failed_with(log)));
    assert_eq!(f.reason, FailureReason::AssembleFailed);
    assert!(f.message.ends_with("exit status 1"), "{}", f.message);
    let snippet = f.log_snippet.unwrap();
    assert!(snippet.contains("flask==9.9"));
    assert!(!snippet.contains('\u{1b}'), "ANSI codes must be stripped");
    assert!(snippet.starts_with("INFO[0004] RUN"), "{snippet}");
    assert_eq!(f.provenance, Some(provenance()));
}

#[test]
fn push_errors_are_push_failed() {
    for log in [
        "INFO[0010] Pushing image to registry.example.com:5000/team/app:1.0\n\
         error pushing image: failed to push to destination registry.example.com:5000/team/app:1.0: \
         PUT https://registry.example.com:5000/v2/team/app/manifests/1.0: UNAUTHORIZED: authentication required\n",
        "error checking push permissions -- make sure you entered the correct tag name, and \
         that you are authenticated correctly, and try again: checking push permission for \
         \"registry.example.com:5000/team/app:1.0\": POST https://registry.example.com:5000/v2/team/app/blobs/uploads/: \
         DENIED: requested access to the resource is denied\n",
    ] {
        let f = failure(from_pod(&build_failed_with(log)));
        assert_eq!(f.reason, FailureReason::PushFailed, "{log}");
        assert!(f.log_snippet.is_some());
    }
}

#[test]
fn digest_with_a_failed_exit_is_a_failed_push() {
    let f = failure(from_pod(&build_failed_with(DIGEST)));
    assert_eq!(f.reason, FailureReason::PushFailed);
    assert!(f.message.contains(DIGEST), "{}", f.message);
}

#[test]
fn builder_image_retrieval_errors_are_builder_image_pull_failed() {
    for log in [
        "INFO[0000] Retrieving image manifest registry.example.com/s2i/missing:1\n\
         INFO[0000] Retrieving image registry.example.com/s2i/missing:1 from registry registry.example.com\n\
         error building image: GET https://registry.example.com/v2/s2i/missing/manifests/1: \
         MANIFEST_UNKNOWN: manifest unknown; map[Tag:1]\n",
        "INFO[0000] Retrieving image registry.example.com/s2i/base:1 from registry registry.example.com\n\
         error building image: Get \"https://registry.example.com/v2/\": dial tcp: lookup registry.example.com: no such host\n",
        "INFO[0001] Unpacking rootfs as cmd COPY upload/src /tmp/src requires it.\n\
         error building image: error building stage: failed to get filesystem from image: \
         unexpected EOF\n",
    ] {
        let f = failure(from_pod(&build_failed_with(log)));
        assert_eq!(f.reason, FailureReason::BuilderImagePullFailed, "{log}");
    }
}

#[test]
fn a_builder_file_owned_by_an_unmapped_id_is_user_namespace_unsupported() {
    // Kaniko unpacking a builder layer with a file of uid 100000 in a Pod whose user namespace
    // maps 0-65535 (seen on the real node).
    let log = "INFO[0000] Unpacking rootfs as cmd COPY --chown=1001:0 upload/scripts /tmp/scripts requires it.\n\
         error building image: error building stage: failed to get filesystem from image: \
         chown /opt/app-root/high-uid-file: invalid argument\n";
    let f = failure(from_pod(&build_failed_with(log)));
    assert_eq!(f.reason, FailureReason::UserNamespaceUnsupported);
    assert!(f.message.contains("spec.hostUsers: true"), "{}", f.message);
    assert!(
        f.message.contains("chown /opt/app-root/high-uid-file"),
        "{}",
        f.message
    );
    // Any other failure to unpack stays the builder image's.
    let log = "error building image: error building stage: failed to get filesystem from image: \
               chown /opt/x: operation not permitted\n";
    let f = failure(from_pod(&build_failed_with(log)));
    assert_eq!(f.reason, FailureReason::BuilderImagePullFailed);
}

#[test]
fn other_kaniko_errors_are_build_failed() {
    for log in [
        "error building image: parsing dockerfile: dockerfile parse error line 3: unknown instruction: FORM\n",
        "INFO[0002] COPY upload/src /tmp/src\n\
         error building image: error building stage: failed to execute command: \
         resolving src: lstat /workspace/upload/src: no such file or directory\n",
        "some unexpected crash without Kaniko's error line\n",
    ] {
        let f = failure(from_pod(&build_failed_with(log)));
        assert_eq!(f.reason, FailureReason::BuildFailed, "{log}");
    }
}

#[test]
fn oom_killed_wins_and_names_the_memory_limit() {
    let log = "error building image: error building stage: failed to execute command: \
               waiting for process to exit: signal: killed\n";
    let pod = with_status(
        "Failed",
        prepared(),
        terminated(BUILD_CONTAINER, 137, "OOMKilled", log),
    );
    let f = failure(from_pod(&pod));
    assert_eq!(f.reason, FailureReason::OOMKilled);
    assert!(f.message.contains("2Gi"), "{}", f.message);
    assert_eq!(f.provenance, Some(provenance()));

    let pod = with_status(
        "Failed",
        terminated(PREPARE_CONTAINER, 137, "OOMKilled", ""),
        waiting(BUILD_CONTAINER, "PodInitializing", ""),
    );
    let f = failure(from_pod(&pod));
    assert_eq!(f.reason, FailureReason::OOMKilled);
    assert!(
        f.message.contains("prepare") && f.message.contains("1Gi"),
        "{}",
        f.message
    );

    let mut pod = with_status(
        "Failed",
        prepared(),
        terminated(BUILD_CONTAINER, 137, "OOMKilled", ""),
    );
    let spec = pod.spec.as_mut().unwrap();
    let kaniko = spec.init_containers.iter_mut().flatten();
    kaniko.for_each(|c| c.resources = None);
    let f = failure(from_pod(&pod));
    assert!(f.message.contains("no memory limit"), "{}", f.message);
}

fn failed_pod_with_reason(reason: &str, init: ContainerStatus, main: ContainerStatus) -> Pod {
    let mut pod = with_status("Failed", init, main);
    let status = pod.status.as_mut().unwrap();
    status.reason = Some(reason.to_string());
    status.message = Some(format!("Pod {reason}"));
    pod
}

#[test]
fn deadline_exceeded_is_a_timeout() {
    let pod = failed_pod_with_reason(
        "DeadlineExceeded",
        prepared(),
        terminated(BUILD_CONTAINER, 137, "Error", "INFO[0100] RUN assemble\n"),
    );
    let f = failure(from_pod(&pod));
    assert_eq!(f.reason, FailureReason::Timeout);
    assert!(f.message.contains("1800s"), "{}", f.message);
    assert_eq!(f.provenance, Some(provenance()));
}

#[test]
fn deadline_exceeded_while_pulling_an_image_is_image_pull_failed() {
    let pod = failed_pod_with_reason(
        "DeadlineExceeded",
        waiting(
            PREPARE_CONTAINER,
            "ImagePullBackOff",
            "Back-off pulling image",
        ),
        waiting(BUILD_CONTAINER, "PodInitializing", ""),
    );
    let f = failure(from_pod(&pod));
    assert_eq!(f.reason, FailureReason::ImagePullFailed);
    assert!(f.message.contains("prepare"), "{}", f.message);
    assert!(
        f.message
            .contains("registry.example.com/sourcebuild/operator:0.1.0"),
        "{}",
        f.message
    );
}

#[test]
fn eviction_is_evicted() {
    let pod = failed_pod_with_reason(
        "Evicted",
        prepared(),
        terminated(BUILD_CONTAINER, 137, "Error", ""),
    );
    let f = failure(from_pod(&pod));
    assert_eq!(f.reason, FailureReason::Evicted);
    assert_eq!(f.message, "Pod Evicted");
}

#[test]
fn image_pull_and_config_errors_stay_pending_with_a_message() {
    for (container, reason) in [
        (PREPARE_CONTAINER, "ErrImagePull"),
        (PREPARE_CONTAINER, "ImagePullBackOff"),
        (PREPARE_CONTAINER, "CreateContainerConfigError"),
    ] {
        let pod = with_status(
            "Pending",
            waiting(container, reason, "details"),
            waiting(BUILD_CONTAINER, "PodInitializing", ""),
        );
        match from_pod(&pod) {
            BuildOutcome::Pending { message: Some(m) } => {
                assert!(m.contains(container) && m.contains(reason), "{m}");
            }
            other => panic!("{reason}: {other:?}"),
        }
    }
    let pod = with_status(
        "Pending",
        prepared(),
        waiting(BUILD_CONTAINER, "ErrImagePull", "not found"),
    );
    let BuildOutcome::Pending { message: Some(m) } = from_pod(&pod) else {
        panic!("expected Pending with a message");
    };
    assert!(m.contains("build") && m.contains("ErrImagePull"), "{m}");
    assert!(m.contains("kaniko/executor"), "{m}");
}

#[test]
fn running_and_pending_states() {
    let pod = with_status("Running", prepared(), running(BUILD_CONTAINER));
    assert_eq!(from_pod(&pod), BuildOutcome::Running);

    let pod = with_status(
        "Pending",
        running(PREPARE_CONTAINER),
        waiting(BUILD_CONTAINER, "PodInitializing", ""),
    );
    assert_eq!(from_pod(&pod), BuildOutcome::Pending { message: None });

    let mut pod = super::tests::pod();
    assert_eq!(from_pod(&pod), BuildOutcome::Pending { message: None });
    pod.status = Some(PodStatus {
        phase: Some("Pending".to_string()),
        conditions: Some(vec![PodCondition {
            type_: "PodScheduled".to_string(),
            status: "False".to_string(),
            reason: Some("Unschedulable".to_string()),
            message: Some("0/3 nodes are available: 3 Insufficient memory.".to_string()),
            ..PodCondition::default()
        }]),
        ..PodStatus::default()
    });
    let BuildOutcome::Pending { message: Some(m) } = from_pod(&pod) else {
        panic!("expected Pending with a message");
    };
    assert!(m.contains("Insufficient memory"), "{m}");
}

#[test]
fn deleted_pod_is_pod_deleted_unless_it_failed_on_its_own() {
    let mut pod = with_status(
        "Failed",
        prepared(),
        terminated(BUILD_CONTAINER, 143, "Error", "INFO[0010] RUN assemble\n"),
    );
    pod.metadata.deletion_timestamp = Some(Time(Default::default()));
    let f = failure(from_pod(&pod));
    assert_eq!(f.reason, FailureReason::PodDeleted);

    let mut pod = build_failed_with(
        "error building image: error building stage: failed to execute command: \
         waiting for process to exit: exit status 1\n",
    );
    pod.metadata.deletion_timestamp = Some(Time(Default::default()));
    assert_eq!(
        failure(from_pod(&pod)).reason,
        FailureReason::AssembleFailed
    );

    let mut pod = with_status("Running", prepared(), running(BUILD_CONTAINER));
    pod.metadata.deletion_timestamp = Some(Time(Default::default()));
    assert_eq!(failure(from_pod(&pod)).reason, FailureReason::PodDeleted);
}

#[test]
fn log_snippet_is_bounded_by_lines_and_bytes() {
    let many_lines: String = (1..=100).map(|i| format!("line {i}\n")).collect();
    let snippet = log_snippet(&many_lines).unwrap();
    assert_eq!(snippet.lines().count(), LOG_SNIPPET_MAX_LINES);
    assert!(snippet.starts_with("line 81\n") && snippet.ends_with("line 100"));

    let long_lines: String = (1..=10)
        .map(|i| format!("{i}:{}\n", "é".repeat(300)))
        .collect();
    let snippet = log_snippet(&long_lines).unwrap();
    assert!(snippet.len() <= LOG_SNIPPET_MAX_BYTES, "{}", snippet.len());
    assert!(snippet.ends_with('é'));
    assert!(
        snippet.lines().all(|l| l.len() == 602 || l.len() == 603),
        "whole lines only"
    );

    let one_huge_line = "x".repeat(10_000);
    let snippet = log_snippet(&one_huge_line).unwrap();
    assert_eq!(snippet.len(), LOG_SNIPPET_MAX_BYTES);

    assert_eq!(log_snippet(" \n\n"), None);
}
