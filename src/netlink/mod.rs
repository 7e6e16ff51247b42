//! Links, addresses, routes and network namespaces through rtnetlink — never by running `ip`.
//!
//! A netlink socket belongs to the namespace it was created in, so a socket for a container
//! namespace is opened on a short-lived OS thread that `setns()`es first; the socket is then
//! driven from the tokio runtime like any other. Tokio worker threads never change namespace.

pub mod conntrack;
mod steer;
mod vxlan;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::TryStreamExt;
use ipnet::IpNet;
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use rtnetlink::{
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{op}: {source}")]
    Netlink {
        op: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("the bridge already has 1023 ports, the most a Linux bridge takes")]
    BridgeFull,
    #[error("{op}: {source}")]
    Io {
        op: String,
        #[source]
        source: std::io::Error,
    },
}

impl NetError {
    fn nl(op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetError {
        let op = op.into();
        move |source| NetError::Netlink { op, source }
    }
    fn io(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> NetError {
        let op = op.into();
        move |source| NetError::Io { op, source }
    }
}

fn errno_of(e: &rtnetlink::Error) -> i32 {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.raw_code().abs(),
        _ => 0,
    }
}

#[derive(Debug, Clone)]
pub struct LinkInfoShort {
    pub index: u32,
    pub name: String,
    pub kind: Option<String>,
    pub controller: Option<u32>,
}

/// A route-netlink socket bound to one network namespace.
#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
    /// `/proc/sys/net/ipv6/conf` of this namespace, opened once (daemon namespace only).
    /// /proc/sys dentries are shared by all network namespaces and told apart on lookup,
    /// so every path component from /proc/sys down is compared against one dentry per
    /// namespace that ever looked it up; opened once, only the link's own name is looked up.
    conf6: Option<Arc<OwnedFd>>,
}

