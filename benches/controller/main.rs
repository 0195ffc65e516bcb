//! The controller benchmark (issue 6): `cargo bench --bench controller -- [SCENARIO...] [--out DIR]`.
//!
//! Starts a real control plane (tests/support), installs the chart, runs the operator binary as
//! its ServiceAccount (so API Priority and Fairness applies), plays the users and the kubelet,
//! and measures with its own watches and the API server's `apiserver_request_total`.
//! Scenarios, in this order: `steady`, `burst`, `resync`, `scale` (memory and cold start),
//! `ceiling` (the API server's own Pod-create rate), `prepare`, `footprint` (live heap per cached
//! object, no cluster); none named means all of these. `floor` (the burst as a zero-cost
//! controller serves it, in the burst's place, after `steady`) and `unscheduled` (200
//! SourceBuilds at 5/s on a cluster with no node: how soon each shows a phase) run only when
//! named. Writes
//! `report.json`, `report.md` and SVG charts to DIR.
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) every scenario runs at a tiny size
//! and the output files are checked to be well-formed: a smoke run that keeps the command
//! working. Nothing here asserts a timing.

#[path = "../../tests/support/mod.rs"]
mod support;

mod apimetrics;
mod audit;
mod ceiling;
mod charts;
mod cluster;
mod footprint;
mod pprof;
mod prepare;
mod procfs;
mod report;
mod stats;
mod trace;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cluster::{Cluster, Kubelet, LoadSpec};
use report::{Machine, Report, Scale};

/// Run only when named: each changes what the scenarios after it meet.
const OPT_IN: [&str; 2] = ["floor", "unscheduled"];

const SCENARIOS: [&str; 7] = [
    "steady",
    "burst",
    "resync",
    "scale",
    "ceiling",
    "prepare",
    "footprint",
];

/// Counts live heap for the `footprint` scenario; a relaxed atomic add per allocation costs
/// the other scenarios nothing measurable (the operator is a separate process).
#[global_allocator]
static ALLOCATOR: footprint::Counting = footprint::Counting;

/// The sizes of a run.
struct Sizes {
    steady_rate: f64,
    steady_seconds: f64,
    burst: usize,
    unscheduled: usize,
    scale: usize,
    prepare_files: usize,
    prepare_runs: usize,
}

const FULL: Sizes = Sizes {
    steady_rate: 20.0,
    steady_seconds: 60.0,
    burst: 1000,
    unscheduled: 200,
    scale: 10_000,
    prepare_files: 10_000,
    prepare_runs: 5,
};

const SMOKE: Sizes = Sizes {
    steady_rate: 5.0,
    steady_seconds: 1.0,
    burst: 10,
    unscheduled: 5,
    scale: 20,
    prepare_files: 50,
    prepare_runs: 1,
};

struct Args {
    full: bool,
    scenarios: Vec<String>,
    out: Option<PathBuf>,
    /// `--scale N`: SourceBuilds of the scale scenario instead of 10,000.
    scale: Option<usize>,
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        full: false,
        scenarios: Vec::new(),
        out: None,
        scale: None,
    };
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bench" => parsed.full = true,
            "--out" => {
                let dir = args.next().ok_or("--out needs a directory")?;
                parsed.out = Some(PathBuf::from(dir));
            }
            "--scale" => {
                let n = args.next().ok_or("--scale needs a number")?;
                parsed.scale = Some(n.parse().map_err(|e| format!("--scale {n:?}: {e}"))?);
            }
            name if SCENARIOS.contains(&name) || OPT_IN.contains(&name) => {
                parsed.scenarios.push(name.to_string())
            }
            // libtest's options, passed by `cargo test` to every target.
            "--nocapture" | "--quiet" | "-q" | "--show-output" => {}
            other => {
                return Err(format!(
                    "unknown argument {other:?}: expected scenarios ({}, and when named {}), --out DIR, --scale N",
                    SCENARIOS.join(", "),
                    OPT_IN.join(", ")
                ));
            }
        }
    }
    if parsed.scenarios.is_empty() {
        parsed.scenarios = SCENARIOS.iter().map(|s| s.to_string()).collect();
    }
    Ok(parsed)
}

