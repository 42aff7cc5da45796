//! Frames in and out of an interface: an AF_PACKET socket bound to an existing interface
//! (batched with `recvmmsg`/`sendmmsg`), or a TAP device that dnatsim creates and owns.
//!
//! Both are non-blocking; the driver loop polls their descriptors. Buffers are allocated once.

// This file is the syscall shim of live mode (socket, bind, ioctl, recvmmsg/sendmmsg, poll):
// its `unsafe` blocks carry `SAFETY:` comments on the buffers and descriptors they pass.
#![allow(unsafe_code)]

use super::LiveError;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Frames per receive or send batch.
pub const BATCH: usize = 64;
/// The largest frame handled: a 9000-byte jumbo frame plus Ethernet and VLAN headers. Longer
/// frames (a GRO/TSO super-packet when offloads are on) are counted and dropped.
pub const MAX_FRAME: usize = 9216;

/// Received frames, reused batch after batch.
#[derive(Debug)]
pub struct RxBatch {
    bufs: Vec<Box<[u8]>>,
    lens: [usize; BATCH],
    /// Frames longer than [`MAX_FRAME`] that were cut (to be dropped, not forwarded).
    truncated: [bool; BATCH],
    /// The kernel's arrival time of each frame (CLOCK_REALTIME, ns), 0 when not known.
    stamps: [u64; BATCH],
    count: usize,
}

impl Default for RxBatch {
    fn default() -> RxBatch {
        RxBatch {
            bufs: (0..BATCH)
                .map(|_| vec![0; MAX_FRAME].into_boxed_slice())
                .collect(),
            lens: [0; BATCH],
            truncated: [false; BATCH],
            stamps: [0; BATCH],
            count: 0,
        }
    }
}

impl RxBatch {
    /// Frames in the batch.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when the last receive got nothing.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Frame `i` (whole unless [`RxBatch::truncated`]), writable for rewriting in place.
    pub fn frame_mut(&mut self, i: usize) -> &mut [u8] {
        let len = self.lens[i];
        &mut self.bufs[i][..len]
    }

    /// Whether frame `i` was longer than the buffer.
    pub fn truncated(&self, i: usize) -> bool {
        self.truncated[i]
    }

    /// When the kernel received frame `i` (CLOCK_REALTIME, ns), if the device says.
    pub fn stamp(&self, i: usize) -> Option<u64> {
        (self.stamps[i] != 0).then_some(self.stamps[i])
    }
}

/// One side's device.
pub trait Port {
    /// The descriptor to poll for input.
    fn fd(&self) -> RawFd;
    /// Receives what is waiting, up to one batch, into `rx` (replacing its contents).
    fn recv(&mut self, rx: &mut RxBatch) -> io::Result<()>;
    /// Queues a frame for sending (copied); it leaves at the next [`Port::flush`] or when the
    /// batch is full. Returns false when the device refused it (counted by the caller).
    fn send(&mut self, frame: &[u8]) -> bool;
    /// Sends what is queued.
    fn flush(&mut self);
    /// Frames the device refused (full queue, interface gone down).
    fn send_errors(&self) -> u64;
    /// Whether [`Port::fd`] can be polled; a port that cannot is asked for input on every
    /// round of the loop (which then spins instead of sleeping).
    fn pollable(&self) -> bool {
        true
    }
}

