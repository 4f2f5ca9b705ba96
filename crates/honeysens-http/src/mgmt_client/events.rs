//! Events, incidents and event filters.

use super::ManagementClient;
use crate::client::ClientError;
use crate::mgmt::events::{
    BulkEventUpdate, CursorPage, Deleted, EventFilterParams, EventPaging, EventSelector,
    ExportParams, StatsParams, Updated,
};
use crate::mgmt::filters::FilterQuery;
use crate::mgmt::incidents::{BulkIncidentUpdate, IncidentParams, IncidentsUpdated};
use crate::mgmt::page::Paged;
use honeysens_core::ids::{EventId, FilterId, IncidentId};
use honeysens_core::model::{
    Event, EventFilter, EventFilterSpec, EventPayload, EventStats, Incident,
};
use reqwest::Method;
use serde::Serialize;

/// One parameter struct as a query string.
fn enc<T: Serialize>(params: &T) -> Result<String, ClientError> {
    serde_urlencoded::to_string(params).map_err(|e| ClientError::Decode(e.to_string()))
}

/// `?a&b` of the non-empty parts, or nothing.
fn query(parts: &[String]) -> String {
    let parts: Vec<&str> = parts
        .iter()
        .map(String::as_str)
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

impl ManagementClient {
    /// `GET /api/events`: one page.
    pub async fn list_events(
        &self,
        filter: &EventFilterParams,
        paging: &EventPaging,
    ) -> Result<CursorPage<Event>, ClientError> {
        self.get(&format!(
            "/api/events{}",
            query(&[enc(filter)?, enc(paging)?])
        ))
        .await
    }

    /// `GET /api/events/{id}`.
    pub async fn get_event(&self, id: EventId) -> Result<Event, ClientError> {
        self.get(&format!("/api/events/{id}")).await
    }

    /// `GET /api/events/{id}/payload`.
    pub async fn get_event_payload(&self, id: EventId) -> Result<EventPayload, ClientError> {
        self.get(&format!("/api/events/{id}/payload")).await
    }

    /// `POST /api/events/bulk`: returns how many events changed.
    pub async fn bulk_update_events(&self, body: &BulkEventUpdate) -> Result<u64, ClientError> {
        let r: Updated = self.json(Method::POST, "/api/events/bulk", body).await?;
        Ok(r.updated)
    }

    /// `POST /api/events/delete`: returns how many events were deleted.
    pub async fn delete_events(&self, body: &EventSelector) -> Result<u64, ClientError> {
        let r: Deleted = self.json(Method::POST, "/api/events/delete", body).await?;
        Ok(r.deleted)
    }

    /// `GET /api/events/stats`.
    pub async fn event_stats(
        &self,
        filter: &EventFilterParams,
        params: &StatsParams,
    ) -> Result<EventStats, ClientError> {
        self.get(&format!(
            "/api/events/stats{}",
            query(&[enc(filter)?, enc(params)?])
        ))
        .await
    }

    /// `GET /api/events/export`, written chunk by chunk into `out` as it arrives (never held
    /// whole in memory); returns the number of bytes written. `out` is written synchronously:
    /// pass a file or a buffer.
    pub async fn export_events<W: std::io::Write>(
        &self,
        filter: &EventFilterParams,
        params: &ExportParams,
        out: &mut W,
    ) -> Result<u64, ClientError> {
        let path = format!("/api/events/export{}", query(&[enc(filter)?, enc(params)?]));
        let mut res = self.request(Method::GET, &path).send().await?;
        let status = res.status().as_u16();
        if !(200..300).contains(&status) {
            let body = res.bytes().await?;
            return Err(ClientError::from_answer(status, &body));
        }
        let mut n = 0u64;
        while let Some(chunk) = res.chunk().await? {
            out.write_all(&chunk)
                .map_err(|e| ClientError::Decode(format!("writing the export: {e}")))?;
            n += chunk.len() as u64;
        }
        out.flush()
            .map_err(|e| ClientError::Decode(format!("writing the export: {e}")))?;
        Ok(n)
    }

    /// `GET /api/incidents`: one page.
    pub async fn list_incidents(
        &self,
        filter: &IncidentParams,
        paging: &EventPaging,
    ) -> Result<CursorPage<Incident>, ClientError> {
        self.get(&format!(
            "/api/incidents{}",
            query(&[enc(filter)?, enc(paging)?])
        ))
        .await
    }

    /// `GET /api/incidents/{id}`.
    pub async fn get_incident(&self, id: IncidentId) -> Result<Incident, ClientError> {
        self.get(&format!("/api/incidents/{id}")).await
    }

    /// `GET /api/incidents/{id}/events`: one page.
    pub async fn incident_events(
        &self,
        id: IncidentId,
        paging: &EventPaging,
    ) -> Result<CursorPage<Event>, ClientError> {
        self.get(&format!(
            "/api/incidents/{id}/events{}",
            query(&[enc(paging)?])
        ))
        .await
    }

    /// `POST /api/incidents/bulk`: returns how many incidents changed.
    pub async fn bulk_update_incidents(
        &self,
        body: &BulkIncidentUpdate,
    ) -> Result<u64, ClientError> {
        let r: IncidentsUpdated = self.json(Method::POST, "/api/incidents/bulk", body).await?;
        Ok(r.updated)
    }

    /// `GET /api/filters`.
    pub async fn list_filters(&self, q: &FilterQuery) -> Result<Paged<EventFilter>, ClientError> {
        self.get_query("/api/filters", q).await
    }

    /// `POST /api/filters`.
    pub async fn create_filter(&self, spec: &EventFilterSpec) -> Result<EventFilter, ClientError> {
        self.json(Method::POST, "/api/filters", spec).await
    }

    /// `GET /api/filters/{id}`.
    pub async fn get_filter(&self, id: FilterId) -> Result<EventFilter, ClientError> {
        self.get(&format!("/api/filters/{id}")).await
    }

    /// `PUT /api/filters/{id}`.
    pub async fn update_filter(
        &self,
        id: FilterId,
        spec: &EventFilterSpec,
    ) -> Result<EventFilter, ClientError> {
        self.json(Method::PUT, &format!("/api/filters/{id}"), spec)
            .await
    }

    /// `DELETE /api/filters/{id}`.
    pub async fn delete_filter(&self, id: FilterId) -> Result<(), ClientError> {
        self.delete(&format!("/api/filters/{id}")).await
    }

    /// `POST /api/filters/{id}/reset`: hits back to zero.
    pub async fn reset_filter(&self, id: FilterId) -> Result<EventFilter, ClientError> {
        self.json(
            Method::POST,
            &format!("/api/filters/{id}/reset"),
            &serde_json::json!({}),
        )
        .await
    }
}
