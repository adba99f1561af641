//! The errors of berth-net, each with the `ErrorKind` the engine maps to an HTTP status.

use std::net::IpAddr;

use berth_types::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A netlink request the kernel refused (op names the object: "create bridge berth0").
    #[error("{op}: {source}")]
    Netlink { op: String, source: std::io::Error },
    /// Creating, entering or removing a network namespace failed.
    #[error("network namespace {path}: {source}")]
    Netns {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// `nft` refused the ruleset or could not run.
    #[error("nftables: {0}")]
    Nft(String),
    #[error("no available IPv4 addresses on network {0}")]
    PoolExhausted(String),
    #[error(
        "invalid address {addr}: it does not belong to any of this network's subnets ({subnet})"
    )]
    OutOfSubnet { addr: IpAddr, subnet: String },
    #[error("address already in use: {0}")]
    AddressInUse(IpAddr),
    #[error("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network; pass --subnet")]
    NoSubnet,
    #[error("invalid pool request: subnet {0} overlaps with another network or a host route")]
    SubnetOverlap(String),
    #[error("Bind for {addr}:{port} failed: port is already allocated")]
    PortAllocated { addr: String, port: u16 },
    #[error("invalid {what}: {value}")]
    Invalid { what: &'static str, value: String },
    #[error("dns server on {addr}: {source}")]
    Dns {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl NetError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            NetError::OutOfSubnet { .. } | NetError::Invalid { .. } | NetError::NoSubnet => {
                ErrorKind::InvalidArgument
            }
            NetError::SubnetOverlap(_) | NetError::AddressInUse(_) => ErrorKind::Conflict,
            NetError::PoolExhausted(_) => ErrorKind::Conflict,
            _ => ErrorKind::Internal,
        }
    }
}