fn open_conf6() -> Option<Arc<OwnedFd>> {
    nix::fcntl::open(
        "/proc/sys/net/ipv6/conf",
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ok()
    .map(Arc::new)
}

/// Where a veth's host end goes: the bridge (ifindex), the link MTU, and whether the port
/// is isolated from the bridge's other isolated ports (a network with icc off).
#[derive(Debug, Clone, Copy)]
pub struct BridgePort {
    pub bridge: u32,
    pub mtu: Option<u32>,
    pub isolated: bool,
}

impl Netlink {
    /// A socket in the namespace of the calling thread (the daemon's own).
    pub fn current() -> Result<Netlink, NetError> {
        let (conn, handle, _) =
            rtnetlink::new_connection().map_err(NetError::io("open netlink socket"))?;
        tokio::spawn(conn);
        Ok(Netlink {
            handle,
            conf6: open_conf6(),
        })
    }

    /// A socket in the calling thread's namespace whose requests are carried out on a
    /// thread of its own. The kernel does a request's work inside `sendmsg`, and deleting a
    /// veth takes it tens of milliseconds: on this socket that blocks no runtime worker, so
    /// API requests are not held up behind background deletions.
    pub fn current_on_own_thread() -> Result<Netlink, NetError> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("berth-netlink".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(NetError::io("netlink thread runtime")(e)));
                        return;
                    }
                };
                rt.block_on(async move {
                    match rtnetlink::new_connection() {
                        Ok((conn, handle, _)) => {
                            let _ = tx.send(Ok(handle));
                            conn.await
                        }
                        Err(e) => {
                            let _ = tx.send(Err(NetError::io("open netlink socket")(e)));
                        }
                    }
                })
            })
            .map_err(NetError::io("spawn netlink thread"))?;
        let handle = rx
            .recv()
            .map_err(|_| NetError::io("netlink thread")(std::io::ErrorKind::Other.into()))??;
        Ok(Netlink {
            handle,
            conf6: open_conf6(),
        })
    }

    /// A socket inside the namespace bound at `path` (or `/proc/PID/ns/net`).
    pub async fn open_in(path: &Path) -> Result<Netlink, NetError> {
        let path = path.to_path_buf();
        let rt = tokio::runtime::Handle::current();
        let (conn, handle) = on_ns_thread(move || {
            enter(&path)?;
            let _g = rt.enter();
            let (conn, handle, _) =
                rtnetlink::new_connection().map_err(NetError::io("open netlink socket"))?;
            Ok((conn, handle))
        })
        .await?;
        tokio::spawn(conn);
        Ok(Netlink {
            handle,
            conf6: None,
        })
    }

    pub async fn link_index(&self, name: &str) -> Result<Option<u32>, NetError> {
        let mut s = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match s.try_next().await {
            Ok(m) => Ok(m.map(|m| m.header.index)),
            Err(e) if errno_of(&e) == libc::ENODEV => Ok(None),
            Err(e) => Err(NetError::nl(format!("look up link {name}"))(e)),
        }
    }

    pub async fn links(&self) -> Result<Vec<LinkInfoShort>, NetError> {
        let msgs: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(NetError::nl("list links"))?;
        Ok(msgs.into_iter().map(short).collect())
    }

    /// Creates a bridge, up, with the given addresses. Fails if the name is taken.
    pub async fn create_bridge(
        &self,
        name: &str,
        mtu: Option<u32>,
        addrs: &[(IpAddr, u8)],
    ) -> Result<u32, NetError> {
        // A fixed address: a bridge without one takes the lowest of its ports', so it
        // changes when a container leaves, and every sandbox's cached neighbour entry for
        // the gateway points nowhere until ARP gives up on it (seconds of lost traffic).
        let mut b = LinkBridge::new(name)
            .address(bridge_mac(name).to_vec())
            .mcast_snooping(false);
        if let Some(mtu) = mtu {
            b = b.mtu(mtu);
        }
        self.handle
            .link()
            .add(b.build())
            .execute()
            .await
            .map_err(NetError::nl(format!("create bridge {name}")))?;
        let idx = self.link_index(name).await?.ok_or_else(|| {
            NetError::io(format!("bridge {name} vanished"))(std::io::ErrorKind::NotFound.into())
        })?;
        for (ip, len) in addrs {
            self.add_address(idx, *ip, *len).await?;
        }
        Ok(idx)
    }

    pub async fn add_address(&self, index: u32, ip: IpAddr, len: u8) -> Result<(), NetError> {
        match self.handle.address().add(index, ip, len).execute().await {
            Err(e) if errno_of(&e) == libc::EEXIST => Ok(()),
            r => r.map_err(NetError::nl(format!("add address {ip}/{len}"))),
        }
    }

    /// `ip/len` on a link without the prefix route the kernel adds for it (`noprefixroute`):
    /// the caller routes the prefix itself.
    pub async fn add_address_unrouted(
        &self,
        index: u32,
        ip: IpAddr,
        len: u8,
    ) -> Result<(), NetError> {
        let mut req = self.handle.address().add(index, ip, len);
        req.message_mut()
            .attributes
            .push(netlink_packet_route::address::AddressAttribute::Flags(
                netlink_packet_route::address::AddressFlags::Noprefixroute,
            ));
        match req.execute().await {
            Err(e) if errno_of(&e) == libc::EEXIST => Ok(()),
            r => r.map_err(NetError::nl(format!("add address {ip}/{len}"))),
        }
    }

    /// The IPv4 /32 addresses on a link (the loopback's service VIPs).
    pub async fn host_addresses_v4(&self, index: u32) -> Result<Vec<std::net::Ipv4Addr>, NetError> {
        use futures::TryStreamExt;
        use netlink_packet_route::address::AddressAttribute;
        let mut out = Vec::new();
        let mut s = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        while let Some(m) = s.try_next().await.map_err(NetError::nl("list addresses"))? {
            if m.header.prefix_len != 32 {
                continue;
            }
            for a in &m.attributes {
                if let AddressAttribute::Local(IpAddr::V4(v)) = a {
                    out.push(*v);
                }
            }
        }
        Ok(out)
    }

    /// Deletes `ip/len` from a link (nothing if it is not there).
    pub async fn del_address(&self, index: u32, ip: IpAddr, len: u8) -> Result<(), NetError> {
        let mut m = netlink_packet_route::address::AddressMessage::default();
        m.header.index = index;
        m.header.prefix_len = len;
        m.header.family = match ip {
            IpAddr::V4(_) => netlink_packet_route::AddressFamily::Inet,
            IpAddr::V6(_) => netlink_packet_route::AddressFamily::Inet6,
        };
        m.attributes
            .push(netlink_packet_route::address::AddressAttribute::Local(ip));
        m.attributes
            .push(netlink_packet_route::address::AddressAttribute::Address(ip));
        match self.handle.address().del(m).execute().await {
            Err(e) if matches!(errno_of(&e), libc::EADDRNOTAVAIL | libc::ENOENT) => Ok(()),
            r => r.map_err(NetError::nl(format!("delete address {ip}/{len}"))),
        }
    }

    /// Brings an existing bridge to the settings `create_bridge` gives new ones: a fixed
    /// MAC (it then stops following its ports' addresses) and no multicast snooping.
    pub async fn adopt_bridge(&self, name: &str, mac: [u8; 6]) -> Result<(), NetError> {
        self.handle
            .link()
            .change(
                rtnetlink::LinkMessageBuilder::<LinkBridge>::new(name)
                    .address(mac.to_vec())
                    .mcast_snooping(false)
                    .build(),
            )
            .execute()
            .await
            .map_err(NetError::nl(format!("configure bridge {name}")))
    }

    pub async fn set_up(&self, index: u32) -> Result<(), NetError> {
        self.handle
            .link()
            .change(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(NetError::nl(format!("bring link {index} up")))
    }

    pub async fn delete_link(&self, index: u32) -> Result<(), NetError> {
        match self.handle.link().del(index).execute().await {
            Err(e) if errno_of(&e) == libc::ENODEV => Ok(()),
            r => r.map_err(NetError::nl(format!("delete link {index}"))),
        }
    }

    pub async fn delete_link_by_name(&self, name: &str) -> Result<(), NetError> {
        if let Some(i) = self.link_index(name).await? {
            self.delete_link(i).await?;
        }
        Ok(())
    }

    /// Sets a bridge port's isolation (icc off) on an existing port.
    pub async fn set_port_isolated(&self, port: &str, isolated: bool) -> Result<(), NetError> {
        let msg = rtnetlink::LinkBridgePort::new(0)
            .name(port.to_string())
            .append_info_data(netlink_packet_route::link::InfoBridgePort::Isolated(
                isolated,
            ))
            .build();
        self.handle
            .link()
            .set_port(msg)
            .execute()
            .await
            .map_err(NetError::nl(format!("port isolation on {port}")))
    }

    /// One veth pair in one request: `host` stays here, enslaved to `bridge` and up; `peer`
    /// is created directly inside the namespace `peer_ns` with `mac` (no rename, no move).
    pub async fn add_veth_into(
        &self,
        host: &str,
        port: BridgePort,
        peer: &str,
        peer_ns: &OwnedFd,
        mac: [u8; 6],
    ) -> Result<(), NetError> {
        let mut peer_msg = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer.to_string())
            .address(mac.to_vec())
            // Not `.up()`: the kernel opens the peer before the pair is linked (ENOTCONN).
            .setns_by_fd(peer_ns.as_raw_fd());
        if let Some(mtu) = port.mtu {
            peer_msg = peer_msg.mtu(mtu);
        }
        // Created down: the port's IPv6 must be off before it comes up.
        let mut b = LinkVeth::new(host, peer)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg.build())))
            .controller(port.bridge);
        if let Some(mtu) = port.mtu {
            b = b.mtu(mtu);
        }
        // Hairpin mode on the bridge port, pipelined behind the creation (addressed by name,
        // so it needs no round trip for the index): with br_netfilter loaded, a container's
        // connection to its own published port is bridged back out of the port it came in by.
        // An isolated port (networks with icc off) exchanges frames with the bridge itself
        // (the gateway) but with no other isolated port: inter-container isolation by the
        // bridge, whatever br_netfilter and its sysctls say.
        let mut msg = rtnetlink::LinkBridgePort::new(0)
            .name(host.to_string())
            .append_info_data(netlink_packet_route::link::InfoBridgePort::HairpinMode(
                true,
            ));
        if port.isolated {
            msg = msg.append_info_data(netlink_packet_route::link::InfoBridgePort::Isolated(true));
        }
        let msg = msg.build();
        let (created, hairpin) = tokio::join!(
            self.handle.link().add(b.build()).execute(),
            self.handle.link().set_port(msg).execute()
        );
        created.map_err(|e| match errno_of(&e) {
            libc::EXFULL => NetError::BridgeFull,
            _ => NetError::nl(format!("create veth {host} ↔ {peer}"))(e),
        })?;
        let rest = async {
            hairpin.map_err(NetError::nl(format!("hairpin mode on {host}")))?;
            // A bridge port needs no IPv6 of its own. With it, the port would send router
            // solicitations and MLD reports to every other port, and each port would add a
            // multicast route that the kernel walks whenever any link goes away.
            if let Err(e) = self.disable_ipv6(host) {
                tracing::debug!(link = host, error = %e, "IPv6 left on");
            }
            let up = LinkUnspec::new_with_name(host).up().build();
            self.handle
                .link()
                .change(up)
                .execute()
                .await
                .map_err(NetError::nl(format!("bring {host} up")))
        }
        .await;
        if rest.is_err() {
            // All or nothing: the pair goes (deleting one end deletes the peer).
            let _ = self.delete_link_by_name(host).await;
        }
        rest
    }

    /// `net.ipv6.conf.LINK.disable_ipv6 = 1` for a link of this namespace (a no-op where the
    /// socket was not opened in the daemon's own namespace or the kernel has no IPv6).
    fn disable_ipv6(&self, link: &str) -> std::io::Result<()> {
        use std::io::Write;
        let Some(dir) = &self.conf6 else {
            return Ok(());
        };
        let fd = nix::fcntl::openat(
            dir.as_fd(),
            format!("{link}/disable_ipv6").as_str(),
            nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )?;
        std::fs::File::from(fd).write_all(b"1")
    }

    pub async fn add_default_route(&self, gw: IpAddr, oif: u32) -> Result<(), NetError> {
        let any = match gw {
            IpAddr::V4(_) => IpNet::V4(ipnet::Ipv4Net::default()),
            IpAddr::V6(_) => IpNet::V6(ipnet::Ipv6Net::default()),
        };
        self.add_route(any, Some(gw), oif).await
    }

    /// `dst [via gw] dev oif` (idempotent); `dst` and `gw` of one family. Without a gateway
    /// the destination is on the link.
    pub async fn add_route(
        &self,
        dst: IpNet,
        gw: Option<IpAddr>,
        oif: u32,
    ) -> Result<(), NetError> {
        let msg = match (dst, gw) {
            (IpNet::V4(d), None | Some(IpAddr::V4(_))) => {
                let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
                    .destination_prefix(d.network(), d.prefix_len())
                    .output_interface(oif);
                if let Some(IpAddr::V4(g)) = gw {
                    b = b.gateway(g);
                } else {
                    b = b.scope(netlink_packet_route::route::RouteScope::Link);
                }
                b.build()
            }
            (IpNet::V6(d), None | Some(IpAddr::V6(_))) => {
                let mut b = RouteMessageBuilder::<Ipv6Addr>::new()
                    .destination_prefix(d.network(), d.prefix_len())
                    .output_interface(oif);
                if let Some(IpAddr::V6(g)) = gw {
                    b = b.gateway(g);
                }
                b.build()
            }
            _ => {
                return Err(NetError::io(format!("route {dst} via {gw:?}"))(
                    std::io::ErrorKind::InvalidInput.into(),
                ))
            }
        };
        let what = match gw {
            Some(g) => format!("add route {dst} via {g}"),
            None => format!("add route {dst}"),
        };
        match self.handle.route().add(msg).execute().await {
            Err(e) if errno_of(&e) == libc::EEXIST => Ok(()),
            r => r.map_err(NetError::nl(what)),
        }
    }

    /// The transparent proxy's return path: packets marked `mark` (answers of containers to
    /// client addresses the proxy connected from) are delivered locally, to the proxy's
    /// socket, instead of being forwarded to the client. Idempotent.
    pub async fn ensure_local_delivery(&self, mark: u32, table: u32) -> Result<(), NetError> {
        use netlink_packet_route::route::RouteType;
        use netlink_packet_route::rule::RuleAction;
        let ok = |r: Result<(), rtnetlink::Error>, what: &str| match r {
            Err(e) if errno_of(&e) == libc::EEXIST => Ok(()),
            r => r.map_err(NetError::nl(what.to_string())),
        };
        let lo = self.link_index("lo").await?.unwrap_or(1);
        let r4 = self
            .handle
            .rule()
            .add()
            .v4()
            .fw_mark(mark)
            .table_id(table)
            .action(RuleAction::ToTable)
            .execute()
            .await;
        ok(r4, "add policy rule (IPv4)")?;
        let r6 = self
            .handle
            .rule()
            .add()
            .v6()
            .fw_mark(mark)
            .table_id(table)
            .action(RuleAction::ToTable)
            .execute()
            .await;
        ok(r6, "add policy rule (IPv6)")?;
        let m4 = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(Ipv4Addr::UNSPECIFIED, 0)
            .output_interface(lo)
            .table_id(table)
            .kind(RouteType::Local)
            .scope(netlink_packet_route::route::RouteScope::Host)
            .build();
        ok(
            self.handle.route().add(m4).execute().await,
            "add local route (IPv4)",
        )?;
        let m6 = RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(Ipv6Addr::UNSPECIFIED, 0)
            .output_interface(lo)
            .table_id(table)
            .kind(RouteType::Local)
            .build();
        ok(
            self.handle.route().add(m6).execute().await,
            "add local route (IPv6)",
        )
    }

    /// Undoes `ensure_local_delivery` (a daemon restarted without `--userland-proxy always`):
    /// the policy rules pointing at `table`, and the routes in it.
    pub async fn remove_local_delivery(&self, table: u32) -> Result<(), NetError> {
        use netlink_packet_route::rule::RuleAttribute;
        for v in [rtnetlink::IpVersion::V4, rtnetlink::IpVersion::V6] {
            let rules: Vec<_> = self
                .handle
                .rule()
                .get(v)
                .execute()
                .try_collect()
                .await
                .map_err(NetError::nl("list policy rules"))?;
            for r in rules {
                if r.attributes.contains(&RuleAttribute::Table(table)) {
                    self.handle
                        .rule()
                        .del(r)
                        .execute()
                        .await
                        .map_err(NetError::nl("delete policy rule"))?;
                }
            }
        }
        for r in self.all_routes().await? {
            let in_table = u32::from(r.header.table) == table
                || r.attributes.contains(&RouteAttribute::Table(table));
            if in_table {
                self.handle
                    .route()
                    .del(r)
                    .execute()
                    .await
                    .map_err(NetError::nl("delete route"))?;
            }
        }
        Ok(())
    }

    /// Every route of both families, in every table.
    async fn all_routes(&self) -> Result<Vec<netlink_packet_route::route::RouteMessage>, NetError> {
        let mut out = Vec::new();
        for msg in [
            RouteMessageBuilder::<Ipv4Addr>::new().build(),
            RouteMessageBuilder::<Ipv6Addr>::new().build(),
        ] {
            // A dump that routes changed under is refused with EBUSY (the kernel's
            // NLM_F_DUMP_INTR): other nodes' rounds add and remove routes at any time, so
            // the listing is taken again.
            let mut tries = 0;
            let routes: Vec<_> = loop {
                match self
                    .handle
                    .route()
                    .get(msg.clone())
                    .execute()
                    .try_collect()
                    .await
                {
                    Err(e) if errno_of(&e) == libc::EBUSY && tries < 10 => tries += 1,
                    r => break r.map_err(NetError::nl("list routes"))?,
                }
            };
            out.extend(routes);
        }
        Ok(out)
    }

    /// Destinations of the routes in the main tables (both families), so new networks can
    /// avoid subnets the host already reaches another way.
    pub async fn route_destinations(&self) -> Result<Vec<IpNet>, NetError> {
        let mut out = Vec::new();
        for r in self.all_routes().await? {
            if r.header.table != 254 && r.header.table != 0 {
                continue;
            }
            let len = r.header.destination_prefix_length;
            if len == 0 {
                continue;
            }
            for a in &r.attributes {
                if let RouteAttribute::Destination(d) = a {
                    let ip: Option<IpAddr> = match d {
                        RouteAddress::Inet(v) => Some((*v).into()),
                        RouteAddress::Inet6(v) => Some((*v).into()),
                        _ => None,
                    };
                    if let Some(n) = ip.and_then(|ip| IpNet::new(ip, len).ok()) {
                        out.push(n.trunc());
                    }
                }
            }
        }
        Ok(out)
    }
}

