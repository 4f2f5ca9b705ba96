//! Group commit of status reports.
//!
//! Thousands of sensors polling means thousands of small write transactions; on SQLite they
//! queue for the one writer. Every poll hands its report to one writer task and waits for it:
//! the task writes whatever has queued up meanwhile in one transaction, so a poll is still
//! answered only after its report is stored, but a burst costs one commit. When a batch fails
//! (e.g. one sensor was deleted meanwhile), its reports are retried one by one so each poll
//! gets its own answer.

use honeysens_core::Store;
use honeysens_core::model::StatusReport;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

type Job = (StatusReport, oneshot::Sender<honeysens_core::Result<()>>);

/// Most reports per transaction.
const MAX_BATCH: usize = 256;

/// Handle to the writer task.
#[derive(Debug, Clone)]
pub struct StatusWriter {
    tx: mpsc::Sender<Job>,
}

impl StatusWriter {
    /// Starts the writer task on the current runtime; it ends when the last handle is dropped.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(store, rx));
        StatusWriter { tx }
    }

    /// Stores `report`; returns once it is committed.
    pub async fn record(&self, report: StatusReport) -> honeysens_core::Result<()> {
        let (done, wait) = oneshot::channel();
        let closed = || honeysens_core::Error::Storage("the status writer has stopped".into());
        self.tx.send((report, done)).await.map_err(|_| closed())?;
        wait.await.map_err(|_| closed())?
    }
}

async fn run(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let reports: Vec<StatusReport> = batch.iter().map(|(r, _)| r.clone()).collect();
        if store.record_statuses(&reports).await.is_ok() {
            for (_, done) in batch.drain(..) {
                let _ = done.send(Ok(()));
            }
        } else {
            for (report, done) in batch.drain(..) {
                let _ = done.send(store.record_status(&report).await);
            }
        }
    }
}
