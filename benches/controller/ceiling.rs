//! The `ceiling` scenario: how fast the API server itself creates build Pods on this machine,
//! with no controller in the way. Every SourceBuild costs one Pod create, so this rate bounds
//! the operator's create -> Pod throughput, and with it how fast any burst can drain. Measured
//! twice: as the cluster admin (exempt from API Priority and Fairness) and as the operator's
//! own ServiceAccount (the identity the operator runs as, subject to APF like in a cluster).

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use sourcebuild::api::SourceBuild;
use sourcebuild::pod::{
    BuildSettings, LABEL_MANAGED_BY, LABEL_NAME, MANAGED_BY, MANAGED_BY_SELECTOR, build_pod,
};

use crate::cluster::{Cluster, Kubelet, Tracker};
use crate::report::{Ceiling, CreateRate, Pipeline};
use crate::stats::summarize;
use crate::support::operator::{CHART_NAMESPACE, SERVICE_ACCOUNT};
use crate::support::sourcebuilds::DIGEST;

/// Creates in flight at once: the burst scenario's create concurrency.
pub const CONCURRENCY: usize = 32;

pub async fn measure(cluster: &mut Cluster, pods: usize) -> Result<Ceiling, String> {
    let template = template()?;
    let admin = cluster.admin.clone();
    let operator = cluster
        .cp
        .client_for_service_account(CHART_NAMESPACE, SERVICE_ACCOUNT)
        .await;
    let mut rates = Vec::new();
    for (who, client) in [("admin", admin), ("operator", operator)] {
        let ns = cluster.namespace(&format!("bench-ceiling-{who}")).await;
        rates.push(create_all(&client, &ns, &template, pods).await?);
        // The next measure starts from an API server without these Pods' watch traffic.
        Api::<Pod>::namespaced(cluster.admin.clone(), &ns)
            .delete_collection(&DeleteParams::background(), &ListParams::default())
            .await
            .map_err(|e| format!("delete the Pods of {ns}: {e}"))?;
    }
    let operator = rates.pop().unwrap_or_default();
    let admin = rates.pop().unwrap_or_default();
    let alone = pipeline(cluster, &template, pods, None, Free::Told).await?;
    // The same with the kubelet's two status writes per Pod, measured by watch as the burst is.
    let kubelet = Some(crate::burst_kubelet());
    let with_kubelet = pipeline(cluster, &template, pods, kubelet.clone(), Free::Told).await?;
    // And with the one write every build's result costs any controller that reports it.
    let with_results = pipeline(
        cluster,
        &template,
        pods,
        kubelet.clone(),
        Free::ToldAndReports,
    )
    .await?;
    // And learning of each SourceBuild from a watch, as a controller must.
    let watching = pipeline(
        cluster,
        &template,
        pods,
        kubelet.clone(),
        Free::WatchesAndReports,
    )
    .await?;
    // And writing the operator's first status with each Pod create, as it does in steady load.
    let watching_with_starts = pipeline(
        cluster,
        &template,
        pods,
        kubelet,
        Free::WatchesReportsAndStarts,
    )
    .await?;
    Ok(Ceiling {
        concurrency: CONCURRENCY,
        admin,
        operator_service_account: operator,
        pipeline: alone,
        pipeline_with_kubelet: with_kubelet,
        pipeline_with_results: with_results,
        pipeline_watching: watching,
        pipeline_watching_with_starts: watching_with_starts,
    })
}

/// The `floor` scenario: the burst served by the zero-cost controller that learns of each
/// SourceBuild from a watch, creates its Pod at once and reports each result (two writes per
/// build, as `pipeline_watching` of the ceiling), in the burst's place. `ceiling`'s floors are
/// not measured on the API server the burst met: its Pod watch pipeline gets faster with the
/// traffic it has carried (this floor measured 2.9 s first thing after `steady`, 1.1 s after
/// the ceiling's 5,000 Pod creates); `steady floor` against `steady burst`, run alternately,
/// compares like with like.
pub async fn floor(cluster: &mut Cluster, builds: usize) -> Result<Pipeline, String> {
    let kubelet = Some(crate::burst_kubelet());
    pipeline(
        cluster,
        &template()?,
        builds,
        kubelet,
        Free::WatchesAndReports,
    )
    .await
}

