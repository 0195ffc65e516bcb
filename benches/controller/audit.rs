//! create -> Pod as the API server itself timed it, from its audit log (`ResponseComplete` of
//! each SourceBuild create and of its build Pod's create, microsecond timestamps). A watch
//! timestamp also carries the watch's delivery: with the API server's CPU saturated (a burst),
//! a watch hears of a Pod seconds after its create was answered. Both are reported.

use std::collections::HashMap;
use std::path::Path;

use k8s_openapi::jiff::Timestamp;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    stage: String,
    verb: String,
    object_ref: Option<ObjectRef>,
    response_status: Option<ResponseStatus>,
    stage_timestamp: Timestamp,
}

#[derive(Deserialize)]
struct ObjectRef {
    resource: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct ResponseStatus {
    code: Option<u16>,
}

/// When the API server answered each create of `ns` (audit log): SourceBuilds by name, and
/// first build Pods by their SourceBuild's name.
pub struct Creates {
    pub builds: HashMap<String, Timestamp>,
    pub pods: HashMap<String, Timestamp>,
}

pub fn creates(log: &Path, ns: &str) -> Result<Creates, String> {
    let text = std::fs::read_to_string(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let (mut builds, mut pods) = (HashMap::new(), HashMap::new());
    for line in text.lines() {
        let Ok(entry) = serde_json::from_str::<Entry>(line) else {
            continue;
        };
        let Some(object) = entry.object_ref else {
            continue;
        };
        let created = entry.stage == "ResponseComplete"
            && entry.verb == "create"
            && entry.response_status.and_then(|s| s.code) == Some(201)
            && object.namespace.as_deref() == Some(ns);
        let (true, Some(name)) = (created, object.name) else {
            continue;
        };
        match object.resource.as_deref() {
            Some("sourcebuilds") => {
                builds.insert(name, entry.stage_timestamp);
            }
            Some("pods") => {
                if let Some(build) = name.strip_suffix("-build-1") {
                    pods.insert(build.to_string(), entry.stage_timestamp);
                }
            }
            _ => {}
        }
    }
    Ok(Creates { builds, pods })
}

impl Creates {
    /// For each SourceBuild created, and whose first build Pod was created: the time from the
    /// API server answering the SourceBuild's create to it answering the Pod's (ms).
    pub fn create_to_pod_ms(&self) -> Vec<f64> {
        self.builds
            .iter()
            .filter_map(|(name, created)| {
                let pod = self.pods.get(name)?;
                Some(pod.duration_since(*created).as_secs_f64() * 1000.0)
            })
            .collect()
    }

    /// How long after the API server answered each create the benchmark's watches showed the
    /// object (ms): SourceBuilds, then Pods. `seen` gives, by SourceBuild name, when its
    /// SourceBuild and its Pod were seen, in ms since the Unix epoch.
    pub fn watch_lag_ms<'a>(
        &self,
        seen: impl Iterator<Item = (&'a String, Option<f64>, Option<f64>)>,
    ) -> (Vec<f64>, Vec<f64>) {
        let (mut builds, mut pods) = (Vec::new(), Vec::new());
        for (name, build_seen, pod_seen) in seen {
            if let (Some(created), Some(seen)) = (self.builds.get(name), build_seen) {
                builds.push(seen - unix_ms(created));
            }
            if let (Some(created), Some(seen)) = (self.pods.get(name), pod_seen) {
                pods.push(seen - unix_ms(created));
            }
        }
        (builds, pods)
    }

    /// When the API server answered each build Pod's create, by SourceBuild name (ms since the
    /// Unix epoch).
    pub fn pods_unix_ms(&self) -> HashMap<String, f64> {
        self.pods
            .iter()
            .map(|(name, t)| (name.clone(), unix_ms(t)))
            .collect()
    }
}

fn unix_ms(t: &Timestamp) -> f64 {
    t.as_microsecond() as f64 / 1000.0
}
