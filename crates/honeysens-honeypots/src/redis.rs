//! `redis`: a Redis server look-alike speaking RESP (and inline commands, as sent by `nc`).
//!
//! - `AUTH [user] password` → `redis.login.failed` with `user:` / `password:` (always refused).
//! - Every other command → `redis.command` with `command:` (the arguments, escaped).
//!
//! By default it plays an *open* Redis (the way attackers find and abuse them: `CONFIG SET
//! dir`, `SLAVEOF`, `MODULE LOAD`): harmless canned answers, nothing is stored or executed.
//! With [`RedisConfig::require_auth`] every command but `AUTH` is answered `-NOAUTH`.

use crate::event::{Reporter, detail, detail_escaped, escape_bytes, new_event, one_line, truncate};
use crate::sink::EventSink;
use crate::{Error, Shutdown};
use honeysens_core::model::Protocol;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Configuration of the Redis honeypot.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// Service name put into events.
    pub service: String,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Answer `-NOAUTH` to everything but `AUTH` (a password-protected Redis).
    pub require_auth: bool,
    /// Most `redis.command` events per connection (later commands are only counted).
    pub max_command_events: usize,
    /// Idle connections are closed after this long.
    pub idle_timeout: Duration,
}

impl RedisConfig {
    /// Defaults for a server on `listen`.
    pub fn new(listen: SocketAddr) -> Self {
        RedisConfig {
            service: "redis".into(),
            listen,
            require_auth: false,
            max_command_events: 100,
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// Largest bulk string or array accepted; beyond it the connection is closed.
const MAX_BULK: usize = 512 * 1024;
const MAX_ARGS: usize = 1024;

/// Runs the Redis honeypot until `shutdown` is cancelled.
pub async fn run(config: RedisConfig, sink: EventSink, shutdown: Shutdown) -> Result<(), Error> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::Bind(config.listen, e))?;
    tracing::info!(addr = ?listener.local_addr().ok(), "redis: listening");
    let reporter = Reporter::new(sink);
    loop {
        let Some((stream, peer)) = crate::accept_until(&listener, &shutdown, "redis").await else {
            return Ok(());
        };
        let (config, reporter, shutdown) = (config.clone(), reporter.clone(), shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                r = session(stream, peer, &config, &reporter) => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "redis: connection ended");
                    }
                }
            }
        });
    }
}

/// Reads one command: a RESP array of bulk strings, or an inline line. `None` at EOF.
pub async fn read_command<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
) -> std::io::Result<Option<Vec<Vec<u8>>>> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    let mut line = Vec::new();
    loop {
        line.clear();
        if r.take(64 * 1024).read_until(b'\n', &mut line).await? == 0 {
            return Ok(None);
        }
        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            line.pop();
        }
        if !line.is_empty() {
            break;
        }
    }
    if line[0] != b'*' {
        // Inline command.
        return Ok(Some(
            line.split(|b| *b == b' ')
                .filter(|w| !w.is_empty())
                .map(|w| w.to_vec())
                .collect(),
        ));
    }
    let n: usize = std::str::from_utf8(&line[1..])
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .map(|n| n.max(0) as usize)
        .ok_or_else(|| bad("bad array length"))?;
    if n > MAX_ARGS {
        return Err(bad("too many arguments"));
    }
    let mut args = Vec::with_capacity(n);
    for _ in 0..n {
        line.clear();
        r.take(1024).read_until(b'\n', &mut line).await?;
        let hdr = std::str::from_utf8(&line).map_err(|_| bad("bad bulk header"))?;
        let len: usize = hdr
            .trim_end()
            .strip_prefix('$')
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("bad bulk length"))?;
        if len > MAX_BULK {
            return Err(bad("bulk string too long"));
        }
        let mut buf = vec![0u8; len + 2];
        r.read_exact(&mut buf).await?;
        buf.truncate(len);
        args.push(buf);
    }
    Ok(Some(args))
}

fn bulk(s: &str) -> Vec<u8> {
    format!("${}\r\n{s}\r\n", s.len()).into_bytes()
}

