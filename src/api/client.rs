//! The CLI's client of the daemon API over the unix socket.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
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
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(String::from))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    ClientError::Api { status, message }
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
        body: Option<&Value>,
    ) -> Result<hyper::Response<hyper::body::Incoming>> {
        let stream = tokio::net::UnixStream::connect(&self.path)
            .await
            .map_err(|e| self.connect_error(e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        tokio::spawn(conn);
        let bytes = body
            .map(|b| serde_json::to_vec(b).expect("json"))
            .unwrap_or_default();
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://berth/v1.50{path}"))
            .header("Host", "berth")
            .header(
                "User-Agent",
                concat!("berth-cli/", env!("CARGO_PKG_VERSION")),
            );
        if body.is_some() {
            req = req.header("Content-Type", "application/json");
        }
        let req = req.body(Full::new(Bytes::from(bytes))).expect("request");
        sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
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
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes)
            .or_else(|_| Ok(Value::String(String::from_utf8_lossy(&bytes).into_owned())))
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Option<&Value>) -> Result<Value> {
        self.call(Method::POST, path, body).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value> {
        self.call(Method::DELETE, path, None).await
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
    pub fn upgrade(&self, path: &str, body: Option<&Value>) -> Result<StdUnixStream> {
        let mut s = StdUnixStream::connect(&self.path).map_err(|e| self.connect_error(e))?;
        let bytes = body
            .map(|b| serde_json::to_vec(b).expect("json"))
            .unwrap_or_default();
        let head = format!(
            "POST /v1.50{path} HTTP/1.1\r\nHost: berth\r\nConnection: Upgrade\r\nUpgrade: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
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