/// What the zero-cost controller of [`pipeline`] does.
#[derive(Clone, Copy, PartialEq)]
enum Free {
    /// Creates each build Pod as soon as the user's create of its SourceBuild is answered: it
    /// is told of each SourceBuild, which no real controller is.
    Told,
    /// The same, and watches its Pods and applies each build's final status when its Pod
    /// succeeds.
    ToldAndReports,
    /// Learns of each SourceBuild from a watch, as a controller must, creates its Pod at once,
    /// and reports results as `ToldAndReports` does.
    WatchesAndReports,
    /// As `WatchesAndReports`, and applies the operator's first status of a build (`started`)
    /// right after creating its Pod: a build's three writes.
    WatchesReportsAndStarts,
}

impl Free {
    fn reports(self) -> bool {
        self != Self::Told
    }
}

/// The burst's creates with a controller that does nothing but create each Pod at once (see
/// [`Pipeline`]). The operator is stopped meanwhile, so the SourceBuilds stay untouched; they
/// and the Pods are deleted before it starts again. With `kubelet`, the Pods carry our labels
/// and the burst's kubelet stand-in runs them, and create -> Pod is taken from the watches as
/// in the burst. When the controller reports results ([`Free`]), it also watches its Pods and
/// writes each build's final status (the operator's own server-side apply of a finished
/// build's status) once its Pod has succeeded: the two writes a build must cost any controller
/// that reports results, and the watch it needs to know when to write the second.
async fn pipeline(
    cluster: &mut Cluster,
    template: &Pod,
    builds: usize,
    kubelet: Option<Kubelet>,
    free: Free,
) -> Result<Pipeline, String> {
    let results = free.reports();
    let ns = cluster.namespace("bench-ceiling-pipeline").await;
    let tracker = match &kubelet {
        Some(kubelet) => {
            Some(Tracker::start(cluster.admin.clone(), &ns, Some(kubelet.clone())).await?)
        }
        None => None,
    };
    let labelled = kubelet.is_some();
    let (_, cpu_before, _) = cluster.api_metrics().await?;
    let sa = cluster
        .cp
        .client_for_service_account(CHART_NAMESPACE, SERVICE_ACCOUNT)
        .await;
    let operator = cluster.operator.clone();
    tokio::task::block_in_place(|| operator.kill());
    let cpu = tracker
        .as_ref()
        .map(|t| crate::cluster::CpuSampler::start(cluster.processes(), t.base));
    let users: Api<SourceBuild> = Api::namespaced(cluster.admin.clone(), &ns);
    let reporter = results.then(|| tokio::spawn(report_results(sa.clone(), ns.clone())));
    let pods: Api<Pod> = Api::namespaced(sa.clone(), &ns);
    let starts = (free == Free::WatchesReportsAndStarts)
        .then(|| Api::<SourceBuild>::namespaced(sa.clone(), &ns));
    // Each SourceBuild heard of: its index, when, and its uid when a watch showed it.
    let (created_tx, created_rx) =
        tokio::sync::mpsc::unbounded_channel::<(usize, Instant, Option<String>)>();
    // Who hears of each SourceBuild: the users' creates, or a watch of the controller's.
    let (told, watched) = match free {
        Free::WatchesAndReports | Free::WatchesReportsAndStarts => (None, Some(created_tx)),
        Free::Told | Free::ToldAndReports => (Some(created_tx), None),
    };
    let watching = watched.map(|heard| {
        tokio::spawn(hear_of_sourcebuilds(
            Api::namespaced(sa, &ns),
            builds,
            heard,
        ))
    });
    let started = Instant::now();
    let profile = crate::pprof::Profile::start(&cluster.admin, &ns, crate::cluster::PROFILE_LENGTH);
    let trace = crate::trace::Trace::start(&cluster.admin, cluster.cp.etcd_port, &ns).await;
    let creating = {
        let users = users.clone();
        async move {
            // The stream, and the sender in its closure, are dropped when this block completes:
            // then the Pod creates below see the channel close.
            futures::stream::iter(0..builds)
                .map(move |i| {
                    let (users, created) = (users.clone(), told.clone());
                    async move {
                        // The burst's own SourceBuilds, as its users create them.
                        crate::cluster::create(&users, &format!("p{i:05}")).await?;
                        if let Some(created) = created {
                            let _ = created.send((i, Instant::now(), None));
                        }
                        Ok::<(), String>(())
                    }
                })
                .buffer_unordered(CONCURRENCY)
                .try_collect::<Vec<()>>()
                .await
        }
    };
    let following = tokio_stream_of(created_rx)
        .map(|(i, at, uid)| {
            let (pods, mut pod, starts) = (pods.clone(), template.clone(), starts.clone());
            pod.metadata.name = Some(format!("p{i:05}-build-1"));
            // Owned by its SourceBuild, as the operator's are (the garbage collector follows
            // every owned Pod).
            pod.metadata.owner_references = uid.map(|uid| {
                vec![OwnerReference {
                    api_version: SourceBuild::api_version(&()).into_owned(),
                    kind: SourceBuild::kind(&()).into_owned(),
                    name: format!("p{i:05}"),
                    uid,
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]
            });
            if labelled {
                pod.metadata.labels = Some(
                    [
                        (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
                        (LABEL_NAME.to_string(), format!("p{i:05}")),
                    ]
                    .into(),
                );
            }
            async move {
                pods.create(&PostParams::default(), &pod)
                    .await
                    .map_err(|e| format!("create Pod {i}: {e}"))?;
                let elapsed = at.elapsed().as_secs_f64() * 1000.0;
                if let Some(builds) = starts {
                    let (name, pod) = (format!("p{i:05}"), format!("p{i:05}-build-1"));
                    let params = PatchParams::apply(sourcebuild::api::FIELD_MANAGER).force();
                    builds
                        .patch_status(&name, &params, &Patch::Apply(&started_status(&pod)))
                        .await
                        .map_err(|e| format!("the first status of {name}: {e}"))?;
                }
                Ok::<f64, String>(elapsed)
            }
        })
        .buffer_unordered(sourcebuild::controller::throttle::write_gate::MAX_WRITERS)
        .try_collect::<Vec<f64>>();
    let (created, latencies) = futures::join!(creating, following);
    let seconds = started.elapsed().as_secs_f64();
    profile.finish().await;
    let mut lags = Default::default();
    let mut cores_to_last_pod = Default::default();
    let latencies = match tracker {
        None => latencies,
        Some(tracker) => {
            let finished = if results {
                tracker
                    .wait_all_done(builds, Duration::from_secs(120))
                    .await
            } else {
                tracker
                    .wait_all_pods_finished(builds, Duration::from_secs(120))
                    .await
            };
            if let Some(reporter) = &reporter {
                reporter.abort();
            }
            if let Some(watching) = &watching {
                watching.abort();
            }
            let times = tracker.snapshot();
            if let Some(cpu) = cpu {
                let first_created = times.values().filter_map(|t| t.created).reduce(f64::min);
                let last_pod = times.values().filter_map(|t| t.pod).reduce(f64::max);
                if let (Some(from), Some(to)) = (first_created, last_pod) {
                    cores_to_last_pod = cpu.cores_between(from, to);
                }
            }
            let creates = crate::audit::creates(&cluster.cp.audit_log, &ns)?;
            lags = tracker.watch_lag_ms(&creates);
            if let Some(trace) = trace {
                trace.finish(&creates.pods_unix_ms(), &tracker.pods_seen_unix_ms());
            }
            tracker.stop();
            finished?;
            latencies.map(|_| {
                times
                    .values()
                    .filter_map(|t| Some(t.pod? - t.created?))
                    .collect()
            })
        }
    };
    // Before the clean-up: its deletes are not the burst's.
    let (_, cpu_after, _) = cluster.api_metrics().await?;
    for result in [
        Api::<Pod>::namespaced(cluster.admin.clone(), &ns)
            .delete_collection(&DeleteParams::background(), &ListParams::default())
            .await
            .map(|_| ()),
        users
            .delete_collection(&DeleteParams::background(), &ListParams::default())
            .await
            .map(|_| ()),
    ] {
        result.map_err(|e| format!("clean up {ns}: {e}"))?;
    }
    tokio::task::block_in_place(|| operator.ensure_running());
    created?;
    Ok(Pipeline {
        builds,
        seconds,
        create_to_pod_ms: summarize(&latencies?),
        create_to_pod_server_ms: summarize(
            &crate::audit::creates(&cluster.cp.audit_log, &ns)?.create_to_pod_ms(),
        ),
        sourcebuild_watch_lag_ms: lags.0,
        pod_watch_lag_ms: lags.1,
        cores_to_last_pod,
        api_server_cpu_ms_per_build: (cpu_after - cpu_before) * 1000.0 / builds.max(1) as f64,
    })
}

/// The free controller's second half: watches the build Pods of `ns` and, as each succeeds,
/// applies its SourceBuild's final status, at most as many at once as the operator's write
/// gate allows. Runs until aborted.
async fn report_results(client: Client, ns: String) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let builds: Api<SourceBuild> = Api::namespaced(client, &ns);
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(
        sourcebuild::controller::throttle::write_gate::MAX_WRITERS,
    ));
    let mut reported = std::collections::HashSet::new();
    let config = watcher::Config::default().labels(MANAGED_BY_SELECTOR);
    let mut stream = watcher(pods, config).boxed();
    while let Some(event) = stream.next().await {
        let (Ok(watcher::Event::Apply(pod)) | Ok(watcher::Event::InitApply(pod))) = event else {
            continue;
        };
        let succeeded = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded");
        let Some(name) = pod.labels().get(LABEL_NAME).cloned() else {
            continue;
        };
        if !succeeded || !reported.insert(name.clone()) {
            continue;
        }
        let (builds, slots, pod_name) = (builds.clone(), slots.clone(), pod.name_any());
        tokio::spawn(async move {
            let _slot = slots.acquire().await;
            let patch = final_status(&name, &pod_name);
            let params = PatchParams::apply(sourcebuild::api::FIELD_MANAGER).force();
            if let Err(e) = builds
                .patch_status(&name, &params, &Patch::Apply(&patch))
                .await
            {
                eprintln!("bench: ceiling: the status of {name}: {e}");
            }
        });
    }
}

