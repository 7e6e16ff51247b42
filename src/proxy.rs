//! Published host ports, held and (where the kernel path does not serve) proxied.
//!
//! Every published port is held by a socket of the daemon, bound before anything else
//! changes: that is how a port already used by a host process is found, and it keeps any
//! process from taking the port later. The same socket is the userland proxy: with the
//! kernel path on, the only connections that reach it are those nftables does not DNAT —
//! clients on the host connecting to a loopback address, and IPv6 clients of an IPv4-only
//! container. With `--userland-proxy=always` it serves everything.
//!
//! TCP is moved with `splice(2)` through a pipe per direction (no copy into user space),
//! half-closes are passed on with `shutdown(SHUT_WR)`. UDP keeps one upstream socket per
//! client address and drops it after an idle timeout. One task per binding, inside the
//! daemon: no process per port.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use berth_ports::Proto;
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;

/// How long a UDP flow lives without traffic (docker-proxy: 90 s).
pub const UDP_IDLE: Duration = Duration::from_secs(90);
/// Upper bound on concurrent UDP flows per binding, so a flood of source addresses cannot
/// exhaust the daemon's descriptors.
pub const UDP_MAX_FLOWS: usize = 4096;
/// A direction moves to `splice` once it has carried this much: short exchanges (one
/// request, one answer) are cheaper with a plain read/write than with a pipe pair to make.
const SPLICE_AFTER: usize = 256 << 10;
const SPLICE_CHUNK: usize = 1 << 20;
const COPY_BUF: usize = 16 << 10;

/// The proxy's own runtime: one thread, so a connection's two directions and its accept
/// never hand work to another thread (cheaper per connection than the daemon's shared,
/// work-stealing runtime), and API requests never wait behind a busy proxy.
fn runtime() -> &'static tokio::runtime::Handle {
    static RT: std::sync::OnceLock<tokio::runtime::Handle> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("proxy runtime");
        let handle = rt.handle().clone();
        std::thread::Builder::new()
            .name("berth-proxy".into())
            .spawn(move || rt.block_on(std::future::pending::<()>()))
            .expect("proxy thread");
        handle
    })
}