fn main() {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(2);
        }
    };
    if support::skip_control_plane() {
        return;
    }
    let sizes = if args.full { FULL } else { SMOKE };
    let keep = args.out.is_some() || args.full;
    let out = args.out.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("sourcebuild-bench-{}", std::process::id()))
    });
    std::fs::create_dir_all(&out).unwrap_or_else(|e| panic!("create {}: {e}", out.display()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    let report = runtime
        .block_on(run(&args, &sizes, &out))
        .unwrap_or_else(|e| panic!("bench: {e}"));
    let files = write_outputs(&report, &out).unwrap_or_else(|e| panic!("bench: {e}"));
    check_outputs(&files).unwrap_or_else(|e| panic!("bench: malformed output: {e}"));
    eprintln!(
        "bench: {} run done in {:.0} s\n{}\nbench: written to {}",
        report.mode,
        started.elapsed().as_secs_f64(),
        report::goals_table(&report),
        out.display()
    );
    if !keep {
        let _ = std::fs::remove_dir_all(&out);
    }
}

async fn run(args: &Args, sizes: &Sizes, out: &Path) -> Result<Report, String> {
    support::install_crypto_provider();
    let wants = |s: &str| args.scenarios.iter().any(|a| a == s);
    let mut report = Report {
        mode: if args.full { "full" } else { "smoke" }.into(),
        command: format!(
            "cargo bench --bench controller -- {}{}",
            args.scenarios.join(" "),
            args.scale
                .map(|n| format!(" --scale {n}"))
                .unwrap_or_default()
        ),
        started: k8s_openapi::jiff::Timestamp::now()
            .round(k8s_openapi::jiff::Unit::Second)
            .map_err(|e| e.to_string())?
            .to_string(),
        machine: machine(),
        ..Default::default()
    };
    let needs_cluster = SCENARIOS[..5].iter().chain(&OPT_IN).any(|s| wants(s));
    if needs_cluster {
        let mut cluster = Cluster::start(out).await?;
        report.machine.kubernetes = cluster
            .admin
            .apiserver_version()
            .await
            .map(|v| v.git_version)
            .unwrap_or_default();
        let operator = cluster.operator.clone();
        let _sampling = cluster.rss.run(move || operator.pid());
        let mut finished = Vec::new();
        if wants("steady") {
            eprintln!("bench: steady");
            let spec = LoadSpec {
                builds: (sizes.steady_rate * sizes.steady_seconds) as usize,
                rate_per_s: Some(sizes.steady_rate),
                create_concurrency: 1,
                kubelet: Some(burst_kubelet()),
            };
            let (ns, load) = cluster.load("bench-steady", &spec).await?;
            finished.push(ns);
            report.steady = Some(load);
            save_partial(&report, out);
        }
        if wants("unscheduled") {
            eprintln!("bench: unscheduled");
            let spec = LoadSpec {
                builds: sizes.unscheduled,
                rate_per_s: Some(5.0),
                create_concurrency: 1,
                kubelet: None,
            };
            let (_, load) = cluster.load("bench-unscheduled", &spec).await?;
            report.unscheduled = Some(load);
            save_partial(&report, out);
        }
        if wants("floor") {
            eprintln!("bench: floor");
            report.floor = Some(ceiling::floor(&mut cluster, sizes.burst).await?);
            save_partial(&report, out);
        }
        if wants("burst") {
            eprintln!("bench: burst");
            let spec = LoadSpec {
                builds: sizes.burst,
                rate_per_s: None,
                create_concurrency: 32,
                kubelet: Some(burst_kubelet()),
            };
            let (ns, load) = cluster.load("bench-burst", &spec).await?;
            finished.push(ns);
            report.burst = Some(load);
            save_partial(&report, out);
        }
        if wants("resync") {
            eprintln!("bench: resync");
            if finished.is_empty() {
                let spec = LoadSpec {
                    builds: sizes.burst,
                    rate_per_s: None,
                    create_concurrency: 32,
                    kubelet: Some(quick_kubelet()),
                };
                finished.push(cluster.load("bench-resync", &spec).await?.0);
            }
            report.resync = Some(cluster.resync(&finished).await?);
            save_partial(&report, out);
        }
        if wants("scale") {
            eprintln!("bench: scale");
            let n = args.scale.unwrap_or(sizes.scale);
            report.scale = Some(scale(&mut cluster, n).await?);
            save_partial(&report, out);
        }
        if wants("ceiling") {
            eprintln!("bench: ceiling");
            report.ceiling = Some(ceiling::measure(&mut cluster, sizes.burst).await?);
            save_partial(&report, out);
        }
    }
    if wants("footprint") {
        eprintln!("bench: footprint");
        report.footprint = Some(footprint::measure(args.scale.unwrap_or(sizes.scale)));
    }
    if wants("prepare") {
        eprintln!("bench: prepare");
        let (files, runs) = (sizes.prepare_files, sizes.prepare_runs);
        report.prepare = Some(
            tokio::task::spawn_blocking(move || prepare::measure(files, runs))
                .await
                .map_err(|e| format!("prepare scenario: {e}"))?,
        );
    }
    Ok(report)
}

/// A kubelet that finishes every build at once (no Running step): fills the cluster quickly.
/// The kubelet of the steady and burst loads: the fetch step done and Kaniko running, then a
/// one-second build.
pub fn burst_kubelet() -> Kubelet {
    Kubelet {
        running_step: true,
        build_time: Duration::from_secs(1),
        concurrency: 32,
    }
}

fn quick_kubelet() -> Kubelet {
    Kubelet {
        running_step: false,
        build_time: Duration::ZERO,
        concurrency: 32,
    }
}

/// With `SOURCEBUILD_BENCH_SMAPS=DIR`, keeps the operator's memory map (`/proc/PID/smaps`) as
/// `DIR/<when>.smaps`: which mappings the resident memory is in (heap, thread arenas, code).
fn dump_smaps(cluster: &Cluster, when: &str) {
    let (Some(dir), Some(pid)) = (
        std::env::var_os("SOURCEBUILD_BENCH_SMAPS"),
        cluster.operator.pid(),
    ) else {
        return;
    };
    let to = std::path::Path::new(&dir).join(format!("{when}.smaps"));
    if let Err(e) =
        std::fs::create_dir_all(&dir).and_then(|_| std::fs::copy(format!("/proc/{pid}/smaps"), &to))
    {
        eprintln!("bench: keeping {}: {e}", to.display());
    }
}

/// Fills the cluster with `n` finished builds, then restarts the operator over them.
async fn scale(cluster: &mut Cluster, n: usize) -> Result<Scale, String> {
    let from = cluster.rss.len();
    let spec = LoadSpec {
        builds: n,
        rate_per_s: None,
        create_concurrency: 32,
        kubelet: Some(quick_kubelet()),
    };
    let (_, fill) = cluster.load("bench-scale", &spec).await?;
    // Let the allocator settle after the fill's peak.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss_settled_mib = cluster
        .operator
        .pid()
        .and_then(procfs::rss_mib)
        .unwrap_or(0.0);
    let rss_settled_file_mib = cluster
        .operator
        .pid()
        .and_then(procfs::rss_file_mib)
        .unwrap_or(0.0);

    dump_smaps(cluster, "settled");
    let before = cluster.api_counts().await?;
    let started = Instant::now();
    let operator = cluster.operator.clone();
    tokio::task::block_in_place(|| operator.kill_and_restart());
    // A new process counts from zero; every SourceBuild of the cluster is reconciled once.
    let took = cluster
        .wait_reconciled(
            cluster.sourcebuilds as u64,
            Duration::ZERO,
            Duration::from_secs(300),
        )
        .await;
    let cold_start_s = started.elapsed().as_secs_f64();
    let cold_start_complete = match took {
        Ok(_) => true,
        Err(e) => {
            eprintln!("bench: cold start: {e}");
            false
        }
    };
    let cold_start_reconciles = cluster.operator_progress().map_or(0, |p| p.0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = cluster.api_counts().await?;
    let delta = apimetrics::diff(&before, &after);
    let rss_after_cold_start_mib = cluster
        .operator
        .pid()
        .and_then(procfs::rss_mib)
        .unwrap_or(0.0);
    dump_smaps(cluster, "restarted");
    let samples = cluster.rss.since(from);
    let t0 = samples.first().map_or(0.0, |s| s.0);
    Ok(Scale {
        sourcebuilds: cluster.sourcebuilds,
        pods: cluster.sourcebuilds,
        fill,
        rss_settled_mib,
        rss_settled_file_mib,
        cold_start_s,
        cold_start_complete,
        cold_start_reconciles,
        cold_start_writes: apimetrics::operator_writes(&delta),
        cold_start_requests: apimetrics::by_label(&delta),
        rss_after_cold_start_mib,
        rss_samples: samples.into_iter().map(|(t, m)| (t - t0, m)).collect(),
    })
}

fn machine() -> Machine {
    let memory_kib: f64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0.0);
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    Machine {
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory_gib: memory_kib / 1024.0 / 1024.0,
        load_average_at_start: load,
        kubernetes: String::new(),
    }
}

/// What was measured so far, so that an interrupted run keeps it.
fn save_partial(report: &Report, out: &Path) {
    if let Err(e) = write_outputs(report, out) {
        eprintln!("bench: could not save the partial report: {e}");
    }
}

/// Writes report.json, report.md and the charts; returns their paths.
fn write_outputs(report: &Report, out: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    let mut write = |name: &str, text: &str| -> Result<(), String> {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
        files.push(path);
        Ok(())
    };
    let json = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    write("report.json", &json)?;
    write("report.md", &report::markdown(report))?;
    let mut series = Vec::new();
    for (name, load) in [("steady", &report.steady), ("burst", &report.burst)] {
        if let Some(l) = load {
            series.push((
                format!("{name}: SourceBuild -> Pod"),
                &l.samples_create_to_pod,
            ));
        }
    }
    if let Some(l) = &report.steady {
        series.push((
            "steady: Pod finished -> status".to_string(),
            &l.samples_finish_to_status,
        ));
    }
    if let Some(s) = &report.scale {
        series.push((
            format!("burst of {}: SourceBuild -> Pod", s.fill.builds),
            &s.fill.samples_create_to_pod,
        ));
    }
    if !series.is_empty() {
        let series: Vec<charts::Series> = series
            .iter()
            .map(|(name, samples)| charts::Series { name, samples })
            .collect();
        write(
            "latency.svg",
            &charts::latency_cdf("Controller latency", &series)?,
        )?;
    }
    if let Some(s) = &report.scale {
        let title = format!(
            "Operator RSS: {} SourceBuilds and Pods filled, then a restart",
            s.sourcebuilds
        );
        write(
            "rss.svg",
            &charts::rss_over_time(&title, &s.rss_samples, 50.0)?,
        )?;
    }
    Ok(files)
}

/// The smoke run's check: every file parses as what it claims to be.
fn check_outputs(files: &[PathBuf]) -> Result<(), String> {
    for path in files {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let ok = match path.extension().and_then(|e| e.to_str()) {
            Some("json") => serde_json::from_str::<serde_json::Value>(&text).is_ok_and(|v| {
                v["mode"].is_string() && v["machine"]["cpus"].as_u64().is_some_and(|c| c > 0)
            }),
            Some("md") => text.contains("| measure | goal | result |"),
            Some("svg") => text.starts_with("<svg") && text.trim_end().ends_with("</svg>"),
            _ => true,
        };
        if !ok {
            return Err(format!("{name} is not well-formed"));
        }
    }
    if files.len() < 2 {
        return Err("no report written".into());
    }
    Ok(())
}
