//! What is notified, and how it becomes a subject and a body through minijinja templates.

use crate::error::NotifyError;
use honeysens_core::ids::SensorId;
use honeysens_core::model::{Event, EventStats, Incident, Templates};
use honeysens_core::time::Timestamp;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// What is being notified; `Serialize` gives the webhook JSON body (`{"kind": "...", ...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Message {
    /// New events in an incident.
    Alert(AlertMessage),
    /// A sensor went silent or came back.
    Sensor(SensorNotice),
    /// Weekly summary of a division.
    Summary(SummaryMessage),
    /// The CA certificate expires soon.
    CaExpiry(CaExpiryMessage),
    /// A test requested by an admin.
    Test(TestMessage),
}

impl Message {
    /// The `kind` tag: `alert`, `sensor`, `summary`, `ca_expiry` or `test`.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Alert(_) => "alert",
            Message::Sensor(_) => "sensor",
            Message::Summary(_) => "summary",
            Message::CaExpiry(_) => "ca_expiry",
            Message::Test(_) => "test",
        }
    }
}

/// An incident alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertMessage {
    /// The incident after the new events joined it.
    pub incident: Incident,
    /// Name of its division.
    pub division: String,
    /// Its newest events, newest first (the body lists at most [`MAX_LISTED_EVENTS`]).
    pub events: Vec<Event>,
    /// Events since the previous alert.
    pub new_events: u64,
    /// Link to the incident in the web console.
    pub console_url: Option<String>,
}

/// Most events listed in the built-in alert body.
pub const MAX_LISTED_EVENTS: usize = 20;

/// Whether a sensor went silent or came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensorNoticeKind {
    /// No status report within interval plus threshold.
    Timeout,
    /// Reports again after a timeout.
    Recovered,
}

/// A sensor timeout or recovery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorNotice {
    /// The sensor.
    pub sensor_id: SensorId,
    /// Its name.
    pub sensor_name: String,
    /// Name of its division.
    pub division: String,
    /// Timeout or recovery. Serialized as `notice`: `kind` is the message tag.
    #[serde(rename = "notice")]
    pub kind: SensorNoticeKind,
    /// Its last status report, if any.
    pub last_seen: Option<Timestamp>,
    /// When the change was noticed.
    pub at: Timestamp,
}

/// Event statistics of a division over a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryMessage {
    /// Name of the division.
    pub division: String,
    /// Start of the period.
    pub from: Timestamp,
    /// End of the period (exclusive).
    pub until: Timestamp,
    /// The numbers.
    pub stats: EventStats,
}

/// The CA certificate is about to expire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaExpiryMessage {
    /// Its end of validity.
    pub not_after: Timestamp,
    /// Whole days left (negative when expired).
    pub days_left: i64,
}

/// A test notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestMessage {
    /// Login name of the admin who asked for it.
    pub requested_by: String,
    /// When it was asked for.
    pub at: Timestamp,
}

/// A rendered notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rendered {
    /// One line, no control characters.
    pub subject: String,
    /// Plain text.
    pub body: String,
}

const ALERT_SUBJECT: &str =
    "[HoneySens] {{ incident.severity }}: {{ incident.source_ip }} — {{ new_events }} new events";
const ALERT_BODY: &str = "\
HoneySens detected activity from {{ incident.source_ip }} in division {{ division }}.

Severity:       {{ incident.severity }}
Classification: {{ incident.classification }}
Source:         {{ incident.source_ip }}
First seen:     {{ incident.first_seen }}
Last seen:      {{ incident.last_seen }}
Events:         {{ incident.event_count }} in total, {{ new_events }} new since the last alert
Sensors:        {{ sensors | join(', ') }}
Event types:    {{ types | join(', ') }}

