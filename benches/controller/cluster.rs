//! The benchmark's cluster: a real control plane, the chart, the operator as its
//! ServiceAccount, and the benchmark playing the users (creating SourceBuilds) and the kubelet
//! (finishing build Pods). Every time is taken by the benchmark's own watches
//! (creationTimestamp has one-second resolution).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use sourcebuild::api::{Phase, SourceBuild};
use sourcebuild::pod::{LABEL_NAME, MANAGED_BY_SELECTOR};

use crate::apimetrics::{self, Counts};
use crate::procfs;
use crate::report::{Load, Resync};
use crate::stats::{Summary, summarize};
use crate::support::ControlPlane;
use crate::support::operator::{Operator, install_chart};
use crate::support::sourcebuilds::{DIGEST, finished_status, running_status};

/// How much of a load's start an API server profile covers (`SOURCEBUILD_BENCH_PPROF`): a
/// burst of 1,000 on 2 cores has created its Pods by then.
pub const PROFILE_LENGTH: Duration = Duration::from_secs(8);

pub struct Cluster {
    pub cp: ControlPlane,
    pub admin: Client,
    pub operator: Arc<Operator>,
    /// SourceBuilds created so far, in all namespaces (a restarted operator reconciles them all).
    pub sourcebuilds: usize,
    pub namespaces: Vec<String>,
    pub rss: RssSampler,
}

impl Cluster {
    pub async fn start(log_dir: &Path) -> Result<Self, String> {
        let cp = tokio::task::spawn_blocking(ControlPlane::start)
            .await
            .map_err(|e| e.to_string())??;
        let admin = cp.client().await;
        let operator = tokio::task::block_in_place(|| {
            install_chart(&cp, &[]);
            Arc::new(Operator::start_for_benchmark(&cp, &[], log_dir))
        });
        let cluster = Cluster {
            cp,
            admin,
            operator,
            sourcebuilds: 0,
            namespaces: Vec::new(),
            rss: RssSampler::default(),
        };
        cluster.wait_operator_ready().await?;
        Ok(cluster)
    }

    pub async fn wait_operator_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some((200, _)) = self.operator.http_get("/readyz") {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(format!(
            "the operator was not ready within 60 s; its log:\n{}",
            tail(&self.operator.log(), 3000)
        ))
    }

    /// `apiserver_request_total` now.
    pub async fn api_counts(&self) -> Result<Counts, String> {
        Ok(self.api_metrics().await?.0)
    }

    /// The API server's request counts, the CPU seconds it has used and the watches it closed
    /// as unresponsive, by resource.
    pub async fn api_metrics(&self) -> Result<(Counts, f64, BTreeMap<String, u64>), String> {
        let request = http::Request::get("/metrics")
            .body(Vec::new())
            .map_err(|e| e.to_string())?;
        let text = self
            .admin
            .request_text(request)
            .await
            .map_err(|e| format!("GET /metrics of the API server: {e}"))?;
        let cpu = apimetrics::sample(&text, "process_cpu_seconds_total")
            .ok_or("the API server's /metrics has no process_cpu_seconds_total")?;
        let closed = apimetrics::terminated_watchers(&text)?;
        Ok((apimetrics::parse(&text)?, cpu, closed))
    }

    /// The operator's `/metrics` text; `None` while it does not serve.
    fn operator_metrics(&self) -> Option<String> {
        match self.operator.http_get("/metrics")? {
            (200, text) => Some(text),
            _ => None,
        }
    }

    /// The operator's reconcile counter and reconciles in flight; `None` while it does not serve.
    pub fn operator_progress(&self) -> Option<(u64, u64)> {
        let text = self.operator_metrics()?;
        let reconciles = apimetrics::sample(&text, "sourcebuild_reconciliations_total")?;
        let in_flight = apimetrics::sample(&text, "sourcebuild_reconciles_in_flight")?;
        Some((reconciles as u64, in_flight as u64))
    }

