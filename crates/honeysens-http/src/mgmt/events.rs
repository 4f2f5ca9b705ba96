//! Events: listing with every filter of the old console, details, bulk changes by ids or by
//! filter, deletion, statistics and a streamed CSV / JSON Lines export.
//!
//! Everybody reads the events of their divisions (admins: all); events of other divisions are
//! "not found" or simply absent from listings. Admins and managers change events; deleting
//! needs the setting `managers_may_delete_events` for managers. Filters arrive as query
//! parameters (comma lists) or, for bulk requests, as the same fields in JSON, all strings, so
//! one parser serves both.

use super::openapi::ErrorResponses;
use super::page::QueryParams;
use super::principal::{Principal, require_role};
use super::{JsonBody, audit, parse_id};
use crate::error::ApiError;
use crate::server::AppState;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use honeysens_core::ids::{DivisionId, EventId, IncidentId, SensorId};
use honeysens_core::model::{
    Classification, Event, EventCursor, EventPayload, EventQuery, EventSelection, EventStats,
    EventStatus, EventUpdate, IpMatch, MAX_PAGE_SIZE, MAX_STATS_TOP, Page, PageRequest, Protocol,
    Role, Severity, SortOrder, StatsBucket,
};
use honeysens_core::time::Timestamp;
use honeysens_core::{Error, Store};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Default page size of event listings.
pub const DEFAULT_EVENT_LIMIT: u32 = 50;
/// Rows fetched per store round trip while exporting.
pub const EXPORT_PAGE: u32 = 500;
/// Most ids one bulk request may name (each becomes a bound SQL parameter; the backends cap
/// those at 32,766–65,535 per statement).
pub const MAX_BULK_IDS: usize = 10_000;

/// 422 on `ids` when a bulk request names too many.
pub fn check_bulk_ids(n: usize) -> Result<(), ApiError> {
    if n > MAX_BULK_IDS {
        return Err(Error::invalid(
            "ids",
            "too_many",
            format!("at most {MAX_BULK_IDS} ids per request; select by filter instead"),
        )
        .into());
    }
    Ok(())
}

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_events))
        .routes(routes!(event_stats))
        .routes(routes!(export_events))
        .routes(routes!(bulk_update_events))
        .routes(routes!(delete_events))
        .routes(routes!(get_event))
        .routes(routes!(get_event_payload))
}

/// Event conditions as query parameters (`GET`) or JSON strings (bulk `filter`). Lists are
/// comma-separated; every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct EventFilterParams {
    /// Division ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub division: Option<String>,
    /// Sensor ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensor: Option<String>,
    /// Classifications (`unknown`, `icmp`, `connection_attempt`, `honeypot_interaction`,
    /// `port_scan`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<String>,
    /// Type codes, e.g. `ssh.login.failed`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_code: Option<String>,
    /// Statuses (`new`, `in_progress`, `resolved`, `ignored`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Severities (`info`, `low`, `medium`, `high`, `critical`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// Event time at or after (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Event time before (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Case-insensitive text in source address, summary or comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    /// Source: an address, a CIDR network or a range `a-b` (compared numerically).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// Protocol (`tcp`, `udp`, `icmp`, `unknown`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// `false` (default): live events; `true`: archived ones; `all`: both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived: Option<String>,
    /// Incident id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
}

/// Keyset paging of event listings.
#[derive(Debug, Clone, Default, Deserialize, Serialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventPaging {
    /// `desc` (default, newest first) or `asc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(inline)]
    pub order: Option<SortOrder>,
    /// Page size, 1 to 512 (default 50).
    #[param(minimum = 1, maximum = 512)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

impl EventPaging {
    /// The store's page request; 422 on a bad size or cursor.
    pub fn request(&self) -> Result<PageRequest, ApiError> {
        let page = PageRequest {
            after: self.after.as_deref().map(EventCursor::decode).transpose()?,
            limit: self.limit.unwrap_or(DEFAULT_EVENT_LIMIT),
            order: self.order.unwrap_or_default(),
        };
        page.validate()?;
        Ok(page)
    }
}

