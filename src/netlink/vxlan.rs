//! The overlay's VXLAN device and its entries (`crates/overlay`'s layout): the device,
//! listing what it holds, and carrying out a plan. Every route on the device is berth's
//! and is tagged with berth's route protocol, so a listing finds exactly what a plan made.

use std::net::{IpAddr, Ipv4Addr};

use berth_overlay::{Mac, Plan, State, DEVICE, PORT, VNI};
use futures::TryStreamExt;
use ipnet::IpNet;
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteProtocol};
use netlink_packet_route::AddressFamily;
use rtnetlink::{LinkUnspec, LinkVxlan, RouteMessageBuilder};

use super::{errno_of, NetError, Netlink};

/// The route protocol number of berth's overlay routes (`ip route show proto 183`).
const PROTO: u8 = 183;

fn mac_of(b: &[u8]) -> Option<Mac> {
    <[u8; 6]>::try_from(b).ok().map(Mac)
}

/// An entry's destination. In an FDB entry (family bridge) the parser cannot know the
/// address family and leaves the bytes as they are.
fn ip_of(a: &NeighbourAddress) -> Option<IpAddr> {
    match a {
        NeighbourAddress::Inet(v) => Some(IpAddr::V4(*v)),
        NeighbourAddress::Inet6(v) => Some(IpAddr::V6(*v)),
        NeighbourAddress::Other(b) => match b.len() {
            4 => <[u8; 4]>::try_from(b.as_slice()).ok().map(IpAddr::from),
            16 => <[u8; 16]>::try_from(b.as_slice()).ok().map(IpAddr::from),
            _ => None,
        },
        _ => None,
    }
}

/// An entry's link-layer address and destination.
fn mac_and_dst(n: &NeighbourMessage) -> (Option<Mac>, Option<IpAddr>) {
    let mut out = (None, None);
    for a in &n.attributes {
        match a {
            NeighbourAttribute::LinkLayerAddress(l) => out.0 = mac_of(l),
            NeighbourAttribute::Destination(d) => out.1 = ip_of(d),
            _ => {}
        }
    }
    out
}

impl Netlink {
    /// The VXLAN device, as the layout wants it: made if missing, made again if it was
    /// made for another local address, then given its MAC and MTU and brought up.
    /// Returns its index.
    pub async fn ensure_vxlan(&self, local: Ipv4Addr, mac: Mac, mtu: u32) -> Result<u32, NetError> {
        if let Some(idx) = self.link_index(DEVICE).await? {
            if self.vxlan_local(idx).await? != Some(local) {
                self.delete_link(idx).await?;
            }
        }
        if self.link_index(DEVICE).await?.is_none() {
            let msg = LinkVxlan::new(DEVICE, VNI)
                .local(local)
                .port(PORT)
                .learning(false)
                .build();
            match self.handle.link().add(msg).execute().await {
                Err(e) if errno_of(&e) == libc::EEXIST => {}
                r => r.map_err(NetError::nl(format!("create {DEVICE}")))?,
            }
        }
        let idx = self.link_index(DEVICE).await?.ok_or_else(|| {
            NetError::io(format!("{DEVICE} vanished"))(std::io::ErrorKind::NotFound.into())
        })?;
        self.handle
            .link()
            .change(
                LinkUnspec::new_with_index(idx)
                    .address(mac.0.to_vec())
                    .mtu(mtu)
                    .up()
                    .build(),
            )
            .execute()
            .await
            .map_err(NetError::nl(format!("configure {DEVICE}")))?;
        // The routing mesh brings clients' packets in over the device, and a device without
        // an IPv4 address fails every reverse-path check, loose ones too (the kernel's
        // `no_addr` case), whatever rp_filter says. The node's own address, scope host and
        // without a prefix route: never chosen as a source, routes nothing.
        let mut req = self.handle.address().add(idx, IpAddr::V4(local), 32);
        req.message_mut().header.scope = netlink_packet_route::address::AddressScope::Host;
        req.message_mut()
            .attributes
            .push(netlink_packet_route::address::AddressAttribute::Flags(
                netlink_packet_route::address::AddressFlags::Noprefixroute,
            ));
        match req.execute().await {
            Err(e) if errno_of(&e) == libc::EEXIST => {}
            r => r.map_err(NetError::nl(format!("address {local} on {DEVICE}")))?,
        }
        Ok(idx)
    }

