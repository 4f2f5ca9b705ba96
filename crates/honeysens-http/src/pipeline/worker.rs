//! The job worker: turns queued jobs into alerts, mails, webhook calls and syslog lines.
//!
//! Jobs come from the store's durable queue, so they survive restarts and are shared by
//! replicas (each claimed by one worker under a lease). An incident alert fans out into one
//! delivery job per mail batch and per webhook, so a failing webhook is retried (with
//! [`honeysens_notify::backoff`]) without mailing everybody again.

use super::settings;
use crate::server::AppState;
use honeysens_core::ids::{ContactId, DivisionId, EventId, IncidentId};
use honeysens_core::model::{
    ALERT_JOB, ContactTarget, Event, EventQuery, EventStatus, FORWARD_JOB, Incident, Job, NewEvent,
    NewJob, NotifyOn, PageRequest, Role, Settings, Severity, StatsBucket,
};
use honeysens_core::time::now;
use honeysens_notify::{
    AlertMessage, CaExpiryMessage, DeliveryError, Mailer, Message, Rendered, SummaryMessage,
    SyslogForwarder, WebhookClient,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, Semaphore};

/// Job kind of one mail to a list of recipients.
pub const MAIL_JOB: &str = "notify.email";
/// Job kind of one webhook call.
pub const WEBHOOK_JOB: &str = "notify.webhook";
/// Job kind of the weekly summary; payload `{"from", "until"}`.
pub const SUMMARY_JOB: &str = "summary.weekly";
/// Job kind of a CA expiry warning; payload `{"not_after", "days_left"}`.
pub const CA_EXPIRY_JOB: &str = "ca.expiry";
/// Every kind this worker runs.
pub const KINDS: [&str; 6] = [
    ALERT_JOB,
    FORWARD_JOB,
    MAIL_JOB,
    WEBHOOK_JOB,
    SUMMARY_JOB,
    CA_EXPIRY_JOB,
];

/// How long a claimed job is ours; a crashed worker's jobs are claimed again after it.
const LEASE: Duration = Duration::from_secs(120);
/// Jobs running at once.
const CLAIM: u32 = 32;
/// Events listed in an alert.
const ALERT_EVENTS: u32 = 20;

/// Payload of [`MAIL_JOB`].
#[derive(Debug, Serialize, Deserialize)]
pub struct MailJob {
    /// Recipients.
    pub to: Vec<String>,
    /// Rendered text.
    pub subject: String,
    /// Rendered text.
    pub body: String,
}

/// Payload of [`WEBHOOK_JOB`]: the contact is looked up at delivery, so its secret never
/// sits in the queue.
#[derive(Debug, Serialize, Deserialize)]
pub struct WebhookJob {
    /// The webhook contact.
    pub contact_id: ContactId,
    /// The message (its JSON is the request body).
    pub message: Message,
    /// `X-HoneySens-Delivery`: the same on every attempt, so receivers can drop repeats.
    #[serde(default = "uuid::Uuid::new_v4")]
    pub delivery: uuid::Uuid,
}

/// Why a job failed.
#[derive(Debug, thiserror::Error)]
enum JobError {
    /// Worth another attempt later.
    #[error("{0}")]
    Retry(String),
    /// Will not get better.
    #[error("{0}")]
    Permanent(String),
}

impl From<honeysens_core::Error> for JobError {
    fn from(e: honeysens_core::Error) -> Self {
        match e {
            honeysens_core::Error::Storage(_) => JobError::Retry(e.to_string()),
            other => JobError::Permanent(other.to_string()),
        }
    }
}

impl From<DeliveryError> for JobError {
    fn from(e: DeliveryError) -> Self {
        if e.is_retryable() {
            JobError::Retry(e.to_string())
        } else {
            JobError::Permanent(e.to_string())
        }
    }
}

/// State kept between jobs: the open syslog connection and the webhook client.
pub struct Worker {
    st: AppState,
    webhook: WebhookClient,
    syslog: Mutex<Option<(honeysens_core::model::SyslogSettings, SyslogForwarder)>>,
}

impl Worker {
    /// A worker for the server behind `st`.
    pub fn new(st: AppState) -> Result<Self, honeysens_notify::NotifyError> {
        let webhook = WebhookClient::new(
            Duration::from_secs(10),
            st.pipeline.options.extra_root_pem.as_deref(),
        )?;
        Ok(Worker {
            st,
            webhook,
            syslog: Mutex::new(None),
        })
    }

