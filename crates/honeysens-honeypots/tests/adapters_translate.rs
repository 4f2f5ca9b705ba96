//! The cowrie and OpenCanary adapters against real logs captured from the upstream programs
//! (`tests/fixtures/`): every line translates or is deliberately skipped, the mapped events
//! carry the right codes, addresses, ports, timestamps and `key: value` details, and they
//! pass the server's validation. Malformed lines are errors, never panics.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use honeysens_core::ids::SensorId;
use honeysens_core::model::Protocol;
use honeysens_core::protocol::IntakeEvent;
use honeysens_core::taxonomy;
use honeysens_honeypots::adapters::{Format, cowrie, opencanary};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn fixtures(dir: &str) -> Vec<(String, String)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            if !line.trim().is_empty() {
                out.push((
                    f.file_name().unwrap().to_string_lossy().into_owned(),
                    line.to_owned(),
                ));
            }
        }
    }
    assert!(out.len() > 20, "fixtures in {} missing", root.display());
    out
}

fn has(ev: &IntakeEvent, line: &str) -> bool {
    ev.details.iter().any(|d| d.data == line)
}

fn detail_lines(ev: &IntakeEvent) -> Vec<&str> {
    ev.details.iter().map(|d| d.data.as_str()).collect()
}

/// Every fixture line of `format`: mapped events by upstream kind, and skipped kinds.
fn translate_all(
    format: Format,
    dir: &str,
    kind: impl Fn(&serde_json::Value) -> String,
) -> (BTreeMap<String, Vec<IntakeEvent>>, BTreeMap<String, usize>) {
    let mut mapped: BTreeMap<String, Vec<IntakeEvent>> = BTreeMap::new();
    let mut skipped = BTreeMap::new();
    for (file, line) in fixtures(dir) {
        let k = kind(&serde_json::from_str(&line).unwrap());
        match format.translate(&line) {
            Ok(Some(ev)) => {
                assert!(
                    taxonomy::lookup(&ev.type_code).is_some(),
                    "{file}: {} not in the taxonomy",
                    ev.type_code
                );
                assert!(ev.timestamp.is_some() && ev.uid.is_none());
                assert!(
                    ev.details
                        .iter()
                        .all(|d| d.data.contains(": ") && !d.data.contains('\n'))
                );
                ev.clone()
                    .into_event(SensorId(1))
                    .unwrap_or_else(|e| panic!("{file}: {line}: {e}"));
                mapped.entry(k).or_default().push(ev);
            }
            Ok(None) => *skipped.entry(k).or_default() += 1,
            Err(e) => panic!("{file}: real line rejected: {e}: {line}"),
        }
    }
    (mapped, skipped)
}

