//! At most [`MAX_WRITERS`] reconciles make API requests at once, and a reconcile that creates a
//! build Pod goes before any other that waits.
//!
//! kube-runtime's own concurrency limit is not used for this: once all its slots are busy it
//! parks due requests in a hash set and takes them back in the set's bucket order, so under a
//! steady stream of new requests some SourceBuilds wait until the stream ends (see
//! `docs/performance.md`). So the controller lets many reconciles run (they plan
//! without I/O, and most end there) and queues only those with requests to make, here, in
//! arrival order per priority.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Reconciles making API requests at once: enough for thousands of builds a minute, few enough
/// that a burst does not open thousands of requests that would only queue in the API server.
pub const MAX_WRITERS: usize = 64;

/// Who goes first when reconciles wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// A reconcile that creates a build Pod: a build waits on it.
    Start,
    /// Status writes, Events, deletions, reads.
    Other,
}

#[derive(Default)]
struct State {
    free: usize,
    starts: VecDeque<oneshot::Sender<()>>,
    others: VecDeque<oneshot::Sender<()>>,
}

impl State {
    /// Hands a freed permit to the first live waiter (starts first), or keeps it.
    fn release(&mut self) {
        while let Some(waiter) = self.starts.pop_front().or_else(|| self.others.pop_front()) {
            if waiter.send(()).is_ok() {
                return;
            }
        }
        self.free += 1;
    }
}

/// The gate. Cheap to clone: clones share the permits.
#[derive(Clone)]
pub struct WriteGate {
    state: Arc<Mutex<State>>,
}

impl Default for WriteGate {
    fn default() -> Self {
        Self::new(MAX_WRITERS)
    }
}

/// One reconcile's right to make requests; given back when dropped.
pub struct Permit {
    state: Arc<Mutex<State>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        lock(&self.state).release();
    }
}

