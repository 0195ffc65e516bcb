use super::*;
use crate::api::{
    ArchiveSource, Cache, ConfigMapSource, GitSource, KeyToPath as SpecKeyToPath, Output,
    SecretReference, Source, SourceBuildSpec,
};

fn settings() -> BuildSettings {
    BuildSettings {
        default_builder_image: "registry.example.com/s2i/default-builder:1".to_string(),
        kaniko_image: "registry.example.com/kaniko/executor:v1.24.0".to_string(),
        prepare_image: "registry.example.com/sourcebuild/operator:0.1.0".to_string(),
        insecure_registries: vec![],
        user_namespaces: false,
        signing_key_secret: None,
        builder_id: "https://sourcebuild.dev/tests".to_string(),
    }
}

fn source_build(name: &str, spec: SourceBuildSpec) -> SourceBuild {
    let mut sb = SourceBuild::new(name, spec);
    sb.metadata.namespace = Some("team-a".to_string());
    sb.metadata.uid = Some("6d1e2f40-0000-4000-8000-000000000001".to_string());
    sb.metadata.generation = Some(3);
    sb
}

fn git_spec() -> SourceBuildSpec {
    SourceBuildSpec {
        source: Source {
            git: Some(GitSource {
                url: "https://git.example.com/team/app.git".to_string(),
                revision: Some("main".to_string()),
                secret_ref: Some(SecretReference {
                    name: "git-creds".to_string(),
                }),
                poll_interval: None,
            }),
            ..Source::default()
        },
        builder: Default::default(),
        output: Output {
            image: "registry.example.com:5000/team/app:1.0".to_string(),
            push_secret_ref: Some(SecretReference {
                name: "push-creds".to_string(),
            }),
            labels: BTreeMap::new(),
            signing: None,
        },
        env: vec![],
        timeout: None,
        cache: None,
        resources: None,
        service_account_name: Some("builder".to_string()),
        ..SourceBuildSpec::default()
    }
}

fn container<'a>(pod: &'a Pod, name: &str) -> &'a Container {
    let spec = pod.spec.as_ref().unwrap();
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .find(|c| c.name == name)
        .unwrap()
}

