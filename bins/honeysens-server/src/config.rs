//! Settings, layered with figment: built-in defaults < TOML file (`--config`) < environment
//! (`HONEYSENS_*`) < command-line flags.

use crate::error::AppError;
use clap::{Args, ValueEnum};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// Setting names; each is also read from `HONEYSENS_<NAME>` and from the TOML file.
pub const KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "database_url",
    "hostnames",
    "tls_cert",
    "tls_key",
    "trusted_proxies",
    "log_format",
    "crl_refresh_secs",
    "max_service_package_mib",
];

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The settings in force.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address the HTTPS server listens on.
    pub listen: SocketAddr,
    /// Directory for the embedded database, the CA certificate and the server certificate.
    pub data_dir: PathBuf,
    /// Database URL; `None` means SQLite in the data directory.
    pub database_url: Option<String>,
    /// Extra DNS names and IP addresses for the generated server certificate.
    #[serde(deserialize_with = "string_list")]
    pub hostnames: Vec<String>,
    /// Operator-supplied certificate chain (PEM); used together with `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// Operator-supplied private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Proxies allowed to forward client certificates (IPs or CIDRs).
    #[serde(deserialize_with = "net_list")]
    pub trusted_proxies: Vec<IpNet>,
    /// Log line format.
    pub log_format: LogFormat,
    /// How often the CRL is rebuilt from the store, in seconds.
    pub crl_refresh_secs: u64,
    /// Largest service package accepted by `POST /api/services/packages`, in MiB.
    pub max_service_package_mib: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 8443)),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            hostnames: Vec::new(),
            tls_cert: None,
            tls_key: None,
            trusted_proxies: Vec::new(),
            log_format: LogFormat::Text,
            crl_refresh_secs: 60,
            max_service_package_mib: 1024,
        }
    }
}

/// Options shared by every subcommand; each overrides the file and the environment.
#[derive(Debug, Clone, Default, Args, Serialize)]
pub struct GlobalArgs {
    /// TOML file with settings (keys as the long options, with `_` instead of `-`).
    #[arg(long, global = true, env = "HONEYSENS_CONFIG", value_name = "PATH")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on [env: HONEYSENS_LISTEN] [default: 0.0.0.0:8443].
    #[arg(long, global = true, value_name = "ADDR:PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Directory for database and certificates [env: HONEYSENS_DATA_DIR] [default: ./data].
    #[arg(long, global = true, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// sqlite://…, postgres://… or mysql://… [env: HONEYSENS_DATABASE_URL]
    /// [default: sqlite://<data-dir>/honeysens.db].
    #[arg(long, global = true, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// Extra DNS name or IP for the generated server certificate; repeatable or
    /// comma-separated [env: HONEYSENS_HOSTNAMES].
    #[arg(
        long = "hostname",
        visible_alias = "hostnames",
        global = true,
        value_delimiter = ',',
        value_name = "NAME"
    )]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// PEM certificate chain to serve instead of the generated one (needs --tls-key)
    /// [env: HONEYSENS_TLS_CERT].
    #[arg(long, global = true, value_name = "PATH")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert [env: HONEYSENS_TLS_KEY].
    #[arg(long, global = true, value_name = "PATH")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Comma-separated IPs/CIDRs of proxies that may forward client certificates
    /// [env: HONEYSENS_TRUSTED_PROXIES].
    #[arg(long, global = true, value_name = "LIST")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_proxies: Option<String>,
    /// Log format [env: HONEYSENS_LOG_FORMAT] [default: text].
    #[arg(long, global = true, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// Seconds between CRL rebuilds [env: HONEYSENS_CRL_REFRESH_SECS] [default: 60].
    #[arg(long, global = true, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crl_refresh_secs: Option<u64>,
    /// Largest service package upload in MiB [env: HONEYSENS_MAX_SERVICE_PACKAGE_MIB]
    /// [default: 1024].
    #[arg(long, global = true, value_name = "MIB")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_service_package_mib: Option<u64>,
}