/// The watching controller's first half: sends the index of each of the burst's `builds`
/// SourceBuilds (`pNNNNN`) the first time a watch shows it, then stops (closing `heard`).
async fn hear_of_sourcebuilds(
    builds: Api<SourceBuild>,
    expected: usize,
    heard: tokio::sync::mpsc::UnboundedSender<(usize, Instant, Option<String>)>,
) {
    let mut seen = std::collections::HashSet::new();
    let mut stream = watcher(builds, watcher::Config::default()).boxed();
    while seen.len() < expected {
        let Some(event) = stream.next().await else {
            return;
        };
        let (Ok(watcher::Event::Apply(sb)) | Ok(watcher::Event::InitApply(sb))) = event else {
            continue;
        };
        let Some(i) = sb.name_any().strip_prefix('p').and_then(|n| n.parse().ok()) else {
            continue;
        };
        if seen.insert(i) {
            let _ = heard.send((i, Instant::now(), sb.uid()));
        }
    }
}

/// A started build's status, as the operator writes it with the Pod's create.
fn started_status(pod: &str) -> serde_json::Value {
    let new = new_build(pod);
    let status = sourcebuild::controller::status::started(
        &Default::default(),
        &new,
        k8s_openapi::jiff::Timestamp::now(),
    );
    json!({"apiVersion": "sourcebuild.dev/v1alpha1", "kind": "SourceBuild", "status": status})
}