Latest events{% if events | length > listed_events | length %} ({{ listed_events | length }} of {{ events | length }}){% endif %}:
{% for e in listed_events %}
- {{ e.timestamp }}  sensor {{ e.sensor_id }}{% if e.service %} ({{ e.service }}){% endif %}  \
{{ e.type_code }}{% if e.dest_port %} port {{ e.dest_port }}/{{ e.protocol }}{% endif %}
  {{ e.summary }}
{%- endfor %}
{% if console_url %}
Details: {{ console_url }}
{% endif %}";

const SENSOR_SUBJECT: &str = "[HoneySens] Sensor {{ sensor_name }} \
{% if notice == 'timeout' %}is not reporting{% else %}is back{% endif %}";
const SENSOR_BODY: &str = "\
{% if notice == 'timeout' %}Sensor {{ sensor_name }} (id {{ sensor_id }}, division {{ division }}) \
has not reported since {{ last_seen or 'it was registered' }}.
It may be switched off, disconnected or broken; events it sees cannot reach the server.
{% else %}Sensor {{ sensor_name }} (id {{ sensor_id }}, division {{ division }}) reports again \
as of {{ at }}.
{% endif %}";

const SUMMARY_SUBJECT: &str = "[HoneySens] Summary for {{ division }}: {{ stats.total }} events";
const SUMMARY_BODY: &str = "\
Summary for division {{ division }} from {{ from }} until {{ until }}.

Events: {{ stats.total }}
{% for c in stats.by_status %}  {{ c.key }}: {{ c.count }}
{% endfor %}
By classification:
{% for c in stats.by_classification %}  {{ c.key }}: {{ c.count }}
{% else %}  none
{% endfor %}
Top sources:
{% for c in stats.top_sources %}  {{ c.key }}: {{ c.count }}
{% else %}  none
{% endfor %}
Top ports:
{% for c in stats.top_ports %}  {{ c.key }}: {{ c.count }}
{% else %}  none
{% endfor %}";

const CA_EXPIRY_SUBJECT: &str = "[HoneySens] CA certificate expires in {{ days_left }} days";
const CA_EXPIRY_BODY: &str = "\
The certificate authority of this HoneySens server expires on {{ not_after }} \
({{ days_left }} days left).
After that, sensors can no longer connect. Renew the CA in the server settings.
";

const TEST_SUBJECT: &str = "[HoneySens] Test notification";
const TEST_BODY: &str = "\
This is a test notification requested by {{ requested_by }} at {{ at }}.
If you read this, notifications reach you.
";

/// One template slot: settings field name, admin override, built-in text.
struct Slot<'a> {
    field: &'static str,
    custom: Option<&'a str>,
    builtin: &'static str,
}

impl Slot<'_> {
    fn source(&self) -> &str {
        self.custom.unwrap_or(self.builtin)
    }
}

fn slots<'a>(msg: &Message, t: &'a Templates) -> (Slot<'a>, Slot<'a>) {
    let s = |field, custom: &'a Option<String>, builtin| Slot {
        field,
        custom: custom.as_deref(),
        builtin,
    };
    match msg {
        Message::Alert(_) => (
            s("templates.alert_subject", &t.alert_subject, ALERT_SUBJECT),
            s("templates.alert_body", &t.alert_body, ALERT_BODY),
        ),
        Message::Sensor(_) => (
            s(
                "templates.sensor_subject",
                &t.sensor_subject,
                SENSOR_SUBJECT,
            ),
            s("templates.sensor_body", &t.sensor_body, SENSOR_BODY),
        ),
        Message::Summary(_) => (
            s(
                "templates.summary_subject",
                &t.summary_subject,
                SUMMARY_SUBJECT,
            ),
            s("templates.summary_body", &t.summary_body, SUMMARY_BODY),
        ),
        Message::CaExpiry(_) => (
            s(
                "templates.ca_expiry_subject",
                &t.ca_expiry_subject,
                CA_EXPIRY_SUBJECT,
            ),
            s(
                "templates.ca_expiry_body",
                &t.ca_expiry_body,
                CA_EXPIRY_BODY,
            ),
        ),
        // Tests are not editable: they check delivery, not templates.
        Message::Test(_) => (
            Slot {
                field: "test_subject",
                custom: None,
                builtin: TEST_SUBJECT,
            },
            Slot {
                field: "test_body",
                custom: None,
                builtin: TEST_BODY,
            },
        ),
    }
}

