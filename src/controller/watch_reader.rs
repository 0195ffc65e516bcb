//! Each watch is read on a task of its own, not on the controller's.
//!
//! kube-runtime polls its trigger streams from the one task that also polls every running
//! reconcile. In a burst that task is busy planning and serializing hundreds of writes, and
//! a watch's socket waits for it. The API server's cache hands each event to every watcher
//! through a buffer of as few as 10 events; once ours is full its dispatcher waits on us (up
//! to 100 ms at a time, 50 ms per second), which delays that resource's events for *every*
//! client, and then closes our watch. Measured on a 2-core machine in a burst of 1,000 builds
//! after a steady load: the operator's Pod watch among the watchers closed as unresponsive
//! (kube-apiserver `--v=1`: "Forcing pods watcher close due to unresponsiveness ... labels:
//! app.kubernetes.io/managed-by=sourcebuild-operator ... len(c.result) = 10"), the pods cache's
//! incoming queue full, and Pods reaching the watches 1-2 s after their create.
//!
//! A reader task takes events off the socket as they come and hands them over through a
//! bounded channel: a burst is absorbed in memory, and only a controller [`BUFFER`] events
//! behind slows the reader again, as it should.

use futures::{Stream, StreamExt};

/// Events a reader runs ahead of the controller at most. Our watched objects are slim
/// (`BuildPod`, `SourceBuild`), so a full buffer is a few MiB at worst.
pub const BUFFER: usize = 1024;

/// `stream`, read on a task of its own. The task ends when `stream` ends or when the returned
/// stream is dropped.
pub fn on_own_task<S>(stream: S) -> impl Stream<Item = S::Item> + Send + 'static
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(BUFFER);
    let reader = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            if tx.send(item).await.is_err() {
                break;
            }
        }
    });
    futures::stream::unfold((rx, AbortOnDrop(reader)), |(mut rx, reader)| async move {
        let item = rx.recv().await?;
        Some((item, (rx, reader)))
    })
}

/// Stops the reader when nobody consumes its events any more.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn passes_every_item_in_order_and_ends_with_the_source() {
        let items: Vec<u32> = on_own_task(futures::stream::iter(0..5000)).collect().await;
        assert_eq!(items, (0..5000).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn reads_ahead_of_a_slow_consumer_up_to_the_buffer() {
        let read = Arc::new(AtomicUsize::new(0));
        let counted = read.clone();
        let source = futures::stream::iter(0..BUFFER * 4).inspect(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        let mut stream = Box::pin(on_own_task(source));
        // The consumer takes one item and then does nothing: the reader goes on alone.
        assert_eq!(stream.next().await, Some(0));
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let ahead = read.load(Ordering::SeqCst);
        assert!(
            (BUFFER..=BUFFER + 2).contains(&ahead),
            "read {ahead} items while the consumer held one"
        );
    }

    #[tokio::test]
    async fn dropping_the_stream_stops_the_reader() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
        let source = futures::stream::unfold(rx, |mut rx| async move {
            let item = rx.recv().await?;
            Some((item, rx))
        });
        let mut stream = Box::pin(on_own_task(source));
        tx.send(1).unwrap();
        assert_eq!(stream.next().await, Some(1));
        drop(stream);
        // The aborted reader drops the source, and with it the receiving end.
        tokio::time::timeout(std::time::Duration::from_secs(5), tx.closed())
            .await
            .expect("the reader is stopped");
    }
}