    /// The operator's counters for a load: reconciles, and writes it put off while the API
    /// server was behind (zeros while it does not serve).
    pub fn operator_counters(&self) -> (u64, u64) {
        let Some(text) = self.operator_metrics() else {
            return (0, 0);
        };
        let sample = |name| apimetrics::sample(&text, name).unwrap_or(0.0) as u64;
        (
            sample("sourcebuild_reconciliations_total"),
            sample("sourcebuild_status_writes_deferred_total"),
        )
    }

    /// The operator's histogram of its Pod creates answered -> shown by its Pod watch.
    pub fn operator_pod_watch_delay(&self) -> Vec<(f64, u64)> {
        self.operator_metrics()
            .map(|text| apimetrics::buckets(&text, "sourcebuild_pod_watch_delay_seconds"))
            .unwrap_or_default()
    }

    /// Waits until the operator has counted `reconciles` reconciles and none runs, then
    /// `quiet` more; the time it took until the count was reached.
    pub async fn wait_reconciled(
        &self,
        reconciles: u64,
        quiet: Duration,
        timeout: Duration,
    ) -> Result<Duration, String> {
        let started = Instant::now();
        loop {
            if let Some((done, in_flight)) = self.operator_progress() {
                if done >= reconciles && in_flight == 0 {
                    let took = started.elapsed();
                    tokio::time::sleep(quiet).await;
                    return Ok(took);
                }
                if started.elapsed() > timeout {
                    return Err(format!(
                        "the operator reconciled {done} of {reconciles} within {timeout:?}"
                    ));
                }
            } else if started.elapsed() > timeout {
                return Err("the operator's metrics never answered".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn namespace(&mut self, prefix: &str) -> String {
        let ns = self.cp.namespace(prefix).await;
        self.namespaces.push(ns.clone());
        ns
    }

    /// CPU seconds used so far by each process on the machine's load: etcd, kube-apiserver,
    /// kube-controller-manager, the operator and the benchmark itself (users, kubelet
    /// stand-in, watches). A process not running is left out.
    pub fn cpu_by_process(&self) -> BTreeMap<String, f64> {
        cpu_of(&self.processes())
    }

    /// The machine's load's processes by name (see [`Cluster::cpu_by_process`]).
    pub fn processes(&self) -> Vec<(String, u32)> {
        let names = ["etcd", "kube-apiserver", "kube-controller-manager"];
        let mut pids: Vec<(String, u32)> = names
            .into_iter()
            .map(String::from)
            .zip(self.cp.pids.iter().copied())
            .collect();
        pids.extend(self.operator.pid().map(|p| ("operator".to_string(), p)));
        pids.push(("benchmark".to_string(), std::process::id()));
        pids
    }

    /// Runs one load in a fresh namespace and measures it.
    pub async fn load(&mut self, prefix: &str, spec: &LoadSpec) -> Result<(String, Load), String> {
        let ns = self.namespace(prefix).await;
        let tracker = Tracker::start(self.admin.clone(), &ns, spec.kubelet.clone()).await?;
        let (before, cpu_before, closed_before) = self.api_metrics().await?;
        let counters_before = self.operator_counters();
        let delay_before = self.operator_pod_watch_delay();
        let process_cpu_before = self.cpu_by_process();
        let rss_from = self.rss.len();
        let cpu = CpuSampler::start(self.processes(), tracker.base);
        let started = Instant::now();
        let profile = crate::pprof::Profile::start(&self.admin, &ns, PROFILE_LENGTH);
        let trace = crate::trace::Trace::start(&self.admin, self.cp.etcd_port, &ns).await;
        let api: Api<SourceBuild> = Api::namespaced(self.admin.clone(), &ns);
        let names: Vec<String> = (0..spec.builds).map(|i| format!("b{i:05}")).collect();
        match spec.rate_per_s {
            Some(rate) => {
                let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                let mut creates = Vec::new();
                for name in &names {
                    tick.tick().await;
                    let (api, name) = (api.clone(), name.clone());
                    creates.push(tokio::spawn(async move { create(&api, &name).await }));
                }
                for c in creates {
                    c.await.map_err(|e| e.to_string())??;
                }
            }
            None => {
                futures::stream::iter(names.iter())
                    .map(|name| create(&api, name))
                    .buffer_unordered(spec.create_concurrency)
                    .try_collect::<Vec<()>>()
                    .await?;
            }
        }
        self.sourcebuilds += spec.builds;
        // Generous: the API server on a shared 2-core machine managed about 15 builds/s.
        let deadline = Duration::from_secs(120) + Duration::from_millis(100 * spec.builds as u64);
        let done = match spec.kubelet {
            Some(_) => tracker.wait_all_done(spec.builds, deadline).await,
            None => tracker.wait_all_phased(spec.builds, deadline).await,
        };
        profile.finish().await;
        // The operator's last writes (an Event after a status) land after status is seen.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (after, cpu_after, closed_after) = self.api_metrics().await?;
        let counters_after = self.operator_counters();
        let delay_after = self.operator_pod_watch_delay();
        let delay_ms =
            |q| apimetrics::quantile_bound(&delay_before, &delay_after, q).map(|s| s * 1000.0);
        let process_cpu_after = self.cpu_by_process();
        let elapsed = started.elapsed();
        if let Err(e) = done {
            eprintln!("bench: {ns}: {e} after {elapsed:?}");
        }
        let delta = apimetrics::diff(&before, &after);
        let writes = apimetrics::operator_writes(&delta);
        let times = tracker.snapshot();
        let succeeded = times.values().filter(|t| t.status.is_some()).count();
        let create_to_pod: Vec<f64> = times
            .values()
            .filter_map(|t| Some(t.pod? - t.created?))
            .collect();
        let create_to_phase: Vec<f64> = times
            .values()
            .filter_map(|t| Some(t.phase? - t.created?))
            .collect();
        let creates = crate::audit::creates(&self.cp.audit_log, &ns)?;
        let create_to_pod_server = creates.create_to_pod_ms();
        let (sourcebuild_watch_lag_ms, pod_watch_lag_ms) = tracker.watch_lag_ms(&creates);
        if let Some(trace) = trace {
            trace.finish(&creates.pods_unix_ms(), &tracker.pods_seen_unix_ms());
        }
        let finish_to_status: Vec<f64> = times
            .values()
            .filter_map(|t| Some(t.status? - t.pod_finished?))
            .collect();
        let mut slowest: Vec<(&String, f64, f64)> = times
            .iter()
            .filter_map(|(name, t)| Some((name, t.created?, t.pod?)))
            .collect();
        slowest.sort_by(|a, b| (b.2 - b.1).total_cmp(&(a.2 - a.1)));
        // Where a burst's tail comes from: early SourceBuilds served late, or late ones.
        let shown = if spec.rate_per_s.is_none() { 3 } else { 0 };
        for (name, created, pod) in slowest.iter().take(shown) {
            eprintln!(
                "bench: {ns}: slow create -> Pod: {name} (SourceBuild seen at {created:.0} ms, its Pod at {pod:.0} ms)"
            );
        }
        let first_created = times
            .values()
            .filter_map(|t| t.created)
            .fold(f64::MAX, f64::min);
        let last_pod = times.values().filter_map(|t| t.pod).fold(0.0, f64::max);
        let span_s = ((last_pod - first_created) / 1000.0).max(0.001);
        let cores_to_last_pod = cpu.cores_between(first_created, last_pod);
        let per = |n: u64| n as f64 / succeeded.max(1) as f64;
        tracker.stop();
        Ok((
            ns,
            Load {
                builds: spec.builds,
                rate_per_s: spec.rate_per_s,
                create_to_pod_ms: summarize(&create_to_pod),
                create_to_phase_ms: summarize(&create_to_phase),
                create_to_pod_server_ms: summarize(&create_to_pod_server),
                sourcebuild_watch_lag_ms,
                pod_watch_lag_ms,
                operator_pod_watch_delay_ms: [delay_ms(0.5), delay_ms(0.99)],
                api_server_cpu_ms_per_build: (cpu_after - cpu_before) * 1000.0
                    / spec.builds.max(1) as f64,
                watches_closed: apimetrics::diff(&closed_before, &closed_after),
                cpu_ms_per_build: process_cpu_after
                    .iter()
                    .filter_map(|(name, after)| {
                        let used = after - process_cpu_before.get(name)?;
                        Some((name.clone(), used * 1000.0 / spec.builds.max(1) as f64))
                    })
                    .collect(),
                cores_to_last_pod,
                finish_to_status_ms: summarize(&finish_to_status),
                create_to_pod_span_s: span_s,
                throughput_per_min: create_to_pod.len() as f64 / span_s * 60.0,
                succeeded,
                writes_per_build: per(writes.total),
                object_writes_per_build: per(writes.objects),
                event_writes_per_build: per(writes.events),
                writes,
                requests: apimetrics::by_label(&delta),
                operator_rss_max_mib: self.rss.max_since(rss_from),
                operator_reconciles: counters_after.0.saturating_sub(counters_before.0),
                operator_deferred: counters_after.1.saturating_sub(counters_before.1),
                samples_create_to_pod: create_to_pod,
                samples_finish_to_status: finish_to_status,
            },
        ))
    }

    /// Touches every SourceBuild of `namespaces` (an annotation: no spec change) and counts
    /// what the operator writes for it; nothing is due, so it should write nothing.
    pub async fn resync(&self, namespaces: &[String]) -> Result<Resync, String> {
        let mut targets = Vec::new();
        for ns in namespaces {
            let api: Api<SourceBuild> = Api::namespaced(self.admin.clone(), ns);
            let list = api
                .list(&Default::default())
                .await
                .map_err(|e| format!("list SourceBuilds in {ns}: {e}"))?;
            targets.extend(
                list.items
                    .into_iter()
                    .map(|sb| (api.clone(), sb.name_any())),
            );
        }
        let (reconciled, _) = self.operator_progress().ok_or("operator metrics")?;
        let before = self.api_counts().await?;
        let started = Instant::now();
        let touch = json!({"metadata": {"annotations": {"bench.sourcebuild.dev/touched": "1"}}});
        futures::stream::iter(targets.iter())
            .map(|(api, name)| {
                let touch = &touch;
                async move {
                    api.patch(name, &PatchParams::default(), &Patch::Merge(touch))
                        .await
                        .map(|_| ())
                        .map_err(|e| format!("annotate SourceBuild {name}: {e}"))
                }
            })
            .buffer_unordered(32)
            .try_collect::<Vec<()>>()
            .await?;
        self.wait_reconciled(
            reconciled + targets.len() as u64,
            Duration::ZERO,
            Duration::from_secs(300),
        )
        .await?;
        let seconds = started.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = self.api_counts().await?;
        let delta = apimetrics::diff(&before, &after);
        Ok(Resync {
            sourcebuilds: targets.len(),
            seconds,
            writes: apimetrics::operator_writes(&delta),
            requests: apimetrics::by_label(&delta),
        })
    }
}

pub async fn create(api: &Api<SourceBuild>, name: &str) -> Result<(), String> {
    let sb: SourceBuild = serde_json::from_value(json!({
        "apiVersion": "sourcebuild.dev/v1alpha1",
        "kind": "SourceBuild",
        "metadata": {"name": name},
        "spec": {
            "source": {"git": {"url": "https://example.com/acme/app.git"}},
            "output": {"image": format!("registry.example.com/bench/{name}:1.0")}
        }
    }))
    .map_err(|e| e.to_string())?;
    api.create(&PostParams::default(), &sb)
        .await
        .map(|_| ())
        .map_err(|e| format!("create SourceBuild {name}: {e}"))
}

fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// How many builds, how fast, and how the kubelet behaves.
pub struct LoadSpec {
    pub builds: usize,
    /// Creates per second; `None`: all at once, `create_concurrency` in flight.
    pub rate_per_s: Option<f64>,
    pub create_concurrency: usize,
    /// `None`: no node; the Pods stay unscheduled and the load ends when every SourceBuild
    /// shows a phase.
    pub kubelet: Option<Kubelet>,
}

/// What the benchmark does, in the kubelet's place, to each build Pod.
#[derive(Clone, Debug)]
pub struct Kubelet {
    /// Report the fetch step done and Kaniko running before finishing (a real build's path).
    pub running_step: bool,
    /// How long the "build" takes.
    pub build_time: Duration,
    /// Pod status writes in flight at most.
    pub concurrency: usize,
}

/// When each SourceBuild (by name) was seen in each state, in ms since the tracker started.
#[derive(Clone, Debug, Default)]
pub struct Times {
    pub created: Option<f64>,
    /// The first status with a phase.
    pub phase: Option<f64>,
    pub pod: Option<f64>,
    pub pod_finished: Option<f64>,
    pub status: Option<f64>,
}

/// CPU seconds used so far by each of `processes`.
fn cpu_of(processes: &[(String, u32)]) -> BTreeMap<String, f64> {
    processes
        .iter()
        .filter_map(|(name, pid)| Some((name.clone(), procfs::cpu_seconds(*pid)?)))
        .collect()
}

/// Samples the CPU used by a load's processes every 100 ms, timed in ms since the tracker's
/// start, until [`CpuSampler::cores_between`] stops it.
pub struct CpuSampler {
    samples: Arc<Mutex<Vec<procfs::CpuSample>>>,
    task: tokio::task::JoinHandle<()>,
}

impl CpuSampler {
    pub fn start(processes: Vec<(String, u32)>, base: Instant) -> Self {
        let samples: Arc<Mutex<Vec<procfs::CpuSample>>> = Arc::default();
        let into = samples.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                let cpu = cpu_of(&processes);
                let at = base.elapsed().as_secs_f64() * 1000.0;
                into.lock().unwrap().push((at, cpu));
            }
        });
        Self { samples, task }
    }

    /// Stops sampling; the cores each process used from `from_ms` to `to_ms` (see
    /// [`procfs::cores_between`]).
    pub fn cores_between(self, from_ms: f64, to_ms: f64) -> BTreeMap<String, f64> {
        self.task.abort();
        procfs::cores_between(&self.samples.lock().unwrap(), from_ms, to_ms)
    }
}

/// Watches SourceBuilds and build Pods of a namespace and plays the kubelet there.
pub struct Tracker {
    times: Arc<Mutex<HashMap<String, Times>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The tracker's start, in ms since the Unix epoch: [`Times`] on the audit log's clock.
    base_unix_ms: f64,
    /// The tracker's start: [`Times`] are ms since this.
    pub base: Instant,
}

impl Tracker {
    pub async fn start(client: Client, ns: &str, kubelet: Option<Kubelet>) -> Result<Self, String> {
        let base = Instant::now();
        let base_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs_f64()
            * 1000.0;
        let since = move || base.elapsed().as_secs_f64() * 1000.0;
        let times: Arc<Mutex<HashMap<String, Times>>> = Arc::default();
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(2);

        let sbs: Api<SourceBuild> = Api::namespaced(client.clone(), ns);
        let t = times.clone();
        let ready = ready_tx.clone();
        let watch_builds = tokio::spawn(async move {
            let mut stream = watcher(sbs, watcher::Config::default()).boxed();
            while let Some(event) = stream.next().await {
                let now = since();
                let sb = match event {
                    Ok(watcher::Event::Apply(sb) | watcher::Event::InitApply(sb)) => sb,
                    Ok(watcher::Event::InitDone) => {
                        let _ = ready.send(()).await;
                        continue;
                    }
                    _ => continue,
                };
                let mut times = t.lock().unwrap();
                let entry = times.entry(sb.name_any()).or_default();
                entry.created.get_or_insert(now);
                let status = sb.status.as_ref();
                if status.is_some_and(|s| s.phase.is_some()) {
                    entry.phase.get_or_insert(now);
                }
                if status.is_some_and(|s| s.phase == Some(Phase::Succeeded) && s.digest.is_some()) {
                    entry.status.get_or_insert(now);
                }
            }
        });

        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let t = times.clone();
        let watch_pods = tokio::spawn(async move {
            let config = watcher::Config::default().labels(MANAGED_BY_SELECTOR);
            let mut stream = watcher(pods, config).boxed();
            while let Some(event) = stream.next().await {
                let now = since();
                let pod = match event {
                    Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => pod,
                    Ok(watcher::Event::InitDone) => {
                        let _ = ready_tx.send(()).await;
                        continue;
                    }
                    _ => continue,
                };
                let Some(owner) = pod.labels().get(LABEL_NAME).cloned() else {
                    continue;
                };
                let finished =
                    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded");
                let mut times = t.lock().unwrap();
                let entry = times.entry(owner).or_default();
                if entry.pod.is_none() {
                    entry.pod = Some(now);
                    let _ = started_tx.send(pod.name_any());
                }
                if finished {
                    entry.pod_finished.get_or_insert(now);
                }
            }
        });

        let pods: Api<Pod> = Api::namespaced(client, ns);
        let slots = Arc::new(tokio::sync::Semaphore::new(
            kubelet.as_ref().map_or(1, |k| k.concurrency),
        ));
        let kubelet_task = tokio::spawn(async move {
            let Some(kubelet) = kubelet else {
                return;
            };
            while let Some(name) = started_rx.recv().await {
                let (pods, slots, kubelet) = (pods.clone(), slots.clone(), kubelet.clone());
                tokio::spawn(async move {
                    if kubelet.running_step {
                        let _slot = slots.acquire().await;
                        let status = running_status();
                        patch_status(&pods, &name, status).await;
                    }
                    tokio::time::sleep(kubelet.build_time).await;
                    let _slot = slots.acquire().await;
                    let status = finished_status(0, DIGEST);
                    patch_status(&pods, &name, status).await;
                });
            }
        });
        for _ in 0..2 {
            tokio::time::timeout(Duration::from_secs(30), ready_rx.recv())
                .await
                .map_err(|_| format!("the benchmark's watches in {ns} did not start"))?;
        }
        Ok(Tracker {
            times,
            tasks: vec![watch_builds, watch_pods, kubelet_task],
            base_unix_ms,
            base,
        })
    }