/// The canned answer of an open Redis to `cmd` (uppercase name).
fn answer(cmd: &str, args: &[Vec<u8>]) -> Vec<u8> {
    match cmd {
        "PING" => match args.get(1) {
            Some(a) => bulk(&String::from_utf8_lossy(a)),
            None => b"+PONG\r\n".to_vec(),
        },
        "ECHO" => bulk(&String::from_utf8_lossy(
            args.get(1).map(|a| &a[..]).unwrap_or(b""),
        )),
        "INFO" => bulk(
            "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\nos:Linux 6.1.0-26-amd64 x86_64\r\narch_bits:64\r\ntcp_port:6379\r\nuptime_in_seconds:1843021\r\n\r\n# Clients\r\nconnected_clients:1\r\n\r\n# Memory\r\nused_memory:1012344\r\nused_memory_human:988.62K\r\n\r\n# Keyspace\r\ndb0:keys=3,expires=0,avg_ttl=0\r\n",
        ),
        "GET" | "HGET" | "LPOP" | "RPOP" => b"$-1\r\n".to_vec(),
        "KEYS" | "SCAN" | "CONFIG" | "CLIENT" | "COMMAND" | "LRANGE" | "SMEMBERS" | "HGETALL" => {
            if cmd == "SCAN" {
                b"*2\r\n$1\r\n0\r\n*0\r\n".to_vec()
            } else {
                b"*0\r\n".to_vec()
            }
        }
        "DBSIZE" | "DEL" | "EXISTS" | "INCR" => b":0\r\n".to_vec(),
        "QUIT" => b"+OK\r\n".to_vec(),
        "SELECT" | "SET" | "FLUSHALL" | "FLUSHDB" | "SAVE" | "SLAVEOF" | "REPLICAOF" | "HSET"
        | "LPUSH" | "EXPIRE" => b"+OK\r\n".to_vec(),
        "MODULE" | "EVAL" | "SCRIPT" | "DEBUG" | "SHUTDOWN" => {
            b"-ERR unknown subcommand or wrong number of arguments\r\n".to_vec()
        }
        _ => format!(
            "-ERR unknown command '{}', with args beginning with: \r\n",
            one_line(cmd)
        )
        .into_bytes(),
    }
}

async fn session(
    stream: TcpStream,
    peer: SocketAddr,
    config: &RedisConfig,
    reporter: &Reporter,
) -> std::io::Result<()> {
    let local = stream.local_addr()?;
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let mut events = 0usize;
    loop {
        let cmd = match tokio::time::timeout(config.idle_timeout, read_command(&mut rd)).await {
            Ok(Ok(Some(c))) => c,
            Ok(Ok(None)) | Err(_) => return Ok(()),
            Ok(Err(e)) => {
                wr.write_all(b"-ERR Protocol error\r\n").await?;
                return Err(e);
            }
        };
        let Some(name) = cmd.first() else { continue };
        let name = String::from_utf8_lossy(name).to_ascii_uppercase();
        let event = |code: &str, summary: String| {
            new_event(&config.service, peer, local, Protocol::Tcp, code, summary)
        };
        if name == "AUTH" {
            let (user, password) = match cmd.len() {
                2 => (
                    "default".to_owned(),
                    String::from_utf8_lossy(&cmd[1]).into_owned(),
                ),
                n if n >= 3 => (
                    String::from_utf8_lossy(&cmd[1]).into_owned(),
                    String::from_utf8_lossy(&cmd[2]).into_owned(),
                ),
                _ => (String::new(), String::new()),
            };
            let mut ev = event(
                "redis.login.failed",
                format!("Redis AUTH refused for {}", one_line(&user)),
            );
            detail(&mut ev, true, "user", &user);
            detail(&mut ev, true, "password", &password);
            reporter.report(ev);
            let reply: &[u8] = if config.require_auth {
                b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
            } else {
                b"-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n"
            };
            wr.write_all(reply).await?;
            continue;
        }
        let line = cmd
            .iter()
            .map(|a| escape_bytes(a))
            .collect::<Vec<_>>()
            .join(" ");
        events += 1;
        if events <= config.max_command_events {
            let mut ev = event(
                "redis.command",
                format!("Redis command {}", truncate(&line, 200)),
            );
            detail_escaped(&mut ev, true, "command", truncate(&line, 8192).to_owned());
            reporter.report(ev);
        } else if events == config.max_command_events + 1 {
            tracing::info!(%peer, "redis: further commands of this connection are not reported");
        }
        if config.require_auth && name != "QUIT" {
            wr.write_all(b"-NOAUTH Authentication required.\r\n")
                .await?;
        } else {
            wr.write_all(&answer(&name, &cmd)).await?;
        }
        if name == "QUIT" {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn parses_resp_and_inline_commands() {
        let input =
            b"*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n\r\nCONFIG SET dir /tmp\r\n*1\r\n$4\r\nPI";
        let mut r = BufReader::new(&input[..]);
        let a = read_command(&mut r).await.unwrap().unwrap();
        assert_eq!(a, vec![b"AUTH".to_vec(), b"secret".to_vec()]);
        let b = read_command(&mut r).await.unwrap().unwrap();
        assert_eq!(b.len(), 4);
        assert_eq!(b[3], b"/tmp");
        assert!(read_command(&mut r).await.is_err(), "truncated bulk");
        let mut r = BufReader::new(&b"*99999\r\n"[..]);
        assert!(read_command(&mut r).await.is_err());
        let mut r = BufReader::new(&b""[..]);
        assert!(read_command(&mut r).await.unwrap().is_none());
    }
}
