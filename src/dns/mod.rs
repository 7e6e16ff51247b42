//! The embedded resolver's sockets: one UDP and one TCP listener on port 53 of each
//! network's gateway addresses (the source address tells which sandbox asks), one on a
//! host address for the host itself, and the relay to upstream resolvers. What a query
//! gets is decided by `berth_dns::answer` over an index snapshot that the daemon swaps
//! whole on every attach and detach, so a query never waits for an update.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use berth_dns::{answer, error_reply, Asker, Index, NetId, Reply, ResponseCode};
use socket2::{Domain, Protocol, Socket, Type};
use std::os::fd::AsRawFd;

use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

mod limits;
mod mmsg;

/// Open TCP connections are limited per listener and per source address (`limits.rs`); more
/// are closed at once (aardvark-dns's CVE-2024-8418: one idle client could block every other).
pub use limits::{PER_LISTENER as TCP_PER_NETWORK, PER_SOURCE as TCP_PER_SOURCE};
/// A TCP client that sends nothing for this long is dropped.
pub const TCP_IDLE: Duration = Duration::from_secs(5);
/// Forwarded queries in flight; beyond this a query gets SERVFAIL at once instead of
/// queueing without bound.
pub const FORWARDS_IN_FLIGHT: usize = 1024;
/// UDP sockets per address (SO_REUSEPORT): the kernel spreads clients over them, one
/// resolver thread each.
const UDP_SOCKETS: usize = 2;

#[derive(Debug, Clone)]
pub struct Config {
    /// Time to wait for one upstream resolver before trying the next.
    pub upstream_timeout: Duration,
    /// Where the host asks (`NAME.NETWORK`); `None`: no host listener.
    pub host_addr: Option<SocketAddr>,
}

pub struct Resolver {
    index: ArcSwap<Index>,
    rt: tokio::runtime::Handle,
    cfg: Config,
    /// The TCP connection budget all listeners share.
    tcp_budget: Arc<std::sync::Mutex<usize>>,
    forwards: Arc<Semaphore>,
    listeners: std::sync::Mutex<HashMap<NetId, Vec<JoinHandle<()>>>>,
    /// The host listener's address once bound.
    host_bound: std::sync::Mutex<Option<SocketAddr>>,
}

