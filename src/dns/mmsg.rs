//! Batched datagram I/O (`recvmmsg`/`sendmmsg`): one system call and one wake-up for every
//! query waiting on a socket, instead of two calls each. Neither tokio nor socket2 offers
//! them; nix does, behind an API that allocates per call, so this is a small safe wrapper
//! over libc.

// Lengths given to the kernel are those of fixed buffers (a batch of 64 slots of 4 KiB), far
// inside its `c_uint`/`socklen_t`.
#![allow(clippy::cast_possible_truncation)]

use std::io;
use std::mem::{size_of, zeroed};
use std::net::SocketAddr;
use std::os::fd::RawFd;

use socket2::SockAddr;

/// Datagrams taken per call. A query is at most 512 bytes, or the EDNS size it offers
/// (a larger datagram is cut, flagged MSG_TRUNC and answered as malformed).
pub(super) const BATCH: usize = 32;
const SLOT: usize = 4096;

pub(super) struct RecvBatch {
    bufs: Vec<u8>,
    addrs: Vec<libc::sockaddr_storage>,
    lens: [usize; BATCH],
    addr_lens: [libc::socklen_t; BATCH],
    truncated: [bool; BATCH],
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch {
            bufs: vec![0; SLOT * BATCH],
            // SAFETY: sockaddr_storage is plain data; all zeroes is a valid (AF_UNSPEC) value.
            addrs: vec![unsafe { zeroed() }; BATCH],
            lens: [0; BATCH],
            addr_lens: [0; BATCH],
            truncated: [false; BATCH],
        }
    }
}

impl RecvBatch {
    /// Takes what is queued on `fd`, without waiting: the count, or WouldBlock.
    pub(super) fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        let mut iovs: [libc::iovec; BATCH] = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; BATCH];
        // SAFETY: mmsghdr is plain data; zeroed is valid before the fields are set below.
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for i in 0..BATCH {
            iovs[i].iov_base = self.bufs[i * SLOT..].as_mut_ptr().cast();
            iovs[i].iov_len = SLOT;
            hdrs[i].msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            hdrs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every header points at live buffers owned by `self` or this frame (iovs),
        // sized as declared; the kernel writes at most that much into each.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = usize::try_from(n).unwrap_or(0);
        for (i, h) in hdrs.iter().enumerate().take(n) {
            self.lens[i] = h.msg_len as usize;
            self.addr_lens[i] = h.msg_hdr.msg_namelen;
            self.truncated[i] = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        }
        Ok(n)
    }

    /// Datagram `i` of the last `recv`: its bytes (None if it was cut) and its sender.
    pub(super) fn get(&self, i: usize) -> (Option<&[u8]>, Option<SocketAddr>) {
        let data = (!self.truncated[i]).then(|| &self.bufs[i * SLOT..i * SLOT + self.lens[i]]);
        let mut storage = socket2::SockAddrStorage::zeroed();
        // SAFETY: sockaddr_storage is one of the platform's sockaddr types, and the kernel
        // filled addrs[i] with addr_lens[i] bytes of a socket address.
        let addr = unsafe {
            *storage.view_as::<libc::sockaddr_storage>() = self.addrs[i];
            SockAddr::new(storage, self.addr_lens[i])
        };
        (data, addr.as_socket())
    }
}

/// Sends as many of `msgs` as the socket takes now; returns how many went.
pub(super) fn send_batch(fd: RawFd, msgs: &[(Vec<u8>, SocketAddr)]) -> io::Result<usize> {
    let n = msgs.len().min(BATCH);
    if n == 0 {
        return Ok(0);
    }
    let addrs: Vec<SockAddr> = msgs[..n].iter().map(|(_, a)| SockAddr::from(*a)).collect();
    let mut iovs: [libc::iovec; BATCH] = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; BATCH];
    // SAFETY: plain data, set below before use.
    let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
    for i in 0..n {
        iovs[i].iov_base = msgs[i].0.as_ptr() as *mut libc::c_void;
        iovs[i].iov_len = msgs[i].0.len();
        hdrs[i].msg_hdr.msg_name = addrs[i].as_ptr() as *mut libc::c_void;
        hdrs[i].msg_hdr.msg_namelen = addrs[i].len();
        hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
        hdrs[i].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: the headers point at `msgs`' buffers and `addrs`, alive for the call; the
    // kernel only reads them.
    let sent =
        unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), n as libc::c_uint, libc::MSG_DONTWAIT) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(sent).unwrap_or(0))
}
