//! The example app built on the real node (`scripts/cluster.sh`), as a user sees it: from
//! `kubectl apply` of a SourceBuild to the digest in its status, for a first build (empty
//! Kaniko cache) and a cached rebuild (a new generation with the same Dockerfile), and the part
//! of each that is not Kaniko's own build (the Pod's start, `prepare`, the status write).
//! Each in a user namespace (`hostUsers: false`, the operator's default where the cluster has
//! them), with the node's users (`spec.hostUsers: true`), and signed (a user namespace and a
//! cosign key: the key check before the build, the signatures in the publish step), the three
//! interleaved run by run so that the machine's drift falls on all alike. For each, the part
//! after Kaniko (the publish step pushing the provenance, the status write) and the publish
//! step's own run. Median and spread of `SOURCEBUILD_BENCH_RUNS` (default 5) of each.
//!
//! Runs inside the cluster, like tests/node.rs:
//!
//! ```sh
//! scripts/cluster.sh up
//! scripts/cluster.sh exec cargo bench --bench node
//! ```

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use sourcebuild::api::{Phase, SourceBuild};
use support::app::{ASSEMBLE_HOOK, tar_gz, write_app};
use support::http::{HttpServer, Response};
use support::node::node;

/// What one build took, from the test's clock (milliseconds of observation).
struct Timing {
    /// `kubectl apply` to the digest in status.
    total: Duration,
    /// The build container running (as the kubelet reports it) to its end.
    kaniko: Duration,
    /// Kaniko's end (as the kubelet reports it) to the digest in status: the publish step's
    /// start and run, and the status write.
    after_kaniko: Duration,
    /// The publish container running to its end (as the kubelet reports it).
    publish: Duration,
}

impl Timing {
    fn outside_kaniko(&self) -> Duration {
        self.total.saturating_sub(self.kaniko)
    }
}

/// When the test saw a container running and ended (from `start`).
#[derive(Default)]
struct Seen {
    running: Option<Duration>,
    ended: Option<Duration>,
}

impl Seen {
    fn duration(&self, total: Duration) -> Duration {
        self.ended
            .unwrap_or(total)
            .saturating_sub(self.running.unwrap_or(total))
    }
}