/// Whether upstream connections take the client's address (`IP_TRANSPARENT`), so the
/// container sees who connected. Set by the daemon once the return path (policy routing of
/// `berth_firewall::PROXY_MARK`) is in place.
static TRANSPARENT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn set_transparent(on: bool) {
    TRANSPARENT.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Connects to `to` on behalf of `client`: from the client's own address when transparent
/// proxying is on and possible (same family, not a loopback client), else from the host's.
async fn connect_upstream(client: SocketAddr, to: SocketAddr) -> io::Result<TcpStream> {
    let transparent = TRANSPARENT.load(std::sync::atomic::Ordering::Relaxed)
        && client.is_ipv4() == to.is_ipv4()
        && !client.ip().is_loopback();
    if transparent {
        let sock = if to.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        let s2 = socket2::SockRef::from(&sock);
        let prepared = if to.is_ipv4() {
            s2.set_ip_transparent_v4(true)
        } else {
            s2.set_ip_transparent_v6(true)
        }
        .and_then(|_| s2.set_mark(berth_firewall::PROXY_SOCKET_MARK))
        .and_then(|_| sock.bind(SocketAddr::new(client.ip(), 0)));
        match prepared {
            Ok(()) => return sock.connect(to).await,
            Err(e) => tracing::debug!("transparent upstream from {client}: {e}; plain connect"),
        }
    }
    TcpStream::connect(to).await
}

/// A bound (not yet serving) host port.
pub enum Held {
    Tcp(std::net::TcpListener),
    Udp(std::net::UdpSocket),
    /// SCTP ports are served by the kernel path only; nothing is held.
    None,
}

/// Binds `ip:port` for `proto`. An unspecified IPv6 address is bound IPv6-only, so `::` and
/// `0.0.0.0` are two bindings, as in Docker.
pub fn bind(proto: Proto, ip: IpAddr, port: u16) -> io::Result<Held> {
    use socket2::{Domain, Protocol, Socket, Type};
    let addr = SocketAddr::new(ip, port);
    let domain = Domain::for_address(addr);
    let (ty, p) = match proto {
        Proto::Tcp => (Type::STREAM, Protocol::TCP),
        Proto::Udp => (Type::DGRAM, Protocol::UDP),
        Proto::Sctp => return Ok(Held::None),
    };
    let s = Socket::new(domain, ty.cloexec().nonblocking(), Some(p))?;
    if ip.is_ipv6() {
        s.set_only_v6(true)?;
    }
    if proto == Proto::Tcp {
        // As Go's net.Listen (docker-proxy): a port in TIME_WAIT can be bound again.
        s.set_reuse_address(true)?;
    }
    s.bind(&addr.into())?;
    Ok(match proto {
        Proto::Tcp => {
            s.listen(4096)?;
            Held::Tcp(s.into())
        }
        _ => Held::Udp(s.into()),
    })
}

/// Serves a held port until the returned handle is dropped (or aborted). `target` can be
/// changed later (a container connected to or disconnected from a network); `None` means
/// "no route now": TCP connections are closed, UDP datagrams dropped.
pub fn serve(
    held: Held,
    target: watch::Receiver<Option<SocketAddr>>,
) -> io::Result<Option<tokio::task::JoinHandle<()>>> {
    let rt = runtime();
    // Registered with the proxy runtime's reactor, so converted inside it.
    Ok(match held {
        Held::Tcp(l) => Some(rt.spawn(async move {
            match TcpListener::from_std(l) {
                Ok(l) => serve_tcp(l, target).await,
                Err(e) => tracing::warn!("proxy listener: {e}"),
            }
        })),
        Held::Udp(u) => Some(rt.spawn(async move {
            match UdpSocket::from_std(u) {
                Ok(u) => serve_udp(Arc::new(u), target).await,
                Err(e) => tracing::warn!("proxy socket: {e}"),
            }
        })),
        Held::None => None,
    })
}

async fn serve_tcp(l: TcpListener, target: watch::Receiver<Option<SocketAddr>>) {
    loop {
        let (client, peer) = match l.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and the like: back off instead of spinning.
                tracing::warn!("proxy accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(to) = *target.borrow() else {
            continue;
        };
        crate::metrics::METRICS.proxy_connections.inc();
        tokio::spawn(async move {
            let _ = client.set_nodelay(true);
            let Ok(upstream) = connect_upstream(peer, to).await else {
                return;
            };
            let _ = upstream.set_nodelay(true);
            if let Err(e) = relay(client, upstream).await {
                tracing::debug!("proxy to {to}: {e}");
            }
        });
    }
}

/// Both directions at once; each ends with its own EOF and half-closes the other side.
pub async fn relay(a: TcpStream, b: TcpStream) -> io::Result<()> {
    let (r1, r2) = tokio::join!(one_way(&a, &b), one_way(&b, &a));
    r1.and(r2)
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(io::Error::from)?;
    // A bigger pipe moves more per splice call; failure just keeps the default size.
    // SAFETY: fcntl on a descriptor this function owns; no memory is passed.
    unsafe {
        libc::fcntl(
            w.as_raw_fd(),
            libc::F_SETPIPE_SZ,
            libc::c_int::try_from(SPLICE_CHUNK).unwrap_or(libc::c_int::MAX),
        )
    };
    Ok((r, w))
}

fn splice(from: i32, to: i32, len: usize) -> io::Result<usize> {
    // SAFETY: splice between two descriptors the caller holds open, with null offsets (the
    // kernel uses the file positions); no memory of ours is passed.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    // Non-negative: a byte count.
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

async fn one_way(from: &TcpStream, to: &TcpStream) -> io::Result<()> {
    let res = async {
        // Plain copies first; bulk transfers go on with splice.
        let mut buf = vec![0u8; COPY_BUF];
        let mut carried = 0;
        while carried < SPLICE_AFTER {
            let n = from
                .async_io(Interest::READABLE, || {
                    // SAFETY: `buf` is a live, exclusively borrowed buffer of `buf.len()` bytes.
                    let n =
                        unsafe { libc::read(from.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                    usize::try_from(n).map_err(|_| io::Error::last_os_error())
                })
                .await?;
            if n == 0 {
                return Ok(());
            }
            let mut off = 0;
            while off < n {
                off += to
                    .async_io(Interest::WRITABLE, || {
                        // SAFETY: `buf[off..n]` is initialized and lives across the call.
                        let w = unsafe {
                            libc::write(to.as_raw_fd(), buf[off..n].as_ptr().cast(), n - off)
                        };
                        usize::try_from(w).map_err(|_| io::Error::last_os_error())
                    })
                    .await?;
            }
            carried += n;
        }
        let (pr, pw) = pipe()?;
        loop {
            let n = from
                .async_io(Interest::READABLE, || {
                    splice(from.as_fd().as_raw_fd(), pw.as_raw_fd(), SPLICE_CHUNK)
                })
                .await?;
            if n == 0 {
                return Ok(());
            }
            let mut left = n;
            while left > 0 {
                left -= to
                    .async_io(Interest::WRITABLE, || {
                        splice(pr.as_raw_fd(), to.as_fd().as_raw_fd(), left)
                    })
                    .await?;
            }
        }
    }
    .await;
    // Pass the half-close on (or the failure, as a close of our sending side).
    let _ = nix::sys::socket::shutdown(to.as_raw_fd(), nix::sys::socket::Shutdown::Write);
    res
}

async fn serve_udp(sock: Arc<UdpSocket>, target: watch::Receiver<Option<SocketAddr>>) {
    let flows: Arc<std::sync::Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Default::default();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, client)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let Some(to) = *target.borrow() else {
            continue;
        };
        let existing = flows.lock().expect("lock").get(&client).cloned();
        let up = match existing {
            Some(u) => u,
            None => {
                if flows.lock().expect("lock").len() >= UDP_MAX_FLOWS {
                    continue;
                }
                let bind: SocketAddr = if to.is_ipv4() {
                    "0.0.0.0:0".parse().expect("constant")
                } else {
                    "[::]:0".parse().expect("constant")
                };
                let Ok(u) = UdpSocket::bind(bind).await else {
                    continue;
                };
                if u.connect(to).await.is_err() {
                    continue;
                }
                let u = Arc::new(u);
                flows.lock().expect("lock").insert(client, u.clone());
                tokio::spawn(udp_back(u.clone(), sock.clone(), client, flows.clone()));
                u
            }
        };
        let _ = up.send(&buf[..n]).await;
    }
}

/// Answers of one flow go back to its client; the flow ends after `UDP_IDLE` of silence.
async fn udp_back(
    up: Arc<UdpSocket>,
    sock: Arc<UdpSocket>,
    client: SocketAddr,
    flows: Arc<std::sync::Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>>,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        match tokio::time::timeout(UDP_IDLE, up.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                let _ = sock.send_to(&buf[..n], client).await;
            }
            // ICMP errors (port unreachable) surface here: keep the flow until idle.
            Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(_) => break,
        }
    }
    flows.lock().expect("lock").remove(&client);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The relay over loopback: bytes both ways, and a half-close is passed on while the
    /// other direction keeps working.
    #[tokio::test]
    async fn tcp_relay_passes_data_and_half_close() {
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server_addr = server.local_addr().unwrap();
        let held = bind(Proto::Tcp, "127.0.0.1".parse().unwrap(), 0).unwrap();
        let Held::Tcp(l) = &held else { panic!() };
        let front = l.local_addr().unwrap();
        let (_tx, rx) = watch::channel(Some(server_addr));
        let task = serve(held, rx).unwrap().unwrap();

        let echo = tokio::spawn(async move {
            let (mut s, _) = server.accept().await.unwrap();
            let mut all = Vec::new();
            s.read_to_end(&mut all).await.unwrap(); // ends on the client's half-close
            s.write_all(&all).await.unwrap();
            s.write_all(b"|done").await.unwrap();
        });
        let mut c = TcpStream::connect(front).await.unwrap();
        let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        c.write_all(&payload).await.unwrap();
        c.shutdown().await.unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).await.unwrap();
        echo.await.unwrap();
        assert_eq!(&back[..payload.len()], &payload[..]);
        assert_eq!(&back[payload.len()..], b"|done");
        task.abort();
    }

    #[tokio::test]
    async fn udp_flows_answer_their_own_client() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let server_addr = server.local_addr().unwrap();
        tokio::spawn(async move {
            let mut b = [0u8; 100];
            loop {
                let (n, from) = server.recv_from(&mut b).await.unwrap();
                let mut reply = b"echo:".to_vec();
                reply.extend_from_slice(&b[..n]);
                server.send_to(&reply, from).await.unwrap();
            }
        });
        let held = bind(Proto::Udp, "127.0.0.1".parse().unwrap(), 0).unwrap();
        let Held::Udp(u) = &held else { panic!() };
        let front = u.local_addr().unwrap();
        let (_tx, rx) = watch::channel(Some(server_addr));
        let task = serve(held, rx).unwrap().unwrap();
        let mut clients = Vec::new();
        for i in 0..3 {
            let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            c.send_to(format!("c{i}").as_bytes(), front).await.unwrap();
            clients.push(c);
        }
        for (i, c) in clients.iter().enumerate() {
            let mut b = [0u8; 100];
            let n = tokio::time::timeout(Duration::from_secs(5), c.recv(&mut b))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(&b[..n], format!("echo:c{i}").as_bytes());
        }
        task.abort();
    }

    #[test]
    fn a_held_port_cannot_be_taken_twice() {
        let a = bind(Proto::Tcp, "127.0.0.1".parse().unwrap(), 0).unwrap();
        let Held::Tcp(l) = &a else { panic!() };
        let port = l.local_addr().unwrap().port();
        assert!(bind(Proto::Tcp, "127.0.0.1".parse().unwrap(), port).is_err());
        assert!(bind(Proto::Tcp, "0.0.0.0".parse().unwrap(), port).is_err());
        // other protocol, same number: fine
        bind(Proto::Udp, "127.0.0.1".parse().unwrap(), port).unwrap();
    }
}
