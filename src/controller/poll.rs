//! Source polling (`spec.source.git.pollInterval`), the rules: when the remote is due to be
//! asked and what its answer does to status. Asking it is [`super::poll_remote`]; whether a
//! build starts because of it is decided with every other trigger, in [`super::plan::target`].

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::api::SourceBuild;
use crate::controller::status;

/// What asking the remote gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The commit the polled ref points at.
    Head(String),
    /// Why the remote could not be asked, or did not know the ref.
    Failed(String),
}

/// Whether the remote should be asked now: polling is on, the SourceBuild is not suspended and
/// its spec is valid, and the interval has passed since the last look (or the spec changed since).
pub fn due(sb: &SourceBuild, now: Timestamp) -> bool {
    let Some(interval) = sb.spec.poll_interval() else {
        return false;
    };
    // An invalid spec (pollInterval with a secretRef slipped past an older CRD, say) fails its
    // build with InvalidSpec; polling it would only start more such builds.
    if sb.spec.suspend || crate::validation::validate_spec(&sb.spec).is_err() {
        return false;
    }
    let generation = sb.metadata.generation.unwrap_or(1);
    let Some(source) = sb.status.as_ref().and_then(|s| s.source.as_ref()) else {
        return true;
    };
    source.checked_generation != Some(generation)
        || source
            .last_checked
            .as_ref()
            .is_none_or(|checked| elapsed(checked.0, now) >= interval)
}

/// How long until the remote is due again; `None` when nothing is polled.
pub fn next_check(sb: &SourceBuild, now: Timestamp) -> Option<Duration> {
    let interval = sb.spec.poll_interval().filter(|_| !sb.spec.suspend)?;
    let checked = sb.status.as_ref()?.source.as_ref()?.last_checked.as_ref()?;
    Some(interval.saturating_sub(elapsed(checked.0, now)))
}

fn elapsed(since: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(now.duration_since(since)).unwrap_or_default()
}

/// The SourceBuild as the plan should see it: with what `poll` found in `status.source` and
/// the `SourceReachable` condition, or without both when polling is off.
pub fn record_answer(sb: &SourceBuild, answer: Option<&Answer>, now: Timestamp) -> SourceBuild {
    let mut observed = sb.clone();
    let generation = sb.metadata.generation.unwrap_or(1);
    let old = sb.status.clone().unwrap_or_default();
    let new = match (sb.spec.poll_interval(), answer) {
        (None, _) => status::not_polled(&old),
        (Some(_), None) => return observed,
        (Some(_), Some(Answer::Head(head))) => {
            status::polled(&old, generation, Ok(head), &describe(sb), now)
        }
        (Some(_), Some(Answer::Failed(message))) => {
            status::polled(&old, generation, Err(message), &describe(sb), now)
        }
    };
    if new != old {
        observed.status = Some(new);
    }
    observed
}

/// The head polling saw that no build has started for yet: a `SourceChange` build is due.
/// Never the head the latest build was started for, nor the commit it resolved to.
pub fn new_head(sb: &SourceBuild) -> Option<String> {
    sb.spec.poll_interval()?;
    let generation = sb.metadata.generation.unwrap_or(1);
    let status = sb.status.as_ref()?;
    let source = status.source.as_ref()?;
    if source.checked_generation != Some(generation)
        || status.observed_generation != Some(generation)
    {
        return None;
    }
    let head = source.latest_revision.as_ref()?;
    let known = source.built_revision.as_ref() == Some(head)
        || status.source_revision.as_ref() == Some(head);
    (!known).then(|| head.clone())
}

/// `branch main of https://…`: what is polled, for messages.
pub fn describe(sb: &SourceBuild) -> String {
    let url = crate::source::location(&sb.spec.source);
    match sb
        .spec
        .source
        .git
        .as_ref()
        .and_then(|g| g.revision.as_deref())
    {
        Some(revision) => format!("{revision} of {url}"),
        None => format!("HEAD of {url}"),
    }
}
