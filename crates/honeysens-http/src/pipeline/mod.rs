//! The event pipeline: classify → filter → store → fan out, in one path.
//!
//! [`ingest`] applies the division's event filters (drop or auto-resolve, with hit counters),
//! then hands the batch to [`honeysens_core::store::EventStore::ingest_events`], which stores
//! it, groups new events into incidents and enqueues the alert and SIEM jobs *in the same
//! transaction* — a crash never loses an alert, and replicas never double one. The
//! [`worker`] claims those jobs from the durable queue (`SKIP LOCKED` on PostgreSQL and
//! MariaDB, so several replicas share them) and delivers mail, webhooks and syslog through
//! `honeysens-notify`; the [`heartbeat`] loop raises sensor timeouts and recoveries and runs
//! retention.

pub mod heartbeat;
pub mod worker;

use crate::server::AppState;
use honeysens_core::ids::{DivisionId, FilterId};
use honeysens_core::model::{
    EventFilter, EventStatus, FilterAction, IngestOptions, IngestReport, NewEvent, Settings,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How this server runs the background side of the pipeline.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Run the job worker and the heartbeat loop in this process. Replicas may all run them.
    pub workers: bool,
    /// How often an idle worker looks for due jobs (retries, jobs of other replicas); new jobs
    /// of this replica wake it at once.
    pub poll: Duration,
    /// Period of the sensor heartbeat check and of retention.
    pub heartbeat: Duration,
    /// Extra PEM CA certificates trusted for SMTP, webhook and syslog TLS (private CAs).
    pub extra_root_pem: Option<String>,
    /// Link to the web console put into alerts.
    pub console_url: Option<String>,
    /// Name of this worker in job leases (defaults to host name and process id).
    pub worker_id: String,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            workers: true,
            poll: Duration::from_secs(1),
            heartbeat: Duration::from_secs(15),
            extra_root_pem: None,
            console_url: None,
            worker_id: format!(
                "{}-{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "server".into()),
                std::process::id()
            ),
        }
    }
}

/// Shared pipeline state: options and the wake-up of the local worker.
#[derive(Debug)]
pub struct Pipeline {
    /// Options in force.
    pub options: PipelineOptions,
    /// Notified whenever this replica enqueued jobs.
    pub wake: Notify,
}

impl Pipeline {
    /// A pipeline with `options`.
    pub fn new(options: PipelineOptions) -> Arc<Self> {
        Arc::new(Pipeline {
            options,
            wake: Notify::new(),
        })
    }
}

/// What [`ingest`] did.
#[derive(Debug, Default)]
pub struct IngestOutcome {
    /// What the store did with the events that passed the filters.
    pub report: IngestReport,
    /// Uids dropped by a filter (accepted, never stored).
    pub dropped: Vec<uuid::Uuid>,
}

/// The settings, from the hot-path cache when fresh.
pub async fn settings(st: &AppState) -> honeysens_core::Result<Settings> {
    if let Some(s) = st.cache.settings() {
        return Ok(s);
    }
    let generation = st.cache.generation();
    let s = st.store.get_settings().await?;
    st.cache.put_settings(s.clone(), generation);
    Ok(s)
}

/// The enabled filters of a division in id order, from the hot-path cache when fresh.
pub async fn division_filters(
    st: &AppState,
    division: DivisionId,
) -> honeysens_core::Result<Arc<Vec<EventFilter>>> {
    if let Some(f) = st.cache.filters(division) {
        return Ok(f);
    }
    let generation = st.cache.generation();
    let mut filters = st.store.list_filters(Some(&[division])).await?;
    filters.retain(|f| f.spec.enabled);
    filters.sort_by_key(|f| f.id);
    let filters = Arc::new(filters);
    st.cache.put_filters(division, filters.clone(), generation);
    Ok(filters)
}

/// The first filter (by id) matching the event decides; no match stores it as `new`.
fn apply_filters(filters: &[EventFilter], ev: &NewEvent) -> Option<(FilterId, FilterAction)> {
    filters
        .iter()
        .find(|f| f.spec.matches(&ev.data))
        .map(|f| (f.id, f.spec.action))
}

/// Filters, stores and fans out a batch of validated, classified events of one division.
pub async fn ingest(
    st: &AppState,
    division: DivisionId,
    events: Vec<NewEvent>,
) -> honeysens_core::Result<IngestOutcome> {
    let settings = settings(st).await?;
    let filters = division_filters(st, division).await?;
    let mut hits: BTreeMap<FilterId, u64> = BTreeMap::new();
    let mut dropped = Vec::new();
    let mut rows = Vec::with_capacity(events.len());
    for ev in events {
        let status = match apply_filters(&filters, &ev) {
            Some((id, action)) => {
                *hits.entry(id).or_default() += 1;
                match action {
                    FilterAction::Drop => {
                        dropped.push(ev.data.uid);
                        continue;
                    }
                    FilterAction::Resolve => EventStatus::Resolved,
                }
            }
            None => EventStatus::New,
        };
        rows.push((ev, division, status));
    }
    let report = if rows.is_empty() {
        IngestReport::default()
    } else {
        st.store
            .ingest_events(&rows, &ingest_options(&settings))
            .await?
    };
    for (id, n) in hits {
        // A filter deleted meanwhile has nobody to count for.
        match st.store.add_filter_hits(id, n).await {
            Ok(()) | Err(honeysens_core::Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    if !report.inserted.is_empty() {
        st.pipeline.wake.notify_one();
    }
    Ok(IngestOutcome { report, dropped })
}

/// Ingest options from the settings: incidents and alerts always, SIEM forwarding when on.
pub fn ingest_options(settings: &Settings) -> IngestOptions {
    IngestOptions {
        incident_window: Some(Duration::from_secs(u64::from(
            settings.alerts.incident_window_secs,
        ))),
        alert_interval: Duration::from_secs(u64::from(settings.alerts.alert_interval_secs)),
        alerts: true,
        forward: settings.syslog.enabled,
    }
}