/// One page of a time-ordered listing (events, incidents).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CursorPage<T> {
    /// The rows.
    pub items: Vec<T>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub next: Option<String>,
}

impl<T> From<Page<T>> for CursorPage<T> {
    fn from(p: Page<T>) -> Self {
        CursorPage {
            items: p.items,
            next: p.next.map(|c| c.encode()),
        }
    }
}

impl<T> CursorPage<T> {
    /// A page without rows.
    pub fn empty() -> Self {
        CursorPage {
            items: Vec::new(),
            next: None,
        }
    }
}

fn list<T>(
    errors: &mut honeysens_core::error::ValidationErrors,
    field: &str,
    raw: &Option<String>,
    parse: impl Fn(&str) -> Option<T>,
) -> Vec<T> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match parse(part) {
            Some(v) => out.push(v),
            None => errors.add(field, "invalid_value", format!("cannot parse {part:?}")),
        }
    }
    out
}

/// Parses an RFC 3339 time.
pub fn parse_time(
    errors: &mut honeysens_core::error::ValidationErrors,
    field: &str,
    raw: &Option<String>,
) -> Option<Timestamp> {
    let raw = raw.as_deref()?;
    match chrono::DateTime::parse_from_rfc3339(raw) {
        Ok(t) => Some(t.with_timezone(&chrono::Utc)),
        Err(_) => {
            errors.add(field, "invalid_time", "must be an RFC 3339 time");
            None
        }
    }
}

/// Parses `a.b.c.d`, `net/len` or `start-end`.
pub fn parse_ip_match(s: &str) -> Option<IpMatch> {
    let s = s.trim();
    if let Some((a, b)) = s.split_once('-') {
        let start: IpAddr = a.trim().parse().ok()?;
        let end: IpAddr = b.trim().parse().ok()?;
        return Some(IpMatch::Range { start, end });
    }
    if s.contains('/') {
        return s.parse().ok().map(|net: ipnet::IpNet| IpMatch::Net { net });
    }
    s.parse().ok().map(|addr| IpMatch::Addr { addr })
}

impl EventFilterParams {
    /// Whether no condition is set (so the filter selects every event).
    pub fn is_empty(&self) -> bool {
        *self == EventFilterParams::default()
    }

    /// The store query, without the caller's division scope; 422 naming each bad field.
    pub fn to_query(&self) -> Result<EventQuery, ApiError> {
        let mut e = honeysens_core::error::ValidationErrors::default();
        let divisions = list(&mut e, "division", &self.division, |s| {
            s.parse().ok().map(DivisionId)
        });
        let q = EventQuery {
            divisions: if divisions.is_empty() {
                None
            } else {
                Some(divisions)
            },
            sensors: list(&mut e, "sensor", &self.sensor, |s| {
                s.parse().ok().map(SensorId)
            }),
            classifications: list(&mut e, "classification", &self.classification, |s| {
                Classification::parse(s).ok()
            }),
            type_codes: list(&mut e, "type", &self.type_code, |s| {
                honeysens_core::model::valid_type_code(s).then(|| s.to_owned())
            }),
            statuses: list(&mut e, "status", &self.status, |s| {
                EventStatus::parse(s).ok()
            }),
            severities: list(&mut e, "severity", &self.severity, |s| {
                Severity::parse(s).ok()
            }),
            from: parse_time(&mut e, "from", &self.from),
            until: parse_time(&mut e, "until", &self.until),
            archived: match self.archived.as_deref() {
                None | Some("false") => Some(false),
                Some("true") => Some(true),
                Some("all") => None,
                Some(_) => {
                    e.add("archived", "invalid_value", "must be true, false or all");
                    None
                }
            },
            source: match self.source.as_deref() {
                None => None,
                Some(s) => {
                    let m = parse_ip_match(s);
                    if m.is_none() {
                        e.add(
                            "source",
                            "invalid_value",
                            "must be an address, a CIDR network or a range a-b",
                        );
                    }
                    m
                }
            },
            dest_port: match self.port.as_deref() {
                None => None,
                Some(s) => match s.trim().parse::<u16>() {
                    Ok(p) if p > 0 => Some(p),
                    _ => {
                        e.add("port", "out_of_range", "must be between 1 and 65535");
                        None
                    }
                },
            },
            protocol: match self.protocol.as_deref() {
                None => None,
                Some(s) => {
                    let p = Protocol::parse(s.trim()).ok();
                    if p.is_none() {
                        e.add("protocol", "invalid_value", "unknown protocol");
                    }
                    p
                }
            },
            text: self.q.clone().filter(|t| !t.is_empty()),
            incident: match self.incident.as_deref() {
                None => None,
                Some(s) => {
                    let i = s.trim().parse().ok().map(IncidentId);
                    if i.is_none() {
                        e.add("incident", "invalid_value", "must be an incident id");
                    }
                    i
                }
            },
        };
        e.into_result()?;
        q.validate()?;
        Ok(q)
    }
}

