use std::net::IpAddr;

use crate::spec::Proto;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("invalid port specification \"{spec}\": {reason}")]
    Spec { spec: String, reason: String },
    #[error("invalid protocol \"{0}\": use tcp, udp or sctp")]
    Proto(String),
    #[error("invalid ranges specified for container and host ports: {container} and {host} (give ranges of the same length, or one container port with a host range to take the first free one)")]
    RangeMismatch { container: String, host: String },
    #[error("Bind for {} failed: port is already allocated", join_host_port(*ip, *port))]
    Allocated { ip: IpAddr, port: u16, proto: Proto },
    #[error("no free host port for {proto} in {start}-{end} on {}: every port is published or in use", join_ip(*ip))]
    Exhausted {
        ip: IpAddr,
        start: u16,
        end: u16,
        proto: Proto,
    },
}

pub(crate) fn join_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v) => v.to_string(),
        IpAddr::V6(v) => format!("[{v}]"),
    }
}

/// Go's `net.JoinHostPort`, which `docker port` and `docker ps` print with.
pub(crate) fn join_host_port(ip: IpAddr, port: u16) -> String {
    format!("{}:{port}", join_ip(ip))
}
