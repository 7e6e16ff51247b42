//! Descriptor passing (SCM_RIGHTS) over the upgraded API connection.

use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// Sends one byte carrying `fds`.
pub fn send_fds(s: &UnixStream, fds: &[RawFd]) -> std::io::Result<()> {
    let iov = [IoSlice::new(b"\0")];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
    sendmsg::<()>(s.as_raw_fd(), &iov, cmsgs, MsgFlags::empty(), None)?;
    Ok(())
}

/// Receives one byte and the descriptors it carries (at most `max`).
pub fn recv_fds(s: &UnixStream, max: usize) -> std::io::Result<Vec<OwnedFd>> {
    Ok(recv_byte(s, max)?.1)
}

fn recv_byte(s: &UnixStream, max: usize) -> std::io::Result<(u8, Vec<OwnedFd>)> {
    let mut b = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut b)];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let msg = recvmsg::<()>(
        s.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    if msg.bytes == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let mut out = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // SAFETY: the kernel installed these descriptors in our table for us; owning
                // them (and dropping any beyond `max`) closes them.
                out.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    out.truncate(max);
    Ok((b[0], out))
}

/// Writes a JSON line; with `fd`, its first byte carries the descriptor.
pub fn send_line<T: serde::Serialize>(
    s: &UnixStream,
    v: &T,
    fd: Option<&OwnedFd>,
) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(v)?;
    line.push(b'\n');
    let mut rest: &[u8] = &line;
    if let Some(fd) = fd {
        let iov = [IoSlice::new(&line[..1])];
        let fds = [fd.as_raw_fd()];
        sendmsg::<()>(
            s.as_raw_fd(),
            &iov,
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )?;
        rest = &line[1..];
    }
    let mut w = s;
    w.write_all(rest)
}

/// Reads a JSON line and the descriptor its first byte may carry.
pub fn recv_line<T: serde::de::DeserializeOwned>(
    s: &UnixStream,
) -> std::io::Result<(T, Option<OwnedFd>)> {
    let (first, fds) = recv_byte(s, 1)?;
    let mut line = vec![first];
    let mut r = s;
    let mut b = [0u8; 1];
    while line.last() != Some(&b'\n') {
        if r.read(&mut b)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        line.push(b[0]);
    }
    Ok((serde_json::from_slice(&line)?, fds.into_iter().next()))
}