fn volume<'a>(pod: &'a Pod, name: &str) -> &'a Volume {
    pod.spec
        .as_ref()
        .unwrap()
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == name)
        .unwrap()
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_label_value(s: &str) -> bool {
    s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.bytes().next().is_none_or(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_none_or(|b| b.is_ascii_alphanumeric())
}

#[test]
fn pod_name_is_plain_when_it_fits() {
    assert_eq!(build_pod_name("app", 7, 1), "app-build-7");
    assert_eq!(build_pod_name("app", 7, 2), "app-build-7-2");
    let long = "a".repeat(60);
    let second = build_pod_name(&long, 7, 2);
    assert!(
        second.len() <= 63 && second.ends_with("-build-7-2"),
        "{second}"
    );
}

#[test]
fn pod_name_is_a_short_stable_dns_label_for_long_and_dotted_names() {
    let long = "a".repeat(60);
    let long_other = format!("{}b", "a".repeat(59));
    let names = [
        long.clone(),
        long_other.clone(),
        "x".repeat(253),
        "my.app.v2".to_string(),
        "my-app-v2".to_string(),
        format!("{}.{}", "a".repeat(40), "b".repeat(40)),
    ];
    for name in &names {
        for generation in [1, 42, i64::MAX] {
            let pod = build_pod_name(name, generation, 1);
            assert!(is_dns_label(&pod), "{pod:?} from {name:?}");
            assert!(pod.ends_with(&format!("-build-{generation}")), "{pod}");
            assert_eq!(pod, build_pod_name(name, generation, 1), "deterministic");
        }
    }
    assert_ne!(
        build_pod_name(&long, 1, 1),
        build_pod_name(&long_other, 1, 1)
    );
    assert_ne!(
        build_pod_name("my.app.v2", 1, 1),
        build_pod_name("my-app-v2", 1, 1)
    );
    assert!(build_pod_name(&long, 1, 1).starts_with(&"a".repeat(20)));
}

#[test]
fn name_label_value_fits_the_label_limit_and_tells_long_names_apart() {
    assert_eq!(name_label_value("my.app"), "my.app");
    let a = format!("{}-x", "a".repeat(70));
    let b = format!("{}-y", "a".repeat(70));
    for name in [&a, &b] {
        let v = name_label_value(name);
        assert!(is_label_value(&v), "{v}");
        assert_eq!(v.len(), 63);
    }
    assert_ne!(name_label_value(&a), name_label_value(&b));
    assert_eq!(
        pod_selector(&a),
        format!("sourcebuild.dev/name={}", name_label_value(&a))
    );
}

#[test]
fn image_repository_strips_tag_and_digest_but_keeps_the_port() {
    assert_eq!(
        image_repository("registry.example.com:5000/team/app:1.0"),
        "registry.example.com:5000/team/app"
    );
    assert_eq!(image_repository("app"), "app");
    assert_eq!(image_repository("host:5000/app"), "host:5000/app");
    assert_eq!(
        image_repository(&format!("r.example.com/app:1@sha256:{}", "a".repeat(64))),
        "r.example.com/app"
    );
}

#[test]
fn missing_metadata_is_named() {
    let base = source_build("app", git_spec());
    type Breaker = fn(&mut SourceBuild);
    let cases: [(Breaker, &str); 4] = [
        (|sb| sb.metadata.name = None, "metadata.name"),
        (|sb| sb.metadata.namespace = None, "metadata.namespace"),
        (|sb| sb.metadata.uid = None, "metadata.uid"),
        (|sb| sb.metadata.generation = None, "metadata.generation"),
    ];
    for (break_it, field) in cases {
        let mut sb = base.clone();
        break_it(&mut sb);
        let err = build_pod(&sb, &settings(), 1).unwrap_err();
        assert!(err.to_string().contains(field), "{err} should name {field}");
    }
}

#[test]
fn owner_reference_makes_the_source_build_the_controller() {
    let pod = build_pod(&source_build("app", git_spec()), &settings(), 1).unwrap();
    let owners = pod.metadata.owner_references.unwrap();
    assert_eq!(owners.len(), 1);
    let owner = &owners[0];
    assert_eq!(owner.api_version, "sourcebuild.dev/v1alpha1");
    assert_eq!(owner.kind, "SourceBuild");
    assert_eq!(owner.name, "app");
    assert_eq!(owner.uid, "6d1e2f40-0000-4000-8000-000000000001");
    assert_eq!(owner.controller, Some(true));
    assert_eq!(owner.block_owner_deletion, Some(true));
    assert_eq!(pod.metadata.namespace.as_deref(), Some("team-a"));
    assert_eq!(pod.metadata.name.as_deref(), Some("app-build-3"));
}

#[test]
fn labels_select_the_pods_of_one_source_build() {
    let name = format!("{}.svc", "n".repeat(80));
    let pod = build_pod(&source_build(&name, git_spec()), &settings(), 1).unwrap();
    let labels = pod.metadata.labels.unwrap();
    assert_eq!(labels[LABEL_NAME], name_label_value(&name));
    assert!(is_label_value(&labels[LABEL_NAME]));
    assert_eq!(labels[LABEL_GENERATION], "3");
    assert_eq!(labels[LABEL_MANAGED_BY], "sourcebuild-operator");
    assert_eq!(
        MANAGED_BY_SELECTOR,
        format!("{LABEL_MANAGED_BY}={}", labels[LABEL_MANAGED_BY])
    );
    assert_eq!(pod.metadata.annotations.unwrap()[ANNOTATION_NAME], name);
    assert!(is_dns_label(pod.metadata.name.as_deref().unwrap()));
}

#[test]
fn pod_spec_is_locked_down() {
    let pod = build_pod(&source_build("app", git_spec()), &settings(), 1).unwrap();
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    assert_eq!(spec.automount_service_account_token, Some(false));
    assert_eq!(spec.service_account_name.as_deref(), Some("builder"));
    assert_eq!(spec.active_deadline_seconds, Some(1800));
    let seccomp = spec
        .security_context
        .as_ref()
        .unwrap()
        .seccomp_profile
        .as_ref();
    assert_eq!(seccomp.unwrap().type_, "RuntimeDefault");
    assert!(spec.host_network.is_none() && spec.host_pid.is_none());
}

#[test]
fn prepare_meets_the_restricted_standard() {
    let pod = build_pod(&source_build("app", git_spec()), &settings(), 1).unwrap();
    let sc = container(&pod, PREPARE_CONTAINER)
        .security_context
        .clone()
        .unwrap();
    assert_eq!(sc.run_as_non_root, Some(true));
    assert!(sc.run_as_user.unwrap() > 0);
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.privileged, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    let caps = sc.capabilities.unwrap();
    assert_eq!(caps.drop, Some(vec!["ALL".to_string()]));
    assert!(caps.add.is_none_or(|a| a.is_empty()));
    let prepare = container(&pod, PREPARE_CONTAINER);
    let limits = prepare.resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert!(limits.contains_key("memory"));
    assert_eq!(prepare.termination_message_policy.as_deref(), Some("File"));
}

#[test]
fn build_meets_the_baseline_standard() {
    // The capabilities `baseline` allows a container to add.
    const BASELINE_CAPS: [&str; 13] = [
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    ];
    let pod = build_pod(&source_build("app", git_spec()), &settings(), 1).unwrap();
    let build = container(&pod, BUILD_CONTAINER);
    let sc = build.security_context.clone().unwrap();
    assert_eq!(sc.run_as_user, Some(0));
    assert_ne!(sc.privileged, Some(true));
    let caps = sc.capabilities.unwrap();
    assert_eq!(caps.drop, Some(vec!["ALL".to_string()]));
    let added = caps.add.unwrap();
    assert_eq!(
        added,
        ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID"]
    );
    assert!(added.iter().all(|c| BASELINE_CAPS.contains(&c.as_str())));
    assert_eq!(
        build.termination_message_policy.as_deref(),
        Some("FallbackToLogsOnError")
    );
    let spec = pod.spec.as_ref().unwrap();
    assert!(spec.volumes.iter().flatten().all(|v| v.host_path.is_none()));
}

#[test]
fn no_shell_anywhere() {
    let mut spec = git_spec();
    spec.cache = Some(Box::new(Cache {
        enabled: true,
        repo: None,
    }));
    let pod = build_pod(&source_build("app", spec), &settings(), 1).unwrap();
    let pod_spec = pod.spec.unwrap();
    for c in pod_spec
        .init_containers
        .iter()
        .flatten()
        .chain(&pod_spec.containers)
    {
        assert!(c.command.is_none(), "{} overrides the entrypoint", c.name);
        for arg in c.args.iter().flatten() {
            assert!(
                !arg.contains(' '),
                "{}: {arg:?} looks like a shell line",
                c.name
            );
            let names_a_shell = ["sh", "bash", "-c"].contains(&arg.as_str())
                || arg.ends_with("/sh")
                || arg.ends_with("/bash");
            assert!(!names_a_shell, "{}: {arg:?} names a shell", c.name);
        }
    }
}

#[test]
fn insecure_registries_reach_kaniko_and_prepare() {
    let mut settings = settings();
    settings.insecure_registries = vec!["127.0.0.1:5000".into()];
    let pod = build_pod(&source_build("app", git_spec()), &settings, 1).unwrap();
    let build = container(&pod, BUILD_CONTAINER);
    assert!(
        build
            .args
            .as_deref()
            .unwrap()
            .contains(&"--insecure-registry=127.0.0.1:5000".to_string())
    );
    let request = prepare_request(&source_build("app", git_spec()), &settings);
    assert_eq!(request.insecure_registries, ["127.0.0.1:5000"]);
}

#[test]
fn kaniko_args_name_the_workspace_destination_and_digest_file() {
    let pod = build_pod(&source_build("app", git_spec()), &settings(), 1).unwrap();
    let build = container(&pod, BUILD_CONTAINER);
    assert_eq!(
        build.args.as_deref().unwrap(),
        [
            "--context=dir:///workspace",
            "--dockerfile=/workspace/Dockerfile",
            "--destination=registry.example.com:5000/team/app:1.0",
            "--digest-file=/dev/termination-log",
            "--image-name-with-digest-file=/var/run/sourcebuild/digest/image",
            "--snapshot-mode=redo",
        ]
    );
    let mounts = build.volume_mounts.as_ref().unwrap();
    let docker = mounts
        .iter()
        .find(|m| m.mount_path == "/kaniko/.docker")
        .unwrap();
    assert_eq!(docker.read_only, Some(true));
    let volume = volume(&pod, &docker.name);
    let secret = volume.secret.as_ref().unwrap();
    assert_eq!(secret.secret_name.as_deref(), Some("push-creds"));
    let items = secret.items.as_ref().unwrap();
    assert_eq!(
        (items[0].key.as_str(), items[0].path.as_str()),
        (".dockerconfigjson", "config.json")
    );
    // The same Secret, read-only, lets prepare read the builder image's config.
    let prepare = container(&pod, PREPARE_CONTAINER);
    let registry = prepare
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == REGISTRY_AUTH_DIR)
        .expect("prepare mounts the push Secret");
    assert_eq!(registry.name, docker.name);
    assert_eq!(registry.read_only, Some(true));
}