    pub fn snapshot(&self) -> HashMap<String, Times> {
        self.times.lock().unwrap().clone()
    }

    /// How long after the API server answered each create (`creates`) the watches showed its
    /// object: SourceBuilds, then Pods (ms).
    pub fn watch_lag_ms(&self, creates: &crate::audit::Creates) -> (Summary, Summary) {
        let times = self.snapshot();
        let at = |t: Option<f64>| t.map(|t| self.base_unix_ms + t);
        let (builds, pods) = creates.watch_lag_ms(
            times
                .iter()
                .map(|(name, t)| (name, at(t.created), at(t.pod))),
        );
        (summarize(&builds), summarize(&pods))
    }

    /// When the watch showed each SourceBuild's Pod, by SourceBuild name (ms since the Unix epoch).
    pub fn pods_seen_unix_ms(&self) -> HashMap<String, f64> {
        let times = self.snapshot();
        times
            .into_iter()
            .filter_map(|(name, t)| Some((name, self.base_unix_ms + t.pod?)))
            .collect()
    }

    /// Waits until `n` SourceBuilds have status with the digest.
    pub async fn wait_all_done(&self, n: usize, timeout: Duration) -> Result<(), String> {
        self.wait_for(n, timeout, "builds succeeded", |t| t.status.is_some())
            .await
    }

