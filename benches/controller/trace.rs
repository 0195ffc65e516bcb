//! With `SOURCEBUILD_BENCH_TRACE=DIR`, each load also follows its build Pods' creates on the
//! way from etcd to the watches, to find which step holds a burst's Pods back:
//! - etcd's own watch of the load's Pods (through etcd's JSON gateway, beside the API server's
//!   watch): when etcd delivered each create;
//! - every 250 ms, the API server's pods watch-cache counters (events received from etcd,
//!   dispatched to watchers, sent by watch handlers) and etcd's slow-watcher gauges.
//!
//! `DIR/<ns>.pods.tsv` has a row per Pod (ms since the Unix epoch: the API server answered its
//! create, etcd's watch delivered it, the benchmark's watch through the API server delivered
//! it; and the create's etcd revision, to set against the watch cache's resource version);
//! `DIR/<ns>.metrics.tsv` the samples. Off by default: it costs the API server a /metrics
//! render every 250 ms, which on a 2-core machine made the burst after `steady` about a
//! second slower at p99 (3.1-3.9 s traced, 2.1-2.9 s not). Use it to see where the time
//! goes, not how much there is.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kube::Client;

use crate::apimetrics::series;
use crate::stats::summarize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Metric names sampled, each line kept only when it is about Pods or has no resource label.
const SAMPLED: &[&str] = &[
    "apiserver_watch_cache_events_received_total",
    "apiserver_watch_cache_events_dispatched_total",
    "apiserver_watch_events_total",
    "apiserver_terminated_watchers_total",
    "apiserver_watch_cache_resource_version",
    "apiserver_registered_watchers",
    "etcd_debugging_mvcc_slow_watcher_total",
    "etcd_debugging_mvcc_pending_events_total",
    "etcd_debugging_mvcc_watcher_total",
];

pub struct Trace {
    dir: PathBuf,
    ns: String,
    etcd_seen: Arc<Mutex<HashMap<String, (f64, u64)>>>,
    samples: Arc<Mutex<Vec<(f64, String)>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

pub fn unix_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

impl Trace {
    /// Starts following the Pods of `ns`, when asked for.
    pub async fn start(admin: &Client, etcd_port: u16, ns: &str) -> Option<Self> {
        let dir = PathBuf::from(std::env::var_os("SOURCEBUILD_BENCH_TRACE")?);
        let etcd_seen: Arc<Mutex<HashMap<String, (f64, u64)>>> = Arc::default();
        let samples: Arc<Mutex<Vec<(f64, String)>>> = Arc::default();
        let prefix = format!("/registry/pods/{ns}/");
        let watch = match etcd_watch(etcd_port, &prefix).await {
            Ok(lines) => {
                let seen = etcd_seen.clone();
                tokio::spawn(follow(lines, prefix, seen))
            }
            Err(e) => {
                eprintln!("bench: trace: etcd watch of {prefix}: {e}");
                return None;
            }
        };
        let (admin, kept) = (admin.clone(), samples.clone());
        let sampler = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                let at = unix_ms();
                let mut lines = Vec::new();
                let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
                if let Ok(text) = admin.request_text(request).await {
                    lines.extend(pick(&text));
                }
                if let Some(text) = http_get(etcd_port, "/metrics").await {
                    lines.extend(pick(&text));
                }
                kept.lock()
                    .unwrap()
                    .extend(lines.into_iter().map(|l| (at, l)));
            }
        });
        Some(Trace {
            dir,
            ns: ns.to_string(),
            etcd_seen,
            samples,
            tasks: vec![watch, sampler],
        })
    }

    /// Stops, writes the files and prints etcd's delivery against the API server's.
    /// `created` and `watched`: by SourceBuild name, when the API server answered its Pod's
    /// create and when the benchmark's watch saw the Pod (ms since the Unix epoch).
    pub fn finish(self, created: &HashMap<String, f64>, watched: &HashMap<String, f64>) {
        for t in &self.tasks {
            t.abort();
        }
        let etcd = self.etcd_seen.lock().unwrap().clone();
        let samples = std::mem::take(&mut *self.samples.lock().unwrap());
        let mut rows = String::from("build\tcreated\tetcd\twatch\trevision\n");
        let (mut etcd_lag, mut watch_lag, mut ways) = (Vec::new(), Vec::new(), Vec::new());
        let mut names: Vec<&String> = created.keys().collect();
        names.sort();
        for name in names {
            let c = created[name];
            let e = etcd.get(&format!("{name}-build-1")).copied();
            let w = watched.get(name).copied();
            let show = |t: Option<f64>| t.map(|t| format!("{t:.1}")).unwrap_or_default();
            let revision = e.map(|(_, r)| r.to_string()).unwrap_or_default();
            rows.push_str(&format!(
                "{name}\t{c:.1}\t{}\t{}\t{revision}\n",
                show(e.map(|(at, _)| at)),
                show(w)
            ));
            if let Some((etcd_at, revision)) = e {
                etcd_lag.push(etcd_at - c);
                ways.push(PodTimes {
                    etcd_at,
                    revision,
                    watched_at: w,
                });
            }
            if let Some(w) = w {
                watch_lag.push(w - c);
            }
        }
        let mut metrics = String::from("unix_ms\tsample\n");
        for (at, line) in &samples {
            metrics.push_str(&format!("{at:.0}\t{line}\n"));
        }
        let _ = std::fs::create_dir_all(&self.dir);
        let pods = self.dir.join(format!("{}.pods.tsv", self.ns));
        let written = std::fs::write(&pods, rows).and_then(|_| {
            std::fs::write(self.dir.join(format!("{}.metrics.tsv", self.ns)), metrics)
        });
        if let Err(e) = written {
            eprintln!("bench: trace: writing {}: {e}", self.dir.display());
        }
        let cache_rv: Vec<(f64, u64)> = samples
            .iter()
            .filter_map(|(at, line)| Some((*at, pods_cache_revision(line)?)))
            .collect();
        let (ahead_of_cache, ahead_of_watch) = worst_backlogs(&cache_rv, &ways);
        let (etcd_lag, watch_lag) = (summarize(&etcd_lag), summarize(&watch_lag));
        eprintln!(
            "bench: trace {}: Pod create -> etcd watch p50 {:.0} / p99 {:.0} ms ({} Pods); -> API server watch p50 {:.0} / p99 {:.0} ms; files in {}",
            self.ns,
            etcd_lag.p50,
            etcd_lag.p99,
            etcd_lag.count,
            watch_lag.p50,
            watch_lag.p99,
            pods.display()
        );
        eprintln!(
            "bench: trace {}: at worst {ahead_of_cache} Pods delivered by etcd and not yet in the API server's pods watch cache, {ahead_of_watch} in the cache and not yet watched (over {} samples)",
            self.ns,
            cache_rv.len()
        );
    }
}