impl Settings {
    /// Layers defaults, the TOML file named by `--config`, `HONEYSENS_*` variables and the
    /// flags. A missing or unreadable config file, an unknown key or a bad value is an error.
    pub fn load(args: &GlobalArgs) -> Result<Settings, AppError> {
        let mut figment = Figment::new();
        if let Some(path) = &args.config {
            if !path.is_file() {
                return Err(AppError::usage(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let figment = figment
            .merge(Env::prefixed("HONEYSENS_").only(KEYS))
            .merge(Serialized::defaults(args));
        Self::extract(figment)
    }

    /// Extracts and checks the settings from a prepared figment.
    pub fn extract(figment: Figment) -> Result<Settings, AppError> {
        let settings: Settings = figment
            .extract()
            .map_err(|e| AppError::usage(format!("invalid configuration: {e}")))?;
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), AppError> {
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(AppError::usage(
                "tls_cert and tls_key must be given together",
            ));
        }
        if self.crl_refresh_secs == 0 {
            return Err(AppError::usage("crl_refresh_secs must be at least 1"));
        }
        if self.max_service_package_mib == 0 || self.max_service_package_mib > 1024 * 1024 {
            return Err(AppError::usage(
                "max_service_package_mib must be between 1 and 1048576",
            ));
        }
        for name in &self.hostnames {
            if name.parse::<IpAddr>().is_err() && !valid_dns_name(name) {
                return Err(AppError::usage(format!(
                    "invalid hostname {name:?} (a DNS name or an IP address)"
                )));
            }
        }
        Ok(())
    }

    /// The database URL: the configured one or SQLite in the data directory.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("honeysens.db").display()))
    }

    /// Whether the database lives in the data directory (so the directory must exist first).
    pub fn database_in_data_dir(&self) -> bool {
        self.database_url.is_none()
    }

    /// Path of the CA certificate the server publishes.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.data_dir.join("ca.crt")
    }

    /// DNS names and IP addresses the generated server certificate must cover: `localhost`,
    /// `127.0.0.1`, `::1`, the machine's host name and the configured `hostnames`.
    pub fn certificate_names(&self) -> (Vec<String>, Vec<IpAddr>) {
        let mut dns = vec!["localhost".to_owned()];
        let mut ips = vec![
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ];
        let host = machine_hostname();
        for name in host.iter().chain(&self.hostnames) {
            match name.parse::<IpAddr>() {
                Ok(ip) => {
                    if !ips.contains(&ip) {
                        ips.push(ip);
                    }
                }
                Err(_) => {
                    let name = name.to_ascii_lowercase();
                    if !dns.contains(&name) {
                        dns.push(name);
                    }
                }
            }
        }
        (dns, ips)
    }

    /// Where sensors reach this server, for their configuration bundles: the first configured
    /// host name and the listen port. Without configured names the bundle uses the host the
    /// administrator downloaded it from.
    pub fn public_endpoint(&self) -> Option<honeysens_core::model::ServerEndpoint> {
        self.hostnames
            .first()
            .map(|host| honeysens_core::model::ServerEndpoint {
                host: host.clone(),
                port: self.listen.port(),
            })
    }

    /// The health check URL for the listen address (a wildcard address becomes loopback).
    pub fn local_url(&self) -> String {
        let ip = match self.listen.ip() {
            IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        https_url(SocketAddr::new(ip, self.listen.port()))
    }
}

/// `https://addr:port`, with brackets around IPv6 addresses.
pub fn https_url(addr: SocketAddr) -> String {
    format!("https://{addr}")
}

/// The machine's host name, if it has a usable one.
pub fn machine_hostname() -> Option<String> {
    let from_file = |p: &str| std::fs::read_to_string(p).ok();
    let name = from_file("/proc/sys/kernel/hostname")
        .or_else(|| from_file("/etc/hostname"))
        .or_else(|| std::env::var("HOSTNAME").ok())?;
    let name = name.trim().to_ascii_lowercase();
    (valid_dns_name(&name) && name != "localhost").then_some(name)
}

/// A DNS name (optionally with a leading `*.` wildcard label): dot-separated labels of
/// letters, digits, `-` and `_`, each 1–63 characters, at most 253 in all.
pub fn valid_dns_name(name: &str) -> bool {
    let body = name.strip_prefix("*.").unwrap_or(name);
    !body.is_empty()
        && name.len() <= 253
        && body.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Parses `10.0.0.1, 192.168.0.0/16, ::1`: IPs become host networks.
#[cfg(test)]
fn parse_nets(list: &str) -> Result<Vec<IpNet>, String> {
    split_list(list)
        .into_iter()
        .map(|s| parse_net(&s))
        .collect()
}

fn parse_net(s: &str) -> Result<IpNet, String> {
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net);
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{s:?} is neither an IP address nor a CIDR network"))
}

fn split_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A comma-separated string or a list of strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrList {
    One(String),
    Many(Vec<String>),
}

impl StringOrList {
    fn items(self) -> Vec<String> {
        match self {
            StringOrList::One(s) => split_list(&s),
            StringOrList::Many(v) => v.iter().flat_map(|s| split_list(s)).collect(),
        }
    }
}

fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(StringOrList::deserialize(d)?.items())
}

fn net_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    StringOrList::deserialize(d)?
        .items()
        .iter()
        .map(|s| parse_net(s))
        .collect::<Result<_, _>>()
        .map_err(serde::de::Error::custom)
}

