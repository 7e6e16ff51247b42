//! The admin's say over published ports: `table inet berth_policy`, created by berth once
//! and never changed by it again, so its set elements are the administrator's. Its chain
//! runs in prerouting *before* berth's DNAT (priority -150 < -100) and sees the host port
//! the client asked for:
//!
//! - `deny4` / `deny6` (`saddr . proto . port`, intervals allowed): those clients are
//!   dropped on that published port;
//! - `restricted` (`proto . port`, intervals allowed): those ports only accept clients in
//!   `allow4` / `allow6`.
//!
//! ```sh
//! nft add element inet berth_policy deny4 '{ 198.51.100.0/24 . tcp . 8080 }'
//! nft add element inet berth_policy restricted '{ tcp . 5432 }'
//! nft add element inet berth_policy allow4 '{ 10.0.0.0/8 . tcp . 5432 }'
//! ```

/// The policy table's name; berth creates it if missing and otherwise leaves it alone.
pub const POLICY_TABLE: &str = "berth_policy";

/// The table as nft text (the admin reads this form too: `nft list table inet berth_policy`).
pub fn policy_table_text() -> String {
    format!(
        r#"table inet {POLICY_TABLE} {{
	set deny4 {{ type ipv4_addr . inet_proto . inet_service; flags interval; comment "clients dropped on a published host port"; }}
	set deny6 {{ type ipv6_addr . inet_proto . inet_service; flags interval; comment "clients dropped on a published host port"; }}
	set restricted {{ type inet_proto . inet_service; flags interval; comment "published host ports open only to allow4/allow6"; }}
	set allow4 {{ type ipv4_addr . inet_proto . inet_service; flags interval; comment "clients allowed on restricted ports"; }}
	set allow6 {{ type ipv6_addr . inet_proto . inet_service; flags interval; comment "clients allowed on restricted ports"; }}
	chain prerouting {{
		type filter hook prerouting priority -150; policy accept;
		ip saddr . meta l4proto . th dport @deny4 drop
		ip6 saddr . meta l4proto . th dport @deny6 drop
		meta nfproto ipv4 meta l4proto . th dport @restricted ip saddr . meta l4proto . th dport != @allow4 drop
		meta nfproto ipv6 meta l4proto . th dport @restricted ip6 saddr . meta l4proto . th dport != @allow6 drop
	}}
}}
"#
    )
}