    /// Waits until `n` SourceBuilds show a phase.
    pub async fn wait_all_phased(&self, n: usize, timeout: Duration) -> Result<(), String> {
        self.wait_for(n, timeout, "SourceBuilds with a phase", |t| {
            t.phase.is_some()
        })
        .await
    }

    /// Waits until `n` build Pods have been seen Succeeded.
    pub async fn wait_all_pods_finished(&self, n: usize, timeout: Duration) -> Result<(), String> {
        self.wait_for(n, timeout, "build Pods finished", |t| {
            t.pod_finished.is_some()
        })
        .await
    }

    async fn wait_for(
        &self,
        n: usize,
        timeout: Duration,
        what: &str,
        reached: impl Fn(&Times) -> bool,
    ) -> Result<(), String> {
        let started = Instant::now();
        loop {
            let done = self
                .times
                .lock()
                .unwrap()
                .values()
                .filter(|t| reached(t))
                .count();
            if done >= n {
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(format!("only {done} of {n} {what} within {timeout:?}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

/// `status` with what a real kubelet writes beside it (addresses, QoS class, conditions, and
/// per container its image digest, ID and volume mounts), so the operator caches Pods of the
/// size it would in a cluster.
fn as_a_kubelet(mut status: serde_json::Value, n: usize) -> serde_json::Value {
    let at = "2026-01-01T00:00:00Z";
    let ready = if status["phase"] == "Running" {
        "True"
    } else {
        "False"
    };
    let (host, pod) = (
        format!("10.0.{}.{}", n / 250 % 250, n % 250),
        format!("10.244.{}.{}", n / 250 % 250, n % 250),
    );
    status["hostIP"] = json!(host);
    status["hostIPs"] = json!([{"ip": host}]);
    status["podIP"] = json!(pod);
    status["podIPs"] = json!([{"ip": pod}]);
    status["qosClass"] = json!("Burstable");
    status["startTime"] = json!(at);
    status["conditions"] = json!([
        {"type": "PodReadyToStartContainers", "status": "True", "lastProbeTime": null, "lastTransitionTime": at},
        {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": at},
        {"type": "Ready", "status": ready, "lastProbeTime": null, "lastTransitionTime": at},
        {"type": "ContainersReady", "status": ready, "lastProbeTime": null, "lastTransitionTime": at},
        {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": at}]);
    for (list, mounts) in [
        (
            "initContainerStatuses",
            &["workspace", "scratch", "kube-api-access-x7k2p"][..],
        ),
        (
            "containerStatuses",
            &["workspace", "docker-config", "kube-api-access-x7k2p"][..],
        ),
    ] {
        for c in status[list].as_array_mut().into_iter().flatten() {
            c["image"] = json!("registry.example.com/sourcebuild/operator:0.1.0");
            c["imageID"] = json!(format!(
                "registry.example.com/sourcebuild/operator@sha256:{}",
                "e".repeat(64)
            ));
            c["containerID"] = json!(format!("containerd://{:064x}", n));
            c["started"] = json!(false);
            c["volumeMounts"] = mounts
                .iter()
                .map(|m| {
                    json!({"name": m, "mountPath": format!("/var/run/{m}"), "readOnly": false,
                                "recursiveReadOnly": "Disabled"})
                })
                .collect();
        }
    }
    status
}

async fn patch_status(pods: &Api<Pod>, name: &str, status: serde_json::Value) {
    let n = name
        .bytes()
        .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
    let patch = json!({ "status": as_a_kubelet(status, n) });
    if let Err(e) = pods
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        eprintln!("bench: kubelet: status of Pod {name}: {e}");
    }
}

/// The operator's resident memory, sampled every 250 ms by a thread while it runs.
#[derive(Clone, Default)]
pub struct RssSampler {
    samples: Arc<Mutex<Vec<(f64, f64)>>>,
}

impl RssSampler {
    /// Samples the process `pid()` names (it changes when the operator restarts) until dropped
    /// by the returned guard.
    pub fn run(&self, pid: impl Fn() -> Option<u32> + Send + 'static) -> Sampling {
        let samples = self.samples.clone();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let base = Instant::now();
        std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                if let Some(mib) = pid().and_then(procfs::rss_mib) {
                    samples
                        .lock()
                        .unwrap()
                        .push((base.elapsed().as_secs_f64(), mib));
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        Sampling(stop)
    }

    pub fn len(&self) -> usize {
        self.samples.lock().unwrap().len()
    }

    pub fn max_since(&self, from: usize) -> f64 {
        self.samples.lock().unwrap()[from..]
            .iter()
            .map(|s| s.1)
            .fold(0.0, f64::max)
    }

    pub fn since(&self, from: usize) -> Vec<(f64, f64)> {
        self.samples.lock().unwrap()[from..].to_vec()
    }
}

/// Sampling goes on until this is dropped.
pub struct Sampling(Arc<std::sync::atomic::AtomicBool>);

impl Drop for Sampling {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}