/// The URL without its password, safe to log.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The password part of a database URL, if it has one.
pub fn url_password(url: &str) -> Option<&str> {
    let s = url.find("://")?;
    let at = url.rfind('@')?;
    let creds = url.get(s + 3..at)?;
    creds
        .split_once(':')
        .map(|(_, pw)| pw)
        .filter(|pw| !pw.is_empty())
}

/// A path for messages.
pub fn show(path: &Path) -> String {
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figment_with(toml: &str, env: &[(&str, &str)], args: &GlobalArgs) -> Figment {
        let mut env_map = figment::value::Dict::new();
        for (k, v) in env {
            env_map.insert((*k).to_owned(), (*v).into());
        }
        Figment::new()
            .merge(Toml::string(toml))
            .merge(Serialized::defaults(env_map))
            .merge(Serialized::defaults(args))
    }

    #[test]
    fn defaults() {
        let s = Settings::extract(Figment::new()).unwrap();
        assert_eq!(s, Settings::default());
        assert_eq!(s.listen.to_string(), "0.0.0.0:8443");
        assert_eq!(s.database_url(), "sqlite://./data/honeysens.db");
        assert_eq!(s.local_url(), "https://127.0.0.1:8443");
        assert_eq!(s.crl_refresh_secs, 60);
        assert_eq!(s.log_format, LogFormat::Text);
    }

    #[test]
    fn layers_override_in_order() {
        let toml = r#"
            listen = "127.0.0.1:1000"
            data_dir = "/from/file"
            hostnames = ["file.example"]
            log_format = "json"
            crl_refresh_secs = 5
        "#;
        let s = Settings::extract(figment_with(toml, &[], &GlobalArgs::default())).unwrap();
        assert_eq!(s.listen.port(), 1000);
        assert_eq!(s.data_dir, PathBuf::from("/from/file"));
        assert_eq!(s.hostnames, vec!["file.example"]);
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.crl_refresh_secs, 5);

        let env = [
            ("listen", "127.0.0.1:2000"),
            ("hostnames", "a.example, b.example"),
        ];
        let s = Settings::extract(figment_with(toml, &env, &GlobalArgs::default())).unwrap();
        assert_eq!(s.listen.port(), 2000);
        assert_eq!(s.hostnames, vec!["a.example", "b.example"]);
        assert_eq!(s.data_dir, PathBuf::from("/from/file"));

        let args = GlobalArgs {
            listen: Some("127.0.0.1:3000".parse().unwrap()),
            hostnames: vec!["flag.example".into()],
            trusted_proxies: Some("10.0.0.1,192.168.0.0/16".into()),
            ..GlobalArgs::default()
        };
        let s = Settings::extract(figment_with(toml, &env, &args)).unwrap();
        assert_eq!(s.listen.port(), 3000);
        assert_eq!(s.hostnames, vec!["flag.example"]);
        assert_eq!(
            s.trusted_proxies,
            vec![
                "10.0.0.1/32".parse::<IpNet>().unwrap(),
                "192.168.0.0/16".parse().unwrap()
            ]
        );
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for toml in [
            "listen = \"nope\"",
            "unknown_key = 1",
            "trusted_proxies = \"10.0.0.1, banana\"",
            "log_format = \"xml\"",
            "crl_refresh_secs = 0",
            "tls_cert = \"/only/cert.pem\"",
            "hostnames = \"bad host name\"",
        ] {
            let err =
                Settings::extract(figment_with(toml, &[], &GlobalArgs::default())).unwrap_err();
            assert_eq!(err.exit_code, 2, "{toml}: {}", err.message);
        }
    }

    #[test]
    fn trusted_proxies_accept_lists_and_ips() {
        assert_eq!(parse_nets("").unwrap(), vec![]);
        assert_eq!(
            parse_nets(" ::1 , 10.0.0.0/8 ").unwrap(),
            vec![
                "::1/128".parse::<IpNet>().unwrap(),
                "10.0.0.0/8".parse().unwrap()
            ]
        );
        assert!(parse_nets("10.0.0.0/33").is_err());
        let toml = "trusted_proxies = [\"10.1.2.3\", \"fd00::/8\"]";
        let s = Settings::extract(figment_with(toml, &[], &GlobalArgs::default())).unwrap();
        assert_eq!(s.trusted_proxies.len(), 2);
    }

    #[test]
    fn certificate_names_always_cover_loopback() {
        let s = Settings {
            hostnames: vec![
                "HoneySens.Example.org".into(),
                "192.0.2.7".into(),
                "::1".into(),
            ],
            ..Settings::default()
        };
        let (dns, ips) = s.certificate_names();
        assert_eq!(dns[0], "localhost");
        assert!(dns.contains(&"honeysens.example.org".to_owned()));
        assert!(ips.contains(&"127.0.0.1".parse().unwrap()));
        assert!(ips.contains(&"192.0.2.7".parse().unwrap()));
        assert_eq!(ips.iter().filter(|ip| ip.to_string() == "::1").count(), 1);
        if let Some(host) = machine_hostname() {
            assert!(dns.contains(&host));
        }
    }

    #[test]
    fn local_url_replaces_wildcards() {
        let mut s = Settings {
            listen: "[::]:9443".parse().unwrap(),
            ..Settings::default()
        };
        assert_eq!(s.local_url(), "https://[::1]:9443");
        s.listen = "192.0.2.1:1".parse().unwrap();
        assert_eq!(s.local_url(), "https://192.0.2.1:1");
    }

    #[test]
    fn dns_names() {
        for ok in [
            "localhost",
            "a.example.org",
            "*.example.org",
            "host_1",
            "x-y.z",
        ] {
            assert!(valid_dns_name(ok), "{ok}");
        }
        for bad in [
            "",
            "a..b",
            "-a.b",
            "a b",
            "*.",
            "ä.example",
            &"a".repeat(64),
        ] {
            assert!(!valid_dns_name(bad), "{bad}");
        }
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redacted("postgres://hs:secret@db/hs"),
            "postgres://hs:***@db/hs"
        );
        assert_eq!(redacted("sqlite://./data/x.db"), "sqlite://./data/x.db");
        assert_eq!(url_password("postgres://hs:secret@db/hs"), Some("secret"));
        assert_eq!(url_password("postgres://hs@db/hs"), None);
        assert_eq!(url_password("sqlite://./x.db"), None);
    }
}
