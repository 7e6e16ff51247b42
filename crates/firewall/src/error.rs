use ipnet::IpNet;
use thiserror::Error;

/// Everything that can go wrong generating or applying berth's firewall.
/// Messages name what failed and what the operator can do about it.
#[derive(Debug, Error)]
pub enum FirewallError {
    #[error("invalid bridge name {name:?}: {reason}")]
    InvalidBridgeName { name: String, reason: &'static str },

    #[error(
        "bridge {bridge:?} is used by more than one network: each berth network needs its own bridge"
    )]
    DuplicateBridge { bridge: String },

    #[error(
        "subnet {first} (bridge {first_bridge:?}) overlaps subnet {second} (bridge {second_bridge:?}): \
         masqueraded networks must not overlap; remove or re-create one of them"
    )]
    OverlappingSubnets {
        first: IpNet,
        first_bridge: String,
        second: IpNet,
        second_bridge: String,
    },

    #[error("nft is not installed: install the nftables package")]
    NotInstalled,

    #[error("could not run {program:?}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "nft is not allowed to change the firewall (it needs CAP_NET_ADMIN): run berth as root; nft said: {stderr}"
    )]
    NotPermitted { stderr: String },

    #[error("nft rejected berth's rules: {stderr}")]
    Rejected { stderr: String },

    #[error("nft could not list table inet berth: {stderr}")]
    ListFailed { stderr: String },

    #[error("could not encode berth's rules as JSON: {0}")]
    Encode(#[source] serde_json::Error),

    #[error("could not parse nft's JSON output (is nft older than 1.0?): {0}")]
    Decode(#[source] serde_json::Error),
}
