//! `ssh`: an SSH server (russh, ring crypto) that records who knocks and what they try.
//!
//! - The host key (Ed25519) is generated at first start and stored at
//!   [`SshConfig::host_key_path`], so the fingerprint stays the same across restarts.
//! - Every password and public-key attempt is a `ssh.login.failed` event with `user:`,
//!   `password:` or `key: SHA256:…`, and `client:` (the client's version string).
//! - A connection that exchanged versions but tried no login is one `ssh.connect`; one that
//!   never sent a version (a port probe) is a `conn.attempt`.
//! - By default every login is refused. With [`AcceptPolicy::AfterAttempts`] or
//!   [`AcceptPolicy::Credentials`] a password login is accepted (`ssh.login.success`) into a
//!   minimal fake shell that records each command line (`ssh.command`) until `exit`.

use crate::event::{Reporter, detail, new_event, one_line};
use crate::sink::EventSink;
use crate::{Error, Shutdown};
use honeysens_core::model::Protocol;
use russh::keys::{HashAlg, PrivateKey};
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session};
use russh::{Channel, ChannelId, MethodKind, MethodSet, SshId};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;

/// When a password login is let in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AcceptPolicy {
    /// Never: every attempt is refused.
    #[default]
    Never,
    /// The password attempt after this many failed attempts of the connection succeeds.
    AfterAttempts(u32),
    /// These `(user, password)` pairs succeed.
    Credentials(Vec<(String, String)>),
}

impl AcceptPolicy {
    /// Parses `never`, `after:<n>` or `creds:<user>:<password>[,<user>:<password>…]`.
    pub fn parse(s: &str) -> Result<Self, Error> {
        if s == "never" || s.is_empty() {
            return Ok(AcceptPolicy::Never);
        }
        if let Some(n) = s.strip_prefix("after:") {
            return n
                .parse()
                .map(AcceptPolicy::AfterAttempts)
                .map_err(|_| Error::Config(format!("ssh accept policy {s:?}: bad count")));
        }
        if let Some(list) = s.strip_prefix("creds:") {
            let mut pairs = Vec::new();
            for pair in list.split(',') {
                let (u, p) = pair.split_once(':').ok_or_else(|| {
                    Error::Config(format!("ssh accept policy: {pair:?} is not user:password"))
                })?;
                pairs.push((u.to_owned(), p.to_owned()));
            }
            return Ok(AcceptPolicy::Credentials(pairs));
        }
        Err(Error::Config(format!(
            "ssh accept policy {s:?}: use never, after:<n> or creds:<user>:<password>,…"
        )))
    }
}

/// Configuration of the SSH honeypot.
#[derive(Debug, Clone)]
pub struct SshConfig {
    /// Service name put into events.
    pub service: String,
    /// Where to listen.
    pub listen: SocketAddr,
    /// The host key file (OpenSSH format); created with a new Ed25519 key when missing.
    pub host_key_path: PathBuf,
    /// The version string the server announces.
    pub server_id: String,
    /// When a login succeeds.
    pub accept: AcceptPolicy,
    /// Host name shown in the fake shell's prompt.
    pub hostname: String,
    /// Delay before each refusal (slows brute force like a real server).
    pub auth_rejection_time: Duration,
    /// Connections idle this long are closed.
    pub inactivity_timeout: Duration,
}

impl SshConfig {
    /// Defaults for a server on `listen` keeping its key at `host_key_path`.
    pub fn new(listen: SocketAddr, host_key_path: impl Into<PathBuf>) -> Self {
        SshConfig {
            service: "ssh".into(),
            listen,
            host_key_path: host_key_path.into(),
            server_id: "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3".into(),
            accept: AcceptPolicy::Never,
            hostname: "srv01".into(),
            auth_rejection_time: Duration::from_millis(500),
            inactivity_timeout: Duration::from_secs(300),
        }
    }
}