#[test]
fn cowrie_fixture_lines_translate() {
    let (m, skipped) = translate_all(Format::Cowrie, "cowrie", |v| {
        format!(
            "{}/{}",
            v["eventid"].as_str().unwrap(),
            v["protocol"].as_str().unwrap_or("")
        )
    });
    for k in [
        "cowrie.client.kex/ssh",
        "cowrie.session.closed/ssh",
        "cowrie.log.closed/ssh",
        "cowrie.session.connect/ssh",
        "cowrie.session.params/telnet",
        "cowrie.telnet.option/telnet",
        "cowrie.client.fingerprint/ssh",
    ] {
        assert!(
            skipped.contains_key(k),
            "{k} should be skipped: {skipped:?}"
        );
    }
    let codes = |k: &str| {
        m[k].iter()
            .map(|e| e.type_code.as_str())
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(codes("cowrie.client.version/ssh"), ["ssh.connect"].into());
    assert_eq!(
        codes("cowrie.login.failed/ssh"),
        ["ssh.login.failed"].into()
    );
    assert_eq!(
        codes("cowrie.login.failed/telnet"),
        ["telnet.login.failed"].into()
    );
    assert_eq!(
        codes("cowrie.login.success/ssh"),
        ["ssh.login.success"].into()
    );
    assert_eq!(
        codes("cowrie.login.success/telnet"),
        ["telnet.login.success"].into()
    );
    assert_eq!(codes("cowrie.command.input/ssh"), ["ssh.command"].into());
    assert_eq!(
        codes("cowrie.command.input/telnet"),
        ["telnet.command"].into()
    );
    assert_eq!(
        codes("cowrie.session.connect/telnet"),
        ["telnet.connect"].into()
    );
    assert_eq!(
        codes("cowrie.session.file_download/ssh"),
        ["file.download"].into()
    );
    assert_eq!(
        codes("cowrie.session.file_download.failed/ssh"),
        ["file.download"].into()
    );
    assert_eq!(
        codes("cowrie.session.file_upload/ssh"),
        ["file.upload"].into()
    );
    for evs in m.values() {
        for ev in evs {
            assert_eq!(ev.service.as_deref(), Some(cowrie::SERVICE));
            assert_eq!(ev.protocol, Protocol::Tcp);
            assert_eq!(ev.source_ip.to_string(), "127.0.0.1");
            assert!(ev.source_port.is_some());
            assert_eq!(
                ev.dest_ip.map(|i| i.to_string()).as_deref(),
                Some("127.0.0.1")
            );
            assert!(matches!(ev.dest_port, Some(2224) | Some(2325)));
        }
    }
}

#[test]
fn cowrie_fields_per_event_kind() {
    let first = |needle: &str| {
        let line = fixtures("cowrie")
            .into_iter()
            .map(|(_, l)| l)
            .find(|l| l.contains(needle))
            .unwrap();
        cowrie::translate(&line).unwrap().unwrap()
    };
    // The reference sample: paramiko against cowrie 3.1.4.
    let ev = first(r#""username":"root","password":"root","eventid":"cowrie.login.failed""#);
    assert_eq!(ev.type_code, "ssh.login.failed");
    assert_eq!(ev.source_port, Some(38400));
    assert_eq!(ev.dest_port, Some(2224));
    assert_eq!(
        ev.timestamp.unwrap().to_rfc3339(),
        "2026-11-26T23:33:45.962229+00:00"
    );
    assert!(
        has(&ev, "user: root") && has(&ev, "password: root"),
        "{:?}",
        detail_lines(&ev)
    );
    assert_eq!(ev.summary, "SSH login failed: root / root");

    let ev = first(r#""version":"SSH-2.0-OpenSSH_9.2p1"#);
    assert_eq!(ev.type_code, "ssh.connect");
    assert!(has(&ev, "client: SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10"));

    let ev = first("public key login attempt for [root] failed");
    assert_eq!(ev.type_code, "ssh.login.failed");
    assert!(has(
        &ev,
        "key: fa:82:f9:52:4e:c2:af:14:65:8b:d2:d7:ec:98:8e:65"
    ));
    assert!(has(&ev, "key_type: ssh-ed25519"));
    assert!(!detail_lines(&ev).iter().any(|d| d.starts_with("password:")));

    let ev = first(r#""eventid":"cowrie.login.success""#);
    assert_eq!(ev.type_code, "ssh.login.success");
    assert!(has(&ev, "password: 123456"));

    let ev = first(r#""input":"uname -a""#);
    assert!(ev.type_code == "ssh.command" || ev.type_code == "telnet.command");
    assert!(has(&ev, "command: uname -a"));

    let ev = first("cowrie.session.file_download\"");
    assert_eq!(ev.type_code, "file.download");
    assert!(has(&ev, "url: http://45.95.147.10/payload.sh"));
    assert!(has(
        &ev,
        "sha256: cebf25e0668376ce72d60cc05894de697b174396e5036fdb525363c351bf1f9b"
    ));

    let ev = first("cowrie.session.file_download.failed");
    assert!(has(&ev, "url: tftp://45.95.147.10:69/x"));
    assert!(detail_lines(&ev).iter().any(|d| d.starts_with("error: ")));

    let ev = first("cowrie.session.file_upload");
    assert_eq!(ev.type_code, "file.upload");
    assert!(detail_lines(&ev).iter().any(|d| d.starts_with("sha256: ")));

    let ev = first(
        r#""protocol":"telnet","src_ip":"127.0.0.1","src_port":36460,"dst_ip":"127.0.0.1","dst_port":2325,"username":"root","password":"wrong""#,
    );
    assert_eq!(ev.type_code, "telnet.login.failed");
    assert_eq!(ev.dest_port, Some(2325));
    assert!(has(&ev, "user: root") && has(&ev, "password: wrong"));

    // Empty input (a bare Enter) is no command.
    let empty = fixtures("cowrie")
        .into_iter()
        .map(|(_, l)| l)
        .find(|l| l.contains(r#""input":"""#))
        .unwrap();
    assert!(cowrie::translate(&empty).unwrap().is_none());
}

#[test]
fn opencanary_fixture_lines_translate() {
    let (m, skipped) = translate_all(Format::OpenCanary, "opencanary", |v| {
        v["logtype"].to_string()
    });
    assert!(skipped["1001"] >= 4, "startup noise dropped");
    assert!(skipped.contains_key("4000") && skipped.contains_key("2001"));
    let expect = [
        ("2000", "ftp.login.failed"),
        ("3000", "http.request"),
        ("3001", "http.login"),
        ("4001", "ssh.connect"),
        ("5001", "conn.attempt"),
        ("4002", "ssh.login.failed"),
        ("6001", "telnet.login.failed"),
        ("6002", "telnet.connect"),
        ("7001", "http.login"),
        ("8001", "mysql.login.failed"),
        ("9003", "conn.attempt"),
        ("10001", "tftp.request"),
        ("11001", "ntp.request"),
        ("12001", "vnc.login.failed"),
        ("14001", "rdp.negotiate"),
        ("15001", "sip.request"),
        ("16001", "honeypot.interaction"),
    ];
    for (lt, code) in expect {
        let evs = m
            .get(lt)
            .unwrap_or_else(|| panic!("no fixture line of logtype {lt}"));
        assert!(
            evs.iter().all(|e| e.type_code == code),
            "{lt}: {:?}",
            evs[0].type_code
        );
    }
    for evs in m.values() {
        for ev in evs {
            assert_eq!(ev.service.as_deref(), Some(opencanary::SERVICE));
            assert_eq!(ev.source_ip.to_string(), "127.0.0.1");
            assert!(ev.source_port.is_some() && ev.dest_port.is_some());
        }
    }
    let udp: Vec<_> = m
        .iter()
        .filter(|(_, e)| e[0].protocol == Protocol::Udp)
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(udp, ["10001", "11001", "15001"]);
}

#[test]
fn opencanary_fields_per_logtype() {
    let all: Vec<String> = fixtures("opencanary").into_iter().map(|(_, l)| l).collect();
    let first = |needle: &str| {
        let line = all
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle}"));
        opencanary::translate(line).unwrap().unwrap()
    };
    let ev = first(r#""PASSWORD": "Winter2026!""#);
    assert_eq!(ev.type_code, "ssh.login.failed");
    assert_eq!((ev.source_port, ev.dest_port), (Some(33136), Some(2223)));
    assert_eq!(
        ev.timestamp.unwrap().to_rfc3339(),
        "2026-11-27T11:00:53.437245+00:00"
    );
    assert!(has(&ev, "user: admin") && has(&ev, "password: Winter2026!"));
    assert!(has(&ev, "client: SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10"));
    assert!(has(&ev, "logtype: 4002"));

    let ev = first(r#""USERAGENT": "Mozilla/5.0 (X11; Linux x86_64)""#);
    assert_eq!(ev.type_code, "http.request");
    assert!(
        has(&ev, "path: /index.html") && has(&ev, "user_agent: Mozilla/5.0 (X11; Linux x86_64)")
    );
    assert_eq!(ev.summary, "HTTP GET /index.html");

    let ev = first(r#""PASSWORD": "letmein""#);
    assert_eq!(ev.type_code, "http.login");
    assert!(has(&ev, "user: admin") && has(&ev, "password: letmein"));

    let ev = first(r#""PASSWORD": "ftppass""#);
    assert_eq!(ev.type_code, "ftp.login.failed");
    assert_eq!(ev.dest_port, Some(2121));

    // Telnet credentials arrive with the client's CR; the detail keeps the value without it.
    let ev = first(r#""PASSWORD": "password1\r""#);
    assert_eq!(ev.type_code, "telnet.login.failed");
    assert!(
        has(&ev, "user: admin") && has(&ev, "password: password1"),
        "{:?}",
        detail_lines(&ev)
    );

    let ev = first(r#""CMD": "AUTH""#);
    assert_eq!(ev.type_code, "redis.login.failed");
    assert!(
        !ev.summary.contains("s3cret"),
        "AUTH argument redacted in the summary"
    );
    assert!(has(&ev, "args: s3cret"));
    let ev = first(r#""CMD": "CONFIG GET""#);
    assert_eq!(ev.type_code, "redis.command");
    assert!(has(&ev, "command: CONFIG GET") && has(&ev, "args: dir"));

    // Port-scan lines (kernel LOG lines of a real nmap scan) carry their ports as strings.
    let ev = first(r#""dst_port": "20002""#);
    assert_eq!(ev.type_code, "conn.attempt");
    assert_eq!((ev.source_port, ev.dest_port), (Some(49666), Some(20002)));
    assert!(has(&ev, "detector: opencanary portscan") && has(&ev, "ttl: 50"));
    assert_eq!(ev.summary, "SYN to port 20002");

    let ev = first(r#""logtype": 8001"#);
    assert!(has(&ev, "user: dbadmin"));
    let ev = first(r#""OPCODE": "READ""#);
    assert_eq!(ev.protocol, Protocol::Udp);
    assert!(has(&ev, "filename: config.bin"));
}

#[test]
fn malformed_lines_are_errors_not_panics() {
    let bad = [
        "",
        "not json",
        "[]",
        "{}",
        r#"{"eventid": 5}"#,
        r#"{"eventid":"cowrie.login.failed","src_ip":"999.1.1.1","timestamp":"2026-11-26T23:33:45Z"}"#,
        r#"{"eventid":"cowrie.login.failed","src_ip":"10.0.0.1","src_port":70000,"timestamp":"2026-11-26T23:33:45Z"}"#,
        r#"{"eventid":"cowrie.login.failed","src_ip":"10.0.0.1","timestamp":"yesterday"}"#,
        r#"{"eventid":"cowrie.command.input","src_ip":"10.0.0.1","timestamp":"2026-11-26T23:33:45Z"}"#,
    ];
    for line in bad {
        assert!(cowrie::translate(line).is_err(), "cowrie accepted {line:?}");
    }
    let bad = [
        "",
        "{",
        r#"{"logtype":"4002"}"#,
        r#"{"logtype":4002,"src_host":"","utc_time":"2026-11-27 11:00:53.437248"}"#,
        r#"{"logtype":4002,"src_host":"10.0.0.1"}"#,
        r#"{"logtype":4002,"src_host":"10.0.0.1","utc_time":"2026-11-27T11:00:53"}"#,
        r#"{"logtype":4002,"src_host":"10.0.0.1","src_port":"x","utc_time":"2026-11-27 11:00:53.4"}"#,
        r#"{"logtype":5001,"src_host":"10.0.0.1","dst_port":"65536","utc_time":"2026-11-27 11:00:53.4"}"#,
    ];
    for line in bad {
        assert!(
            opencanary::translate(line).is_err(),
            "opencanary accepted {line:?}"
        );
    }
    // OpenCanary's "unimplemented method" line names the method in REQUEST_TYPE.
    let ev = opencanary::translate(r#"{"logtype":3002,"src_host":"10.0.0.1","src_port":1,"dst_host":"10.0.0.2","dst_port":80,"utc_time":"2026-11-27 11:00:53.437248","logdata":{"PATH":"/x","REQUEST_TYPE":"PUT","USERAGENT":"<not supplied>"}}"#).unwrap().unwrap();
    assert_eq!(
        (ev.type_code.as_str(), ev.summary.as_str()),
        ("http.request", "HTTP PUT /x")
    );
    assert!(has(&ev, "method: PUT"));
    // Unknown kinds: cowrie skips them; OpenCanary keeps them as a generic interaction.
    assert!(
        cowrie::translate(r#"{"eventid":"cowrie.future.thing"}"#)
            .unwrap()
            .is_none()
    );
    let ev = opencanary::translate(r#"{"logtype":99001,"src_host":"10.0.0.1","src_port":1,"dst_host":"10.0.0.2","dst_port":2,"utc_time":"2026-11-27 11:00:53.437248","logdata":{"X Y":"z\nw"}}"#).unwrap().unwrap();
    assert_eq!(ev.type_code, "honeypot.interaction");
    assert!(has(&ev, "x_y: z\\nw"));
    // A long command stays whole in the details and is cut in the summary.
    let long = "A".repeat(5000);
    let line = format!(
        r#"{{"eventid":"cowrie.command.input","protocol":"ssh","src_ip":"10.0.0.1","timestamp":"2026-11-26T23:33:45Z","input":"{long}"}}"#
    );
    let ev = cowrie::translate(&line).unwrap().unwrap();
    assert!(ev.summary.len() <= 1024);
    assert!(has(&ev, &format!("command: {long}")));
    ev.into_event(SensorId(1)).unwrap();
}

#[test]
fn truncated_and_mutated_real_lines_never_panic() {
    // A cheap stand-in for the fuzz target (fuzz/fuzz_targets/adapter_lines.rs) in every test run:
    // every prefix of every real line, and each line with a value swapped for odd JSON types.
    let swaps = [
        "null",
        "-1",
        "1e999",
        "\"\"",
        "[]",
        "{}",
        "\"\\u0000\"",
        "99999999999999999999",
    ];
    for (_, line) in fixtures("cowrie").into_iter().chain(fixtures("opencanary")) {
        for end in (0..line.len())
            .filter(|&i| line.is_char_boundary(i))
            .step_by(7)
        {
            let _ = cowrie::translate(&line[..end]);
            let _ = opencanary::translate(&line[..end]);
        }
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        for key in v.as_object().unwrap().keys() {
            for swap in swaps {
                let mut m = v.clone();
                m[key] = serde_json::from_str(swap).unwrap_or(serde_json::Value::Null);
                let s = m.to_string();
                for r in [cowrie::translate(&s), opencanary::translate(&s)] {
                    if let Ok(Some(ev)) = r {
                        // Whatever is accepted is a valid event.
                        ev.into_event(SensorId(1))
                            .unwrap_or_else(|e| panic!("{s}: {e}"));
                    }
                }
            }
        }
    }
}