/// Applies `manifest` and watches the SourceBuild and its Pod every 50 ms until the status
/// of `generation` is final; returns the timing, panicking on a failed build.
async fn build(
    client: &kube::Client,
    ns: &str,
    name: &str,
    generation: i64,
    manifest: &str,
) -> Timing {
    let builds: Api<SourceBuild> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod_name = format!("{name}-build-{generation}");
    let start = Instant::now();
    node().apply(ns, manifest);
    let (mut kaniko, mut publish) = (Seen::default(), Seen::default());
    loop {
        if let Ok(Some(pod)) = pods.get_opt(&pod_name).await {
            let statuses = pod.status.map(|s| {
                let init = s.init_container_statuses.unwrap_or_default();
                init.into_iter()
                    .chain(s.container_statuses.unwrap_or_default())
            });
            for status in statuses.into_iter().flatten() {
                let seen = match status.name.as_str() {
                    "build" => &mut kaniko,
                    "publish" => &mut publish,
                    _ => continue,
                };
                let Some(state) = status.state else { continue };
                if state.running.is_some() && seen.running.is_none() {
                    seen.running = Some(start.elapsed());
                }
                if state.terminated.is_some() && seen.ended.is_none() {
                    seen.running.get_or_insert(start.elapsed());
                    seen.ended = Some(start.elapsed());
                }
            }
        }
        let sb = builds.get(name).await.expect("get the SourceBuild");
        if let Some(status) = sb.status
            && status.observed_generation == Some(generation)
            && status.phase.is_some_and(Phase::is_final)
        {
            assert_eq!(status.phase, Some(Phase::Succeeded), "{status:#?}");
            assert!(status.provenance.is_some(), "{status:#?}");
            let total = start.elapsed();
            return Timing {
                total,
                kaniko: kaniko.duration(total),
                after_kaniko: total.saturating_sub(kaniko.ended.unwrap_or(total)),
                publish: publish.duration(total),
            };
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "{name} took over 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn line(what: &str, values: Vec<Duration>) {
    let min = values.iter().min().copied().unwrap_or_default();
    let max = values.iter().max().copied().unwrap_or_default();
    println!(
        "| {what} | {:.1} s | {:.1} - {:.1} s |",
        median(values).as_secs_f64(),
        min.as_secs_f64(),
        max.as_secs_f64()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo test --all-targets` runs benchmarks once without `--bench`: there is nothing to
    // check without the cluster, and with it the real run is for `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "benches/node.rs: measured only by `scripts/cluster.sh exec cargo bench --bench node`"
        );
        return;
    }
    let runs: usize = std::env::var("SOURCEBUILD_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let node = node();
    let client = node.client().await;
    let ns = node.namespace("bench-node").await;
    // The test app with its hooks, from an archive on the bridge: no git round trips.
    let (archive, sum) = {
        let dir = tempfile::tempdir().unwrap();
        write_app(dir.path(), Some(ASSEMBLE_HOOK));
        tar_gz(dir.path())
    };
    let server = HttpServer::start(move |_| Response::ok(archive.clone()));
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // A cosign key pair for the signed builds, in a Secret of the namespace.
    let keys = tempfile::tempdir().unwrap();
    let cosign = std::process::Command::new(support::tools::tool("cosign"))
        .args(["generate-key-pair", "--output-key-prefix", "bench"])
        .current_dir(keys.path())
        .env("COSIGN_PASSWORD", "bench")
        .output()
        .expect("run cosign");
    assert!(cosign.status.success(), "{cosign:?}");
    node.kubectl_ok(
        &[
            "-n",
            &ns,
            "create",
            "secret",
            "generic",
            "cosign-key",
            &format!(
                "--from-file=cosign.key={}",
                keys.path().join("bench.key").display()
            ),
            "--from-literal=cosign.password=bench",
        ],
        None,
    );
    // (label, extra spec lines, first builds, cached rebuilds)
    let mut modes = [
        ("in a user namespace", "", Vec::new(), Vec::new()),
        (
            "with the node's users",
            "  hostUsers: true\n",
            Vec::new(),
            Vec::new(),
        ),
        (
            "signed, in a user namespace",
            "  output:\n    signing:\n      keySecretRef: {name: cosign-key}\n",
            Vec::new(),
            Vec::new(),
        ),
    ];
    for run in 0..runs {
        for (index, (label, extra, first, cached)) in modes.iter_mut().enumerate() {
            let name = format!("app-{run}-{index}");
            // The signing lines belong under output:, the others at the spec's top level.
            let (signing, host_users) = match extra.strip_prefix("  output:\n") {
                Some(signing) => (signing, ""),
                None => ("", *extra),
            };
            // A repository of its own per build series: its cache starts empty.
            let manifest = |timeout: &str| {
                format!(
                    "apiVersion: sourcebuild.dev/v1alpha1\nkind: SourceBuild\nmetadata:\n  name: {name}\nspec:\n  \
                     source:\n    archive:\n      url: {}\n      sha256: \"{sum}\"\n  \
                     output:\n    image: {}/bench/{stamp}-{run}-{index}:1\n{signing}  cache:\n    enabled: true\n  timeout: {timeout}\n{host_users}",
                    server.url("/app.tar.gz"),
                    node.registry
                )
            };
            let one = build(&client, &ns, &name, 1, &manifest("30m")).await;
            let two = build(&client, &ns, &name, 2, &manifest("31m")).await;
            eprintln!(
                "run {run} {label}: first {:.1}s (Kaniko {:.1}s, after {:.1}s), cached {:.1}s \
                 (Kaniko {:.1}s, after {:.1}s)",
                one.total.as_secs_f64(),
                one.kaniko.as_secs_f64(),
                one.after_kaniko.as_secs_f64(),
                two.total.as_secs_f64(),
                two.kaniko.as_secs_f64(),
                two.after_kaniko.as_secs_f64()
            );
            first.push(one);
            cached.push(two);
        }
    }
    println!("\nThe example app on the real node, {runs} runs each (median, min - max):\n");
    println!("| | median | range |\n|---|---|---|");
    for (label, _, first, cached) in &modes {
        line(
            &format!("first build {label}: apply -> digest in status"),
            first.iter().map(|t| t.total).collect(),
        );
        line(
            "  of which not Kaniko's build",
            first.iter().map(Timing::outside_kaniko).collect(),
        );
        line(
            &format!("cached rebuild {label}: apply -> digest in status"),
            cached.iter().map(|t| t.total).collect(),
        );
        line(
            "  of which not Kaniko's build",
            cached.iter().map(Timing::outside_kaniko).collect(),
        );
        let all = || first.iter().chain(cached.iter());
        line(
            &format!("Kaniko's end -> digest in status, {label} (all builds)"),
            all().map(|t| t.after_kaniko).collect(),
        );
        line(
            "  of which the publish container running",
            all().map(|t| t.publish).collect(),
        );
    }
}
