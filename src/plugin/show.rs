//! A person's view of SourceBuilds: `status NAME`, `list`, and the history records `logs` shows
//! when a build Pod is gone. Pure text from the objects; the caller prints it.

use std::fmt::Write;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::api::{BuildRecord, SourceBuild};

/// Seconds between two times, when both are known and in order.
fn between(start: Option<&Time>, end: Option<&Time>) -> Option<Duration> {
    let (start, end) = (start?.0, end?.0);
    let seconds = end.as_second() - start.as_second();
    u64::try_from(seconds).ok().map(Duration::from_secs)
}

/// `1h2m`, `3m4s`, `5s`: a duration as people read it.
pub fn human(duration: Duration) -> String {
    let s = duration.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        _ => format!("{}h{}m", s / 3600, (s % 3600) / 60),
    }
}

/// How long the current build took (or has been running at `now`).
fn how_long(sb: &SourceBuild, now: Timestamp) -> Option<String> {
    let status = sb.status.as_ref()?;
    let now = Time(now);
    let end = status.completion_time.as_ref().unwrap_or(&now);
    let took = between(status.start_time.as_ref(), Some(end))?;
    Some(if status.completion_time.is_some() {
        human(took)
    } else {
        format!("{} so far", human(took))
    })
}

/// The latest failure: the current build's when it failed, else the newest failed record.
fn last_failure(sb: &SourceBuild) -> Option<String> {
    let status = sb.status.as_ref()?;
    if let Some(condition) = status.condition("Succeeded")
        && condition.status == "False"
    {
        return Some(format!("{}: {}", condition.reason, condition.message));
    }
    status
        .history
        .iter()
        .find(|r| r.phase == crate::api::Phase::Failed)
        .map(|r| {
            format!(
                "{} (generation {} build {})",
                r.reason.as_deref().unwrap_or("Failed"),
                r.generation,
                r.build
            )
        })
}