/// Loads the host key, or generates and stores a new Ed25519 key when the file is missing.
pub fn load_or_create_host_key(path: &Path) -> Result<PrivateKey, Error> {
    let err = |m: String| Error::HostKey {
        path: path.to_owned(),
        message: m,
    };
    if path.exists() {
        return PrivateKey::read_openssh_file(path).map_err(|e| err(e.to_string()));
    }
    // ring's generator reports failure instead of panicking (rand's thread RNG panics when it
    // cannot initialise, e.g. in a static binary without /dev).
    let mut seed = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
        .map_err(|_| err("no system randomness to generate a key".into()))?;
    let key = PrivateKey::from(russh::keys::ssh_key::private::Ed25519Keypair::from_seed(
        &seed,
    ));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    }
    key.write_openssh_file(path, russh::keys::ssh_key::LineEnding::LF)
        .map_err(|e| err(e.to_string()))?;
    tracing::info!(path = %path.display(), fingerprint = %key.fingerprint(HashAlg::Sha256),
        "generated SSH host key");
    Ok(key)
}

/// Runs the SSH honeypot until `shutdown` is cancelled.
pub async fn run(config: SshConfig, sink: EventSink, shutdown: Shutdown) -> Result<(), Error> {
    let key = load_or_create_host_key(&config.host_key_path)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::Bind(config.listen, e))?;
    tracing::info!(addr = ?listener.local_addr().ok(), "ssh: listening");
    let russh_config = Arc::new(russh::server::Config {
        server_id: SshId::Standard(config.server_id.clone().into()),
        methods: MethodSet::from(&[MethodKind::Password, MethodKind::PublicKey][..]),
        auth_rejection_time: config.auth_rejection_time,
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![key],
        max_auth_attempts: 6,
        inactivity_timeout: Some(config.inactivity_timeout),
        ..Default::default()
    });
    let reporter = Reporter::new(sink);
    let config = Arc::new(config);
    loop {
        let Some((stream, peer)) = crate::accept_until(&listener, &shutdown, "ssh").await else {
            return Ok(());
        };
        let local = stream.local_addr().unwrap_or(config.listen);
        let _ = stream.set_nodelay(true);
        let state = Arc::new(Mutex::new(ConnState::default()));
        let handler = Conn {
            config: config.clone(),
            reporter: reporter.clone(),
            peer,
            local,
            state: state.clone(),
            line: Vec::new(),
            user: String::new(),
        };
        let stream = Sniff {
            inner: stream,
            state: state.clone(),
            seen: Vec::new(),
        };
        let (russh_config, reporter, config, shutdown) = (
            russh_config.clone(),
            reporter.clone(),
            config.clone(),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            match russh::server::run_stream(russh_config, stream, handler).await {
                Ok(session) => {
                    let handle = session.handle();
                    tokio::select! {
                        _ = session => {}
                        _ = shutdown.cancelled() => {
                            let _ = handle
                                .disconnect(russh::Disconnect::ByApplication, String::new(), String::new())
                                .await;
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "ssh: session setup failed"),
            }
            let st = state.lock().map(|s| s.clone()).unwrap_or_default();
            if !st.auth_attempted {
                let ev = match &st.client {
                    Some(client) => {
                        let mut ev = new_event(
                            &config.service,
                            peer,
                            local,
                            Protocol::Tcp,
                            "ssh.connect",
                            format!("SSH connection from {}", one_line(client)),
                        );
                        detail(&mut ev, true, "client", client);
                        ev
                    }
                    None => new_event(
                        &config.service,
                        peer,
                        local,
                        Protocol::Tcp,
                        "conn.attempt",
                        "TCP connection to the SSH port without version exchange",
                    ),
                };
                reporter.report(ev);
            }
        });
    }
}

#[derive(Debug, Default, Clone)]
struct ConnState {
    client: Option<String>,
    auth_attempted: bool,
    failures: u32,
}