/// A place in the queue: if the waiting future is dropped after a permit was handed to it,
/// the permit goes on to the next waiter instead of being lost.
struct Waiting {
    receiver: Option<oneshot::Receiver<()>>,
    state: Arc<Mutex<State>>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(mut receiver) = self.receiver.take() {
            receiver.close();
            if receiver.try_recv().is_ok() {
                lock(&self.state).release();
            }
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // A poisoned lock only means a thread panicked mid-update; the counts are still whole.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl WriteGate {
    /// A gate with `permits` permits.
    pub fn new(permits: usize) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                free: permits,
                ..State::default()
            })),
        }
    }

    /// A permit if one is free and nobody of the same or a higher priority waits.
    pub fn try_acquire(&self, priority: Priority) -> Option<Permit> {
        self.take(&mut lock(&self.state), priority)
    }

    fn take(&self, state: &mut State, priority: Priority) -> Option<Permit> {
        let ahead = match priority {
            Priority::Start => !state.starts.is_empty(),
            Priority::Other => !state.starts.is_empty() || !state.others.is_empty(),
        };
        (state.free > 0 && !ahead).then(|| {
            state.free -= 1;
            Permit {
                state: self.state.clone(),
            }
        })
    }

    /// Waits for a permit: at once as [`WriteGate::try_acquire`] would give one, else in
    /// arrival order, every waiting `Start` before any `Other`.
    pub async fn acquire(&self, priority: Priority) -> Permit {
        let receiver = {
            let mut state = lock(&self.state);
            if let Some(permit) = self.take(&mut state, priority) {
                return permit;
            }
            let (sender, receiver) = oneshot::channel();
            match priority {
                Priority::Start => state.starts.push_back(sender),
                Priority::Other => state.others.push_back(sender),
            }
            receiver
        };
        let mut waiting = Waiting {
            receiver: Some(receiver),
            state: self.state.clone(),
        };
        let receiver = waiting.receiver.as_mut().expect("set above");
        // The sender lives in the queue until it hands over a permit; the state outlives both.
        let handed = receiver.await.is_ok();
        waiting.receiver = None;
        debug_assert!(handed, "a queued sender was dropped without a permit");
        Permit {
            state: self.state.clone(),
        }
    }

    /// Reconciles waiting to create a build Pod.
    pub fn starts_waiting(&self) -> usize {
        let state = lock(&self.state);
        state.starts.iter().filter(|s| !s.is_closed()).count()
    }

    /// Reconciles waiting, of either priority (for tests).
    pub fn waiting(&self) -> usize {
        let state = lock(&self.state);
        state
            .starts
            .iter()
            .chain(&state.others)
            .filter(|s| !s.is_closed())
            .count()
    }

    /// Permits free now (for tests).
    pub fn free(&self) -> usize {
        lock(&self.state).free
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn permits_are_bounded_and_given_back() {
        let gate = WriteGate::new(2);
        let a = gate.acquire(Priority::Other).await;
        let _b = gate.acquire(Priority::Start).await;
        assert_eq!(gate.free(), 0);
        let third = tokio::spawn({
            let gate = gate.clone();
            async move { gate.acquire(Priority::Other).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!third.is_finished(), "a third permit was handed out");
        drop(a);
        let _c = tokio::time::timeout(Duration::from_secs(5), third)
            .await
            .expect("the freed permit reached the waiter")
            .unwrap();
        assert_eq!(gate.free(), 0);
    }

    #[tokio::test]
    async fn starts_go_first_then_arrival_order() {
        let gate = WriteGate::new(1);
        let held = gate.acquire(Priority::Other).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (name, priority) in [
            ("other-1", Priority::Other),
            ("start-1", Priority::Start),
            ("other-2", Priority::Other),
            ("start-2", Priority::Start),
        ] {
            let (task_gate, order) = (gate.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = task_gate.acquire(priority).await;
                order.lock().unwrap().push(name);
            }));
            // Queue them in this order.
            while gate.waiting() < tasks.len() {
                tokio::task::yield_now().await;
            }
        }
        assert_eq!(gate.starts_waiting(), 2);
        drop(held);
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(
            *order.lock().unwrap(),
            ["start-1", "start-2", "other-1", "other-2"]
        );
        assert_eq!(gate.free(), 1);
    }

    #[tokio::test]
    async fn a_free_permit_does_not_jump_the_queue() {
        let gate = WriteGate::new(1);
        let held = gate.acquire(Priority::Start).await;
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move { gate.acquire(Priority::Start).await }
        });
        while gate.starts_waiting() == 0 {
            tokio::task::yield_now().await;
        }
        // An `Other` arriving now waits behind the start, even the moment a permit is freed.
        drop(held);
        let other = gate.acquire(Priority::Other);
        let started = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        drop(started);
        let _other = tokio::time::timeout(Duration::from_secs(5), other)
            .await
            .expect("the other got the permit after the start");
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_loses_no_permit() {
        let gate = WriteGate::new(1);
        let held = gate.acquire(Priority::Other).await;
        // Queued, then cancelled (a reconcile dropped at shutdown).
        let cancelled =
            tokio::time::timeout(Duration::from_millis(20), gate.acquire(Priority::Start)).await;
        assert!(cancelled.is_err());
        assert_eq!(gate.starts_waiting(), 0, "a cancelled waiter still counts");
        drop(held);
        assert_eq!(gate.free(), 1);
        let _again = tokio::time::timeout(Duration::from_secs(5), gate.acquire(Priority::Other))
            .await
            .expect("the permit survived the cancelled waiter");
    }

    #[tokio::test]
    async fn a_permit_handed_to_a_waiter_that_is_dropped_goes_on() {
        let gate = WriteGate::new(1);
        let held = gate.acquire(Priority::Other).await;
        let mut first = Box::pin(gate.acquire(Priority::Start));
        // Poll once so it queues.
        assert!(futures::poll!(first.as_mut()).is_pending());
        let second = tokio::spawn({
            let gate = gate.clone();
            async move { gate.acquire(Priority::Start).await }
        });
        while gate.starts_waiting() < 2 {
            tokio::task::yield_now().await;
        }
        // The permit goes to `first`, which is dropped before it looks: `second` gets it.
        drop(held);
        drop(first);
        let _second = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("the permit went on")
            .unwrap();
    }
}
