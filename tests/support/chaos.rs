//! The fault tests' workload and judge (`tests/faults.rs`): many SourceBuilds on the real control
//! plane, a kubelet played by the test, a fault injector given by each test, and the invariants
//! checked afterwards from what the API server recorded, never from what the controller says.
//!
//! - **Workload.** SourceBuilds are created in waves. Some get one or two spec changes, each
//!   applied once the current generation's Pod runs (so every generation gets exactly one
//!   build Pod, and each change supersedes a running build). The last generation's Pod
//!   succeeds with a digest unique to the Pod (sha256 of its uid) or, for a seeded share of
//!   the builds, fails.
//! - **Kubelet.** A watch of the namespace's Pods, started before the first SourceBuild exists:
//!   every new Pod is marked Running, then (last generation only) Succeeded or Failed with a
//!   termination message, as `sourcebuilds.rs` does, retrying while the API server is away.
//! - **Recorder.** A watch of the SourceBuilds keeps every status the API server sent.
//! - **Faults.** The test's injector runs beside the workload and hears about Pod creations,
//!   Pod completions and supersedes as they happen ([`Happening`]), to strike right after one.
//! - **Judge.** Once every build is final: the audit log's Pod creations (response 201) give
//!   exactly one Pod per SourceBuild generation, but for a create delivered late (see
//!   [`pod_creations`]); every SourceBuild is final at its last
//!   generation with its own Pod's digest (history entries too); no recorded status went
//!   backwards (observedGeneration never decreases, the phase only moves forward within a
//!   generation, a final phase never changes).
//!
//! Every random choice comes from one seed, printed at the start; `SOURCEBUILD_CHAOS_SEED=N`
//! replays the same plan and fault schedule (the interleaving with the processes is the
//! machine's, so a replay is likelier, not certain, to hit the same bug).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use sha2::Digest;
use sourcebuild::api::{Phase, SourceBuild, SourceBuildStatus};
use sourcebuild::pod::{ANNOTATION_NAME, LABEL_GENERATION, build_pod_name};
use tokio::sync::{broadcast, mpsc, watch};

use super::control_plane::ControlPlane;
use super::sourcebuilds::{finished_status, manifest, running_status};

/// Set it to replay a run's random choices.
pub const SEED_ENV: &str = "SOURCEBUILD_CHAOS_SEED";

/// The seed of this test's run: [`SEED_ENV`], else a fresh one. Printed either way (libtest
/// shows it when the test fails).
pub fn seed(test: &str) -> u64 {
    let seed = match std::env::var(SEED_ENV) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{SEED_ENV}={v:?} is not a number (a u64)")),
        Err(_) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64;
            mix(nanos ^ u64::from(std::process::id()), test)
        }
    };
    eprintln!("chaos seed {seed}: replay with {SEED_ENV}={seed} cargo test --test faults {test}");
    seed
}

/// `seed` combined with `what`, for an independent random stream per Pod or task that does not
/// depend on the order tasks run in.
pub fn mix(seed: u64, what: &str) -> u64 {
    // FNV-1a over the name, then a 64-bit finalizer (splitmix64's) with the seed.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in what.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = seed ^ h.rotate_left(17);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Something the controller is about to react to: the moment a fault hurts most.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Happening {
    /// A build Pod was created (the controller is creating Pods and writing Pending).
    PodCreated,
    /// The kubelet wrote a Pod's final status (the controller is about to write the outcome).
    PodFinished,
    /// A spec changed while its build ran (the controller is about to stop that build and
    /// start the next generation's).
    Superseded,
}

/// How many builds and how they go.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    /// SourceBuilds created.
    pub builds: usize,
    /// Created together.
    pub wave: usize,
    /// Pause between waves.
    pub wave_every: Duration,
    /// Share of SourceBuilds whose spec changes while a build runs (once or twice).
    pub superseded: f64,
    /// Share of last-generation builds that fail.
    pub failing: f64,
    /// How long every build may take to reach its final phase once all are created.
    pub deadline: Duration,
}