    async fn vxlan_local(&self, idx: u32) -> Result<Option<Ipv4Addr>, NetError> {
        use netlink_packet_route::link::{InfoData, InfoVxlan, LinkAttribute, LinkInfo};
        let mut links = self.handle.link().get().match_index(idx).execute();
        while let Some(m) = links
            .try_next()
            .await
            .map_err(NetError::nl(format!("read {DEVICE}")))?
        {
            for a in m.attributes {
                let LinkAttribute::LinkInfo(infos) = a else {
                    continue;
                };
                for i in infos {
                    if let LinkInfo::Data(InfoData::Vxlan(v)) = i {
                        for x in v {
                            if let InfoVxlan::Local(ip) = x {
                                return Ok(Some(ip));
                            }
                        }
                    }
                }
            }
        }
        Ok(None)
    }

    /// What the device holds: its static FDB entries with a destination, its permanent
    /// neighbour entries, and berth's routes through it.
    pub async fn vxlan_state(&self, idx: u32) -> Result<State, NetError> {
        let mut s = State::default();
        // Asked for the device's entries only (as `ip neigh show dev` asks).
        let mut get = self.handle.neighbours().get();
        get.message_mut().header.ifindex = idx;
        get.message_mut()
            .attributes
            .push(NeighbourAttribute::IfIndex(idx));
        let neighs: Vec<NeighbourMessage> = get
            .execute()
            .try_collect()
            .await
            .map_err(NetError::nl("list neighbours"))?;
        for n in neighs.iter().filter(|n| n.header.ifindex == idx) {
            let (mac, dst) = mac_and_dst(n);
            match (n.header.family, mac, dst) {
                (AddressFamily::Inet | AddressFamily::Inet6, Some(m), Some(ip))
                    if n.header.state == NeighbourState::Permanent =>
                {
                    s.neigh.insert((ip, m));
                }
                _ => {}
            }
        }
        let mut get = self
            .handle
            .neighbours()
            .get()
            .set_address_family(AddressFamily::Bridge);
        get.message_mut().header.ifindex = idx;
        let fdb: Vec<NeighbourMessage> = get
            .execute()
            .try_collect()
            .await
            .map_err(NetError::nl("list fdb"))?;
        for n in fdb.iter().filter(|n| n.header.ifindex == idx) {
            if let (Some(m), Some(ip)) = mac_and_dst(n) {
                s.fdb.insert((m, ip));
            }
        }
        for r in self.all_routes().await? {
            if r.header.protocol != RouteProtocol::Other(PROTO) {
                continue;
            }
            let (mut dst, mut gw, mut oif) = (None, None, None);
            for a in &r.attributes {
                match a {
                    RouteAttribute::Destination(RouteAddress::Inet(v)) => {
                        dst = Some(IpAddr::V4(*v));
                    }
                    RouteAttribute::Destination(RouteAddress::Inet6(v)) => {
                        dst = Some(IpAddr::V6(*v));
                    }
                    RouteAttribute::Gateway(RouteAddress::Inet(v)) => gw = Some(IpAddr::V4(*v)),
                    RouteAttribute::Gateway(RouteAddress::Inet6(v)) => gw = Some(IpAddr::V6(*v)),
                    RouteAttribute::Oif(i) => oif = Some(*i),
                    _ => {}
                }
            }
            let len = r.header.destination_prefix_length;
            if let (Some(d), Some(g), Some(i)) = (dst, gw, oif) {
                if i == idx {
                    if let Ok(net) = IpNet::new(d, len) {
                        s.routes.insert((net, g));
                    }
                }
            }
        }
        Ok(s)
    }