fn last_os_error() -> io::Error {
    io::Error::last_os_error()
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// An AF_PACKET socket on an existing interface, receiving and sending in batches.
pub struct PacketSocket {
    fd: OwnedFd,
    tx_bufs: Vec<Box<[u8]>>,
    tx_lens: [usize; BATCH],
    tx_count: usize,
    send_errors: u64,
    /// Room for each received frame's control message (its arrival timestamp).
    control: Box<[[u64; 8]; BATCH]>,
}

/// `PACKET_IGNORE_OUTGOING` (Linux 4.20): do not hand back frames the host itself sends on the
/// interface; not in every libc version's constants.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

impl PacketSocket {
    /// Opens a raw socket bound to interface `index` (named `name` in errors).
    pub fn open(name: &str, index: u32) -> Result<PacketSocket, LiveError> {
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::c_int::from(proto),
            )
        };
        if raw < 0 {
            let e = last_os_error();
            return Err(if e.raw_os_error() == Some(libc::EPERM) {
                LiveError::Permission {
                    what: format!("open a raw socket on {name}"),
                    source: e,
                }
            } else {
                LiveError::Io {
                    what: format!("open a raw socket on {name}"),
                    source: e,
                }
            });
        }
        // SAFETY: raw is a fresh descriptor owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid starting value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = index as i32;
        // SAFETY: sll is a valid sockaddr_ll and its size is passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc < 0 {
            return Err(LiveError::Io {
                what: format!("bind a raw socket to {name}"),
                source: last_os_error(),
            });
        }
        // Best effort: older kernels lack it, and then our own frames on other sockets are
        // the only outgoing ones (the gateway interfaces carry no host address).
        let one: libc::c_int = 1;
        setsockopt(&fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, one);
        // Arrival times from the kernel: the bandwidth package must see when a frame came, not
        // when the loop got round to it (a loop descheduled for 20 ms would otherwise see 20 ms
        // of traffic arrive at once, and police it as a burst).
        setsockopt(&fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, one);
        // Room for bursts while the loop is busy with the other side (as root, past rmem_max).
        let size: libc::c_int = 8 << 20;
        if !setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, size) {
            setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, size);
        }
        if !setsockopt(&fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, size) {
            setsockopt(&fd, libc::SOL_SOCKET, libc::SO_SNDBUF, size);
        }
        Ok(PacketSocket {
            fd,
            tx_bufs: (0..BATCH)
                .map(|_| vec![0; MAX_FRAME].into_boxed_slice())
                .collect(),
            tx_lens: [0; BATCH],
            tx_count: 0,
            send_errors: 0,
            control: Box::new([[0; 8]; BATCH]),
        })
    }
}

/// The `SCM_TIMESTAMPNS` of a received message, or 0.
fn arrival_ns(hdr: &libc::msghdr) -> u64 {
    // SAFETY: hdr was filled by recvmmsg; its control buffer and length describe the control
    // messages the kernel wrote, which the CMSG macros walk within those bounds.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(hdr);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                return (ts.tv_sec as u64)
                    .saturating_mul(1_000_000_000)
                    .saturating_add(ts.tv_nsec as u64);
            }
            c = libc::CMSG_NXTHDR(hdr, c);
        }
    }
    0
}

