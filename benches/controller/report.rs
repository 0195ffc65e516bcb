//! What one benchmark run measured: the JSON record and the Markdown table of the goals.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::apimetrics::Writes;
use crate::stats::Summary;

/// Everything one run measured, written as `report.json`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// `full` (`cargo bench`) or `smoke` (tiny sizes, to keep the command working).
    pub mode: String,
    /// The command that produced it.
    pub command: String,
    /// UTC start time (RFC 3339).
    pub started: String,
    pub machine: Machine,
    pub steady: Option<Load>,
    pub burst: Option<Load>,
    /// The `unscheduled` scenario: SourceBuilds at a steady rate on a cluster with no node.
    pub unscheduled: Option<Load>,
    pub resync: Option<Resync>,
    pub scale: Option<Scale>,
    pub ceiling: Option<Ceiling>,
    /// The `floor` scenario: the burst as the zero-cost controller serves it, in its place.
    pub floor: Option<Pipeline>,
    pub prepare: Option<Prepare>,
    pub footprint: Option<Footprint>,
}

/// Live heap per cached object (the `footprint` scenario), in bytes.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Footprint {
    pub objects: usize,
    /// The JSON the API server sends for one finished SourceBuild and one finished build Pod.
    pub sourcebuild_json_bytes: usize,
    pub pod_json_bytes: usize,
    /// A SourceBuild in the operator's cache, its store entry included.
    pub sourcebuild_bytes: u64,
    /// A build Pod in the operator's cache (`PodCache`), its keys and owner index included.
    pub build_pod_bytes: u64,
    /// The same Pod cached as a full k8s-openapi `Pod` (what the cache would cost without
    /// narrowing).
    pub full_pod_bytes: u64,
    /// The least any kube-runtime reflector store holds per object: its key and an object with
    /// only name, namespace, uid and resourceVersion (a `PartialObjectMeta`).
    pub floor_bytes: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub memory_gib: f64,
    /// 1-minute load average when the run started (other work on the machine).
    pub load_average_at_start: f64,
    pub kubernetes: String,
}

/// A load of builds: steady (`rate_per_s` set) or a burst (all at once).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Load {
    pub builds: usize,
    /// SourceBuilds created per second; `None` for a burst.
    pub rate_per_s: Option<f64>,
    /// SourceBuild seen by a watch -> its build Pod seen by a watch (ms).
    pub create_to_pod_ms: Summary,
    /// SourceBuild seen by a watch -> seen with a phase in status (ms): when its user first
    /// sees where the build stands.
    pub create_to_phase_ms: Summary,
    /// SourceBuild create answered -> its build Pod's create answered, as the API server's
    /// audit log times them (ms): create -> Pod without the watches' delivery.
    pub create_to_pod_server_ms: Summary,
    /// SourceBuild create answered -> seen by the benchmark's watch (ms).
    pub sourcebuild_watch_lag_ms: Summary,
    /// Build Pod create answered -> seen by the benchmark's watch (ms): with the last, what
    /// the watches add to (or take from) create -> Pod.
    pub pod_watch_lag_ms: Summary,
    /// The operator's own Pod watch: its Pod create answered -> shown by its watch, p50 and
    /// p99 as the upper bounds of its histogram's buckets (ms).
    pub operator_pod_watch_delay_ms: [Option<f64>; 2],
    /// CPU the API server used over the load, per build: the users', the kubelet stand-in's
    /// and the operator's requests and every watch (ms).
    pub api_server_cpu_ms_per_build: f64,
    /// Watches the API server closed as unresponsive during the load, by resource (a closed
    /// watch is opened again, and its client hears of events late meanwhile).
    pub watches_closed: BTreeMap<String, u64>,
    /// CPU each process on the machine used over the load, per build (ms): etcd,
    /// kube-apiserver, kube-controller-manager, the operator, the benchmark. Where the
    /// machine's time goes when the load saturates it.
    pub cpu_ms_per_build: BTreeMap<String, f64>,
    /// Cores each process used on average from the first SourceBuild seen to the last build
    /// Pod seen (the create -> Pod window, sampled every 100 ms): whether the machine was
    /// saturated while the Pods were on their way, and by whom.
    pub cores_to_last_pod: BTreeMap<String, f64>,
    /// Pod seen Succeeded -> SourceBuild status seen with the digest (ms).
    pub finish_to_status_ms: Summary,
    /// First SourceBuild seen -> last build Pod seen (s).
    pub create_to_pod_span_s: f64,
    /// Build Pods created per minute over that span.
    pub throughput_per_min: f64,
    /// Builds that reached Succeeded with the digest in status.
    pub succeeded: usize,
    /// The operator's writes (from apiserver_request_total).
    pub writes: Writes,
    pub writes_per_build: f64,
    pub object_writes_per_build: f64,
    pub event_writes_per_build: f64,
    /// Every API request during the load, by resource and verb (the benchmark's own included).
    pub requests: BTreeMap<String, u64>,
    pub operator_rss_max_mib: f64,
    /// The operator's own counters over the load: reconciles, and status writes it put off
    /// (and Pod creates it made alone) while the API server was behind.
    pub operator_reconciles: u64,
    pub operator_deferred: u64,
    /// The raw latencies, for the charts (not in the JSON: thousands of numbers).
    #[serde(skip)]
    pub samples_create_to_pod: Vec<f64>,
    #[serde(skip)]
    pub samples_finish_to_status: Vec<f64>,
}

