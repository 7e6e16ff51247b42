//! The CLI's client of the daemon API over the unix socket: requests and answers as
//! berth-api's types, or as plain JSON where the CLI prints the server's object as it came.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("Cannot connect to the berth daemon at unix://{path}. Is the daemon running? Start it with `berth daemon` (as root), or point -H / BERTH_HOST at its socket.")]
    NoDaemon { path: String },
    #[error("permission denied while trying to connect to the berth daemon socket at unix://{path}: the socket is root-only; run the command as root, e.g. with sudo")]
    PermissionDenied { path: String },
    #[error("Error response from daemon: {message}")]
    Api { status: u16, message: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("unexpected answer from the daemon: {0}")]
    Protocol(String),
    /// A problem found on the client's side (a bad file, a bad flag).
    #[error("{0}")]
    Usage(String),
}

pub type Result<T> = std::result::Result<T, ClientError>;

#[derive(Clone)]
pub struct Client {
    path: PathBuf,
}

fn api_error(status: u16, body: &[u8]) -> ClientError {
    let message = serde_json::from_slice::<berth_api::ErrorResponse>(body)
        .map(|e| e.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(body).trim().to_string());
    ClientError::Api { status, message }
}

fn to_json<B: Serialize>(body: &B) -> Vec<u8> {
    serde_json::to_vec(body).expect("API types serialize")
}

impl Client {
    pub fn new(path: impl AsRef<Path>) -> Client {
        Client {
            path: path.as_ref().to_path_buf(),
        }
    }

    /// Why connecting failed: the socket's permissions (the daemon only serves root) or no
    /// daemon at all.
    fn connect_error(&self, e: std::io::Error) -> ClientError {
        let path = self.path.display().to_string();
        match e.kind() {
            std::io::ErrorKind::PermissionDenied => ClientError::PermissionDenied { path },
            _ => ClientError::NoDaemon { path },
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>> {
        let stream = tokio::net::UnixStream::connect(&self.path)
            .await
            .map_err(|e| self.connect_error(e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        tokio::spawn(conn);
        let has_body = body.is_some();
        let bytes = body.unwrap_or_default();
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://berth/v{}{path}", berth_api::API_VERSION))
            .header("Host", "berth")
            .header(
                "User-Agent",
                concat!("berth-cli/", env!("CARGO_PKG_VERSION")),
            );
        if has_body {
            req = req.header("Content-Type", "application/json");
        }
        let req = req.body(Full::new(Bytes::from(bytes))).expect("request");
        sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// The answer's body; an error status is the API's error.
    async fn call(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<Bytes> {
        let resp = self.send(method, path, body).await?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?
            .to_bytes();
        if status >= 400 {
            return Err(api_error(status, &bytes));
        }
        Ok(bytes)
    }

    /// An answer as `R`; an empty body reads as `null` (so as `()`).
    fn decode<R: DeserializeOwned>(path: &str, bytes: &[u8]) -> Result<R> {
        let text: &[u8] = if bytes.is_empty() { b"null" } else { bytes };
        serde_json::from_slice(text).map_err(|e| ClientError::Protocol(format!("{path}: {e}")))
    }

    /// The server's JSON as it came, for commands that print it (`inspect`, `--format`).
    pub async fn get(&self, path: &str) -> Result<Value> {
        self.get_as(path).await
    }

    pub async fn get_as<R: DeserializeOwned>(&self, path: &str) -> Result<R> {
        let bytes = self.call(Method::GET, path, None).await?;
        Self::decode(path, &bytes)
    }

    /// A POST without a body whose answer, if any, is not read.
    pub async fn post(&self, path: &str) -> Result<()> {
        self.call(Method::POST, path, None).await.map(drop)
    }

    /// A POST without a body, its answer as `R`.
    pub async fn post_as<R: DeserializeOwned>(&self, path: &str) -> Result<R> {
        let bytes = self.call(Method::POST, path, None).await?;
        Self::decode(path, &bytes)
    }

    /// A POST of a JSON body, its answer as `R`.
    pub async fn post_json<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<R> {
        let bytes = self.call(Method::POST, path, Some(to_json(body))).await?;
        Self::decode(path, &bytes)
    }

    pub async fn delete(&self, path: &str) -> Result<()> {
        self.call(Method::DELETE, path, None).await.map(drop)
    }

    /// Copies a streamed body (logs) to `out` as it arrives.
    pub async fn stream(&self, path: &str, out: &mut dyn Write) -> Result<()> {
        let resp = self.send(Method::GET, path, None).await?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        if status >= 400 {
            let b = body
                .collect()
                .await
                .map_err(|e| ClientError::Protocol(e.to_string()))?
                .to_bytes();
            return Err(api_error(status, &b));
        }
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ClientError::Protocol(e.to_string()))?;
            if let Some(d) = frame.data_ref() {
                out.write_all(d)?;
                out.flush()?;
            }
        }
        Ok(())
    }

    /// Opens a `berth-stdio` upgraded connection (blocking: the caller then passes
    /// descriptors on it).
    pub fn upgrade<B: Serialize>(&self, path: &str, body: Option<&B>) -> Result<StdUnixStream> {
        let mut s = StdUnixStream::connect(&self.path).map_err(|e| self.connect_error(e))?;
        let bytes = body.map(to_json).unwrap_or_default();
        let head = format!(
            "POST /v{}{path} HTTP/1.1\r\nHost: berth\r\nConnection: Upgrade\r\nUpgrade: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            berth_api::API_VERSION,
            super::UPGRADE_PROTO,
            bytes.len()
        );
        s.write_all(head.as_bytes())?;
        s.write_all(&bytes)?;
        // Read the response head byte by byte: nothing past it may be consumed, since the
        // next byte may carry a descriptor.
        let mut resp = Vec::new();
        let mut b = [0u8; 1];
        while !resp.ends_with(b"\r\n\r\n") {
            if s.read(&mut b)? == 0 {
                return Err(ClientError::Protocol(
                    "connection closed during upgrade".into(),
                ));
            }
            resp.push(b[0]);
            if resp.len() > 16 * 1024 {
                return Err(ClientError::Protocol("response head too large".into()));
            }
        }
        let head = String::from_utf8_lossy(&resp).to_string();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ClientError::Protocol(head.clone()))?;
        if status == 101 {
            return Ok(s);
        }
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        s.read_exact(&mut body)?;
        Err(api_error(status, &body))
    }
}