fn setsockopt(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> bool {
    // SAFETY: value is a c_int that lives across the call, and its size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    rc == 0
}

impl Port for PacketSocket {
    fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn recv(&mut self, rx: &mut RxBatch) -> io::Result<()> {
        rx.count = 0;
        // SAFETY: all-zero iovec and mmsghdr values are valid (null pointers, zero lengths);
        // every one used is pointed at a live buffer below.
        let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..BATCH {
            iov[i].iov_base = rx.bufs[i].as_mut_ptr().cast();
            iov[i].iov_len = rx.bufs[i].len();
            msgs[i].msg_hdr.msg_iov = &mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_control = self.control[i].as_mut_ptr().cast();
            msgs[i].msg_hdr.msg_controllen = std::mem::size_of::<[u64; 8]>();
        }
        // SAFETY: msgs and the buffers they point to outlive the call; BATCH entries exist.
        let n = unsafe {
            libc::recvmmsg(
                self.fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = last_os_error();
            return if would_block(&e) { Ok(()) } else { Err(e) };
        }
        let n = n as usize;
        for (i, m) in msgs.iter().enumerate().take(n) {
            let len = m.msg_len as usize;
            rx.truncated[i] = len > MAX_FRAME || m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            rx.lens[i] = len.min(MAX_FRAME);
            rx.stamps[i] = arrival_ns(&m.msg_hdr);
        }
        rx.count = n;
        Ok(())
    }

    fn send(&mut self, frame: &[u8]) -> bool {
        if frame.len() > MAX_FRAME {
            self.send_errors += 1;
            return false;
        }
        if self.tx_count == BATCH {
            self.flush();
        }
        let i = self.tx_count;
        self.tx_bufs[i][..frame.len()].copy_from_slice(frame);
        self.tx_lens[i] = frame.len();
        self.tx_count += 1;
        true
    }

    fn flush(&mut self) {
        let mut sent = 0;
        // Bounded: each round either sends at least one frame or gives the rest up.
        while sent < self.tx_count {
            // SAFETY: as in recv; the iovecs point into tx_bufs, which outlive the call.
            let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
            let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
            let count = self.tx_count - sent;
            for k in 0..count {
                let i = sent + k;
                iov[k].iov_base = self.tx_bufs[i].as_mut_ptr().cast();
                iov[k].iov_len = self.tx_lens[i];
                msgs[k].msg_hdr.msg_iov = &mut iov[k];
                msgs[k].msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: count <= BATCH entries, each pointing at a live buffer.
            let n =
                unsafe { libc::sendmmsg(self.fd.as_raw_fd(), msgs.as_mut_ptr(), count as u32, 0) };
            if n <= 0 {
                let e = last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                if e.kind() == io::ErrorKind::WouldBlock {
                    // The device queue is full: wait for room once, briefly, then drop the
                    // rest rather than stall the other direction.
                    let mut p = libc::pollfd {
                        fd: self.fd.as_raw_fd(),
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd.
                    let ready = unsafe { libc::poll(&mut p, 1, 5) };
                    if ready > 0 {
                        continue;
                    }
                }
                // This frame failed (e.g. too long for the MTU): skip it, send the rest.
                self.send_errors += 1;
                sent += 1;
                continue;
            }
            sent += n as usize;
        }
        self.tx_count = 0;
    }

    fn send_errors(&self) -> u64 {
        self.send_errors
    }
}

/// A TAP device created by dnatsim; the kernel removes it when the descriptor closes.
pub struct Tap {
    fd: OwnedFd,
    name: String,
    send_errors: u64,
}

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

impl Tap {
    /// Creates TAP device `name` (no packet-information header) and sets it up.
    pub fn create(name: &str) -> Result<Tap, LiveError> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(['/', ' ', '\0']) {
            return Err(LiveError::BadName(name.to_string()));
        }
        // SAFETY: the path is a NUL-terminated literal.
        let raw = unsafe {
            libc::open(
                c"/dev/net/tun".as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if raw < 0 {
            let e = last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => LiveError::Permission {
                    what: "open /dev/net/tun".into(),
                    source: e,
                },
                _ => LiveError::Io {
                    what: "open /dev/net/tun".into(),
                    source: e,
                },
            });
        }
        // SAFETY: raw is a fresh descriptor owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut ifr = ifreq(name);
        ifr.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: ifr is a valid ifreq for TUNSETIFF.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, &mut ifr) };
        if rc < 0 {
            let e = last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EPERM) => LiveError::Permission {
                    what: format!("create TAP device {name}"),
                    source: e,
                },
                _ => LiveError::Io {
                    what: format!(
                        "create TAP device {name} (does another interface have that name?)"
                    ),
                    source: e,
                },
            });
        }
        set_up(name)?;
        Ok(Tap {
            fd,
            name: name.to_string(),
            send_errors: 0,
        })
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain data; all-zero is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    ifr
}

/// Sets interface `name` administratively up.
fn set_up(name: &str) -> Result<(), LiveError> {
    let io_err = |source| LiveError::Io {
        what: format!("set {name} up"),
        source,
    };
    // SAFETY: plain socket(2) call; checked below.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io_err(last_os_error()));
    }
    // SAFETY: fresh descriptor owned by nothing else.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut ifr = ifreq(name);
    // SAFETY: valid ifreq for SIOCGIFFLAGS / SIOCSIFFLAGS.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut ifr) } < 0 {
        return Err(io_err(last_os_error()));
    }
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    unsafe { ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: as above.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &mut ifr) } < 0 {
        return Err(io_err(last_os_error()));
    }
    Ok(())
}

impl Port for Tap {
    fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn recv(&mut self, rx: &mut RxBatch) -> io::Result<()> {
        rx.count = 0;
        while rx.count < BATCH {
            let i = rx.count;
            let buf = &mut rx.bufs[i];
            // SAFETY: buf is a live buffer of buf.len() bytes.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                let e = last_os_error();
                if would_block(&e) {
                    break;
                }
                return Err(e);
            }
            // A TAP read returns one whole frame; a full buffer means it may have been cut.
            let n = n as usize;
            rx.lens[i] = n;
            rx.truncated[i] = n >= MAX_FRAME;
            rx.count += 1;
        }
        Ok(())
    }

    fn send(&mut self, frame: &[u8]) -> bool {
        // SAFETY: frame is a live slice of frame.len() bytes.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len()) };
        if n < 0 {
            self.send_errors += 1;
            return false;
        }
        true
    }

    fn flush(&mut self) {}

    fn send_errors(&self) -> u64 {
        self.send_errors
    }
}