/// What the fault injector gets.
pub struct FaultContext {
    /// The happenings of the run, as they occur.
    pub happenings: broadcast::Receiver<Happening>,
    /// Turns true once every build is final: the injector should stop and return.
    pub done: watch::Receiver<bool>,
    /// Its own random stream of the run's seed.
    pub rng: fastrand::Rng,
}

impl FaultContext {
    /// Waits for the next `what` (older ones still queued do not count), at most `within`:
    /// `Some(true)` when it happened, `Some(false)` when it did not in time, `None` when the
    /// run is done.
    pub async fn next(&mut self, what: Happening, within: Duration) -> Option<bool> {
        let mut happenings = self.happenings.resubscribe();
        let heard = async move {
            loop {
                match happenings.recv().await {
                    Ok(h) if h == what => return,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
                }
            }
        };
        let mut done = self.done.clone();
        let heard = tokio::select! {
            result = tokio::time::timeout(within, heard) => result.is_ok(),
            _ = done.wait_for(|d| *d) => return None,
        };
        (!self.is_done()).then_some(heard)
    }

    /// Sleeps `duration`, or less when the run ends first; false when it is done.
    pub async fn pause(&mut self, duration: Duration) -> bool {
        let mut done = self.done.clone();
        tokio::select! {
            () = tokio::time::sleep(duration) => !*self.done.borrow(),
            _ = done.wait_for(|d| *d) => false,
        }
    }

    pub fn is_done(&self) -> bool {
        *self.done.borrow()
    }

    /// A random duration in `[min_ms, max_ms)` milliseconds.
    pub fn millis(&mut self, min_ms: u64, max_ms: u64) -> Duration {
        Duration::from_millis(self.rng.u64(min_ms..max_ms))
    }
}

/// The run's figures, for the test's report line.
#[derive(Debug, Default)]
pub struct Report {
    pub builds: usize,
    pub generations: usize,
    pub pods_created: usize,
    /// Creates delivered after their generation's Pod was deleted (see [`pod_creations`]).
    pub late_creates: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub superseded: usize,
    pub statuses_recorded: usize,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} builds ({} generations, {} superseded while running): {} build Pods created \
             ({} of them again by a create delivered late, and deleted), {} succeeded, {} failed; \
             {} statuses recorded, none backwards",
            self.builds,
            self.generations,
            self.superseded,
            self.pods_created,
            self.late_creates,
            self.succeeded,
            self.failed,
            self.statuses_recorded
        )
    }
}

/// The plan of one SourceBuild, fixed by the seed before the run.
#[derive(Clone, Debug)]
struct Plan {
    last_generation: i64,
    fails: bool,
}

/// One status as the API server sent it.
#[derive(Clone, Debug)]
struct Seen {
    resource_version: String,
    generation: i64,
    status: Option<SourceBuildStatus>,
}

struct Shared {
    seed: u64,
    ns: String,
    plans: BTreeMap<String, Plan>,
    /// Every Pod uid the kubelet's watch saw, by Pod name.
    pod_uids: Mutex<HashMap<String, HashSet<String>>>,
    /// Digest each Pod reported, by Pod name (with its uid).
    digests: Mutex<HashMap<String, (String, String)>>,
    /// Every status seen, per SourceBuild, in the order received.
    statuses: Mutex<HashMap<String, Vec<Seen>>>,
    /// (SourceBuild, generation) whose Pod runs and whose spec is to change.
    running: mpsc::UnboundedSender<(String, i64)>,
    /// When each superseded generation's spec change was answered, by that generation's Pod.
    superseded_at: Mutex<HashMap<String, Timestamp>>,
    happenings: broadcast::Sender<Happening>,
}