/// Restricts `q` to the divisions `p` may see. `None`: the caller sees nothing of what was
/// asked (a division of someone else), so the answer is empty without asking the store.
pub fn scope(p: &Principal, mut q: EventQuery) -> Option<EventQuery> {
    if p.all_divisions {
        return Some(q);
    }
    let allowed: Vec<DivisionId> = match q.divisions.take() {
        Some(asked) => asked.into_iter().filter(|d| p.sees(*d)).collect(),
        None => p.divisions.clone(),
    };
    if allowed.is_empty() {
        return None;
    }
    q.divisions = Some(allowed);
    Some(q)
}

async fn visible_event(st: &AppState, p: &Principal, id: EventId) -> Result<Event, ApiError> {
    let ev = st.store.get_event(id).await?;
    if !p.sees(ev.division_id) {
        return Err(Error::not_found("event").into());
    }
    Ok(ev)
}

/// `GET /api/events`.
#[utoipa::path(get, path = "/api/events", tag = "events", params(EventFilterParams, EventPaging), responses((status = 200, description = "One page of the caller's events", body = CursorPage<Event>), ErrorResponses))]
pub async fn list_events(
    State(st): State<AppState>,
    p: Principal,
    QueryParams(f): QueryParams<EventFilterParams>,
    QueryParams(paging): QueryParams<EventPaging>,
) -> Result<Json<CursorPage<Event>>, ApiError> {
    let page = paging.request()?;
    let Some(q) = scope(&p, f.to_query()?) else {
        return Ok(Json(CursorPage::empty()));
    };
    Ok(Json(st.store.list_events(&q, &page).await?.into()))
}

/// `GET /api/events/{id}`.
#[utoipa::path(get, path = "/api/events/{id}", tag = "events", params(("id" = i64, Path, description = "event id")), responses((status = 200, description = "The event", body = Event), ErrorResponses))]
pub async fn get_event(
    State(st): State<AppState>,
    p: Principal,
    Path(raw): Path<String>,
) -> Result<Json<Event>, ApiError> {
    let id = EventId(parse_id(&raw, "event")?);
    Ok(Json(visible_event(&st, &p, id).await?))
}

/// `GET /api/events/{id}/payload`: details and packets.
#[utoipa::path(get, path = "/api/events/{id}/payload", tag = "events", params(("id" = i64, Path, description = "event id")), responses((status = 200, description = "Details and packets", body = EventPayload), ErrorResponses))]
pub async fn get_event_payload(
    State(st): State<AppState>,
    p: Principal,
    Path(raw): Path<String>,
) -> Result<Json<EventPayload>, ApiError> {
    let id = EventId(parse_id(&raw, "event")?);
    visible_event(&st, &p, id).await?;
    Ok(Json(st.store.get_event_payload(id).await?))
}

/// Which events a bulk request addresses.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
pub struct EventSelector {
    /// These events (combined with `filter` when both are given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<EventId>>,
    /// Events matching these conditions (same fields as the query of `GET /api/events`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<EventFilterParams>,
    /// Must be `true` to select without ids and without any condition (every event).
    #[serde(default)]
    pub all: bool,
}

