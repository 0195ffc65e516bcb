//! Counting API requests from the API server's own `apiserver_request_total` (Prometheus text
//! format), so the figures do not depend on the operator reporting itself honestly.
//!
//! The counter has no user label, so requests are told apart by what they touch: the operator
//! alone creates and deletes build Pods, writes SourceBuild status and Events; the benchmark
//! alone creates SourceBuilds and writes Pod status (in the kubelet's place).

use std::collections::BTreeMap;

use serde::Serialize;

/// One series of `apiserver_request_total`, without `code`, `component`, `dry_run`, `scope`
/// (summed over them).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RequestKey {
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub verb: String,
}

impl RequestKey {
    /// `pods POST`, `sourcebuilds/status APPLY`, `events.k8s.io events POST`.
    pub fn label(&self) -> String {
        let mut s = String::new();
        if !self.group.is_empty() {
            s.push_str(&self.group);
            s.push(' ');
        }
        s.push_str(&self.resource);
        if !self.subresource.is_empty() {
            s.push('/');
            s.push_str(&self.subresource);
        }
        s.push(' ');
        s.push_str(&self.verb);
        s
    }

    pub fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "POST" | "PUT" | "PATCH" | "APPLY" | "DELETE" | "DELETECOLLECTION"
        )
    }

    pub fn is_event(&self) -> bool {
        self.resource == "events"
    }

    /// A write only the operator makes (see the module comment).
    pub fn is_operator_write(&self) -> bool {
        if !self.is_write() {
            return false;
        }
        matches!(
            (self.resource.as_str(), self.subresource.as_str()),
            ("pods", "") | ("sourcebuilds", "status") | ("events", _)
        )
    }
}

/// Request counts by key.
pub type Counts = BTreeMap<RequestKey, u64>;

/// The labels and value of every sample of the labelled metric `name` in a `/metrics` page.
pub fn series<'a>(
    text: &'a str,
    name: &'a str,
) -> impl Iterator<Item = Result<(BTreeMap<String, String>, f64), String>> + 'a {
    text.lines().filter_map(move |line| {
        let rest = line.strip_prefix(name)?.strip_prefix('{')?;
        Some((|| {
            let (labels, value) = rest
                .rsplit_once('}')
                .ok_or_else(|| format!("no closing brace in {line:?}"))?;
            let value: f64 = value
                .split_whitespace()
                .next()
                .unwrap_or("")
                .parse()
                .map_err(|e| format!("value of {line:?}: {e}"))?;
            let labels = parse_labels(labels).map_err(|e| format!("{e} in {line:?}"))?;
            Ok((labels, value))
        })())
    })
}

/// Parses the `apiserver_request_total` series of a `/metrics` page.
pub fn parse(text: &str) -> Result<Counts, String> {
    let mut counts = Counts::new();
    for sample in series(text, "apiserver_request_total") {
        let (labels, value) = sample?;
        let get = |name: &str| labels.get(name).cloned().unwrap_or_default();
        let key = RequestKey {
            group: get("group"),
            resource: get("resource"),
            subresource: get("subresource"),
            verb: get("verb"),
        };
        *counts.entry(key).or_default() += value as u64;
    }
    if counts.is_empty() {
        return Err("no apiserver_request_total series in the metrics text".into());
    }
    Ok(counts)
}

/// `a="x",b="y\"z"` into a map (Prometheus label values escape `\`, `"` and newline).
pub fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek() == Some(&',') || chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(labels);
        }
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if chars.next() != Some('"') {
            return Err(format!("label {name} has no quoted value"));
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => return Err("dangling escape".into()),
                },
                Some('"') => break,
                Some(c) => value.push(c),
                None => return Err(format!("unterminated value of label {name}")),
            }
        }
        labels.insert(name.trim().to_string(), value);
    }
}

/// The value of an unlabelled sample `name` in a Prometheus text page.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        rest.starts_with(' ')
            .then(|| rest.split_whitespace().next()?.parse().ok())
            .flatten()
    })
}

/// The cumulative buckets of histogram `name` (`name_bucket{le="..."} N`), by upper bound,
/// `+Inf` last.
pub fn buckets(text: &str, name: &str) -> Vec<(f64, u64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let (bound, count) = rest.split_once("\"}")?;
            let bound = match bound {
                "+Inf" => f64::INFINITY,
                b => b.parse().ok()?,
            };
            Some((bound, count.trim().parse::<f64>().ok()? as u64))
        })
        .collect()
}

/// The upper bound of the bucket holding quantile `q` of what a histogram counted between two
/// scrapes (`before`, `after` as [`buckets`] reads them); `None` when it counted nothing.
pub fn quantile_bound(before: &[(f64, u64)], after: &[(f64, u64)], q: f64) -> Option<f64> {
    let grown = |bound: f64, n: u64| {
        let was = before
            .iter()
            .find(|(b, _)| *b == bound)
            .map_or(0, |(_, n)| *n);
        n.saturating_sub(was)
    };
    let total = after.last().map(|(b, n)| grown(*b, *n))?;
    if total == 0 {
        return None;
    }
    after
        .iter()
        .find(|(bound, n)| grown(*bound, *n) as f64 >= q * total as f64)
        .map(|(bound, _)| *bound)
}

/// `after - before`, keeping only keys that grew.
pub fn diff<K: Ord + Clone>(
    before: &BTreeMap<K, u64>,
    after: &BTreeMap<K, u64>,
) -> BTreeMap<K, u64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let grown = v.saturating_sub(before.get(k).copied().unwrap_or(0));
            (grown > 0).then(|| (k.clone(), grown))
        })
        .collect()
}

/// The operator's writes in a diff: all of them and the Events among them.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Writes {
    /// Every operator write, Events included.
    pub total: u64,
    /// Writes of Events (`events` of either API group).
    pub events: u64,
    /// Writes other than Events: Pods and SourceBuild status.
    pub objects: u64,
    /// Each operator write by resource and verb.
    pub by_kind: BTreeMap<String, u64>,
}

pub fn operator_writes(delta: &Counts) -> Writes {
    let mut w = Writes::default();
    for (k, v) in delta.iter().filter(|(k, _)| k.is_operator_write()) {
        w.total += v;
        if k.is_event() {
            w.events += v;
        } else {
            w.objects += v;
        }
        *w.by_kind.entry(k.label()).or_default() += v;
    }
    w
}

/// Every request of a diff by resource and verb, for the record.
pub fn by_label(delta: &Counts) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for (k, v) in delta {
        *m.entry(k.label()).or_default() += v;
    }
    m
}

/// `apiserver_terminated_watchers_total` by resource: watches the API server closed because
/// their client (or its own goroutine serving them) did not keep up with the events.
pub fn terminated_watchers(text: &str) -> Result<BTreeMap<String, u64>, String> {
    let mut closed = BTreeMap::new();
    for sample in series(text, "apiserver_terminated_watchers_total") {
        let (labels, value) = sample?;
        let resource = labels.get("resource").cloned().unwrap_or_default();
        *closed.entry(resource).or_default() += value as u64;
    }
    Ok(closed)
}