/// Runs `workload` in namespace `ns` (an operator must watch it) while `faults` injects
/// faults, then checks the invariants; panics naming the first broken one. `client` is an
/// admin client (the test's user and kubelet).
pub async fn run<F, Fut>(
    cp: &ControlPlane,
    client: &Client,
    ns: &str,
    seed: u64,
    workload: Workload,
    faults: F,
) -> (Report, BTreeMap<String, u64>)
where
    F: FnOnce(FaultContext) -> Fut,
    Fut: Future<Output = BTreeMap<String, u64>>,
{
    let mut rng = fastrand::Rng::with_seed(seed);
    let plans: BTreeMap<String, Plan> = (0..workload.builds)
        .map(|i| {
            let changes = if rng.f64() < workload.superseded {
                1 + i64::from(rng.bool())
            } else {
                0
            };
            let plan = Plan {
                last_generation: 1 + changes,
                fails: rng.f64() < workload.failing,
            };
            (format!("b{i:03}"), plan)
        })
        .collect();
    let (running_tx, running_rx) = mpsc::unbounded_channel();
    let (happenings, _) = broadcast::channel(1024);
    let shared = Arc::new(Shared {
        seed,
        ns: ns.to_string(),
        plans,
        pod_uids: Mutex::default(),
        digests: Mutex::default(),
        statuses: Mutex::default(),
        running: running_tx,
        superseded_at: Mutex::default(),
        happenings: happenings.clone(),
    });

    // Both watches list before the first SourceBuild exists: nothing is missed.
    let (kubelet_ready, kubelet_listed) = tokio::sync::oneshot::channel();
    let kubelet = tokio::spawn(kubelet(shared.clone(), client.clone(), kubelet_ready));
    let (recorder_ready, recorder_listed) = tokio::sync::oneshot::channel();
    let recorder = tokio::spawn(recorder(shared.clone(), client.clone(), recorder_ready));
    kubelet_listed.await.expect("the kubelet's Pod watch lists");
    recorder_listed.await.expect("the SourceBuild watch lists");
    let driver = tokio::spawn(drive(shared.clone(), client.clone(), workload, running_rx));

    let (done_tx, done_rx) = watch::channel(false);
    let context = FaultContext {
        happenings: happenings.subscribe(),
        done: done_rx,
        rng: fastrand::Rng::with_seed(mix(seed, "faults")),
    };
    let wait = async {
        // Spec changes wait for Pods, which wait for a controller: bounded too.
        let waves = workload.builds.div_ceil(workload.wave.max(1)) as u32;
        let created = tokio::time::timeout(workload.wave_every * waves + workload.deadline, driver)
            .await
            .unwrap_or_else(|_| {
                let _ = done_tx.send(true);
                panic!(
                    "the workload did not get through its spec changes (seed {seed}); \
                     unfinished:\n{}",
                    unfinished(&shared).join("\n")
                )
            })
            .expect("the workload driver");
        let deadline = tokio::time::Instant::now() + workload.deadline;
        loop {
            let unfinished = unfinished(&shared);
            if unfinished.is_empty() {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                let _ = done_tx.send(true);
                panic!(
                    "{} of {created} builds not final at their last generation within {:?} \
                     after the last was created (seed {seed}); first ones:\n{}",
                    unfinished.len(),
                    workload.deadline,
                    unfinished[..unfinished.len().min(10)].join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let _ = done_tx.send(true);
    };
    let (faults_done, ()) = tokio::join!(faults(context), wait);

    // Faults are over: a status written late (a request held back, a stale cache) would show
    // now, so the watch keeps recording for a moment before the judgement.
    tokio::time::sleep(Duration::from_secs(3)).await;
    kubelet.abort();
    recorder.abort();
    let report = judge(cp, client, &shared).await;
    (report, faults_done)
}

/// The builds not yet final at their last generation, with what status says.
fn unfinished(shared: &Shared) -> Vec<String> {
    let statuses = shared.statuses.lock().unwrap();
    shared
        .plans
        .iter()
        .filter_map(|(name, plan)| {
            let last = statuses.get(name).and_then(|s| s.last());
            let status = last.and_then(|s| s.status.as_ref());
            let finished = status.is_some_and(|s| {
                s.observed_generation == Some(plan.last_generation)
                    && s.phase.is_some_and(Phase::is_final)
            });
            (!finished).then(|| {
                format!(
                    "{name}: planned generation {}, status {:?}",
                    plan.last_generation,
                    status.map(|s| (s.observed_generation, s.phase, s.pod_name.clone()))
                )
            })
        })
        .collect()
}

/// Creates the SourceBuilds in waves and changes a spec each time its current generation's Pod
/// runs, until it reaches its planned last generation. Returns how many it created.
async fn drive(
    shared: Arc<Shared>,
    client: Client,
    workload: Workload,
    mut running: mpsc::UnboundedReceiver<(String, i64)>,
) -> usize {
    let api: Api<SourceBuild> = Api::namespaced(client, &shared.ns);
    let names: Vec<String> = shared.plans.keys().cloned().collect();
    let mut generation: HashMap<String, i64> = names.iter().map(|n| (n.clone(), 1)).collect();
    let mut changes_left: usize = shared
        .plans
        .values()
        .map(|p| (p.last_generation - 1) as usize)
        .sum();
    let mut waves = names.chunks(workload.wave.max(1));
    let mut tick = tokio::time::interval(workload.wave_every);
    let mut created = 0;
    loop {
        tokio::select! {
            _ = tick.tick(), if created < names.len() => {
                if let Some(wave) = waves.next() {
                    for name in wave {
                        let sb: SourceBuild = serde_norway::from_str(&manifest(name, "")).unwrap();
                        retry(&format!("create SourceBuild {name}"), || async {
                            match api.create(&PostParams::default(), &sb).await {
                                Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
                                other => other.map(drop),
                            }
                        })
                        .await;
                        created += 1;
                    }
                }
            }
            Some((name, running_generation)) = running.recv(), if changes_left > 0 => {
                let current = generation.get_mut(&name).expect("a planned SourceBuild");
                // One change per generation, even if its Pod is reported twice.
                if running_generation != *current {
                    continue;
                }
                *current += 1;
                let value = current.to_string();
                retry(&format!("change the spec of {name}"), || async {
                    let patch = json!({"spec": {"env": [{"name": "REVISION", "value": value}]}});
                    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.map(drop)
                })
                .await;
                shared
                    .superseded_at
                    .lock()
                    .unwrap()
                    .insert(build_pod_name(&name, running_generation, 1), Timestamp::now());
                changes_left -= 1;
                let _ = shared.happenings.send(Happening::Superseded);
            }
            else => break,
        }
    }
    created
}

/// Retries `call` through API server outages (a restart, a proxy fault), for at most 3 minutes.
async fn retry<F, Fut>(what: &str, mut call: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), kube::Error>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        match call().await {
            Ok(()) => return,
            Err(e) if tokio::time::Instant::now() >= deadline => panic!("{what}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Plays the kubelet for every build Pod of the namespace.
async fn kubelet(shared: Arc<Shared>, client: Client, ready: tokio::sync::oneshot::Sender<()>) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &shared.ns);
    let mut ready = Some(ready);
    let mut handled = HashSet::new();
    let mut stream = watcher(pods, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = stream.next().await {
        let pod = match event {
            Ok(watcher::Event::InitDone) => {
                if let Some(r) = ready.take() {
                    let _ = r.send(());
                }
                continue;
            }
            Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => pod,
            _ => continue,
        };
        let Some(uid) = pod.uid() else { continue };
        shared
            .pod_uids
            .lock()
            .unwrap()
            .entry(pod.name_any())
            .or_default()
            .insert(uid.clone());
        if !handled.insert(uid) || pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let _ = shared.happenings.send(Happening::PodCreated);
        tokio::spawn(play_pod(shared.clone(), client.clone(), pod));
    }
}

/// One Pod's life: Running, then (last generation) Succeeded with its own digest or Failed.
/// An earlier generation's Pod keeps running until the spec change stops it.
async fn play_pod(shared: Arc<Shared>, client: Client, pod: Pod) {
    let name = pod.name_any();
    let uid = pod.uid().unwrap_or_default();
    let Some(sb) = pod.annotations().get(ANNOTATION_NAME).cloned() else {
        return;
    };
    let Some(generation) = pod
        .labels()
        .get(LABEL_GENERATION)
        .and_then(|g| g.parse::<i64>().ok())
    else {
        return;
    };
    let Some(plan) = shared.plans.get(&sb).cloned() else {
        return;
    };
    let mut rng = fastrand::Rng::with_seed(mix(shared.seed, &name));
    let api: Api<Pod> = Api::namespaced(client, &shared.ns);
    tokio::time::sleep(Duration::from_millis(rng.u64(0..100))).await;
    if !write_pod_status(&api, &name, &uid, running_status()).await {
        return;
    }
    if generation < plan.last_generation {
        let _ = shared.running.send((sb, generation));
        return;
    }
    tokio::time::sleep(Duration::from_millis(rng.u64(0..300))).await;
    let digest = format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(uid.as_bytes()))
    );
    let (code, message) = if plan.fails {
        (
            1,
            "error building image: error building stage: exit status 1".to_string(),
        )
    } else {
        (0, digest.clone())
    };
    shared
        .digests
        .lock()
        .unwrap()
        .insert(name.clone(), (uid.clone(), digest));
    if write_pod_status(&api, &name, &uid, finished_status(code, &message)).await {
        let _ = shared.happenings.send(Happening::PodFinished);
    }
}

/// Writes the status of Pod `name` if it is still the Pod `uid` (a precondition, so a Pod made
/// again under the same name is never mistaken for this one), through outages. False when
/// the Pod is gone.
async fn write_pod_status(api: &Api<Pod>, name: &str, uid: &str, status: Value) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    let patch = json!({"metadata": {"uid": uid}, "status": status});
    loop {
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return true,
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => return false,
            Err(e) if tokio::time::Instant::now() >= deadline => {
                panic!("write the status of Pod {name}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Records every SourceBuild status the API server sends.
async fn recorder(shared: Arc<Shared>, client: Client, ready: tokio::sync::oneshot::Sender<()>) {
    let api: Api<SourceBuild> = Api::namespaced(client, &shared.ns);
    let mut ready = Some(ready);
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = stream.next().await {
        let sb = match event {
            Ok(watcher::Event::InitDone) => {
                if let Some(r) = ready.take() {
                    let _ = r.send(());
                }
                continue;
            }
            Ok(watcher::Event::Apply(sb) | watcher::Event::InitApply(sb)) => sb,
            _ => continue,
        };
        let seen = Seen {
            resource_version: sb.resource_version().unwrap_or_default(),
            generation: sb.metadata.generation.unwrap_or(0),
            status: sb.status.clone(),
        };
        let mut statuses = shared.statuses.lock().unwrap();
        let list = statuses.entry(sb.name_any()).or_default();
        if list
            .last()
            .is_none_or(|l| l.resource_version != seen.resource_version)
        {
            list.push(seen);
        }
    }
}

/// Where a phase stands in a build's life: it may only grow within one build.
fn rank(phase: Option<Phase>) -> u8 {
    match phase {
        None => 0,
        Some(Phase::Pending) => 1,
        Some(Phase::Running) => 2,
        Some(_) => 3,
    }
}

/// Build Pods created in `ns`, per name: the distinct uids the test's own watch saw, or the
/// creations the audit log shows answered with 201, whichever is more. Neither alone is
/// enough: a client killed while its create is under way gets a 504 in the audit log although
/// the Pod was stored, and a watch that reconnects (an API server restart) misses a Pod created
/// and deleted meanwhile.
///
/// Also, per name, how many of its creates were *late*: answered after its generation was
/// superseded and the Pod of that name deleted, and deleted again afterwards. A leader cut off
/// from the API server may have a create on the wire when its Lease passes on; the network
/// delivers it seconds later, after the new leader deleted the superseded generation's Pod.
/// Leases fence nothing and a create takes no precondition, so no controller can refuse it (a
/// CI run of the leader test saw one land 4 s after it was sent). What a controller can do,
/// and what is checked: the Pod it makes again is deleted, and it never coexists with the
/// first (the name is taken while that lives).
fn pod_creations(
    cp: &ControlPlane,
    shared: &Shared,
) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    let audit = std::fs::read_to_string(&cp.audit_log).expect("read the audit log");
    let mut creates: BTreeMap<String, Vec<Timestamp>> = BTreeMap::new();
    let mut deletes: BTreeMap<String, Vec<Timestamp>> = BTreeMap::new();
    for line in audit.lines() {
        // A line cut short by an API server crash is not a creation the server answered.
        let Ok(e) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if e["objectRef"]["resource"] != "pods"
            || !e["objectRef"]["subresource"].is_null()
            || e["objectRef"]["namespace"] != shared.ns.as_str()
            || e["stage"] != "ResponseComplete"
        {
            continue;
        }
        // A server-side dry run creates nothing: the operator's question at start whether the
        // API server keeps `hostUsers: false` (`--user-namespaces auto`).
        if e["requestURI"]
            .as_str()
            .is_some_and(|uri| uri.contains("dryRun=All"))
        {
            continue;
        }
        let name = e["objectRef"]["name"].as_str().unwrap_or("").to_string();
        let Some(at) = e["stageTimestamp"]
            .as_str()
            .and_then(|t| t.parse::<Timestamp>().ok())
        else {
            continue;
        };
        let code = e["responseStatus"]["code"].as_u64().unwrap_or(0);
        match e["verb"].as_str() {
            Some("create") if code == 201 => creates.entry(name).or_default().push(at),
            Some("delete") if (200..300).contains(&code) => {
                deletes.entry(name).or_default().push(at)
            }
            _ => {}
        }
    }
    let late = late_creates(&creates, &deletes, &shared.superseded_at.lock().unwrap());
    let mut created: BTreeMap<String, usize> = creates
        .into_iter()
        .map(|(name, t)| (name, t.len()))
        .collect();
    for (name, uids) in shared.pod_uids.lock().unwrap().iter() {
        let n = created.entry(name.clone()).or_insert(0);
        *n = (*n).max(uids.len());
    }
    (created, late)
}

/// Per Pod name, how many of its creates (answered at `creates`, in any order) came after the
/// first, after `superseded_at` (when that Pod's generation was superseded) and before one of
/// its `deletes`: the late creates [`pod_creations`] explains. Names without any are left out.
pub fn late_creates(
    creates: &BTreeMap<String, Vec<Timestamp>>,
    deletes: &BTreeMap<String, Vec<Timestamp>>,
    superseded_at: &HashMap<String, Timestamp>,
) -> BTreeMap<String, usize> {
    let mut late = BTreeMap::new();
    for (name, times) in creates {
        let (Some(superseded), Some(deleted)) = (superseded_at.get(name), deletes.get(name)) else {
            continue;
        };
        let mut times = times.clone();
        times.sort();
        let n = times
            .iter()
            .skip(1)
            .filter(|at| *at > superseded && deleted.iter().any(|d| d > *at))
            .count();
        if n > 0 {
            late.insert(name.clone(), n);
        }
    }
    late
}

async fn judge(cp: &ControlPlane, client: &Client, shared: &Shared) -> Report {
    let seed = shared.seed;
    let api: Api<SourceBuild> = Api::namespaced(client.clone(), &shared.ns);
    let digests = shared.digests.lock().unwrap().clone();
    let statuses = shared.statuses.lock().unwrap().clone();
    let (creations, late) = pod_creations(cp, shared);
    let mut report = Report {
        builds: shared.plans.len(),
        pods_created: creations.values().sum(),
        late_creates: late.values().sum(),
        ..Report::default()
    };

    // Exactly one build Pod per generation, counted by the API server, and those a late
    // create made again once its generation was over, deleted.
    let mut expected = BTreeMap::new();
    for (name, plan) in &shared.plans {
        for generation in 1..=plan.last_generation {
            let pod = build_pod_name(name, generation, 1);
            let n = 1 + late.get(&pod).copied().unwrap_or(0);
            expected.insert(pod, n);
        }
        report.generations += plan.last_generation as usize;
        report.superseded += (plan.last_generation - 1) as usize;
    }
    let wrong: Vec<String> = creations
        .iter()
        .filter(|(pod, n)| expected.get(*pod) != Some(*n))
        .map(|(pod, n)| format!("{pod}: created {n} times"))
        .chain(
            expected
                .keys()
                .filter(|pod| !creations.contains_key(*pod))
                .map(|pod| format!("{pod}: never created")),
        )
        .collect();
    assert!(
        wrong.is_empty(),
        "not exactly one build Pod per SourceBuild generation (seed {seed}):\n{}",
        wrong.join("\n")
    );

    for (name, plan) in &shared.plans {
        let sb = api.get(name).await.expect("read a SourceBuild");
        let status = sb.status.clone().unwrap_or_default();
        let what = format!("SourceBuild {name} (seed {seed}): {status:?}");
        // Final, at its last generation, with its own Pod's outcome.
        assert_eq!(sb.metadata.generation, Some(plan.last_generation), "{what}");
        assert_eq!(
            status.observed_generation,
            Some(plan.last_generation),
            "{what}"
        );
        let pod = build_pod_name(name, plan.last_generation, 1);
        assert_eq!(status.pod_name.as_deref(), Some(pod.as_str()), "{what}");
        let reported = digests.get(&pod).map(|(_, d)| d.clone());
        if plan.fails {
            assert_eq!(status.phase, Some(Phase::Failed), "{what}");
            assert_eq!(status.digest, None, "{what}");
            report.failed += 1;
        } else {
            assert_eq!(status.phase, Some(Phase::Succeeded), "{what}");
            assert!(
                reported.is_some(),
                "{what}: its Pod never reported a digest"
            );
            assert_eq!(
                status.digest, reported,
                "{what}: not the digest its Pod reported"
            );
            let image = status.latest_image.as_deref().unwrap_or("");
            assert!(
                image.ends_with(&format!("@{}", reported.as_deref().unwrap_or(""))),
                "{what}: latestImage is not its Pod's digest"
            );
            report.succeeded += 1;
        }
        for record in &status.history {
            if let Some(digest) = &record.digest {
                let pod = record.pod_name.as_deref().unwrap_or("");
                assert_eq!(
                    digests.get(pod).map(|(_, d)| d),
                    Some(digest),
                    "{what}: history entry of {pod} has a digest its Pod did not report"
                );
            }
        }

        // No status went backwards.
        let seen = statuses.get(name).cloned().unwrap_or_default();
        report.statuses_recorded += seen.len();
        let mut last: Option<&SourceBuildStatus> = None;
        for (i, s) in seen.iter().enumerate() {
            let Some(now) = &s.status else {
                assert!(
                    last.is_none(),
                    "{name} (seed {seed}): status vanished at update {i}"
                );
                continue;
            };
            assert!(
                now.observed_generation.unwrap_or(0) <= s.generation,
                "{name} (seed {seed}): observedGeneration {:?} beyond generation {}",
                now.observed_generation,
                s.generation
            );
            if let Some(before) = last {
                let history = || {
                    seen.iter()
                        .map(|s| {
                            let st = s.status.as_ref();
                            format!(
                                "  rv {} generation {}: observed {:?} build {:?} {:?} {:?} digest {:?}",
                                s.resource_version,
                                s.generation,
                                st.and_then(|s| s.observed_generation),
                                st.and_then(|s| s.build),
                                st.and_then(|s| s.phase),
                                st.and_then(|s| s.pod_name.clone()),
                                st.and_then(|s| s.digest.clone())
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                };
                let key = |s: &SourceBuildStatus| (s.observed_generation, s.build);
                assert!(
                    key(now) >= key(before),
                    "{name} (seed {seed}): status went back from generation/build {:?} to {:?}:\n{}",
                    key(before),
                    key(now),
                    history()
                );
                if key(now) == key(before) {
                    assert!(
                        rank(now.phase) >= rank(before.phase),
                        "{name} (seed {seed}): phase went back from {:?} to {:?} in generation {:?}:\n{}",
                        before.phase,
                        now.phase,
                        now.observed_generation,
                        history()
                    );
                    if before.phase.is_some_and(Phase::is_final) {
                        assert!(
                            now.phase == before.phase
                                && now.digest == before.digest
                                && now.pod_name == before.pod_name,
                            "{name} (seed {seed}): a final status changed:\n{}",
                            history()
                        );
                    }
                }
            }
            last = Some(now);
        }
    }
    report
}