impl EventSelector {
    /// The store selection within the caller's scope; `None` when nothing can match.
    fn selection(&self, p: &Principal) -> Result<Option<EventSelection>, ApiError> {
        check_bulk_ids(self.ids.as_ref().map_or(0, Vec::len))?;
        let unconditional = self.filter.as_ref().is_none_or(EventFilterParams::is_empty);
        if self.ids.is_none() && unconditional && !self.all {
            return Err(Error::invalid(
                "filter",
                "required",
                "give ids or a non-empty filter (or all: true to select every event)",
            )
            .into());
        }
        let base = match &self.filter {
            Some(f) => f.to_query()?,
            // By ids alone: archived or not.
            None => EventQuery::default(),
        };
        if let Some(ids) = &self.ids
            && ids.is_empty()
        {
            return Ok(None);
        }
        Ok(scope(p, base).map(|query| EventSelection {
            ids: self.ids.clone(),
            query,
        }))
    }
}

/// `POST /api/events/bulk` body.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct BulkEventUpdate {
    /// The selection.
    #[serde(flatten)]
    pub select: EventSelector,
    /// The change.
    pub update: EventUpdate,
}

/// `POST /api/events/delete` body.
pub type BulkEventDelete = EventSelector;

/// How many events a bulk update changed.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
pub struct Updated {
    /// Changed rows.
    pub updated: u64,
}

/// How many events were deleted.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
pub struct Deleted {
    /// Deleted rows.
    pub deleted: u64,
}

/// 422 on `comment` when the settings require a comment with every status change.
pub async fn check_comment_rule(
    st: &AppState,
    status_changes: bool,
    comment: &Option<Option<String>>,
) -> Result<(), ApiError> {
    if !status_changes {
        return Ok(());
    }
    let has_comment = matches!(comment, Some(Some(c)) if !c.trim().is_empty());
    if !has_comment && st.store.get_settings().await?.require_event_comment {
        return Err(
            Error::invalid("comment", "required", "a status change needs a comment").into(),
        );
    }
    Ok(())
}

/// `POST /api/events/bulk` (admin, manager): changes status, comment or archive flag of the
/// events selected by ids or by filter (all pages).
#[utoipa::path(post, path = "/api/events/bulk", tag = "events", request_body = BulkEventUpdate, responses((status = 200, description = "How many events changed", body = Updated), ErrorResponses))]
pub async fn bulk_update_events(
    State(st): State<AppState>,
    p: Principal,
    JsonBody(body): JsonBody<BulkEventUpdate>,
) -> Result<Json<Updated>, ApiError> {
    require_role(&p, Role::Manager)?;
    body.update.validate()?;
    let selection = body.select.selection(&p)?;
    check_comment_rule(&st, body.update.status.is_some(), &body.update.comment).await?;
    let updated = match &selection {
        Some(sel) => st.store.update_events(sel, &body.update).await?,
        None => 0,
    };
    audit(
        &st,
        &p,
        "event.bulk_update",
        "events".into(),
        serde_json::json!({
            "count": updated,
            "ids": body.select.ids,
            "filter": body.select.filter,
            "status": body.update.status,
            "archived": body.update.archived,
            "comment_changed": body.update.comment.is_some(),
        }),
    )
    .await?;
    Ok(Json(Updated { updated }))
}

/// `POST /api/events/delete` (admin; manager when `managers_may_delete_events`).
#[utoipa::path(post, path = "/api/events/delete", tag = "events", request_body = EventSelector, responses((status = 200, description = "How many events were deleted", body = Deleted), ErrorResponses))]
pub async fn delete_events(
    State(st): State<AppState>,
    p: Principal,
    JsonBody(body): JsonBody<BulkEventDelete>,
) -> Result<Json<Deleted>, ApiError> {
    require_role(&p, Role::Manager)?;
    if p.role != Role::Admin && !st.store.get_settings().await?.managers_may_delete_events {
        return Err(ApiError::forbidden(
            "auth.forbidden",
            "managers may not delete events (settings); archive them instead",
        ));
    }
    let deleted = match body.selection(&p)? {
        Some(sel) => st.store.delete_events(&sel).await?,
        None => 0,
    };
    audit(
        &st,
        &p,
        "event.delete",
        "events".into(),
        serde_json::json!({ "count": deleted, "ids": body.ids, "filter": body.filter }),
    )
    .await?;
    Ok(Json(Deleted { deleted }))
}

