//! Cooperative cancellation: the runner cancels on Ctrl-C; in-flight attempts end as `aborted` and no
//! further attempt starts.

use std::sync::Arc;

use tokio::sync::watch;

/// A cancellation flag shared by clones. Cancelling is permanent.
#[derive(Debug, Clone)]
pub struct Cancel {
    flag: Arc<watch::Sender<bool>>,
}

impl Default for Cancel {
    fn default() -> Self {
        Cancel::new()
    }
}

impl Cancel {
    pub fn new() -> Self {
        Cancel { flag: Arc::new(watch::Sender::new(false)) }
    }

    pub fn cancel(&self) {
        self.flag.send_replace(true);
    }

    pub fn is_cancelled(&self) -> bool {
        *self.flag.borrow()
    }

    /// Resolves once `cancel` has been called (immediately if it already was).
    pub async fn cancelled(&self) {
        let mut receiver = self.flag.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = receiver.wait_for(|cancelled| *cancelled).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn clones_share_the_flag_and_late_waiters_resolve_at_once() {
        let cancel = Cancel::new();
        let clone = cancel.clone();
        let waiter = tokio::spawn(async move { clone.cancelled().await });
        cancel.cancel();
        waiter.await.unwrap();
        assert!(cancel.is_cancelled());
        cancel.cancelled().await;
    }
}