/// Every SourceBuild touched (an annotation), nothing to do: the operator must not write.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Resync {
    pub sourcebuilds: usize,
    /// Touch of the first -> operator's reconcile count covers all (s).
    pub seconds: f64,
    pub writes: Writes,
    pub requests: BTreeMap<String, u64>,
}

/// Many finished builds: memory, and a restart of the operator over them.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Scale {
    pub sourcebuilds: usize,
    pub pods: usize,
    /// The fill (a burst of `sourcebuilds` creates, each built).
    pub fill: Load,
    /// Operator RSS once every build finished and the operator was idle (MiB).
    pub rss_settled_mib: f64,
    /// Of which file-backed: the pages of the operator's binary it has run (MiB).
    pub rss_settled_file_mib: f64,
    /// Operator process start -> every SourceBuild reconciled (s).
    pub cold_start_s: f64,
    /// Whether every SourceBuild was reconciled before the benchmark gave up waiting.
    pub cold_start_complete: bool,
    /// Reconciles counted by the operator during the cold start.
    pub cold_start_reconciles: u64,
    pub cold_start_writes: Writes,
    pub cold_start_requests: BTreeMap<String, u64>,
    /// RSS after the cold start (MiB).
    pub rss_after_cold_start_mib: f64,
    /// RSS samples of the whole scenario: (seconds since the scenario began, MiB).
    pub rss_samples: Vec<(f64, f64)>,
}

/// The API server's own rate of build Pod creates, no controller involved.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Ceiling {
    /// Creates in flight at once.
    pub concurrency: usize,
    /// As the cluster admin (`system:masters`, exempt from API Priority and Fairness).
    pub admin: CreateRate,
    /// As the operator's ServiceAccount.
    pub operator_service_account: CreateRate,
    /// The burst as a controller that costs nothing would serve it.
    pub pipeline: Pipeline,
    /// The same with the burst's kubelet stand-in running the Pods, create -> Pod measured
    /// from the watches as in the burst.
    pub pipeline_with_kubelet: Pipeline,
    /// The same with the build's result written too: the free controller watches the Pods and
    /// applies each build's final status when its Pod succeeds.
    pub pipeline_with_results: Pipeline,
    /// The same, the controller learning of each SourceBuild from a watch (as any controller
    /// must) instead of from the users' creates: the floor of the burst for a controller that
    /// watches SourceBuilds and reports results.
    pub pipeline_watching: Pipeline,
    /// The same, also applying each build's first status with its Pod create (the operator's
    /// `started`): the three writes of a build in steady load.
    pub pipeline_watching_with_starts: Pipeline,
}

