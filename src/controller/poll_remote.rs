//! Asking a polled git remote for its head: off the async runtime (gix blocks), with a deadline.

use std::time::Duration;

use crate::api::GitSource;
use crate::controller::poll::Answer;

/// How long one look at the remote may take before it counts as failed.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(30);

/// Asks the remote for the head of `git.revision` on the blocking pool (gix and its HTTP
/// client block), giving up after [`POLL_TIMEOUT`]. A thread stuck past the deadline is left
/// to finish on its own; the reconcile goes on without it.
pub async fn ask(git: GitSource) -> Answer {
    let url = crate::source::location(&crate::api::Source {
        git: Some(git.clone()),
        ..Default::default()
    });
    let asked = tokio::task::spawn_blocking(move || crate::source::git::ls_remote(&git));
    match tokio::time::timeout(POLL_TIMEOUT, asked).await {
        Ok(Ok(Ok(head))) => Answer::Head(head),
        Ok(Ok(Err(crate::source::GitError::Unauthenticated { url, .. }))) => {
            Answer::Failed(format!(
                "{url} asks for credentials, and polling asks anonymously (the controller never \
             reads Secrets)"
            ))
        }
        Ok(Ok(Err(error))) => Answer::Failed(error.to_string()),
        Ok(Err(join)) => Answer::Failed(format!("asking {url} for its head failed: {join}")),
        Err(_) => Answer::Failed(format!(
            "{url} did not answer within {}",
            humantime::format_duration(POLL_TIMEOUT)
        )),
    }
}