    /// Carries out a plan, in its order. A request that fails stops it: the caller lists
    /// the device again and plans anew (a missing entry is retried, a deleted one is not
    /// deleted twice).
    pub async fn apply_overlay(&self, idx: u32, p: &Plan) -> Result<(), NetError> {
        let gone = |r: Result<(), rtnetlink::Error>, what: String| match r {
            Err(e) if matches!(errno_of(&e), libc::ENOENT | libc::ESRCH) => Ok(()),
            r => r.map_err(NetError::nl(what)),
        };
        for (net, gw) in &p.del_routes {
            gone(
                self.handle
                    .route()
                    .del(route_msg(*net, *gw, idx))
                    .execute()
                    .await,
                format!("delete route {net} via {gw}"),
            )?;
        }
        let neigh = p.del_neigh.iter().map(|(ip, mac)| {
            (
                neigh_msg(idx, *ip, *mac, false),
                format!("delete neighbour {ip}"),
            )
        });
        let fdb = p.del_fdb.iter().map(|(mac, ip)| {
            (
                neigh_msg(idx, *ip, *mac, true),
                format!("delete fdb entry {mac}"),
            )
        });
        for (m, what) in neigh.chain(fdb) {
            gone(self.handle.neighbours().del(m).execute().await, what)?;
        }
        for (mac, ip) in &p.add_fdb {
            self.handle
                .neighbours()
                .add_bridge(idx, &mac.0)
                .flags(NeighbourFlags::Own)
                .state(NeighbourState::Permanent)
                .destination(*ip)
                .replace()
                .execute()
                .await
                .map_err(NetError::nl(format!("add fdb entry {mac} dst {ip}")))?;
        }
        for (ip, mac) in &p.add_neigh {
            self.handle
                .neighbours()
                .add(idx, *ip)
                .link_layer_address(&mac.0)
                .state(NeighbourState::Permanent)
                .replace()
                .execute()
                .await
                .map_err(NetError::nl(format!("add neighbour {ip}")))?;
        }
        for (net, gw) in &p.add_routes {
            match self
                .handle
                .route()
                .add(route_msg(*net, *gw, idx))
                .execute()
                .await
            {
                Err(e) if errno_of(&e) == libc::EEXIST => {}
                r => r.map_err(NetError::nl(format!("add route {net} via {gw}")))?,
            }
        }
        Ok(())
    }
}

fn route_msg(net: IpNet, gw: IpAddr, idx: u32) -> netlink_packet_route::route::RouteMessage {
    match (net, gw) {
        (IpNet::V4(n), IpAddr::V4(g)) => RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(n.network(), n.prefix_len())
            .gateway(g)
            .output_interface(idx)
            .protocol(RouteProtocol::Other(PROTO))
            .onlink()
            .build(),
        (n, g) => {
            let mut b = RouteMessageBuilder::<std::net::Ipv6Addr>::new();
            if let (IpNet::V6(n6), IpAddr::V6(g6)) = (n, g) {
                b = b
                    .destination_prefix(n6.network(), n6.prefix_len())
                    .gateway(g6);
            }
            b.output_interface(idx)
                .protocol(RouteProtocol::Other(PROTO))
                .onlink()
                .build()
        }
    }
}

fn neigh_msg(idx: u32, ip: IpAddr, mac: Mac, fdb: bool) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.ifindex = idx;
    m.header.state = NeighbourState::Permanent;
    let dst = match ip {
        IpAddr::V4(v) => NeighbourAddress::Inet(v),
        IpAddr::V6(v) => NeighbourAddress::Inet6(v),
    };
    if fdb {
        m.header.family = AddressFamily::Bridge;
        m.header.flags = NeighbourFlags::Own;
        m.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
        m.attributes.push(NeighbourAttribute::Destination(dst));
    } else {
        m.header.family = match ip {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        m.attributes.push(NeighbourAttribute::Destination(dst));
        m.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
    }
    m
}