    /// Claims and runs jobs until the task is dropped. Up to [`CLAIM`] jobs run at once, each
    /// on its own task, so one slow receiver never holds up the next alert.
    pub async fn run(self) {
        let kinds: Vec<String> = KINDS.iter().map(|k| (*k).to_owned()).collect();
        let me: Arc<str> = self.st.pipeline.options.worker_id.clone().into();
        let worker = Arc::new(self);
        let slots = Arc::new(Semaphore::new(CLAIM as usize));
        loop {
            // Register for a wake-up before looking, so a job enqueued meanwhile is not missed.
            let woken = worker.st.pipeline.wake.notified();
            let free = slots.available_permits();
            if free == 0 {
                // Every slot busy: wait until one job finishes.
                if let Ok(p) = slots.clone().acquire_owned().await {
                    drop(p);
                }
                continue;
            }
            let limit = u32::try_from(free).unwrap_or(CLAIM);
            let jobs = match worker
                .st
                .store
                .claim_jobs(&me, Some(&kinds), limit, LEASE)
                .await
            {
                Ok(j) => j,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming jobs failed");
                    Vec::new()
                }
            };
            if jobs.is_empty() {
                let _ = tokio::time::timeout(worker.st.pipeline.options.poll, woken).await;
                continue;
            }
            for job in jobs {
                // Only this loop takes permits, and it claimed no more than were free.
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (w, me) = (worker.clone(), me.clone());
                tokio::spawn(async move {
                    w.finish(&me, job).await;
                    drop(permit);
                });
            }
        }
    }

    async fn finish(&self, me: &str, job: Job) {
        let result = self.run_job(&job).await;
        let store = &self.st.store;
        let recorded = match result {
            Ok(()) => store.complete_job(job.id, me).await,
            Err(e) => {
                let retry = match &e {
                    JobError::Retry(_) if job.attempts < job.max_attempts => {
                        // `attempts` counts this one: the first retry waits backoff(0).
                        let wait = honeysens_notify::backoff(job.attempts.saturating_sub(1));
                        chrono::Duration::from_std(wait).ok().map(|d| now() + d)
                    }
                    _ => None,
                };
                tracing::warn!(job = job.id.0, kind = %job.kind, attempt = job.attempts,
                    retry = retry.is_some(), error = %e, "job failed");
                store.fail_job(job.id, me, &e.to_string(), retry).await
            }
        };
        if let Err(e) = recorded {
            // Lost the lease (took longer than LEASE): another worker runs it again.
            tracing::warn!(job = job.id.0, error = %e, "could not record the job's outcome");
        }
    }

    async fn run_job(&self, job: &Job) -> Result<(), JobError> {
        let payload = job.payload.clone();
        let bad = |e: serde_json::Error| JobError::Permanent(format!("bad payload: {e}"));
        match job.kind.as_str() {
            ALERT_JOB => {
                #[derive(Deserialize)]
                struct P {
                    incident_id: IncidentId,
                }
                let p: P = serde_json::from_value(payload).map_err(bad)?;
                self.alert(p.incident_id).await
            }
            FORWARD_JOB => {
                #[derive(Deserialize)]
                struct P {
                    event_ids: Vec<EventId>,
                }
                let p: P = serde_json::from_value(payload).map_err(bad)?;
                self.forward(&p.event_ids).await
            }
            MAIL_JOB => {
                let p: MailJob = serde_json::from_value(payload).map_err(bad)?;
                let settings = settings(&self.st).await?;
                if !settings.smtp.enabled {
                    tracing::info!("mail delivery is off; dropping a mail job");
                    return Ok(());
                }
                let mailer = Mailer::new(
                    &settings.smtp,
                    self.st.pipeline.options.extra_root_pem.as_deref(),
                )
                .map_err(|e| JobError::Permanent(e.to_string()))?;
                let r = Rendered {
                    subject: p.subject,
                    body: p.body,
                };
                Ok(mailer.send(&p.to, &r).await?)
            }
            WEBHOOK_JOB => {
                let p: WebhookJob = serde_json::from_value(payload).map_err(bad)?;
                let contact = match self.st.store.get_contact(p.contact_id).await {
                    Ok(c) => c,
                    // Deleted meanwhile: nobody to tell.
                    Err(honeysens_core::Error::NotFound { .. }) => return Ok(()),
                    Err(e) => return Err(e.into()),
                };
                let ContactTarget::Webhook { url, secret } = &contact.spec.target else {
                    return Ok(());
                };
                Ok(self
                    .webhook
                    .post_delivery(url, secret.as_deref(), &p.message, p.delivery)
                    .await?)
            }
            SUMMARY_JOB => {
                #[derive(Deserialize)]
                struct P {
                    from: honeysens_core::time::Timestamp,
                    until: honeysens_core::time::Timestamp,
                }
                let p: P = serde_json::from_value(payload).map_err(bad)?;
                self.summary(p.from, p.until).await
            }
            CA_EXPIRY_JOB => {
                let p: CaExpiryMessage = serde_json::from_value(payload).map_err(bad)?;
                self.ca_expiry(p).await
            }
            other => Err(JobError::Permanent(format!("unknown job kind {other}"))),
        }
    }

    /// Sends the alert of an incident to every contact of its division that wants it.
    async fn alert(&self, id: IncidentId) -> Result<(), JobError> {
        let store = &self.st.store;
        let before = match store.begin_incident_alert(id, now()).await {
            Ok(i) => i,
            Err(honeysens_core::Error::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let incident = store.get_incident(id).await?;
        if incident.archived
            || !matches!(incident.status, EventStatus::New | EventStatus::InProgress)
        {
            // Somebody handled it before the alert went out.
            return Ok(());
        }
        let query = EventQuery {
            incident: Some(id),
            ..EventQuery::default()
        };
        self.raise_network_scan(&incident, &query).await?;
        let events = store
            .list_events(&query, &PageRequest::first(ALERT_EVENTS))
            .await?
            .items;
        let new_events = match before.last_alert_at {
            None => incident.event_count,
            Some(at) => {
                store
                    .count_events(&EventQuery {
                        from: Some(at),
                        ..query.clone()
                    })
                    .await?
            }
        };
        let msg = Message::Alert(AlertMessage {
            division: division_name(&self.st, incident.division_id).await,
            incident: incident.clone(),
            events,
            new_events,
            console_url: self.st.pipeline.options.console_url.clone(),
        });
        let critical = incident.severity >= Severity::High;
        let wants = |n: &NotifyOn| n.all_events || (critical && n.critical_events);
        let settings = settings(&self.st).await?;
        notify_contacts(&self.st, &settings, incident.division_id, &msg, wants).await?;
        Ok(())
    }

    /// One source on several sensors is a network scan: recorded once per incident as a
    /// server-raised `scan.network` event (it joins the incident and is listed in the alert).
    async fn raise_network_scan(
        &self,
        incident: &Incident,
        query: &EventQuery,
    ) -> Result<(), JobError> {
        if incident.sensor_count < 2 {
            return Ok(());
        }
        let store = &self.st.store;
        let marker = EventQuery {
            type_codes: vec!["scan.network".into()],
            ..query.clone()
        };
        if store.count_events(&marker).await? > 0 {
            return Ok(());
        }
        let Some(latest) = store
            .list_events(query, &PageRequest::first(1))
            .await?
            .items
            .pop()
        else {
            return Ok(());
        };
        let mut data = latest.data;
        data.uid = uuid::Uuid::new_v4();
        data.type_code = "scan.network".into();
        data.service = None;
        data.source_port = None;
        data.dest_ip = None;
        data.dest_port = None;
        data.timestamp = now();
        data.summary = format!(
            "{} probed {} sensors ({} events)",
            incident.source_ip, incident.sensor_count, incident.event_count
        );
        honeysens_core::taxonomy::classify(&mut data);
        let ev = NewEvent {
            data,
            details: Vec::new(),
            packets: Vec::new(),
        };
        super::ingest(&self.st, incident.division_id, vec![ev]).await?;
        Ok(())
    }

    /// The weekly summary: per division, the statistics of the past week to the contacts that
    /// want it.
    async fn summary(
        &self,
        from: honeysens_core::time::Timestamp,
        until: honeysens_core::time::Timestamp,
    ) -> Result<(), JobError> {
        let settings = settings(&self.st).await?;
        for d in self.st.store.list_divisions().await? {
            let query = EventQuery {
                divisions: Some(vec![d.id]),
                from: Some(from),
                until: Some(until),
                ..EventQuery::default()
            };
            let stats = self
                .st
                .store
                .event_stats(&query, StatsBucket::Day, 10)
                .await?;
            let msg = Message::Summary(SummaryMessage {
                division: d.name.clone(),
                from,
                until,
                stats,
            });
            notify_contacts(&self.st, &settings, d.id, &msg, |n| n.weekly_summary).await?;
        }
        Ok(())
    }

    /// Warns every admin with a mail address that the CA certificate expires soon.
    async fn ca_expiry(&self, msg: CaExpiryMessage) -> Result<(), JobError> {
        let settings = settings(&self.st).await?;
        let mut to: Vec<String> = self
            .st
            .store
            .list_users(None)
            .await?
            .into_iter()
            .filter(|u| u.spec.role == Role::Admin)
            .filter_map(|u| u.spec.email)
            .collect();
        to.sort();
        to.dedup();
        if to.is_empty() || !settings.smtp.enabled {
            tracing::warn!(
                days_left = msg.days_left,
                "the CA certificate expires soon; no admin can be mailed"
            );
            return Ok(());
        }
        let r = honeysens_notify::render(&Message::CaExpiry(msg), &settings.templates)
            .map_err(|e| JobError::Permanent(e.to_string()))?;
        let j = job(
            MAIL_JOB,
            &MailJob {
                to,
                subject: r.subject,
                body: r.body,
            },
            &settings,
        );
        self.st.store.enqueue_job(&j).await?;
        self.st.pipeline.wake.notify_one();
        Ok(())
    }

    /// Sends stored events to the SIEM over syslog.
    async fn forward(&self, ids: &[EventId]) -> Result<(), JobError> {
        let settings = settings(&self.st).await?;
        if !settings.syslog.enabled {
            return Ok(());
        }
        let mut events: Vec<Event> = Vec::with_capacity(ids.len());
        for id in ids {
            match self.st.store.get_event(*id).await {
                Ok(e) => events.push(e),
                // Deleted before it was forwarded.
                Err(honeysens_core::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut guard = self.syslog.lock().await;
        if guard.as_ref().is_none_or(|(s, _)| *s != settings.syslog) {
            let host = hostname();
            let fwd = SyslogForwarder::connect(&settings.syslog, &host).await?;
            *guard = Some((settings.syslog.clone(), fwd));
        }
        let Some((_, fwd)) = guard.as_mut() else {
            return Err(JobError::Retry("syslog connection missing".into()));
        };
        if let Err(e) = fwd.send_events(&events).await {
            // Reconnect from scratch on the next attempt.
            *guard = None;
            return Err(e.into());
        }
        Ok(())
    }
}

/// The server's host name for syslog headers.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "honeysens".to_owned())
}

/// A division's name for messages; its id when it cannot be read.
pub async fn division_name(st: &AppState, id: DivisionId) -> String {
    st.store
        .get_division(id)
        .await
        .map(|d| d.name)
        .unwrap_or_else(|_| format!("division {id}"))
}

/// Enqueues one mail job (all mail recipients) and one job per webhook for the contacts of
/// `division` that `wants` the message; wakes the worker.
pub async fn notify_contacts(
    st: &AppState,
    settings: &Settings,
    division: DivisionId,
    msg: &Message,
    wants: impl Fn(&NotifyOn) -> bool,
) -> honeysens_core::Result<usize> {
    let mut mail_to = Vec::new();
    let mut jobs = Vec::new();
    for c in st.store.list_contacts(Some(division)).await? {
        if !wants(&c.spec.notify) {
            continue;
        }
        match &c.spec.target {
            ContactTarget::Email { address } => mail_to.push(address.clone()),
            ContactTarget::User { user_id } => match st.store.get_user(*user_id).await {
                Ok(u) => mail_to.extend(u.spec.email),
                Err(honeysens_core::Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            },
            ContactTarget::Webhook { .. } => jobs.push(job(
                WEBHOOK_JOB,
                &WebhookJob {
                    contact_id: c.id,
                    message: msg.clone(),
                    delivery: uuid::Uuid::new_v4(),
                },
                settings,
            )),
        }
    }
    mail_to.sort();
    mail_to.dedup();
    if !mail_to.is_empty() && settings.smtp.enabled {
        match honeysens_notify::render(msg, &settings.templates) {
            Ok(r) => jobs.push(job(
                MAIL_JOB,
                &MailJob {
                    to: mail_to,
                    subject: r.subject,
                    body: r.body,
                },
                settings,
            )),
            // Templates are checked when saved; a failure here is logged, not retried.
            Err(e) => tracing::error!(error = %e, "rendering a notification failed"),
        }
    }
    let n = jobs.len();
    for j in jobs {
        st.store.enqueue_job(&j).await?;
    }
    if n > 0 {
        st.pipeline.wake.notify_one();
    }
    Ok(n)
}

fn job(kind: &str, payload: &impl Serialize, settings: &Settings) -> NewJob {
    NewJob {
        max_attempts: settings.alerts.max_attempts,
        ..NewJob::now(kind, serde_json::to_value(payload).unwrap_or_default())
    }
}
