//! Following a build to its end: a line per phase change with the elapsed time, a spinner while
//! nothing changes (only on a terminal), the build Pod's logs as they come (prepare, then
//! Kaniko), and at the end the image or the failure.
//!
//! The SourceBuild is read once a second rather than watched: a watch would need `watch` RBAC
//! on top of `get`, and a second's delay is nothing next to a build.

use std::io::Write;
use std::time::{Duration, Instant};

use futures::{AsyncBufReadExt, StreamExt};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::LogParams;
use tokio::sync::mpsc;

use super::PluginError;
use crate::api::{Phase, SourceBuild, SourceBuildStatus};
use crate::pod::LOG_CONTAINERS;

/// Which build is followed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Target {
    /// The spec generation that was applied.
    pub generation: i64,
    /// For a rebuild: the `sourcebuild.dev/rebuild` value set, which status echoes once the
    /// controller acted on it.
    pub rebuild: Option<String>,
}

/// Whether `status` describes the end of the target build: the right generation (and rebuild),
/// a final phase, and no retry pending.
pub fn finished(status: &SourceBuildStatus, target: &Target) -> bool {
    status.observed_generation == Some(target.generation)
        && target
            .rebuild
            .as_ref()
            .is_none_or(|value| status.rebuild.as_ref() == Some(value))
        && status.phase.is_some_and(Phase::is_final)
        && status.next_attempt_time.is_none()
}

/// Whether `status` already describes the target build (finished or not): its Pod is ours.
fn current(status: &SourceBuildStatus, target: &Target) -> bool {
    status.observed_generation == Some(target.generation)
        && target
            .rebuild
            .as_ref()
            .is_none_or(|value| status.rebuild.as_ref() == Some(value))
}

/// The phase line for a status: `Running (pod app-build-2)`.
pub fn phase_line(status: &SourceBuildStatus) -> String {
    let phase = status
        .phase
        .map_or("Waiting".to_string(), |p| p.to_string());
    let mut line = phase;
    if let Some(condition) = status.condition("Succeeded")
        && status.phase == Some(Phase::Pending)
        && !condition.message.is_empty()
    {
        line.push_str(": ");
        line.push_str(&condition.message);
    }
    if let Some(pod) = &status.pod_name {
        line.push_str(&format!(" (pod {pod})"));
    }
    line
}

fn spinner() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Streams the logs of `pod`'s `container` line by line into `lines` (each marked
/// `[container]` when `mark`), from its start to its end. A container not started yet is asked
/// again until it is, the Pod ends without it, or the task is dropped. False when nobody listens
/// any more.
pub async fn stream_container_logs(
    pods: &Api<Pod>,
    pod: &str,
    container: &str,
    mark: bool,
    lines: &mpsc::UnboundedSender<String>,
) -> bool {
    let params = LogParams {
        container: Some(container.to_string()),
        follow: true,
        ..LogParams::default()
    };
    let stream = loop {
        match pods.log_stream(pod, &params).await {
            Ok(stream) => break stream,
            Err(_) => {
                // A Pod that ended (or went) before this container started never will: a
                // failed build has no publish log.
                let ended = match pods.get_opt(pod).await {
                    Ok(None) => true,
                    Ok(Some(p)) => p
                        .status
                        .and_then(|s| s.phase)
                        .is_some_and(|phase| phase == "Succeeded" || phase == "Failed"),
                    Err(_) => false,
                };
                if ended {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(500)).await
            }
        }
    };
    let mut reader = stream.lines();
    while let Some(Ok(line)) = reader.next().await {
        let line = if mark {
            format!("[{container}] {line}")
        } else {
            line
        };
        if lines.send(line).is_err() {
            return false;
        }
    }
    true
}

/// The build's containers' logs, one after the other, into `lines`.
async fn stream_logs(pods: Api<Pod>, pod: String, lines: mpsc::UnboundedSender<String>) {
    for container in LOG_CONTAINERS {
        if !stream_container_logs(&pods, &pod, container, true, &lines).await {
            return;
        }
    }
}