/// Where the source came from, as one line.
fn source_line(sb: &SourceBuild) -> String {
    let source = &sb.spec.source;
    let mut line = crate::source::location(source);
    if let Some(revision) = sb
        .status
        .as_ref()
        .and_then(|s| s.source_revision.as_deref())
    {
        let _ = write!(line, " (revision {revision})");
    }
    if let Some(origin) = sb.status.as_ref().and_then(|s| s.source_origin.as_deref()) {
        let made_from = [origin.source.as_deref(), origin.revision.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        if !made_from.is_empty() {
            let _ = write!(line, ", made from {made_from}");
        }
    }
    line
}

/// `status NAME`: one line per fact, labels aligned.
pub fn summary(sb: &SourceBuild, now: Timestamp) -> String {
    let status = sb.status.clone().unwrap_or_default();
    let mut rows: Vec<(&str, String)> = vec![(
        "Name",
        format!(
            "{} (namespace {})",
            sb.metadata.name.as_deref().unwrap_or_default(),
            sb.metadata.namespace.as_deref().unwrap_or_default()
        ),
    )];
    let phase = status
        .phase
        .map_or("not started".to_string(), |p| p.to_string());
    let build = match (status.observed_generation, status.build) {
        (Some(generation), Some(build)) => format!(" (generation {generation}, build {build})"),
        _ => String::new(),
    };
    rows.push(("Phase", format!("{phase}{build}")));
    rows.push((
        "Image",
        status
            .latest_image
            .clone()
            .unwrap_or_else(|| "none yet".into()),
    ));
    rows.push(("Source", source_line(sb)));
    rows.push((
        "Builder",
        status
            .builder_image
            .clone()
            .or_else(|| sb.spec.builder.image.clone())
            .unwrap_or_else(|| "the operator's default".into()),
    ));
    if let Some(took) = how_long(sb, now) {
        rows.push(("Took", took));
    }
    if let Some(pod) = &status.pod_name {
        rows.push(("Pod", pod.clone()));
    }
    if let Some(failure) = last_failure(sb) {
        rows.push(("Last failure", failure));
    }
    let width = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0) + 1;
    let mut text = String::new();
    for (label, value) in rows {
        let _ = writeln!(text, "{:<width$} {value}", format!("{label}:"));
    }
    if let Some(snippet) = status
        .log_snippet
        .as_deref()
        .filter(|_| status.phase == Some(crate::api::Phase::Failed))
    {
        let _ = writeln!(text, "Log:\n{}", indent(snippet));
    }
    text
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("  {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `list`: a table, one SourceBuild a row.
pub fn table(items: &[SourceBuild], now: Timestamp) -> String {
    let mut rows = vec![[
        "NAME".to_string(),
        "PHASE".to_string(),
        "IMAGE".to_string(),
        "TOOK".to_string(),
        "REASON".to_string(),
    ]];
    for sb in items {
        let status = sb.status.clone().unwrap_or_default();
        let reason = status
            .condition("Succeeded")
            .filter(|c| c.status == "False")
            .map(|c| c.reason.clone())
            .unwrap_or_default();
        rows.push([
            sb.metadata.name.clone().unwrap_or_default(),
            status.phase.map_or("-".into(), |p| p.to_string()),
            status.latest_image.unwrap_or_else(|| "-".into()),
            how_long(sb, now).unwrap_or_else(|| "-".into()),
            reason,
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for row in rows {
        let line = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("   ");
        let _ = writeln!(text, "{}", line.trim_end());
    }
    text
}

/// A finished build as `status.history` keeps it.
pub fn record(record: &BuildRecord) -> String {
    let mut text = format!(
        "generation {} build {}: {}",
        record.generation, record.build, record.phase
    );
    if let Some(reason) = &record.reason {
        let _ = write!(text, " ({reason})");
    }
    if let Some(took) = between(record.start_time.as_ref(), record.completion_time.as_ref()) {
        let _ = write!(text, " in {}", human(took));
    }
    if let Some(revision) = &record.source_revision {
        let _ = write!(text, ", source {revision}");
    }
    if let Some(digest) = &record.digest {
        let _ = write!(text, ", image {digest}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Phase, SourceBuildStatus, SourceOrigin};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    fn failed() -> SourceBuild {
        let mut sb: SourceBuild = serde_json::from_value(serde_json::json!({
            "apiVersion": "sourcebuild.dev/v1alpha1", "kind": "SourceBuild",
            "metadata": {"name": "app", "namespace": "team"},
            "spec": {"source": {"oci": {"image": "r.example.com/app/source@sha256:aa"}},
                     "output": {"image": "r.example.com/app:1"}}
        }))
        .unwrap();
        sb.status = Some(SourceBuildStatus {
            phase: Some(Phase::Failed),
            observed_generation: Some(2),
            build: Some(1),
            start_time: Some(Time(at(0))),
            completion_time: Some(Time(at(75))),
            latest_image: Some("r.example.com/app@sha256:bb".into()),
            source_revision: Some("sha256:aa".into()),
            source_origin: Some(Box::new(SourceOrigin {
                source: Some("https://example.com/app".into()),
                revision: None,
            })),
            log_snippet: Some("ERROR: boom".into()),
            conditions: vec![Condition {
                type_: "Succeeded".into(),
                status: "False".into(),
                reason: "AssembleFailed".into(),
                message: "assemble exited 1".into(),
                last_transition_time: Time(at(75)),
                observed_generation: Some(2),
            }],
            ..SourceBuildStatus::default()
        });
        sb
    }

    #[test]
    fn a_failed_build_says_why_with_its_log() {
        let text = summary(&failed(), at(100));
        for expected in [
            "Name:         app (namespace team)\n",
            "Phase:        Failed (generation 2, build 1)\n",
            "Image:        r.example.com/app@sha256:bb\n",
            "Source:       oci://r.example.com/app/source@sha256:aa (revision sha256:aa), made from https://example.com/app\n",
            "Took:         1m15s\n",
            "Last failure: AssembleFailed: assemble exited 1\n",
            "Log:\n  ERROR: boom",
        ] {
            assert!(text.contains(expected), "{expected:?} not in:\n{text}");
        }
    }

    #[test]
    fn the_table_aligns_columns() {
        let mut running = failed();
        running.metadata.name = Some("a-much-longer-name".into());
        let status = running.status.as_mut().unwrap();
        status.phase = Some(Phase::Running);
        status.completion_time = None;
        status.conditions.clear();
        let text = table(&[failed(), running], at(30));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("NAME                 PHASE"), "{text}");
        assert_eq!(
            lines[0].find("REASON"),
            lines[1].find("AssembleFailed"),
            "{text}"
        );
        assert_eq!(lines[0].find("TOOK"), lines[2].find("30s so far"), "{text}");
        assert!(lines[2].ends_with("30s so far"), "{text}");
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(human(Duration::from_secs(5)), "5s");
        assert_eq!(human(Duration::from_secs(185)), "3m5s");
        assert_eq!(human(Duration::from_secs(7300)), "2h1m");
    }
}
