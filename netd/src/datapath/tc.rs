//! netd's tc filters (clsact + cls_bpf) over one rtnetlink socket, one message per change.
//!
//! aya opens a socket for every request and swaps a program in with three of them (attach,
//! find, replace). A restart with 1,000 ports did that 2,000 times; and a swap to the same
//! program still made the kernel retire the old filter. Here a filter that already runs the
//! wanted program is left alone, and any other is created or replaced by one request.

use std::{
    io,
    os::fd::{AsFd, AsRawFd, OwnedFd},
};

/// Where netd's filters sit: a fixed priority and handle, so that a restarted daemon finds
/// what an earlier run attached instead of stacking a second filter.
pub const PRIORITY: u16 = 1;
pub const HANDLE: u32 = 0x4e44;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    /// The clsact parent of the direction (TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_{IN,E}GRESS)).
    fn parent(self) -> u32 {
        match self {
            Direction::Ingress => 0xffff_fff2,
            Direction::Egress => 0xffff_fff3,
        }
    }
}

const RTM_NEWQDISC: u16 = 36;
const RTM_NEWTFILTER: u16 = 44;
const RTM_GETTFILTER: u16 = 46;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_BPF_FD: u16 = 6;
const TCA_BPF_NAME: u16 = 7;
const TCA_BPF_FLAGS: u16 = 8;
const TCA_BPF_ID: u16 = 11;
const TCA_BPF_FLAG_ACT_DIRECT: u32 = 1;
const TC_H_CLSACT: u32 = 0xffff_fff1;
const ETH_P_ALL: u16 = 0x0003;
const HEADER: usize = 16;
const TCMSG: usize = 20;

/// An rtnetlink socket of the calling thread's namespace.
pub struct TcSocket {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl TcSocket {
    pub fn open() -> io::Result<Self> {
        crate::netns::netlink_socket().map(Self::from_fd)
    }

    /// A socket made elsewhere, say in a container's namespace
    /// (`netns::netlink_socket_in`).
    pub fn from_fd(fd: OwnedFd) -> Self {
        Self {
            fd,
            seq: 0,
            buf: vec![0; 32 * 1024],
        }
    }

    /// Adds the clsact qdisc to `ifindex`; one already there is fine.
    pub fn add_clsact(&mut self, ifindex: u32) -> io::Result<()> {
        let mut msg = self.message(
            RTM_NEWQDISC,
            NLM_F_CREATE | NLM_F_EXCL,
            ifindex,
            0xffff_0000,
            TC_H_CLSACT,
            0,
        );
        put_attr(&mut msg, TCA_KIND, b"clsact\0");
        match self.request(msg) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            other => other.map(drop),
        }
    }