impl Resolver {
    /// Starts the resolver's runtime (its own threads: API work never delays a query).
    pub fn start(index: Index, cfg: Config) -> std::io::Result<Arc<Resolver>> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(UDP_SOCKETS)
            .thread_name("berth-dns")
            .enable_all()
            .build()?;
        let handle = rt.handle().clone();
        // The runtime lives as long as the daemon; dropping it inside the daemon's own
        // runtime would panic.
        std::mem::forget(rt);
        let r = Arc::new(Resolver {
            index: ArcSwap::from_pointee(index),
            rt: handle,
            cfg,
            tcp_budget: limits::Limiter::budget(),
            forwards: Arc::new(Semaphore::new(FORWARDS_IN_FLIGHT)),
            listeners: Default::default(),
            host_bound: Default::default(),
        });
        if let Some(addr) = r.cfg.host_addr {
            // 127.0.0.11:53 is served through the firewall's redirect to RESOLVER_PORT (so
            // the host's port 53 stays free to publish); another address is bound as given.
            let real = if addr == default_host_addr() {
                SocketAddr::new(addr.ip(), berth_firewall::RESOLVER_PORT)
            } else {
                addr
            };
            match r.bind(real, None) {
                Ok(tasks) => {
                    r.listeners.lock().expect("lock").insert("".into(), tasks);
                    *r.host_bound.lock().expect("lock") = Some(addr);
                }
                Err(e) => tracing::warn!(%addr, "host resolver address not available: {e}"),
            }
        }
        Ok(r)
    }

    /// Applies a change to a copy of the index and swaps it in. Callers serialise updates
    /// (the daemon holds its state lock), so none is lost.
    pub fn update(&self, f: impl FnOnce(&mut Index)) {
        let mut next = Index::clone(&self.index.load());
        f(&mut next);
        self.index.store(Arc::new(next));
    }

    pub fn host_addr(&self) -> Option<SocketAddr> {
        *self.host_bound.lock().expect("lock")
    }

    /// Listens on these addresses for a network (port `RESOLVER_PORT`: the firewall
    /// redirects a gateway's port 53 there); all or nothing.
    pub fn listen(self: &Arc<Self>, network: &NetId, addrs: &[IpAddr]) -> std::io::Result<()> {
        let mut tasks = Vec::new();
        for ip in addrs {
            match self.bind(
                SocketAddr::new(*ip, berth_firewall::RESOLVER_PORT),
                Some(network.clone()),
            ) {
                Ok(t) => tasks.extend(t),
                Err(e) => {
                    tasks.iter().for_each(JoinHandle::abort);
                    return Err(std::io::Error::new(
                        e.kind(),
                        format!(
                            "DNS listener on {ip}:{}: {e}",
                            berth_firewall::RESOLVER_PORT
                        ),
                    ));
                }
            }
        }
        if let Some(old) = self
            .listeners
            .lock()
            .expect("lock")
            .insert(network.clone(), tasks)
        {
            old.iter().for_each(JoinHandle::abort);
        }
        Ok(())
    }

    /// Whether the network has its listeners.
    pub fn listening(&self, network: &str) -> bool {
        self.listeners.lock().expect("lock").contains_key(network)
    }

    pub fn unlisten(&self, network: &str) {
        if let Some(tasks) = self.listeners.lock().expect("lock").remove(network) {
            tasks.iter().for_each(JoinHandle::abort);
        }
    }

    fn bind(
        self: &Arc<Self>,
        addr: SocketAddr,
        network: Option<NetId>,
    ) -> std::io::Result<Vec<JoinHandle<()>>> {
        let mut udp = Vec::new();
        for _ in 0..UDP_SOCKETS {
            udp.push(socket(addr, Type::DGRAM)?);
        }
        let tcp = socket(addr, Type::STREAM)?;
        tcp.listen(128)?;
        let mut tasks = Vec::new();
        let _guard = self.rt.enter();
        for s in udp {
            let sock = Arc::new(UdpSocket::from_std(s.into())?);
            tasks.push(self.rt.spawn(self.clone().serve_udp(sock, network.clone())));
        }
        let l = TcpListener::from_std(tcp.into())?;
        tasks.push(self.rt.spawn(self.clone().serve_tcp(l, network)));
        Ok(tasks)
    }

    /// Every query queued on the socket in one call, their answers in one more: under
    /// load a wake-up serves up to `mmsg::BATCH` queries.
    async fn serve_udp(self: Arc<Self>, sock: Arc<UdpSocket>, network: Option<NetId>) {
        let fd = sock.as_raw_fd();
        let mut batch = mmsg::RecvBatch::default();
        let mut out: Vec<(Vec<u8>, SocketAddr)> = Vec::with_capacity(mmsg::BATCH);
        loop {
            let n = match sock.try_io(Interest::READABLE, || batch.recv(fd)) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if sock.readable().await.is_err() {
                        return;
                    }
                    continue;
                }
                // ICMP errors from earlier sends surface here; the socket is fine.
                Err(_) => continue,
            };
            {
                let ix = self.index.load();
                for i in 0..n {
                    let (data, src) = batch.get(i);
                    let Some(src) = src else { continue };
                    let Some(q) = data else { continue };
                    let t = std::time::Instant::now();
                    match answer(&ix, asker(&network, src), q, false) {
                        Reply::Answer(b) => {
                            let m = &*crate::metrics::METRICS;
                            m.dns_local.inc();
                            m.dns_local_seconds.observe(t.elapsed().as_secs_f64());
                            out.push((b, src));
                        }
                        Reply::Drop => {}
                        Reply::Forward(ups) => self.forward_udp(q.to_vec(), ups, sock.clone(), src),
                    }
                }
            }
            let mut sent = 0;
            while sent < out.len() {
                match sock.try_io(Interest::WRITABLE, || mmsg::send_batch(fd, &out[sent..])) {
                    Ok(k) => sent += k.max(1),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if sock.writable().await.is_err() {
                            return;
                        }
                    }
                    // One unsendable answer (an address gone): skip it, keep the rest.
                    Err(_) => sent += 1,
                }
            }
            out.clear();
        }
    }

    fn forward_udp(
        self: &Arc<Self>,
        query: Vec<u8>,
        ups: Arc<[SocketAddr]>,
        sock: Arc<UdpSocket>,
        src: SocketAddr,
    ) {
        match self.forwards.clone().try_acquire_owned() {
            Ok(permit) => {
                let me = self.clone();
                tokio::spawn(async move {
                    let r = me.relay(&query, &ups, false).await;
                    drop(permit);
                    if let Some(r) = r {
                        let _ = sock.send_to(&r, src).await;
                    }
                });
            }
            Err(_) => {
                crate::metrics::METRICS.dns_servfail.inc();
                if let Some(r) = error_reply(&query, ResponseCode::ServFail, false) {
                    let _ = sock.try_send_to(&r, src);
                }
            }
        }
    }

    async fn serve_tcp(self: Arc<Self>, l: TcpListener, network: Option<NetId>) {
        let limiter = limits::Limiter::new(self.tcp_budget.clone());
        loop {
            let Ok((stream, peer)) = l.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let Some(permit) = limiter.admit(peer.ip()) else {
                continue; // dropped: closed at once
            };
            let me = self.clone();
            let network = network.clone();
            tokio::spawn(async move {
                let _ = me.tcp_conn(stream, peer, network).await;
                drop(permit);
            });
        }
    }

    /// Queries one after the other on one connection, each framed by its 2-byte length.
    async fn tcp_conn(
        &self,
        mut s: TcpStream,
        peer: SocketAddr,
        network: Option<NetId>,
    ) -> std::io::Result<()> {
        loop {
            let mut len = [0u8; 2];
            match tokio::time::timeout(TCP_IDLE, s.read_exact(&mut len)).await {
                Ok(Ok(_)) => {}
                _ => return Ok(()),
            }
            let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
            if tokio::time::timeout(TCP_IDLE, s.read_exact(&mut q))
                .await
                .is_err()
            {
                return Ok(());
            }
            let reply = {
                let ix = self.index.load();
                answer(&ix, asker(&network, peer), &q, true)
            };
            let out = match reply {
                Reply::Answer(b) => {
                    crate::metrics::METRICS.dns_local.inc();
                    b
                }
                Reply::Drop => return Ok(()),
                Reply::Forward(ups) => match self.forwards.clone().try_acquire_owned() {
                    Ok(_permit) => match self.relay(&q, &ups, true).await {
                        Some(r) => r,
                        None => return Ok(()),
                    },
                    Err(_) => match error_reply(&q, ResponseCode::ServFail, true) {
                        Some(r) => r,
                        None => return Ok(()),
                    },
                },
            };
            let mut framed = Vec::with_capacity(out.len() + 2);
            framed.extend_from_slice(&u16::try_from(out.len()).unwrap_or(u16::MAX).to_be_bytes());
            framed.extend_from_slice(&out);
            s.write_all(&framed).await?;
        }
    }

    /// The query, unchanged (id, flags and EDNS pass through), to each upstream in turn;
    /// the first real answer wins. None answering → SERVFAIL, never silence. A TCP client
    /// is relayed over TCP (its answer may be large); a UDP client over UDP, and a
    /// truncated answer goes back as it is, so the client retries over TCP.
    async fn relay(&self, query: &[u8], ups: &[SocketAddr], tcp: bool) -> Option<Vec<u8>> {
        let m = &*crate::metrics::METRICS;
        let t = std::time::Instant::now();
        m.dns_forwarded.inc();
        for up in ups {
            let got = if tcp {
                match relay_tcp(query, *up, self.cfg.upstream_timeout).await {
                    Some(r) => Some(r),
                    None => relay_udp(query, *up, self.cfg.upstream_timeout).await,
                }
            } else {
                relay_udp(query, *up, self.cfg.upstream_timeout).await
            };
            if got.is_some() {
                m.dns_forward_seconds.observe(t.elapsed().as_secs_f64());
                return got;
            }
            tracing::debug!(upstream = %up, "upstream resolver did not answer");
        }
        m.dns_servfail.inc();
        error_reply(query, ResponseCode::ServFail, tcp)
    }
}