/// `GET /api/events/stats` parameters besides the filter.
#[derive(Debug, Clone, Default, Deserialize, Serialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    /// Timeline step: `hour`, `day` (default) or `month`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(inline)]
    pub bucket: Option<StatsBucket>,
    /// Length of the top lists, 1 to 100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top: Option<u32>,
}

/// `GET /api/events/stats`.
#[utoipa::path(get, path = "/api/events/stats", tag = "events", params(EventFilterParams, StatsParams), responses((status = 200, description = "Totals, timeline and top lists", body = EventStats), ErrorResponses))]
pub async fn event_stats(
    State(st): State<AppState>,
    p: Principal,
    QueryParams(f): QueryParams<EventFilterParams>,
    QueryParams(s): QueryParams<StatsParams>,
) -> Result<Json<EventStats>, ApiError> {
    let top = s.top.unwrap_or(10);
    if !(1..=MAX_STATS_TOP).contains(&top) {
        return Err(Error::invalid(
            "top",
            "out_of_range",
            format!("must be 1 to {MAX_STATS_TOP}"),
        )
        .into());
    }
    let Some(q) = scope(&p, f.to_query()?) else {
        return Ok(Json(EventStats::default()));
    };
    Ok(Json(
        st.store
            .event_stats(&q, s.bucket.unwrap_or_default(), top)
            .await?,
    ))
}

/// Export file format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// Comma-separated values with a header row.
    #[default]
    Csv,
    /// One JSON `Event` per line.
    Jsonl,
}

/// `GET /api/events/export` parameters besides the filter.
#[derive(Debug, Clone, Default, Deserialize, Serialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// `csv` (default) or `jsonl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(inline)]
    pub format: Option<ExportFormat>,
    /// `asc` (default, oldest first) or `desc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(inline)]
    pub order: Option<SortOrder>,
}

/// Columns of the CSV export.
pub const CSV_HEADER: [&str; 19] = [
    "id",
    "timestamp",
    "received_at",
    "division_id",
    "sensor_id",
    "service",
    "source_ip",
    "source_port",
    "dest_ip",
    "dest_port",
    "protocol",
    "type_code",
    "classification",
    "severity",
    "status",
    "archived",
    "incident_id",
    "summary",
    "comment",
];

/// Neutralises a cell a spreadsheet would run as a formula (CSV injection): a leading `=`,
/// `+`, `-`, `@`, tab or CR gets a `'` in front.
pub fn csv_safe(cell: String) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell
    }
}

fn csv_row(e: &Event) -> [String; 19] {
    let d = &e.data;
    let opt = |v: Option<String>| v.unwrap_or_default();
    [
        e.id.to_string(),
        d.timestamp
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        e.received_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        e.division_id.to_string(),
        d.sensor_id.to_string(),
        opt(d.service.clone()),
        d.source_ip.to_string(),
        opt(d.source_port.map(|p| p.to_string())),
        opt(d.dest_ip.map(|p| p.to_string())),
        opt(d.dest_port.map(|p| p.to_string())),
        d.protocol.to_string(),
        d.type_code.clone(),
        d.classification.to_string(),
        d.severity.to_string(),
        e.status.to_string(),
        e.archived.to_string(),
        opt(e.incident_id.map(|i| i.to_string())),
        d.summary.clone(),
        opt(e.comment.clone()),
    ]
    .map(csv_safe)
}

/// Why an export stream stopped early (the client sees a cut-off body).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The store failed mid-way.
    #[error("store: {0}")]
    Store(#[from] Error),
    /// Encoding a row failed.
    #[error("encoding: {0}")]
    Encode(String),
}

/// Encodes one page of events.
fn encode_page(
    format: ExportFormat,
    events: &[Event],
    header: bool,
) -> Result<Vec<u8>, ExportError> {
    match format {
        ExportFormat::Csv => {
            let mut w = csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(Vec::new());
            let enc = |e: csv::Error| ExportError::Encode(e.to_string());
            if header {
                w.write_record(CSV_HEADER).map_err(enc)?;
            }
            for e in events {
                w.write_record(csv_row(e)).map_err(enc)?;
            }
            w.into_inner()
                .map_err(|e| ExportError::Encode(e.to_string()))
        }
        ExportFormat::Jsonl => {
            let mut out = Vec::new();
            for e in events {
                serde_json::to_writer(&mut out, e)
                    .map_err(|e| ExportError::Encode(e.to_string()))?;
                out.push(b'\n');
            }
            Ok(out)
        }
    }
}