fn new_build(pod: &str) -> sourcebuild::controller::status::NewBuild {
    sourcebuild::controller::status::NewBuild {
        generation: 1,
        build: 1,
        pod_name: pod.to_string(),
        trigger: sourcebuild::api::Trigger::ConfigChange,
        attempt: 1,
        rebuild: None,
        revision: None,
    }
}

/// A finished build's status, made by the operator's own status functions: started, then
/// succeeded, then recorded in the history.
fn final_status(name: &str, pod: &str) -> serde_json::Value {
    use sourcebuild::controller::status::{record_history, started, succeeded};
    let now = k8s_openapi::jiff::Timestamp::now();
    let new = new_build(pod);
    let result = sourcebuild::outcome::BuildResult {
        digest: DIGEST.to_string(),
        image: format!("registry.example.com/bench/{name}@{DIGEST}"),
        provenance: Default::default(),
        published: Some(sourcebuild::contract::PublishResult {
            subject: DIGEST.to_string(),
            attestation: format!("sha256:{}", "e".repeat(64)),
            signature: None,
            referrers: Some("ReferrersAPI".to_string()),
        }),
    };
    let mut status = started(&Default::default(), &new, now);
    status = succeeded(&status, 1, pod, &result, Time(now), now);
    record_history(&mut status, sourcebuild::api::DEFAULT_HISTORY_LIMIT);
    json!({"apiVersion": "sourcebuild.dev/v1alpha1", "kind": "SourceBuild", "status": status})
}