    /// The id of the program netd's filter runs in `direction` of `ifindex`, if it has one.
    pub fn filter_program(
        &mut self,
        ifindex: u32,
        direction: Direction,
    ) -> io::Result<Option<u32>> {
        let msg = self.filter_message(RTM_GETTFILTER, 0, ifindex, direction);
        match self.request(msg) {
            Ok(replies) => Ok(replies.iter().find_map(|r| bpf_id(r))),
            // No clsact (EINVAL) or no filter at netd's handle (ENOENT).
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EINVAL)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Makes netd's filter in `direction` of `ifindex` run `prog_fd`: created if missing,
    /// its program replaced atomically if not.
    pub fn set_filter(
        &mut self,
        ifindex: u32,
        direction: Direction,
        prog_fd: &impl AsFd,
        name: &str,
    ) -> io::Result<()> {
        let mut msg = self.filter_message(RTM_NEWTFILTER, NLM_F_CREATE, ifindex, direction);
        put_attr(&mut msg, TCA_KIND, b"bpf\0");
        let options = begin_nested(&mut msg, TCA_OPTIONS);
        put_attr(
            &mut msg,
            TCA_BPF_FD,
            &prog_fd.as_fd().as_raw_fd().to_ne_bytes(),
        );
        let mut cname = name.as_bytes().to_vec();
        cname.push(0);
        put_attr(&mut msg, TCA_BPF_NAME, &cname);
        put_attr(
            &mut msg,
            TCA_BPF_FLAGS,
            &TCA_BPF_FLAG_ACT_DIRECT.to_ne_bytes(),
        );
        end_nested(&mut msg, options);
        self.request(msg).map(drop)
    }

    fn filter_message(&mut self, kind: u16, flags: u16, ifindex: u32, d: Direction) -> Vec<u8> {
        let info = (u32::from(PRIORITY) << 16) | u32::from(ETH_P_ALL.to_be());
        self.message(kind, flags, ifindex, HANDLE, d.parent(), info)
    }

    fn message(
        &mut self,
        kind: u16,
        flags: u16,
        ifindex: u32,
        handle: u32,
        parent: u32,
        info: u32,
    ) -> Vec<u8> {
        self.seq = self.seq.wrapping_add(1);
        let mut msg = Vec::with_capacity(128);
        msg.extend_from_slice(&0u32.to_ne_bytes()); // length, set by `request`
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        msg.extend_from_slice(&self.seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
                                                    // tcmsg: family AF_UNSPEC and padding, then ifindex, handle, parent, info.
        msg.extend_from_slice(&[0u8; 4]);
        for field in [ifindex, handle, parent, info] {
            msg.extend_from_slice(&field.to_ne_bytes());
        }
        msg
    }

    /// Sends `msg` and reads up to its acknowledgement; returns the payloads of the replies
    /// before it (tcmsg and attributes), or the error the kernel answered with.
    fn request(&mut self, mut msg: Vec<u8>) -> io::Result<Vec<Vec<u8>>> {
        let len = msg.len() as u32;
        msg[..4].copy_from_slice(&len.to_ne_bytes());
        let seq = self.seq;
        // SAFETY: msg is a live buffer of msg.len() bytes; the kernel is the destination.
        let sent = unsafe {
            let mut to: libc::sockaddr_nl = std::mem::zeroed();
            to.nl_family = libc::AF_NETLINK as u16;
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&to as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut replies = Vec::new();
        loop {
            // SAFETY: buf is a live buffer of buf.len() bytes.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    0,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for (kind, msg_seq, payload) in messages(&self.buf[..n as usize]) {
                if msg_seq != seq {
                    continue; // a late answer to an earlier request
                }
                match kind {
                    NLMSG_ERROR => {
                        let code = payload
                            .get(..4)
                            .map_or(0, |b| i32::from_ne_bytes(b.try_into().unwrap()));
                        return match code {
                            0 => Ok(replies),
                            code => Err(io::Error::from_raw_os_error(-code)),
                        };
                    }
                    NLMSG_DONE => return Ok(replies),
                    _ => replies.push(payload.to_vec()),
                }
            }
        }
    }
}

/// The messages of one datagram: type, sequence number and payload.
fn messages(mut buf: &[u8]) -> Vec<(u16, u32, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= HEADER {
        let len = u32::from_ne_bytes(buf[..4].try_into().unwrap()) as usize;
        if len < HEADER || len > buf.len() {
            break;
        }
        let kind = u16::from_ne_bytes(buf[4..6].try_into().unwrap());
        let seq = u32::from_ne_bytes(buf[8..12].try_into().unwrap());
        out.push((kind, seq, &buf[HEADER..len]));
        buf = &buf[align(len).min(buf.len())..];
    }
    out
}

/// The program id in a filter's reply (TCA_OPTIONS → TCA_BPF_ID).
fn bpf_id(reply: &[u8]) -> Option<u32> {
    let options = attrs(reply.get(TCMSG..)?)
        .find(|(t, _)| *t == TCA_OPTIONS)?
        .1;
    let id = attrs(options).find(|(t, _)| *t == TCA_BPF_ID)?.1;
    Some(u32::from_ne_bytes(id.get(..4)?.try_into().ok()?))
}

/// The attributes of a buffer: type (without the nested and byte-order flags) and payload.
fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let kind = u16::from_ne_bytes([buf[2], buf[3]]) & 0x3fff;
        if len < 4 || len > buf.len() {
            return None;
        }
        let payload = &buf[4..len];
        buf = &buf[align(len).min(buf.len())..];
        Some((kind, payload))
    })
}

fn align(len: usize) -> usize {
    (len + 3) & !3
}

fn put_attr(msg: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    msg.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    msg.extend_from_slice(&kind.to_ne_bytes());
    msg.extend_from_slice(payload);
    msg.resize(align(msg.len()), 0);
}

fn begin_nested(msg: &mut Vec<u8>, kind: u16) -> usize {
    let at = msg.len();
    put_attr(msg, kind, &[]);
    at
}

fn end_nested(msg: &mut [u8], at: usize) {
    let len = (msg.len() - at) as u16;
    msg[at..at + 2].copy_from_slice(&len.to_ne_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_attributes_round_trip() {
        let mut msg = vec![0u8; TCMSG];
        put_attr(&mut msg, TCA_KIND, b"bpf\0");
        let at = begin_nested(&mut msg, TCA_OPTIONS);
        put_attr(&mut msg, TCA_BPF_NAME, b"abcde\0");
        put_attr(&mut msg, TCA_BPF_ID, &77u32.to_ne_bytes());
        end_nested(&mut msg, at);
        assert_eq!(msg.len() % 4, 0);
        assert_eq!(bpf_id(&msg), Some(77));
    }

    #[test]
    fn a_reply_without_options_has_no_program() {
        let mut msg = vec![0u8; TCMSG];
        put_attr(&mut msg, TCA_KIND, b"bpf\0");
        assert_eq!(bpf_id(&msg), None);
        assert_eq!(bpf_id(&[0u8; 3]), None);
    }

    #[test]
    fn truncated_datagrams_stop_the_walk() {
        let mut buf = Vec::new();
        buf.extend_from_slice(&20u32.to_ne_bytes());
        buf.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        buf.extend_from_slice(&0u16.to_ne_bytes());
        buf.extend_from_slice(&9u32.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&(-17i32).to_ne_bytes());
        buf.extend_from_slice(&[1, 2, 3]); // a cut-off second message
        let m = messages(&buf);
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].0, m[0].1), (NLMSG_ERROR, 9));
    }
}
