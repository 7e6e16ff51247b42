//! The routing mesh's return path on the node that runs a task (docs/cluster.md, "The
//! routing mesh"): replies of connections another node brought in carry that node's mark;
//! policy routing sends them to `berth-ret`, one end of a veth pair with ARP off, whose
//! egress hook (`table netdev berth_ret`) forwards them over `berth-vx` to that node.
//!
//! Two rules, not one per node: the mark names the node, and the egress hook's map turns
//! it into the node's address, so routing state does not grow with the cluster. The first
//! rule keeps locally made packets marked this way on the main table: the VXLAN device's
//! own outer packet inherits the inner packet's mark, and would otherwise be routed back
//! into `berth-ret`.

use berth_firewall::RET_DEVICE;
use netlink_packet_route::rule::{RuleAction, RuleAttribute};
use rtnetlink::{LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::{errno_of, NetError, Netlink};

/// The other end of the pair: up, so the pair has a carrier; nothing is ever sent to it.
const PEER: &str = "berth-ret-p";
/// Rule priorities: before the main table (32766), after the local table (0).
const PREF_LOCAL: u32 = 1780;
const PREF_STEER: u32 = 1781;
const MAIN_TABLE: u32 = 254;

impl Netlink {
    /// The pair, the two rules for `mark` (as a mask too) and `table`'s default route
    /// through the device, as wanted; idempotent.
    pub async fn ensure_return_path(
        &self,
        mtu: u32,
        mark: u32,
        table: u32,
    ) -> Result<(), NetError> {
        if self.link_index(RET_DEVICE).await?.is_none() {
            let msg = LinkVeth::new(RET_DEVICE, PEER).build();
            match self.handle.link().add(msg).execute().await {
                Err(e) if errno_of(&e) == libc::EEXIST => {}
                r => r.map_err(NetError::nl(format!("create {RET_DEVICE}")))?,
            }
        }
        let idx = self.link_index(RET_DEVICE).await?.ok_or_else(|| {
            NetError::io(format!("{RET_DEVICE} vanished"))(std::io::ErrorKind::NotFound.into())
        })?;
        for link in [RET_DEVICE, PEER] {
            if let Err(e) = self.disable_ipv6(link) {
                tracing::debug!(link, error = %e, "IPv6 left on");
            }
        }
        self.handle
            .link()
            .change(
                LinkUnspec::new_with_index(idx)
                    .arp(false)
                    .mtu(mtu)
                    .up()
                    .build(),
            )
            .execute()
            .await
            .map_err(NetError::nl(format!("configure {RET_DEVICE}")))?;
        self.handle
            .link()
            .change(LinkUnspec::new_with_name(PEER).up().build())
            .execute()
            .await
            .map_err(NetError::nl(format!("bring {PEER} up")))?;
        for (pref, to, iif) in [(PREF_LOCAL, MAIN_TABLE, true), (PREF_STEER, table, false)] {
            let mut req = self
                .handle
                .rule()
                .add()
                .v4()
                .priority(pref)
                .fw_mark(mark)
                .table_id(to)
                .action(RuleAction::ToTable);
            req.message_mut()
                .attributes
                .push(RuleAttribute::FwMask(mark));
            if iif {
                req = req.input_interface("lo");
            }
            match req.execute().await {
                Err(e) if errno_of(&e) == libc::EEXIST => {}
                r => r.map_err(NetError::nl(format!("add policy rule {pref}")))?,
            }
        }
        let route = RouteMessageBuilder::<std::net::Ipv4Addr>::new()
            .destination_prefix(std::net::Ipv4Addr::UNSPECIFIED, 0)
            .output_interface(idx)
            .table_id(table)
            .build();
        match self.handle.route().add(route).replace().execute().await {
            Err(e) if errno_of(&e) == libc::EEXIST => Ok(()),
            r => r.map_err(NetError::nl(format!("route table {table} to {RET_DEVICE}"))),
        }
    }
}