/// Polls `fds` for input for at most `timeout_ns` (with ppoll, so shaped departures can be
/// met to the microsecond); returns which are readable. A signal interrupting the wait is no
/// error (the caller checks its flags); a descriptor in error counts as readable, so that the
/// receive reports what went wrong.
pub fn poll_readable<const N: usize>(fds: [RawFd; N], timeout_ns: u64) -> io::Result<[bool; N]> {
    let mut p = fds.map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    let ts = libc::timespec {
        tv_sec: (timeout_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (timeout_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: p holds N valid pollfd entries; ts lives across the call; no signal mask.
    let rc = unsafe { libc::ppoll(p.as_mut_ptr(), N as libc::nfds_t, &ts, std::ptr::null()) };
    if rc < 0 {
        let e = last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok([false; N])
        } else {
            Err(e)
        };
    }
    Ok(p.map(|q| q.revents & (libc::POLLIN | libc::POLLERR) != 0))
}

/// pnet's datalink channel on an existing interface: one `recvfrom` and one `sendto` per
/// frame, behind pnet's own poll. Kept to compare with [`PacketSocket`] (`--io pnet`): pnet
/// does not expose its descriptor, so the driver cannot sleep on it and spins instead.
pub struct PnetPort {
    tx: Box<dyn pnet_datalink::DataLinkSender>,
    rx: Box<dyn pnet_datalink::DataLinkReceiver>,
    send_errors: u64,
}

impl PnetPort {
    /// Opens pnet's Ethernet channel on interface `name`.
    pub fn open(name: &str) -> Result<PnetPort, LiveError> {
        let Some(ifc) = pnet_datalink::interfaces()
            .into_iter()
            .find(|i| i.name == name)
        else {
            return Err(LiveError::NoInterface(name.to_string()));
        };
        let config = pnet_datalink::Config {
            // A zero timeout: `next` returns at once when nothing is waiting.
            read_timeout: Some(std::time::Duration::ZERO),
            read_buffer_size: MAX_FRAME,
            write_buffer_size: MAX_FRAME,
            ..pnet_datalink::Config::default()
        };
        match pnet_datalink::channel(&ifc, config) {
            Ok(pnet_datalink::Channel::Ethernet(tx, rx)) => Ok(PnetPort {
                tx,
                rx,
                send_errors: 0,
            }),
            Ok(_) => Err(LiveError::Io {
                what: format!("open a pnet channel on {name}"),
                source: io::Error::other("not an Ethernet channel"),
            }),
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => Err(LiveError::Permission {
                what: format!("open a raw socket on {name}"),
                source: e,
            }),
            Err(e) => Err(LiveError::Io {
                what: format!("open a pnet channel on {name}"),
                source: e,
            }),
        }
    }
}

impl Port for PnetPort {
    fn fd(&self) -> RawFd {
        // poll(2) ignores negative descriptors.
        -1
    }

    fn pollable(&self) -> bool {
        false
    }

    fn recv(&mut self, rx: &mut RxBatch) -> io::Result<()> {
        rx.count = 0;
        while rx.count < BATCH {
            match self.rx.next() {
                Ok(frame) => {
                    let i = rx.count;
                    let n = frame.len().min(MAX_FRAME);
                    rx.bufs[i][..n].copy_from_slice(&frame[..n]);
                    rx.lens[i] = n;
                    rx.truncated[i] = frame.len() >= MAX_FRAME;
                    rx.count += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut || would_block(&e) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn send(&mut self, frame: &[u8]) -> bool {
        match self.tx.send_to(frame, None) {
            Some(Ok(())) => true,
            _ => {
                self.send_errors += 1;
                false
            }
        }
    }

    fn flush(&mut self) {}

    fn send_errors(&self) -> u64 {
        self.send_errors
    }
}