/// Extra variables of alerts, derived from the events.
#[derive(Serialize)]
struct AlertContext<'a> {
    #[serde(flatten)]
    msg: &'a AlertMessage,
    /// Distinct sensor ids among the events, ascending.
    sensors: BTreeSet<i64>,
    /// Distinct type codes among the events, sorted.
    types: BTreeSet<&'a str>,
    /// The first [`MAX_LISTED_EVENTS`] events.
    listed_events: &'a [Event],
}

fn context(msg: &Message) -> minijinja::Value {
    match msg {
        Message::Alert(a) => minijinja::Value::from_serialize(AlertContext {
            msg: a,
            sensors: a.events.iter().map(|e| e.data.sensor_id.0).collect(),
            types: a.events.iter().map(|e| e.data.type_code.as_str()).collect(),
            listed_events: &a.events[..a.events.len().min(MAX_LISTED_EVENTS)],
        }),
        Message::Sensor(m) => minijinja::Value::from_serialize(m),
        Message::Summary(m) => minijinja::Value::from_serialize(m),
        Message::CaExpiry(m) => minijinja::Value::from_serialize(m),
        Message::Test(m) => minijinja::Value::from_serialize(m),
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // Plain-text mail: HTML escaping would garble addresses and summaries.
    env.set_auto_escape_callback(|_| AutoEscape::None);
    // A typo in an admin's template must fail loudly (validate_templates), not print nothing.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env
}

fn render_slot(
    env: &Environment<'_>,
    slot: &Slot<'_>,
    ctx: &minijinja::Value,
) -> Result<String, NotifyError> {
    env.render_str(slot.source(), ctx)
        .map_err(|e| NotifyError::Template {
            field: slot.field,
            message: format!("{e:#}"),
        })
}

/// A subject is one header line: control characters (line breaks above all) become spaces.
fn one_line(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Renders with the admin's templates (`None` = built-in default).
pub fn render(msg: &Message, templates: &Templates) -> Result<Rendered, NotifyError> {
    let env = environment();
    let ctx = context(msg);
    let (subject, body) = slots(msg, templates);
    Ok(Rendered {
        subject: one_line(&render_slot(&env, &subject, &ctx)?),
        body: render_slot(&env, &body, &ctx)?,
    })
}

/// Sample messages of every editable kind, used to try templates.
pub(crate) fn samples() -> Vec<Message> {
    use honeysens_core::ids::{DivisionId, EventId, IncidentId};
    use honeysens_core::model::{Classification, EventData, EventStatus, Protocol, Severity};
    let at = chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default();
    let source_ip = std::net::IpAddr::from([192, 0, 2, 10]);
    let event = Event {
        id: EventId(1),
        division_id: DivisionId(1),
        received_at: at,
        status: EventStatus::New,
        comment: None,
        archived: false,
        incident_id: Some(IncidentId(1)),
        data: EventData {
            uid: uuid::Uuid::nil(),
            sensor_id: SensorId(1),
            service: Some("ssh".into()),
            timestamp: at,
            source_ip,
            source_port: Some(50_000),
            dest_ip: Some(std::net::IpAddr::from([192, 0, 2, 1])),
            dest_port: Some(22),
            protocol: Protocol::Tcp,
            type_code: "ssh.login.failed".into(),
            classification: Classification::HoneypotInteraction,
            severity: Severity::High,
            summary: "SSH login root/123456".into(),
        },
    };
    vec![
        Message::Alert(AlertMessage {
            incident: Incident {
                id: IncidentId(1),
                division_id: DivisionId(1),
                source_ip,
                first_seen: at,
                last_seen: at,
                event_count: 1,
                sensor_count: 1,
                severity: Severity::High,
                classification: Classification::HoneypotInteraction,
                status: EventStatus::New,
                comment: None,
                archived: false,
                last_alert_at: None,
                created_at: at,
            },
            division: "Sample".into(),
            events: vec![event],
            new_events: 1,
            console_url: Some("https://honeysens.example/incidents/1".into()),
        }),
        Message::Sensor(SensorNotice {
            sensor_id: SensorId(1),
            sensor_name: "sample-sensor".into(),
            division: "Sample".into(),
            kind: SensorNoticeKind::Timeout,
            last_seen: Some(at),
            at,
        }),
        Message::Summary(SummaryMessage {
            division: "Sample".into(),
            from: at,
            until: at,
            stats: EventStats::default(),
        }),
        Message::CaExpiry(CaExpiryMessage {
            not_after: at,
            days_left: 14,
        }),
    ]
}

/// Checks that every set template compiles and renders against a sample message; the error
/// names the settings field of the first bad one.
pub fn validate_templates(templates: &Templates) -> Result<(), NotifyError> {
    let env = environment();
    for msg in samples() {
        let ctx = context(&msg);
        let (subject, body) = slots(&msg, templates);
        for slot in [subject, body] {
            if slot.custom.is_some() {
                render_slot(&env, &slot, &ctx)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_templates_render_every_sample() {
        for msg in samples() {
            let r = render(&msg, &Templates::default()).unwrap();
            assert!(r.subject.starts_with("[HoneySens]"), "{}", r.subject);
            assert!(!r.body.is_empty());
        }
        let Message::Alert(a) = &samples()[0] else {
            unreachable!()
        };
        let r = render(&Message::Alert(a.clone()), &Templates::default()).unwrap();
        assert_eq!(r.subject, "[HoneySens] high: 192.0.2.10 — 1 new events");
        assert!(
            r.body.contains("ssh.login.failed port 22/tcp"),
            "{}",
            r.body
        );
        assert!(
            r.body
                .contains("Details: https://honeysens.example/incidents/1")
        );
    }

    #[test]
    fn alert_lists_at_most_twenty_events() {
        let Message::Alert(mut a) = samples().remove(0) else {
            unreachable!()
        };
        let e = a.events[0].clone();
        a.events = (0..25)
            .map(|i| {
                let mut e = e.clone();
                e.data.summary = format!("summary-{i}");
                e
            })
            .collect();
        let body = render(&Message::Alert(a), &Templates::default())
            .unwrap()
            .body;
        assert!(
            body.contains("summary-19") && !body.contains("summary-20"),
            "{body}"
        );
        assert!(body.contains("(20 of 25)"));
    }

    #[test]
    fn custom_templates_and_errors_name_the_field() {
        let t = Templates {
            alert_subject: Some("Alert\r\nBcc: x@example.org {{ division }}".into()),
            ..Templates::default()
        };
        validate_templates(&t).unwrap();
        let r = render(&samples()[0], &t).unwrap();
        assert_eq!(r.subject, "Alert Bcc: x@example.org Sample");

        let bad_syntax = Templates {
            sensor_body: Some("{% if %}".into()),
            ..Templates::default()
        };
        let err = validate_templates(&bad_syntax).unwrap_err();
        assert!(
            matches!(
                err,
                NotifyError::Template {
                    field: "templates.sensor_body",
                    ..
                }
            ),
            "{err}"
        );

        let undefined = Templates {
            summary_subject: Some("{{ nope }}".into()),
            ..Templates::default()
        };
        let err = validate_templates(&undefined).unwrap_err();
        assert!(
            matches!(
                err,
                NotifyError::Template {
                    field: "templates.summary_subject",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn webhook_json_is_tagged_by_kind() {
        for msg in samples() {
            let v = serde_json::to_value(&msg).unwrap();
            assert_eq!(v["kind"], msg.kind());
        }
    }
}