#[test]
fn cache_repo_defaults_to_the_output_repository() {
    let mut spec = git_spec();
    spec.cache = Some(Box::new(Cache {
        enabled: true,
        repo: None,
    }));
    let pod = build_pod(&source_build("app", spec.clone()), &settings(), 1).unwrap();
    let args = container(&pod, BUILD_CONTAINER).args.clone().unwrap();
    assert!(args.contains(&"--cache=true".to_string()));
    assert!(args.contains(&"--cache-repo=registry.example.com:5000/team/app/cache".to_string()));

    spec.cache = Some(Box::new(Cache {
        enabled: false,
        repo: Some("registry.example.com/c".to_string()),
    }));
    let pod = build_pod(&source_build("app", spec), &settings(), 1).unwrap();
    let args = container(&pod, BUILD_CONTAINER).args.clone().unwrap();
    assert!(!args.iter().any(|a| a.starts_with("--cache")), "{args:?}");
}

#[test]
fn prepare_gets_the_request_and_the_source_mounts() {
    let pod = build_pod(&source_build("app", git_spec()), &settings(), 1).unwrap();
    let prepare = container(&pod, PREPARE_CONTAINER);
    assert_eq!(prepare.args.as_deref().unwrap(), ["prepare"]);
    let env = prepare.env.as_ref().unwrap();
    assert_eq!(env[0].name, REQUEST_ENV);
    let request: PrepareRequest = serde_json::from_str(env[0].value.as_deref().unwrap()).unwrap();
    assert_eq!(request.builder_image, settings().default_builder_image);
    assert_eq!(
        request.output_image,
        "registry.example.com:5000/team/app:1.0"
    );
    assert_eq!(request.source, git_spec().source);
    let mounts = prepare.volume_mounts.as_ref().unwrap();
    let paths: Vec<_> = mounts.iter().map(|m| m.mount_path.as_str()).collect();
    assert_eq!(
        paths,
        [
            WORKSPACE_DIR,
            SCRATCH_DIR,
            RESULTS_DIR,
            GIT_SECRET_DIR,
            REGISTRY_AUTH_DIR
        ]
    );
    assert_eq!(mounts[3].read_only, Some(true));

    let mut spec = git_spec();
    spec.builder.image = Some("registry.example.com/s2i/python:3.12".to_string());
    spec.source = Source {
        config_map: Some(Box::new(ConfigMapSource {
            name: "app-src".to_string(),
            items: vec![SpecKeyToPath {
                key: "assemble".to_string(),
                path: ".s2i/bin/assemble".to_string(),
            }],
        })),
        ..Source::default()
    };
    let pod = build_pod(&source_build("app", spec), &settings(), 1).unwrap();
    let prepare = container(&pod, PREPARE_CONTAINER);
    let request: PrepareRequest =
        serde_json::from_str(prepare.env.as_ref().unwrap()[0].value.as_deref().unwrap()).unwrap();
    assert_eq!(
        request.builder_image,
        "registry.example.com/s2i/python:3.12"
    );
    let mounts = prepare.volume_mounts.as_ref().unwrap();
    let cm_mount = mounts
        .iter()
        .find(|m| m.mount_path == CONFIGMAP_DIR)
        .unwrap();
    assert_eq!(cm_mount.read_only, Some(true));
    assert!(!mounts.iter().any(|m| m.mount_path == GIT_SECRET_DIR));
    let volume = pod
        .spec
        .as_ref()
        .unwrap()
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == cm_mount.name)
        .unwrap();
    let cm = volume.config_map.as_ref().unwrap();
    assert_eq!(cm.name, "app-src");
    assert_eq!(cm.items.as_ref().unwrap()[0].path, ".s2i/bin/assemble");
}