/// The receiving half of a channel as a stream.
fn tokio_stream_of<T>(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A build Pod as the operator makes it, without the labels and owner that would bring it to
/// the operator's watch: only the API server's work is measured.
fn template() -> Result<Pod, String> {
    let sb: SourceBuild = serde_json::from_value(json!({
        "apiVersion": "sourcebuild.dev/v1alpha1", "kind": "SourceBuild",
        "metadata": {"name": "ceiling", "namespace": "x", "uid": "00000000-0000-0000-0000-000000000000",
                     "generation": 1},
        "spec": {
            "source": {"git": {"url": "https://example.com/acme/app.git"}},
            "output": {"image": "registry.example.com/bench/ceiling:1.0"}
        }
    }))
    .map_err(|e| e.to_string())?;
    let settings = BuildSettings {
        default_builder_image: "registry.example.com/s2i/builder:1".into(),
        kaniko_image: "registry.example.com/kaniko/executor:v1".into(),
        prepare_image: "registry.example.com/sourcebuild/operator:0.1.0".into(),
        insecure_registries: vec![],
        user_namespaces: false,
        signing_key_secret: None,
        builder_id: "https://sourcebuild.dev/tests".to_string(),
    };
    let mut pod = build_pod(&sb, &settings, 1).map_err(|e| e.to_string())?;
    pod.metadata.labels = None;
    pod.metadata.owner_references = None;
    pod.metadata.namespace = None;
    Ok(pod)
}

async fn create_all(
    client: &Client,
    ns: &str,
    template: &Pod,
    pods: usize,
) -> Result<CreateRate, String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let started = Instant::now();
    let latencies: Vec<f64> = futures::stream::iter(0..pods)
        .map(|i| {
            let (api, mut pod) = (api.clone(), template.clone());
            pod.metadata.name = Some(format!("ceiling-{i:05}"));
            async move {
                let at = Instant::now();
                api.create(&PostParams::default(), &pod)
                    .await
                    .map_err(|e| format!("create Pod {i} in {ns}: {e}"))?;
                Ok::<f64, String>(at.elapsed().as_secs_f64() * 1000.0)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    let seconds = started
        .elapsed()
        .max(Duration::from_millis(1))
        .as_secs_f64();
    Ok(CreateRate {
        pods,
        seconds,
        per_min: pods as f64 / seconds * 60.0,
        create_ms: summarize(&latencies),
    })
}