/// The stream russh reads, recording the client's version line on the way.
struct Sniff<S> {
    inner: S,
    state: Arc<Mutex<ConnState>>,
    seen: Vec<u8>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Sniff<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if self.seen.len() < 256 && matches!(r, Poll::Ready(Ok(()))) {
            let new = buf.filled()[before..].to_vec();
            let this = &mut *self;
            for b in new {
                if this.seen.len() >= 256 {
                    break;
                }
                if b == b'\n' {
                    let line = String::from_utf8_lossy(&this.seen).trim_end().to_owned();
                    // RFC 4253: lines before the one starting with "SSH-" are banners.
                    if line.starts_with("SSH-") {
                        if let Ok(mut st) = this.state.lock() {
                            st.client = Some(line);
                        }
                        this.seen = vec![0; 256];
                        break;
                    }
                    this.seen.clear();
                } else {
                    this.seen.push(b);
                }
            }
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Sniff<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A refusal that keeps both methods on offer, like OpenSSH: a russh default refusal drops the
/// refused method, which would stop a brute-forcer after one password per connection.
fn keep_going() -> Auth {
    Auth::Reject {
        proceed_with_methods: Some(MethodSet::from(
            &[MethodKind::Password, MethodKind::PublicKey][..],
        )),
        partial_success: false,
    }
}

struct Conn {
    config: Arc<SshConfig>,
    reporter: Reporter,
    peer: SocketAddr,
    local: SocketAddr,
    state: Arc<Mutex<ConnState>>,
    line: Vec<u8>,
    user: String,
}

impl Conn {
    fn client(&self) -> String {
        self.state
            .lock()
            .ok()
            .and_then(|s| s.client.clone())
            .unwrap_or_default()
    }

    /// Counts an attempt; returns the failures before it.
    fn attempt(&self) -> u32 {
        match self.state.lock() {
            Ok(mut s) => {
                s.auth_attempted = true;
                s.failures += 1;
                s.failures - 1
            }
            Err(_) => 0,
        }
    }

    fn event(&self, code: &str, summary: String) -> honeysens_core::protocol::IntakeEvent {
        new_event(
            &self.config.service,
            self.peer,
            self.local,
            Protocol::Tcp,
            code,
            summary,
        )
    }

    fn prompt(&self) -> String {
        let sign = if self.user == "root" { '#' } else { '$' };
        format!("{}@{}:~{sign} ", self.user, self.config.hostname)
    }

    /// The fake shell's answer to one command line; `None` ends the session.
    fn answer(&self, cmd: &str) -> Option<String> {
        let word = cmd.split_whitespace().next().unwrap_or("");
        Some(match word {
            "" => String::new(),
            "exit" | "logout" | "quit" => return None,
            "whoami" => format!("{}\r\n", self.user),
            "id" if self.user == "root" => "uid=0(root) gid=0(root) groups=0(root)\r\n".into(),
            "id" => format!(
                "uid=1000({0}) gid=1000({0}) groups=1000({0})\r\n",
                self.user
            ),
            "pwd" => {
                if self.user == "root" {
                    "/root\r\n".to_owned()
                } else {
                    format!("/home/{}\r\n", self.user)
                }
            }
            "hostname" => format!("{}\r\n", self.config.hostname),
            "uname" => {
                if cmd.contains("-a") {
                    format!(
                        "Linux {} 6.1.0-26-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.112-1 (2024-09-30) x86_64 GNU/Linux\r\n",
                        self.config.hostname
                    )
                } else {
                    "Linux\r\n".into()
                }
            }
            "ls" | "cd" | "echo" if word != "echo" => String::new(),
            "echo" => format!("{}\r\n", cmd.trim_start().get(5..).unwrap_or("")),
            _ => format!("-bash: {word}: command not found\r\n"),
        })
    }

    fn record_command(&self, cmd: &str) {
        let mut ev = self.event(
            "ssh.command",
            format!(
                "SSH command: {}",
                crate::event::truncate(&one_line(cmd), 200)
            ),
        );
        detail(&mut ev, false, "user", &self.user);
        detail(&mut ev, true, "command", cmd);
        self.reporter.report(ev);
    }
}

impl russh::server::Handler for Conn {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        let failures = self.attempt();
        let accept = match &self.config.accept {
            AcceptPolicy::Never => false,
            AcceptPolicy::AfterAttempts(n) => failures >= *n,
            AcceptPolicy::Credentials(list) => list.iter().any(|(u, p)| u == user && p == password),
        };
        let client = self.client();
        let code = if accept {
            "ssh.login.success"
        } else {
            "ssh.login.failed"
        };
        let verb = if accept { "accepted" } else { "failed" };
        let mut ev = self.event(
            code,
            format!("SSH password login {verb} for {}", one_line(user)),
        );
        detail(&mut ev, true, "user", user);
        detail(&mut ev, true, "password", password);
        detail(&mut ev, false, "client", &client);
        self.reporter.report(ev);
        if accept {
            self.user = user.to_owned();
            Ok(Auth::Accept)
        } else {
            Ok(keep_going())
        }
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        self.attempt();
        let fp = offer.public_key.fingerprint(HashAlg::Sha256);
        let mut ev = self.event(
            "ssh.login.failed",
            format!("SSH public key login failed for {}", one_line(user)),
        );
        detail(&mut ev, true, "user", user);
        detail(&mut ev, true, "key", fp);
        detail(&mut ev, false, "key_type", offer.algorithm.as_str());
        detail(&mut ev, false, "client", self.client());
        self.reporter.report(ev);
        Ok(keep_going())
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _variable_name: &str,
        _variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        let banner = format!(
            "Linux {} 6.1.0-26-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.112-1 x86_64\r\n\r\n{}",
            self.config.hostname,
            self.prompt()
        );
        session.data(channel, banner.into_bytes())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        let cmd = String::from_utf8_lossy(data).into_owned();
        self.record_command(&cmd);
        let out = self.answer(&cmd).unwrap_or_default().replace("\r\n", "\n");
        session.data(channel, out.into_bytes())?;
        session.exit_status_request(channel, 0)?;
        session.eof(channel)?;
        session.close(channel)
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        for &b in data {
            match b {
                b'\r' | b'\n' => {
                    let cmd = String::from_utf8_lossy(&self.line).into_owned();
                    self.line.clear();
                    session.data(channel, b"\r\n".to_vec())?;
                    if !cmd.trim().is_empty() {
                        self.record_command(&cmd);
                    }
                    match self.answer(cmd.trim()) {
                        Some(out) => {
                            let text = format!("{out}{}", self.prompt());
                            session.data(channel, text.into_bytes())?;
                        }
                        None => {
                            session.data(channel, b"logout\r\n".to_vec())?;
                            session.exit_status_request(channel, 0)?;
                            session.eof(channel)?;
                            return session.close(channel);
                        }
                    }
                }
                // Backspace / delete.
                0x7f | 0x08 if self.line.pop().is_some() => {
                    session.data(channel, b"\x08 \x08".to_vec())?;
                }
                // Ctrl-C: drop the line.
                0x03 => {
                    self.line.clear();
                    let text = format!("^C\r\n{}", self.prompt());
                    session.data(channel, text.into_bytes())?;
                }
                // Ctrl-D on an empty line: log out.
                0x04 if self.line.is_empty() => {
                    session.data(channel, b"logout\r\n".to_vec())?;
                    session.exit_status_request(channel, 0)?;
                    session.eof(channel)?;
                    return session.close(channel);
                }
                b if ((0x20..0x7f).contains(&b) || b >= 0x80) && self.line.len() < 4096 => {
                    self.line.push(b);
                    session.data(channel, vec![b])?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_accept_policies() {
        assert_eq!(AcceptPolicy::parse("never").unwrap(), AcceptPolicy::Never);
        assert_eq!(
            AcceptPolicy::parse("after:2").unwrap(),
            AcceptPolicy::AfterAttempts(2)
        );
        assert_eq!(
            AcceptPolicy::parse("creds:root:toor,pi:raspberry").unwrap(),
            AcceptPolicy::Credentials(vec![
                ("root".into(), "toor".into()),
                ("pi".into(), "raspberry".into())
            ])
        );
        assert!(AcceptPolicy::parse("always").is_err());
        assert!(AcceptPolicy::parse("creds:root").is_err());
    }

    #[test]
    fn host_key_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("hs-ssh-key-{}", uuid::Uuid::now_v7()));
        let path = dir.join("sub/host_key");
        let a = load_or_create_host_key(&path).unwrap();
        let b = load_or_create_host_key(&path).unwrap();
        assert_eq!(
            a.fingerprint(HashAlg::Sha256),
            b.fingerprint(HashAlg::Sha256)
        );
        std::fs::write(&path, "garbage").unwrap();
        assert!(matches!(
            load_or_create_host_key(&path),
            Err(Error::HostKey { .. })
        ));
        let _ = std::fs::remove_dir_all(dir);
    }
}