#[test]
fn archive_source_mounts_neither_secret_nor_config_map() {
    let mut spec = git_spec();
    spec.source = Source {
        archive: Some(Box::new(ArchiveSource {
            url: "https://files.example.com/app.tgz".to_string(),
            sha256: None,
        })),
        ..Source::default()
    };
    spec.output.push_secret_ref = None;
    let pod = build_pod(&source_build("app", spec), &settings(), 1).unwrap();
    let volumes: Vec<_> = pod
        .spec
        .unwrap()
        .volumes
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(
        volumes,
        [
            WORKSPACE_VOLUME,
            SCRATCH_VOLUME,
            RESULTS_VOLUME,
            DIGEST_VOLUME
        ]
    );
}

#[test]
fn deadline_follows_the_spec_timeout_rounding_up() {
    let mut spec = git_spec();
    spec.timeout = Some("90m500ms".parse().unwrap());
    let pod = build_pod(&source_build("app", spec), &settings(), 1).unwrap();
    assert_eq!(pod.spec.unwrap().active_deadline_seconds, Some(5401));
}

fn oci_spec(secret: Option<&str>) -> SourceBuildSpec {
    let mut spec = git_spec();
    spec.source = Source {
        oci: Some(Box::new(crate::api::OciSource {
            image: "registry.example.com:5000/team/app/source:1.0".to_string(),
            secret_ref: secret.map(|name| SecretReference {
                name: name.to_string(),
            }),
        })),
        ..Source::default()
    };
    spec
}