struct ExportState {
    store: Arc<dyn Store>,
    query: Option<EventQuery>,
    page: PageRequest,
    format: ExportFormat,
    first: bool,
    done: bool,
}

/// One chunk per store page: memory stays at one page however many events match.
async fn next_chunk(mut s: ExportState) -> Option<(Result<Bytes, ExportError>, ExportState)> {
    if s.done {
        return None;
    }
    let Some(query) = &s.query else {
        // Nothing visible: the header alone (CSV) or an empty body.
        s.done = true;
        let chunk = encode_page(s.format, &[], true).map(Bytes::from);
        return Some((chunk, s));
    };
    let page = match s.store.list_events(query, &s.page).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "event export failed");
            s.done = true;
            return Some((Err(e.into()), s));
        }
    };
    let chunk = encode_page(s.format, &page.items, s.first).map(Bytes::from);
    s.first = false;
    match page.next {
        Some(c) => s.page.after = Some(c),
        None => s.done = true,
    }
    Some((chunk, s))
}

/// `GET /api/events/export`: every matching event, streamed page by page.
#[utoipa::path(get, path = "/api/events/export", tag = "events", params(EventFilterParams, ExportParams), responses((status = 200, description = "The events as an attachment", content((String = "text/csv"), (String = "application/x-ndjson"))), ErrorResponses))]
pub async fn export_events(
    State(st): State<AppState>,
    p: Principal,
    QueryParams(f): QueryParams<EventFilterParams>,
    QueryParams(x): QueryParams<ExportParams>,
) -> Result<Response, ApiError> {
    let format = x.format.unwrap_or_default();
    let state = ExportState {
        store: st.store.clone(),
        query: scope(&p, f.to_query()?),
        page: PageRequest {
            after: None,
            limit: EXPORT_PAGE.min(MAX_PAGE_SIZE),
            order: x.order.unwrap_or(SortOrder::Asc),
        },
        format,
        first: true,
        done: false,
    };
    let (content_type, name) = match format {
        ExportFormat::Csv => ("text/csv; charset=utf-8", "events.csv"),
        ExportFormat::Jsonl => ("application/x-ndjson", "events.jsonl"),
    };
    let stream = futures_util::stream::unfold(state, next_chunk);
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_defused() {
        assert_eq!(csv_safe("=1+2".into()), "'=1+2");
        assert_eq!(csv_safe("@SUM(A1)".into()), "'@SUM(A1)");
        assert_eq!(csv_safe("\tx".into()), "'\tx");
        assert_eq!(csv_safe("-x".into()), "'-x");
        assert_eq!(csv_safe("10.0.0.1".into()), "10.0.0.1");
    }

    #[test]
    fn sources_parse_numerically() {
        let m = parse_ip_match("10.0.0.8/29").unwrap();
        assert!(m.contains("10.0.0.9".parse().unwrap()));
        assert!(!m.contains("10.0.0.16".parse().unwrap()));
        let r = parse_ip_match("10.0.0.9-10.0.0.10").unwrap();
        assert!(r.contains("10.0.0.10".parse().unwrap()));
        assert!(!r.contains("10.0.0.100".parse().unwrap()));
        assert!(parse_ip_match("nonsense").is_none());
    }

    #[test]
    fn filter_params_report_each_bad_field() {
        let f = EventFilterParams {
            status: Some("new,bogus".into()),
            port: Some("0".into()),
            from: Some("yesterday".into()),
            ..Default::default()
        };
        let err = f.to_query().unwrap_err();
        let fields: Vec<_> = err.fields.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["status", "from", "port"]);
        assert_eq!(
            EventFilterParams::default().to_query().unwrap().archived,
            Some(false)
        );
    }
}