/// The burst's users (admin, `CONCURRENCY` creates in flight) create SourceBuilds with the
/// operator stopped; each SourceBuild created is at once followed by its build Pod's create as
/// the operator's ServiceAccount (as many in flight as the operator's write gate allows). No
/// watch, status, Event or kubelet write: the least time any controller can take from create to
/// Pod here. Its variants add the kubelet stand-in's writes, then a Pod watch and each build's
/// final status (see `ceiling.rs`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Pipeline {
    pub builds: usize,
    /// First SourceBuild create sent -> last Pod create answered (s).
    pub seconds: f64,
    /// SourceBuild create answered -> its Pod create answered (ms); with the kubelet stand-in,
    /// SourceBuild seen by a watch -> Pod seen by a watch, as in the burst.
    pub create_to_pod_ms: Summary,
    /// SourceBuild create answered -> its Pod create answered, as the API server timed them
    /// (audit log): what the watches add is the difference.
    pub create_to_pod_server_ms: Summary,
    /// With the kubelet stand-in: SourceBuild create answered -> seen by the benchmark's watch
    /// (ms).
    pub sourcebuild_watch_lag_ms: Summary,
    /// With the kubelet stand-in: Pod create answered -> seen by the benchmark's watch (ms).
    pub pod_watch_lag_ms: Summary,
    /// With the kubelet stand-in: cores each process used from the first SourceBuild seen to
    /// the last Pod seen (as [`Load::cores_to_last_pod`]).
    pub cores_to_last_pod: BTreeMap<String, f64>,
    /// CPU the API server used, per build (ms).
    pub api_server_cpu_ms_per_build: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct CreateRate {
    pub pods: usize,
    /// First create sent -> last create answered (s).
    pub seconds: f64,
    pub per_min: f64,
    /// Each create's round trip (ms).
    pub create_ms: Summary,
}

/// `sourcebuild prepare` of a generated git repository against `git clone --depth 1` + a copy.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Prepare {
    pub files: usize,
    /// The directory both sides wrote under (`/dev/shm` when the machine has it).
    pub directory: String,
    pub runs: usize,
    /// Median wall time of `sourcebuild prepare` (s), and of its two parts: the git fetch and
    /// checkout, then laying out the build context from the checkout.
    pub prepare_s: f64,
    pub fetch_s: f64,
    pub workspace_s: f64,
    /// Median wall time of `git clone --depth 1` then `cp -r` of the checkout (s).
    pub clone_and_copy_s: f64,
    pub ratio: f64,
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0} ms")
    } else {
        format!("{v:.1} ms")
    }
}

/// `cores` (by process) as "<total> of <cpus>: <process> <cores>, ...".
fn cores_in_use(cores: &BTreeMap<String, f64>, cpus: usize) -> String {
    let parts: Vec<String> = cores
        .iter()
        .map(|(process, cores)| format!("{process} {cores:.2}"))
        .collect();
    let total: f64 = cores.values().sum();
    format!("{total:.2} of {cpus}: {}", parts.join(", "))
}

/// A row of the zero-cost controller's burst ([`Pipeline`]), `what` saying what it did.
fn pipeline_row(p: &Pipeline, what: &str, cpus: usize) -> [String; 3] {
    let cores = if p.cores_to_last_pod.is_empty() {
        String::new()
    } else {
        format!(
            "; cores in use to the last Pod {}",
            cores_in_use(&p.cores_to_last_pod, cpus)
        )
    };
    [
        format!(
            "the API server alone: a burst of {} SourceBuild creates, each followed at once by its Pod create ({what})",
            p.builds
        ),
        "(the floor of burst create -> Pod)".into(),
        format!(
            "p50 {}, p99 {} (audit log: p50 {}, p99 {}; {}); {} Pods in {:.1} s; the API server's CPU {:.1} ms per build{cores}",
            ms(p.create_to_pod_ms.p50),
            ms(p.create_to_pod_ms.p99),
            ms(p.create_to_pod_server_ms.p50),
            ms(p.create_to_pod_server_ms.p99),
            watch_lags(&p.sourcebuild_watch_lag_ms, &p.pod_watch_lag_ms),
            p.builds,
            p.seconds,
            p.api_server_cpu_ms_per_build
        ),
    ]
}