fn short(m: LinkMessage) -> LinkInfoShort {
    let mut l = LinkInfoShort {
        index: m.header.index,
        name: String::new(),
        kind: None,
        controller: None,
    };
    for a in m.attributes {
        match a {
            LinkAttribute::IfName(n) => l.name = n,
            LinkAttribute::Controller(c) => l.controller = Some(c),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        l.kind = Some(match k {
                            InfoKind::Bridge => "bridge".into(),
                            InfoKind::Veth => "veth".into(),
                            other => format!("{other:?}").to_lowercase(),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    l
}

/// Moves the calling thread (a fresh one from `on_ns_thread`) into the namespace at `path`.
fn enter(path: &Path) -> Result<(), NetError> {
    let f = std::fs::File::open(path).map_err(NetError::io(format!("open {}", path.display())))?;
    setns(f.as_fd(), CloneFlags::CLONE_NEWNET)
        .map_err(|e| NetError::io(format!("enter {}", path.display()))(e.into()))
}

/// Runs `f` on a fresh OS thread, so namespace changes never leak into a runtime thread.
async fn on_ns_thread<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, NetError> + Send + 'static,
) -> Result<T, NetError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("berth-netns".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(NetError::io("spawn namespace thread"))?;
    rx.await.unwrap_or_else(|_| {
        Err(NetError::io("namespace thread")(
            std::io::ErrorKind::Other.into(),
        ))
    })
}

/// A new network namespace, pinned by a bind mount at `path` so it outlives any process,
/// with `lo` up and a netlink socket already open inside it.
pub async fn create_netns(path: &Path) -> Result<(Netlink, OwnedFd), NetError> {
    let p = path.to_path_buf();
    let rt = tokio::runtime::Handle::current();
    let (conn, handle, fd) = on_ns_thread(move || {
        unshare(CloneFlags::CLONE_NEWNET).map_err(|e| NetError::io("unshare netns")(e.into()))?;
        // IPAM hands out unique addresses, so duplicate address detection only delays IPv6
        // for a second after start; interfaces created later inherit `default`.
        for k in ["all", "default"] {
            let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{k}/accept_dad"), "0");
        }
        // Interfaces arrive with IPv6 off (as Docker does for IPv4-only networks): no
        // link-local address, no router solicitations or MLD reports flooded to every port
        // of the bridge. Endpoints of IPv6 networks switch it back on for their interface.
        let _ = std::fs::write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
        let pin = || -> Result<OwnedFd, NetError> {
            std::fs::File::create(&p).map_err(NetError::io(format!("create {}", p.display())))?;
            mount(
                Some("/proc/thread-self/ns/net"),
                &p,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| NetError::io(format!("pin netns at {}", p.display()))(e.into()))?;
            let f = std::fs::File::open("/proc/thread-self/ns/net")
                .map_err(NetError::io("open netns"))?;
            Ok(f.into())
        };
        let fd = pin().inspect_err(|_| {
            let _ = std::fs::remove_file(&p);
        })?;
        let _g = rt.enter();
        let (conn, handle, _) =
            rtnetlink::new_connection().map_err(NetError::io("open netlink socket"))?;
        Ok((conn, handle, fd))
    })
    .await?;
    tokio::spawn(conn);
    let nl = Netlink {
        handle,
        conf6: None,
    };
    let res = async {
        let lo = nl.link_index("lo").await?.unwrap_or(1);
        nl.set_up(lo).await
    }
    .await;
    if let Err(e) = res {
        remove_netns(path);
        return Err(e);
    }
    Ok((nl, fd))
}

/// Unpins a namespace. The kernel frees it (and its veth ends) once no process uses it:
/// that teardown costs tens of milliseconds and happens off the caller's path.
pub fn remove_netns(path: &Path) {
    let _ = umount2(path, MntFlags::MNT_DETACH);
    let _ = std::fs::remove_file(path);
}

pub fn open_ns(path: &Path) -> Result<OwnedFd, NetError> {
    Ok(std::fs::File::open(path)
        .map_err(NetError::io(format!("open {}", path.display())))?
        .into())
}

/// Writes a sysctl file inside the namespace at `ns` (on a short-lived thread).
pub async fn sysctl_in(ns: &Path, file: String, value: &'static str) -> Result<(), NetError> {
    let ns = ns.to_path_buf();
    on_ns_thread(move || {
        enter(&ns)?;
        std::fs::write(&file, value).map_err(NetError::io(format!("set {file}={value}")))
    })
    .await
}

/// Writes a sysctl of the calling thread's network namespace (the daemon's).
pub fn sysctl(key: &str, value: &str) -> Result<(), NetError> {
    let path: PathBuf = Path::new("/proc/sys").join(key.replace('.', "/"));
    std::fs::write(&path, value).map_err(NetError::io(format!("set {key}={value}")))
}

/// A locally administered unicast MAC derived from the bridge's name: stable across
/// daemon restarts (the reconciler recreates bridges with the same address).
pub fn bridge_mac(name: &str) -> [u8; 6] {
    // FNV-1a: no dependency, and good enough to spread names over 46 bits.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let b = h.to_be_bytes();
    [(b[2] & 0xfe) | 0x02, b[3], b[4], b[5], b[6], b[7]]
}

#[cfg(test)]
mod mac_tests {
    use super::bridge_mac;

    #[test]
    fn bridge_macs_are_stable_local_unicast_and_distinct() {
        let a = bridge_mac("berth-0123abcde");
        assert_eq!(a, bridge_mac("berth-0123abcde"));
        assert_eq!(a[0] & 0x01, 0, "unicast");
        assert_eq!(a[0] & 0x02, 0x02, "locally administered");
        let names: std::collections::HashSet<[u8; 6]> = (0..1000)
            .map(|i| bridge_mac(&format!("berth-{i:09x}")))
            .collect();
        assert_eq!(names.len(), 1000);
    }
}