/// Follows the target build of `name` until it ends, `limit` passes or Ctrl-C. Progress goes to
/// stderr; the image (`repository@sha256:...`) is returned on success.
pub async fn follow(
    client: kube::Client,
    namespace: &str,
    name: &str,
    target: &Target,
    limit: Duration,
    show_logs: bool,
) -> Result<String, PluginError> {
    // Listening from here on, before saying so: a Ctrl-C after the line below is always ours.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| PluginError::BadInput(format!("listening for Ctrl-C: {e}")))?;
    eprintln!("following sourcebuild {name} (Ctrl-C stops following, not the build)");
    let builds: Api<SourceBuild> = Api::namespaced(client.clone(), namespace);
    let pods: Api<Pod> = Api::namespaced(client, namespace);
    let start = Instant::now();
    let bar = spinner();
    let say = |text: &str| bar.suspend(|| eprintln!("{text}"));
    let (log_tx, mut log_rx) = mpsc::unbounded_channel::<String>();
    let mut logs: Option<(String, tokio::task::JoinHandle<()>)> = None;
    let mut last_line = String::new();
    let stopped = |start: Instant| PluginError::Stopped {
        name: name.to_string(),
        namespace: namespace.to_string(),
        elapsed: start.elapsed(),
    };
    let status = loop {
        let sb = builds
            .get_opt(name)
            .await
            .map_err(|e| PluginError::api(format!("reading sourcebuild {name}"), e))?
            .ok_or_else(|| PluginError::NotFound {
                name: name.to_string(),
                namespace: namespace.to_string(),
            })?;
        let status = sb.status.unwrap_or_default();
        if current(&status, target) {
            let line = phase_line(&status);
            if line != last_line {
                say(&format!("{:>7.1}s  {line}", start.elapsed().as_secs_f64()));
                bar.set_message(line.clone());
                last_line = line;
            }
            if show_logs
                && let Some(pod) = &status.pod_name
                && logs.as_ref().is_none_or(|(streaming, _)| streaming != pod)
            {
                if let Some((_, task)) = logs.take() {
                    task.abort();
                }
                let task = tokio::spawn(stream_logs(pods.clone(), pod.clone(), log_tx.clone()));
                logs = Some((pod.clone(), task));
            }
        }
        if finished(&status, target) {
            break status;
        }
        if start.elapsed() >= limit {
            bar.finish_and_clear();
            return Err(stopped(start));
        }
        let tick = tokio::time::sleep(Duration::from_secs(1));
        tokio::pin!(tick);
        loop {
            tokio::select! {
                _ = &mut tick => break,
                Some(line) = log_rx.recv() => say(&line),
                _ = interrupt.recv() => {
                    bar.finish_and_clear();
                    return Err(stopped(start));
                }
            }
        }
    };
    // The log stream ends with the container; give it a moment to hand over its last lines.
    if let Some((_, task)) = logs.take() {
        let drain = async {
            while let Some(line) = log_rx.recv().await {
                say(&line);
            }
        };
        drop(log_tx);
        let _ =
            tokio::time::timeout(Duration::from_secs(3), async { tokio::join!(task, drain) }).await;
    }
    bar.finish_and_clear();
    outcome(&status)
}

/// The image of a finished build, or why there is none (with the log snippet on stderr).
pub fn outcome(status: &SourceBuildStatus) -> Result<String, PluginError> {
    if status.phase == Some(Phase::Succeeded)
        && let Some(image) = &status.latest_image
    {
        return Ok(image.clone());
    }
    let condition = status.condition("Succeeded");
    if let Some(snippet) = &status.log_snippet {
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "--- log snippet ---\n{snippet}\n---");
    }
    Err(PluginError::BuildFailed {
        phase: status.phase.map_or("ended".into(), |p| p.to_string()),
        reason: condition.map_or("Unknown".into(), |c| c.reason.clone()),
        message: condition.map_or(String::new(), |c| c.message.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn status(generation: i64, phase: Phase) -> SourceBuildStatus {
        SourceBuildStatus {
            observed_generation: Some(generation),
            phase: Some(phase),
            pod_name: Some(format!("app-build-{generation}")),
            ..SourceBuildStatus::default()
        }
    }

    #[test]
    fn only_the_target_builds_end_counts() {
        let target = Target {
            generation: 3,
            rebuild: None,
        };
        assert!(!finished(&status(2, Phase::Succeeded), &target));
        assert!(!finished(&status(3, Phase::Running), &target));
        assert!(finished(&status(3, Phase::Succeeded), &target));
        let mut retrying = status(3, Phase::Failed);
        retrying.next_attempt_time = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        assert!(!finished(&retrying, &target));
        let rebuild = Target {
            generation: 3,
            rebuild: Some("42".into()),
        };
        assert!(!finished(&status(3, Phase::Succeeded), &rebuild));
        let mut rebuilt = status(3, Phase::Succeeded);
        rebuilt.rebuild = Some("42".into());
        assert!(finished(&rebuilt, &rebuild));
    }

    #[test]
    fn a_failure_carries_the_reason_and_message() {
        let mut failed = status(3, Phase::Failed);
        failed
            .conditions
            .push(k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
                type_: "Succeeded".into(),
                status: "False".into(),
                reason: "AssembleFailed".into(),
                message: "assemble exited with code 1".into(),
                last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
                observed_generation: Some(3),
            });
        let error = outcome(&failed).unwrap_err();
        assert_eq!(
            error.to_string(),
            "build Failed: AssembleFailed: assemble exited with code 1"
        );
        assert_eq!(error.exit_code(), super::super::EXIT_BUILD_FAILED);
        let mut ok = status(3, Phase::Succeeded);
        ok.latest_image = Some("r/app@sha256:aa".into());
        assert_eq!(outcome(&ok).unwrap(), "r/app@sha256:aa");
        assert_eq!(phase_line(&ok), "Succeeded (pod app-build-3)");
    }
}