/// The goals of issue 6 against what this run measured, as a Markdown table.
pub fn goals_table(r: &Report) -> String {
    let mut rows: Vec<[String; 3]> = Vec::new();
    if let Some(s) = &r.steady {
        rows.push([
            format!(
                "SourceBuild -> build Pod, steady {:.0}/s for {} builds",
                s.rate_per_s.unwrap_or(0.0),
                s.builds
            ),
            "p50 <= 20 ms, p99 <= 100 ms".into(),
            format!(
                "p50 {}, p99 {} (max {}){}",
                ms(s.create_to_pod_ms.p50),
                ms(s.create_to_pod_ms.p99),
                ms(s.create_to_pod_ms.max),
                as_the_server_timed_it(&s.create_to_pod_server_ms)
            ),
        ]);
        rows.push([
            "Pod finished -> status with digest, steady load".into(),
            "p99 <= 100 ms".into(),
            format!(
                "p50 {}, p99 {}",
                ms(s.finish_to_status_ms.p50),
                ms(s.finish_to_status_ms.p99)
            ),
        ]);
    }
    if let Some(b) = &r.burst {
        rows.push([
            format!("SourceBuild -> build Pod, burst of {} creates", b.builds),
            "p99 <= 2 s".into(),
            format!(
                "p50 {}, p99 {}{}",
                ms(b.create_to_pod_ms.p50),
                ms(b.create_to_pod_ms.p99),
                as_the_server_timed_it(&b.create_to_pod_server_ms)
            ),
        ]);
        rows.push([
            format!("the watches' delivery in the burst of {}", b.builds),
            "(what the watch measure adds)".into(),
            format!(
                "{}; the operator's Pod watch: p50 <= {}, p99 <= {}",
                watch_lags(&b.sourcebuild_watch_lag_ms, &b.pod_watch_lag_ms),
                bound(b.operator_pod_watch_delay_ms[0]),
                bound(b.operator_pod_watch_delay_ms[1]),
            ),
        ]);
        rows.push([
            "throughput, create -> Pod, one replica (burst)".into(),
            ">= 3,000 builds/min".into(),
            format!(
                "{:.0} builds/min ({} Pods in {:.1} s)",
                b.throughput_per_min, b.builds, b.create_to_pod_span_s
            ),
        ]);
    }
    let loads = [
        ("steady", &r.steady),
        ("burst", &r.burst),
        ("no node, steady", &r.unscheduled),
    ];
    for (name, load) in loads {
        // Reports of runs before this measure have no samples.
        if let Some(l) = load.as_ref().filter(|l| l.create_to_phase_ms.count > 0) {
            rows.push([
                format!(
                    "SourceBuild -> a phase in status ({name}, {} builds)",
                    l.builds
                ),
                "shown at once".into(),
                format!(
                    "p50 {}, p99 {} (max {})",
                    ms(l.create_to_phase_ms.p50),
                    ms(l.create_to_phase_ms.p99),
                    ms(l.create_to_phase_ms.max)
                ),
            ]);
        }
    }
    for (name, load) in [("steady", &r.steady), ("burst", &r.burst)] {
        if let Some(l) = load {
            rows.push([
                format!("API writes per successful build ({name})"),
                "<= 3".into(),
                format!(
                    "{:.2} ({:.2} Pod + status, {:.2} Events)",
                    l.writes_per_build, l.object_writes_per_build, l.event_writes_per_build
                ),
            ]);
        }
    }
    for (name, load) in [("steady", &r.steady), ("burst", &r.burst)] {
        if let Some(l) = load {
            rows.push([
                format!(
                    "the API server's CPU per build ({name}: users, kubelet, operator, watches)"
                ),
                "(what a build costs the API server)".into(),
                format!("{:.1} ms", l.api_server_cpu_ms_per_build),
            ]);
            if !l.cpu_ms_per_build.is_empty() {
                let parts: Vec<String> = l
                    .cpu_ms_per_build
                    .iter()
                    .map(|(process, ms)| format!("{process} {ms:.1} ms"))
                    .collect();
                rows.push([
                    format!("the machine's CPU per build by process ({name})"),
                    "(where the time goes)".into(),
                    parts.join(", "),
                ]);
            }
            if !l.cores_to_last_pod.is_empty() {
                rows.push([
                    format!(
                        "cores in use from the first SourceBuild to the last Pod seen ({name})"
                    ),
                    "(whether the machine was saturated)".into(),
                    cores_in_use(&l.cores_to_last_pod, r.machine.cpus),
                ]);
            }
        }
    }
    if let Some(z) = &r.resync {
        rows.push([
            format!(
                "API writes on a no-op resync of {} SourceBuilds",
                z.sourcebuilds
            ),
            "0".into(),
            format!("{} (all reconciled in {:.1} s)", z.writes.total, z.seconds),
        ]);
    }
    if let Some(s) = &r.scale {
        rows.push([
            format!(
                "controller RSS with {} SourceBuilds and {} build Pods",
                s.sourcebuilds, s.pods
            ),
            "<= 50 MiB".into(),
            format!(
                "{:.1} MiB settled ({:.1} MiB of it the binary's code), {:.1} MiB after a restart, peak {:.1} MiB",
                s.rss_settled_mib,
                s.rss_settled_file_mib,
                s.rss_after_cold_start_mib,
                s.fill.operator_rss_max_mib
            ),
        ]);
        rows.push([
            format!("cold start with {} finished SourceBuilds", s.sourcebuilds),
            "<= 10 s, 0 writes".into(),
            format!(
                "{}{:.1} s, {} writes",
                if s.cold_start_complete {
                    ""
                } else {
                    "not done after "
                },
                s.cold_start_s,
                s.cold_start_writes.total
            ),
        ]);
        rows.push([
            format!("throughput, burst of {} creates", s.sourcebuilds),
            ">= 3,000 builds/min".into(),
            format!(
                "{:.0} builds/min, create -> Pod p99 {}",
                s.fill.throughput_per_min,
                ms(s.fill.create_to_pod_ms.p99)
            ),
        ]);
    }
    if let Some(p) = &r.floor {
        rows.push(pipeline_row(
            p,
            "in the burst's place; the Pod created when a SourceBuild watch shows its SourceBuild, the burst's kubelet runs the Pods, each build's final status written when its Pod succeeds",
            r.machine.cpus,
        ));
    }
    if let Some(c) = &r.ceiling {
        for (p, what) in [
            (&c.pipeline, "no status, Events or kubelet"),
            (
                &c.pipeline_with_kubelet,
                "the burst's kubelet runs the Pods; no status or Events",
            ),
            (
                &c.pipeline_with_results,
                "the burst's kubelet runs the Pods; a Pod watch and each build's final status written when its Pod succeeds",
            ),
            (
                &c.pipeline_watching,
                "as the last, the Pod created when a SourceBuild watch shows its SourceBuild instead of when the user's create is answered",
            ),
            (
                &c.pipeline_watching_with_starts,
                "as the last, and each build's first status applied right after its Pod create, as the operator writes it in steady load",
            ),
        ] {
            rows.push(pipeline_row(p, what, r.machine.cpus));
        }
        for (who, rate) in [
            ("as admin", &c.admin),
            (
                "as the operator's ServiceAccount",
                &c.operator_service_account,
            ),
        ] {
            rows.push([
                format!(
                    "the API server alone: {} build Pod creates, {} in flight, {who}",
                    rate.pods, c.concurrency
                ),
                "(the ceiling of create -> Pod)".into(),
                format!(
                    "{:.0} Pods/min (create p50 {}, p99 {})",
                    rate.per_min,
                    ms(rate.create_ms.p50),
                    ms(rate.create_ms.p99)
                ),
            ]);
        }
    }
    if let Some(p) = &r.prepare {
        rows.push([
            format!(
                "`prepare` of a {}-file git repository vs `git clone --depth 1` + copy",
                p.files
            ),
            "<= 1.2x".into(),
            format!(
                "{:.2}x ({:.2} s vs {:.2} s, median of {}; fetch {:.2} s, context {:.2} s; in {})",
                p.ratio,
                p.prepare_s,
                p.clone_and_copy_s,
                p.runs,
                p.fetch_s,
                p.workspace_s,
                p.directory
            ),
        ]);
    }
    if let Some(f) = &r.footprint {
        rows.push([
            format!(
                "live heap per cached object ({} finished SourceBuilds and build Pods)",
                f.objects
            ),
            "(what the RSS is made of)".into(),
            format!(
                "SourceBuild {} B, build Pod {} B (as a full k8s-openapi Pod: {} B); JSON {} B and {} B",
                f.sourcebuild_bytes,
                f.build_pod_bytes,
                f.full_pod_bytes,
                f.sourcebuild_json_bytes,
                f.pod_json_bytes
            ),
        ]);
        rows.push([
            "the floor of a kube-runtime store: key + name, namespace, uid, resourceVersion only"
                .into(),
            "(the least any cached object costs)".into(),
            format!(
                "{} B per object ({:.1} MiB for 10,000 SourceBuilds and 10,000 Pods)",
                f.floor_bytes,
                f.floor_bytes as f64 * 20_000.0 / (1024.0 * 1024.0)
            ),
        ]);
    }
    let mut out = String::from("| measure | goal | result |\n|---|---|---|\n");
    for [a, b, c] in rows {
        let _ = writeln!(out, "| {a} | {b} | {c} |");
    }
    out
}