fn mounts_of(pod: &Pod, container_name: &str) -> Vec<(String, String)> {
    container(pod, container_name)
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| (m.name.clone(), m.mount_path.clone()))
        .collect()
}

#[test]
fn an_oci_secret_is_mounted_for_prepare_only() {
    let pod = build_pod(
        &source_build("app", oci_spec(Some("artifact-creds"))),
        &settings(),
        1,
    )
    .unwrap();
    let oci_mount = (OCI_SECRET_VOLUME.to_string(), OCI_AUTH_DIR.to_string());
    assert!(mounts_of(&pod, PREPARE_CONTAINER).contains(&oci_mount));
    assert!(!mounts_of(&pod, BUILD_CONTAINER).contains(&oci_mount));
    let volume = volume(&pod, OCI_SECRET_VOLUME);
    let secret = volume.secret.as_ref().unwrap();
    assert_eq!(secret.secret_name.as_deref(), Some("artifact-creds"));
    assert_eq!(
        secret.items.as_ref().unwrap()[0].key,
        ".dockerconfigjson".to_string()
    );
    assert_eq!(secret.items.as_ref().unwrap()[0].path, REGISTRY_AUTH_FILE);
}

#[test]
fn without_an_oci_secret_prepare_has_the_push_credentials() {
    let pod = build_pod(&source_build("app", oci_spec(None)), &settings(), 1).unwrap();
    let prepare = mounts_of(&pod, PREPARE_CONTAINER);
    assert!(!prepare.iter().any(|(name, _)| name == OCI_SECRET_VOLUME));
    assert!(prepare.contains(&(
        PUSH_SECRET_VOLUME.to_string(),
        REGISTRY_AUTH_DIR.to_string()
    )));
    let request: PrepareRequest = serde_json::from_str(
        container(&pod, PREPARE_CONTAINER).env.as_ref().unwrap()[0]
            .value
            .as_deref()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        request.source.oci.unwrap().image,
        "registry.example.com:5000/team/app/source:1.0"
    );
}

#[test]
fn build_pods_get_a_user_namespace_unless_the_spec_asks_for_the_nodes_users() {
    let host_users = |operator: bool, spec: Option<bool>| {
        let mut s = git_spec();
        s.host_users = spec;
        let settings = BuildSettings {
            user_namespaces: operator,
            signing_key_secret: None,
            builder_id: "https://sourcebuild.dev/tests".to_string(),
            ..settings()
        };
        build_pod(&source_build("app", s), &settings, 1)
            .unwrap()
            .spec
            .unwrap()
            .host_users
    };
    // The operator's choice, unless the spec asks for the node's users.
    assert_eq!(host_users(true, None), Some(false));
    assert_eq!(host_users(true, Some(false)), Some(false));
    assert_eq!(host_users(true, Some(true)), None);
    // Off: never a user namespace, whatever the spec says.
    assert_eq!(host_users(false, None), None);
    assert_eq!(host_users(false, Some(false)), None);
}

