//! Exec, and the `berth-stdio` session that foreground starts and execs run over.

use serde::{Deserialize, Serialize};

use crate::de::{is_zero, object_only};

/// `POST /berth/containers/{id}/exec` (berth's, with the `berth-stdio` upgrade) takes
/// docker's `POST /containers/{id}/exec` body. The fields berth acts on, in docker's order;
/// the `Attach*` flags are accepted for docker's sake (berth's exec always attaches).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "PascalCase", default)]
pub struct ExecCreateRequest {
    pub tty: bool,
    pub attach_stdin: bool,
    pub attach_stderr: bool,
    pub attach_stdout: bool,
    pub env: Option<Vec<String>>,
    pub working_dir: String,
    pub cmd: Option<Vec<String>>,
}

/// docker's `POST /exec/{id}/start` body. berth starts an exec in the request that creates
/// it, so its server never reads this; the type documents what docker clients send.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "PascalCase", default)]
pub struct ExecStartRequest {
    pub detach: bool,
    pub tty: bool,
}

object_only!(ExecCreateRequest, ExecStartRequest);

/// A line the server writes on a `berth-stdio` session: first `{"Started":true}` (carrying
/// the pty master with `stdio=tty`) or `{"message":…,"status":N}`, then `{"StatusCode":N}`
/// when the process exits. One type, since the client reads the first line before knowing
/// which it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StdioLine {
    #[serde(rename = "Started", skip_serializing_if = "is_zero")]
    pub started: bool,
    /// Why the process did not start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The HTTP status the failure would have had.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(rename = "StatusCode", skip_serializing_if = "Option::is_none")]
    pub status_code: Option<i64>,
}