/// The whole Markdown page of a run: the machine, the command, the table and the requests.
pub fn markdown(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Controller benchmark ({} run, {})\n",
        r.mode, r.started
    );
    let _ = writeln!(
        out,
        "Machine: {} CPUs, {:.0} GiB, load average {:.2} at start; Kubernetes {}. Command: `{}`\n",
        r.machine.cpus,
        r.machine.memory_gib,
        r.machine.load_average_at_start,
        r.machine.kubernetes,
        r.command
    );
    out.push_str(&goals_table(r));
    for (name, load) in [("steady", &r.steady), ("burst", &r.burst)] {
        if let Some(l) = load {
            let _ = writeln!(out, "\nOperator writes, {name} ({} builds):\n", l.builds);
            for (k, v) in &l.writes.by_kind {
                let _ = writeln!(out, "- `{k}`: {v}");
            }
            let _ = writeln!(
                out,
                "- reconciles: {}, of them writes put off while the API server was behind: {}",
                l.operator_reconciles, l.operator_deferred
            );
            if !l.watches_closed.is_empty() {
                let closed: Vec<String> = l
                    .watches_closed
                    .iter()
                    .map(|(resource, n)| format!("{resource} {n}"))
                    .collect();
                let _ = writeln!(
                    out,
                    "- watches the API server closed as unresponsive (every client's): {}",
                    closed.join(", ")
                );
            }
        }
    }
    out
}

/// The audit log's create -> Pod beside the watches' figure, when it has any.
fn bound(ms_bound: Option<f64>) -> String {
    ms_bound.map_or_else(|| "(none)".into(), ms)
}

/// Create answered -> seen by a watch, for SourceBuilds and for Pods.
fn watch_lags(builds: &Summary, pods: &Summary) -> String {
    if builds.count == 0 && pods.count == 0 {
        return "watches not measured".into();
    }
    format!(
        "watch delivery: SourceBuilds p50 {}, p99 {}; Pods p50 {}, p99 {}",
        ms(builds.p50),
        ms(builds.p99),
        ms(pods.p50),
        ms(pods.p99)
    )
}

fn as_the_server_timed_it(server: &Summary) -> String {
    if server.count == 0 {
        return String::new();
    }
    format!(
        "; as the API server timed it (audit log): p50 {}, p99 {}",
        ms(server.p50),
        ms(server.p99)
    )
}