/// One Pod's way: when etcd's watch delivered its create, at which revision, and when the
/// benchmark's watch through the API server delivered it (ms since the Unix epoch).
pub struct PodTimes {
    pub etcd_at: f64,
    pub revision: u64,
    pub watched_at: Option<f64>,
}

/// The pods watch cache's resource version, from its sampled metric line.
pub fn pods_cache_revision(line: &str) -> Option<u64> {
    series(line, "apiserver_watch_cache_resource_version")
        .filter_map(Result::ok)
        .find(|(labels, _)| labels.get("resource").is_some_and(|r| r == "pods"))
        .map(|(_, value)| value as u64)
}

/// At the worst sample: how many Pods etcd had delivered that the pods watch cache (at
/// `cache_rv`'s resource version) did not hold yet, and how many the cache held that the
/// watch had not delivered. The first large and the second small puts a lag between etcd and
/// the cache; the other way round, between the cache and the watchers.
pub fn worst_backlogs(cache_rv: &[(f64, u64)], pods: &[PodTimes]) -> (usize, usize) {
    let mut worst = (0, 0);
    for &(at, rv) in cache_rv {
        let delivered = pods.iter().filter(|p| p.etcd_at <= at);
        let (mut not_cached, mut not_watched) = (0, 0);
        for p in delivered {
            let cached = p.revision <= rv;
            let seen = p.watched_at.is_some_and(|w| w <= at);
            if !cached {
                not_cached += 1;
            } else if !seen {
                not_watched += 1;
            }
        }
        worst = (worst.0.max(not_cached), worst.1.max(not_watched));
    }
    worst
}

/// The sampled lines of a /metrics text.
pub fn pick(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| SAMPLED.iter().any(|name| l.starts_with(name)))
        .filter(|l| !l.contains("resource=\"") || l.contains("resource=\"pods\""))
        .filter(|l| !l.contains("kind=\"") || l.contains("kind=\"Pod\""))
        .map(str::to_string)
        .collect()
}

/// The exclusive end of the key range that starts with `prefix` (etcd's `--prefix`).
pub fn range_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    *end.last_mut().expect("a non-empty prefix") += 1;
    end
}

/// Opens a watch of `prefix` on etcd's JSON gateway; its answer is one JSON object per line.
async fn etcd_watch(
    port: u16,
    prefix: &str,
) -> Result<tokio::io::Lines<BufReader<tokio::net::TcpStream>>, String> {
    let body = serde_json::json!({"create_request": {
        "key": B64.encode(prefix),
        "range_end": B64.encode(range_end(prefix)),
    }})
    .to_string();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let request = format!(
        "POST /v3/watch HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut lines = BufReader::new(stream).lines();
    // The status line and headers, then the created answer.
    while let Some(line) = lines.next_line().await.map_err(|e| e.to_string())? {
        if line.is_empty() {
            return Ok(lines);
        }
        if line.starts_with("HTTP/") && !line.contains(" 200 ") {
            return Err(line);
        }
    }
    Err("etcd closed the watch".into())
}

/// Records when each Pod (by name) first appeared on etcd's watch.
async fn follow(
    mut lines: tokio::io::Lines<BufReader<tokio::net::TcpStream>>,
    prefix: String,
    seen: Arc<Mutex<HashMap<String, (f64, u64)>>>,
) {
    while let Ok(Some(line)) = lines.next_line().await {
        let at = unix_ms();
        let Ok(answer) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let Some(events) = answer["result"]["events"].as_array() else {
            continue;
        };
        let mut seen = seen.lock().unwrap();
        for event in events {
            let Some(key) = event["kv"]["key"].as_str() else {
                continue;
            };
            let Ok(key) = B64.decode(key) else { continue };
            let key = String::from_utf8_lossy(&key);
            // The gateway writes int64s as strings.
            let revision = event["kv"]["mod_revision"]
                .as_str()
                .and_then(|r| r.parse().ok())
                .unwrap_or(0);
            if let Some(name) = key.strip_prefix(&prefix) {
                seen.entry(name.to_string()).or_insert((at, revision));
            }
        }
    }
}

async fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut body = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut s, &mut body)
        .await
        .ok()?;
    Some(body)
}
