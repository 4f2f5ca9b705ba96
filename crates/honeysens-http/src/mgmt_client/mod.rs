//! [`ManagementClient`]: a typed client for every management endpoint, used by the
//! integration tests and the server CLI (`honeysens-server remote …`); the Python bindings are to wrap it.
//!
//! ```no_run
//! # async fn demo(ca_pem: &str) -> Result<(), honeysens_http::client::ClientError> {
//! use honeysens_http::mgmt_client::ManagementClient;
//!
//! let mut c = ManagementClient::new("https://honeysens.example.org", ca_pem)?;
//! c.login("admin", "correct horse battery staple").await?;
//! for d in c.list_divisions(&Default::default()).await?.items {
//!     println!("{} {}", d.id, d.name);
//! }
//! # Ok(()) }
//! ```
//!
//! One file per resource group adds its methods to the client.

mod contacts;
mod directory;
mod events;
mod platforms;
mod sensors;
mod services;
mod settings;

use crate::client::{ClientError, client_tls};
use crate::mgmt::principal::CSRF_HEADER;
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// How the client authenticates.
#[derive(Clone, Default)]
enum Credentials {
    #[default]
    None,
    Token(String),
    Session {
        cookie: String,
        csrf: String,
    },
}

/// A client of one server's management API.
#[derive(Clone)]
pub struct ManagementClient {
    http: reqwest::Client,
    base: String,
    creds: Credentials,
}

impl std::fmt::Debug for ManagementClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token or cookie.
        let auth = match self.creds {
            Credentials::None => "none",
            Credentials::Token(_) => "token",
            Credentials::Session { .. } => "session",
        };
        f.debug_struct("ManagementClient")
            .field("base", &self.base)
            .field("auth", &auth)
            .finish()
    }
}

/// A raw answer: status, headers and body.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body.
    pub body: bytes::Bytes,
}

impl ManagementClient {
    /// A client for `base_url` trusting only the CA certificates in `ca_pem`.
    pub fn new(base_url: &str, ca_pem: &str) -> Result<Self, ClientError> {
        let mut config = client_tls(ca_pem)?.with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .no_proxy()
            .build()?;
        Ok(ManagementClient {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            creds: Credentials::None,
        })
    }

    /// The same client authenticating with an API token.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.creds = Credentials::Token(token.into());
        self
    }

    /// Logs in; later calls use the session (cookie and CSRF token).
    pub async fn login(
        &mut self,
        username: &str,
        password: &str,
    ) -> Result<crate::mgmt::access::LoginResponse, ClientError> {
        let body = serde_json::json!({ "username": username, "password": password });
        let res = self
            .http
            .post(format!("{}/api/auth/login", self.base))
            .json(&body)
            .send()
            .await?;
        let status = res.status().as_u16();
        let cookie = res
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .find(|kv| kv.starts_with(crate::mgmt::principal::SESSION_COOKIE))
            .map(str::to_owned);
        let bytes = res.bytes().await?;
        if !(200..300).contains(&status) {
            return Err(ClientError::from_answer(status, &bytes));
        }
        let answer: crate::mgmt::access::LoginResponse =
            serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))?;
        let cookie = cookie.ok_or_else(|| ClientError::Decode("no session cookie".into()))?;
        self.creds = Credentials::Session {
            cookie,
            csrf: answer.csrf_token.clone(),
        };
        Ok(answer)
    }

    /// Sends any request with the client's credentials; non-2xx answers are returned, not
    /// turned into errors.
    pub async fn raw(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<(Vec<u8>, &str)>,
    ) -> Result<RawResponse, ClientError> {
        let mut req = self.request(method, path_and_query);
        if let Some((bytes, content_type)) = body {
            req = req.header(CONTENT_TYPE, content_type).body(bytes);
        }
        let res = req.send().await?;
        Ok(RawResponse {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            body: res.bytes().await?,
        })
    }

    /// A request builder carrying the client's credentials (and the CSRF header on unsafe
    /// methods of a session).
    pub(crate) fn request(&self, method: Method, path_and_query: &str) -> reqwest::RequestBuilder {
        let unsafe_method = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
        let mut req = self
            .http
            .request(method, format!("{}{path_and_query}", self.base));
        match &self.creds {
            Credentials::None => {}
            Credentials::Token(t) => req = req.bearer_auth(t),
            Credentials::Session { cookie, csrf } => {
                req = req.header(COOKIE, cookie);
                if unsafe_method {
                    req = req.header(CSRF_HEADER, csrf);
                }
            }
        }
        req
    }

    /// Sends a request and decodes a 2xx JSON answer; other answers become
    /// [`ClientError::Api`].
    pub(crate) async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<(Vec<u8>, &str)>,
    ) -> Result<T, ClientError> {
        let res = self.raw(method, path_and_query, body).await?;
        if !(200..300).contains(&res.status) {
            return Err(ClientError::from_answer(res.status, &res.body));
        }
        // 204: decode from JSON null, which `()` accepts.
        let body: &[u8] = if res.body.is_empty() {
            b"null"
        } else {
            &res.body
        };
        serde_json::from_slice(body).map_err(|e| ClientError::Decode(e.to_string()))
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(Method::GET, path, None).await
    }

    pub(crate) async fn get_query<T: DeserializeOwned, Q: Serialize>(
        &self,
        path: &str,
        query: &Q,
    ) -> Result<T, ClientError> {
        let qs =
            serde_urlencoded::to_string(query).map_err(|e| ClientError::Decode(e.to_string()))?;
        let path = if qs.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{qs}")
        };
        self.send(Method::GET, &path, None).await
    }

    pub(crate) async fn json<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Decode(e.to_string()))?;
        self.send(method, path, Some((bytes, "application/json")))
            .await
    }

    pub(crate) async fn delete(&self, path: &str) -> Result<(), ClientError> {
        self.send(Method::DELETE, path, None).await
    }
}