#[test]
fn the_steps_run_in_order_and_publish_sees_only_what_it_needs() {
    let sb = source_build("app", git_spec());
    let generation = sb.metadata.generation.unwrap();
    let pod = build_pod(&sb, &settings(), 3).unwrap();
    assert_eq!(pod.metadata.name, Some(format!("app-build-{generation}-3")));
    let spec = pod.spec.as_ref().unwrap();
    let names = |list: &[Container]| list.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(spec.init_containers.as_deref().unwrap()),
        [PREPARE_CONTAINER, BUILD_CONTAINER]
    );
    assert_eq!(names(&spec.containers), [PUBLISH_CONTAINER]);

    // Kaniko (running the untrusted assemble) never mounts the results prepare leaves publish.
    let build_paths = mounts_of(&pod, BUILD_CONTAINER);
    assert!(!build_paths.iter().any(|(_, path)| path == RESULTS_DIR));
    assert!(build_paths.contains(&(DIGEST_VOLUME.to_string(), DIGEST_DIR.to_string())));

    let publish = container(&pod, PUBLISH_CONTAINER);
    assert_eq!(publish.args.as_deref().unwrap(), ["publish"]);
    assert_eq!(publish.image, Some(settings().prepare_image));
    assert_eq!(publish.security_context, Some(prepare_security_context()));
    let mounts = publish.volume_mounts.as_ref().unwrap();
    let seen: Vec<_> = mounts
        .iter()
        .map(|m| (m.mount_path.as_str(), m.read_only))
        .collect();
    assert_eq!(
        seen,
        [
            (RESULTS_DIR, Some(true)),
            (DIGEST_DIR, Some(true)),
            (REGISTRY_AUTH_DIR, Some(true)),
        ]
    );
    let env = publish.env.as_ref().unwrap();
    assert_eq!(env[0].name, PUBLISH_REQUEST_ENV);
    let request: PublishRequest = serde_json::from_str(env[0].value.as_deref().unwrap()).unwrap();
    assert_eq!(request.build, 3);
    assert_eq!(request.generation, generation);
    assert_eq!(request.signing_key_secret, None);
    assert_eq!(request.builder_id, settings().builder_id);
    assert_eq!(request.operator_version, OPERATOR_VERSION);
    assert_eq!(request.kaniko_image, settings().kaniko_image);
    assert_eq!(
        request.spec,
        serde_json::to_value(&source_build("app", git_spec()).spec).unwrap()
    );
}

#[test]
fn a_signing_key_is_checked_first_and_mounted_only_where_it_signs() {
    let mut spec = git_spec();
    spec.output.signing = Some(crate::api::Signing {
        key_secret_ref: SecretReference {
            name: "cosign-key".to_string(),
        },
    });
    let default_key = BuildSettings {
        signing_key_secret: Some("operator-key".to_string()),
        ..settings()
    };
    for (spec, settings, key) in [
        (spec, settings(), "cosign-key"),
        (git_spec(), default_key.clone(), "operator-key"),
    ] {
        let pod = build_pod(&source_build("app", spec), &settings, 1).unwrap();
        let pod_spec = pod.spec.as_ref().unwrap();
        let init = pod_spec.init_containers.as_deref().unwrap();
        assert_eq!(init[0].name, SIGNING_KEY_CONTAINER);
        assert_eq!(init[0].args.as_deref().unwrap(), ["publish", "--check-key"]);
        let key_mount = (SIGNING_KEY_VOLUME.to_string(), SIGNING_KEY_DIR.to_string());
        assert_eq!(
            mounts_of(&pod, SIGNING_KEY_CONTAINER),
            std::slice::from_ref(&key_mount)
        );
        assert!(mounts_of(&pod, PUBLISH_CONTAINER).contains(&key_mount));
        for other in [PREPARE_CONTAINER, BUILD_CONTAINER] {
            assert!(!mounts_of(&pod, other).contains(&key_mount), "{other}");
        }
        let volume = pod_spec
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == SIGNING_KEY_VOLUME)
            .unwrap();
        assert_eq!(
            volume.secret.as_ref().unwrap().secret_name.as_deref(),
            Some(key)
        );
        let env = container(&pod, PUBLISH_CONTAINER).env.as_ref().unwrap();
        let request: PublishRequest =
            serde_json::from_str(env[0].value.as_deref().unwrap()).unwrap();
        assert_eq!(request.signing_key_secret.as_deref(), Some(key));
    }
}