/// The host's resolver address users see (`berth info`): Docker's 127.0.0.11, port 53.
pub fn default_host_addr() -> SocketAddr {
    SocketAddr::new(
        berth_firewall::RESOLVER_HOST_ADDR
            .parse()
            .expect("constant"),
        53,
    )
}

fn asker(network: &Option<NetId>, src: SocketAddr) -> Asker<'_> {
    match network {
        Some(n) => Asker::Network {
            network: n,
            source: src.ip().to_canonical(),
        },
        None => Asker::Host,
    }
}

/// A socket on `addr` that may bind before the address is usable (an IPv6 gateway still
/// in duplicate address detection) and that shares its port with its siblings.
fn socket(addr: SocketAddr, ty: Type) -> std::io::Result<Socket> {
    let proto = if ty == Type::DGRAM {
        Protocol::UDP
    } else {
        Protocol::TCP
    };
    let s = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
        s.set_freebind_v6(true)?;
    } else {
        s.set_freebind_v4(true)?;
    }
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.set_cloexec(true)?;
    s.bind(&addr.into())?;
    Ok(s)
}

/// One UDP exchange from a fresh socket (a random source port per query, against
/// spoofed answers). Only a response with the query's id from that upstream counts.
async fn relay_udp(query: &[u8], up: SocketAddr, timeout: Duration) -> Option<Vec<u8>> {
    let local: SocketAddr = if up.is_ipv6() {
        "[::]:0".parse().expect("literal")
    } else {
        "0.0.0.0:0".parse().expect("literal")
    };
    let s = UdpSocket::bind(local).await.ok()?;
    s.connect(up).await.ok()?;
    s.send(query).await.ok()?;
    let mut buf = vec![0u8; 65535];
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        // A refused port (ICMP) ends the wait at once.
        let n = tokio::time::timeout_at(deadline, s.recv(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n >= 12 && buf[..2] == query[..2] && buf[2] & 0x80 != 0 {
            buf.truncate(n);
            return Some(buf);
        }
    }
}

async fn relay_tcp(query: &[u8], up: SocketAddr, timeout: Duration) -> Option<Vec<u8>> {
    let exchange = async {
        let mut s = TcpStream::connect(up).await.ok()?;
        let mut framed = Vec::with_capacity(query.len() + 2);
        framed.extend_from_slice(&u16::try_from(query.len()).unwrap_or(u16::MAX).to_be_bytes());
        framed.extend_from_slice(query);
        s.write_all(&framed).await.ok()?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len).await.ok()?;
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut buf).await.ok()?;
        (buf.len() >= 12 && buf[..2] == query[..2]).then_some(buf)
    };
    tokio::time::timeout(timeout, exchange).await.ok()?
}

/// The resolvers named in a resolv.conf, port 53. Loopback ones included: the daemon
/// relays from the host's own namespace, where they are reachable (unlike from a sandbox).
pub fn upstreams_from(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            (it.next() == Some("nameserver"))
                .then(|| it.next())
                .flatten()
                .and_then(|s| s.split('%').next()?.parse::<IpAddr>().ok())
        })
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_keep_loopback_and_skip_junk() {
        let u = upstreams_from(
            "# x\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\nnameserver bogus\nsearch a\nnameserver 10.0.0.1\n",
        );
        assert_eq!(
            u,
            vec![
                "127.0.0.53:53".parse::<SocketAddr>().unwrap(),
                "[fe80::1]:53".parse().unwrap(),
                "10.0.0.1:53".parse().unwrap()
            ]
        );
    }
}
