//! Fragments: this gateway does not reassemble. A datagram's first fragment, which holds the
//! transport header, is translated and its decision remembered; later fragments of the datagram
//! follow it, and one that arrives before its first fragment is copied aside (bounded in number
//! and time) until that decision comes.

use super::translate::{PacketMeta, Translator};
use super::verdict::{DropReason, Outcome, Tuple, Verdict};
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::{Frame, locate_ipv4};

/// Later fragments held while waiting for their first fragment (Linux keeps far more bytes in
/// reassembly queues, but a gateway that does not reassemble needs only a small window).
pub const FRAG_HOLD_MAX: usize = 1024;
/// How long a held fragment waits for its first fragment.
pub const FRAG_HOLD_NS: u64 = 2_000_000_000;
/// How long a first fragment's decision applies to the rest of its datagram (Linux's
/// `ipfrag_time` is 30 s).
pub const FRAG_STATE_NS: u64 = 30_000_000_000;
/// Datagrams whose decision is remembered at once.
pub const FRAG_STATE_MAX: usize = 65_536;
/// The largest IPv4 datagram (RFC 791: the total length is 16 bits).
pub(super) const MAX_DATAGRAM_LEN: usize = 65_535;

/// A consequence of holding fragments, delivered after the packet that caused it.
#[derive(Debug)]
pub enum Event {
    /// A held fragment whose first fragment has now decided; `data` is the rewritten frame.
    Released {
        /// The fragment's own record.
        meta: PacketMeta,
        /// The frame, rewritten per the verdict (return it with [`Translator::recycle`]).
        data: Vec<u8>,
        /// What happened to it.
        outcome: Outcome,
    },
    /// A held fragment that waited too long or did not fit; dropped as `fragment_orphan`.
    Orphan {
        /// The fragment's record.
        meta: PacketMeta,
        /// The frame as it arrived (unchanged), so an annotated output can keep it; hand it
        /// back with [`Translator::recycle`].
        data: Vec<u8>,
        /// Its outcome (always `Drop(FragmentOrphan)`).
        outcome: Outcome,
    },
}

impl Event {
    /// The record to deliver, its bytes and its outcome, as of `now_ns`: a released fragment
    /// leaves when its first fragment let it (`now_ns` at the latest); an orphan keeps its
    /// arrival time, since it is only shown, unchanged, never sent.
    pub fn into_parts(self, now_ns: u64) -> (PacketMeta, Vec<u8>, Outcome) {
        match self {
            Event::Released {
                mut meta,
                data,
                outcome,
            } => {
                meta.ts_ns = meta.ts_ns.max(now_ns);
                (meta, data, outcome)
            }
            Event::Orphan {
                meta,
                data,
                outcome,
            } => (meta, data, outcome),
        }
    }
}

/// The rewrite a datagram's first fragment decided for the rest of it.
#[derive(Debug, Clone, Copy)]
pub(super) enum FragAction {
    Rewrite {
        verdict: Verdict,
        new_src: u32,
        new_dst: u32,
    },
    Pass,
    Drop(DropReason),
}

#[derive(Debug, Clone, Copy)]
pub(super) struct FragState {
    action: FragAction,
    created_ns: u64,
}

#[derive(Debug)]
pub(super) struct HeldFrag {
    key: u128,
    meta: PacketMeta,
    data: Vec<u8>,
}

/// The datagram key of a fragment: (src, dst, protocol, identification).
#[inline]
pub(super) fn frag_key(src: u32, dst: u32, proto: u8, ident: u16) -> u128 {
    (u128::from(src) << 64)
        | (u128::from(dst) << 32)
        | (u128::from(proto) << 16)
        | u128::from(ident)
}

impl Translator<'_> {
    /// Records what a first fragment decided for datagram `key` and releases the fragments
    /// of it that were held.
    pub(super) fn remember_fragment(&mut self, key: u128, action: FragAction, now: u64) {
        if self.frags.len() >= FRAG_STATE_MAX {
            self.frags
                .retain(|_, s| now.saturating_sub(s.created_ns) <= FRAG_STATE_NS);
        }
        if self.frags.len() < FRAG_STATE_MAX {
            self.frags.insert(
                key,
                FragState {
                    action,
                    created_ns: now,
                },
            );
        }
        if !self.held.is_empty() {
            self.release_held(key, action);
        }
    }

    /// A fragment after the first, of the datagram `key`: rewritten as its first fragment
    /// decided, or held until that one comes.
    pub(super) fn later_fragment(
        &mut self,
        mut ip: Ipv4Packet<&mut [u8]>,
        key: u128,
        now: u64,
        mut out: Outcome,
    ) -> Outcome {
        let state = self
            .frags
            .get(&key)
            .copied()
            .filter(|s| now < s.created_ns || now - s.created_ns <= FRAG_STATE_NS);
        match state {
            Some(s) => self.apply_fragment_action(&mut ip, s.action, &mut out),
            // `process` copies the frame aside once the view's borrow has ended.
            None if self.held.len() < FRAG_HOLD_MAX => out.verdict = Verdict::Held,
            None => out.verdict = Verdict::Drop(DropReason::FragmentOrphan),
        }
        out
    }

    /// Copies `frame`, a later fragment of datagram `key`, aside until its first fragment.
    pub(super) fn hold(&mut self, frame: &[u8], meta: &PacketMeta, key: u128) {
        let mut data = self.spare.pop().unwrap_or_default();
        data.clear();
        data.extend_from_slice(frame);
        self.held.push_back(HeldFrag {
            key,
            meta: *meta,
            data,
        });
    }

    fn apply_fragment_action(
        &self,
        ip: &mut Ipv4Packet<&mut [u8]>,
        action: FragAction,
        out: &mut Outcome,
    ) {
        match action {
            FragAction::Pass => out.verdict = Verdict::PassForeign,
            FragAction::Drop(r) => out.verdict = Verdict::Drop(r),
            FragAction::Rewrite {
                verdict,
                new_src,
                new_dst,
            } => {
                if !self.config.keep_ttl && ip.ttl() <= 1 {
                    out.verdict = Verdict::Drop(DropReason::TtlExpired);
                    return;
                }
                if ip.src() != new_src {
                    ip.set_src(new_src);
                }
                if ip.dst() != new_dst {
                    ip.set_dst(new_dst);
                }
                if !self.config.keep_ttl {
                    ip.decrement_ttl();
                }
                out.verdict = verdict;
                out.after.src = new_src;
                out.after.dst = new_dst;
            }
        }
    }

    fn release_held(&mut self, key: u128, action: FragAction) {
        let mut i = 0;
        while i < self.held.len() {
            if self.held[i].key != key {
                i += 1;
                continue;
            }
            let Some(mut h) = self.held.remove(i) else {
                break;
            };
            let mut out = Outcome::new(Verdict::Held);
            let offset = match locate_ipv4(h.meta.link_type, &h.data) {
                Frame::Ipv4 { offset } => offset,
                // The frame was located before it was held; it cannot change.
                _ => 0,
            };
            let wire_len = (h.meta.orig_len as usize).saturating_sub(offset);
            let bytes = h.data.get_mut(offset..).unwrap_or_default();
            if let Ok(mut ip) = Ipv4Packet::new_checked(bytes, wire_len) {
                out.ip_len = ip.total_len() as u16;
                out.notes.fragment = true;
                out.notes.snapped = ip.is_snapped();
                out.before = Tuple {
                    proto: ip.protocol(),
                    src: ip.src(),
                    sport: 0,
                    dst: ip.dst(),
                    dport: 0,
                };
                out.after = out.before;
                self.apply_fragment_action(&mut ip, action, &mut out);
            }
            self.events.push_back(Event::Released {
                meta: h.meta,
                data: h.data,
                outcome: out,
            });
        }
    }

    /// Turns fragments held longer than [`FRAG_HOLD_NS`] into orphans.
    pub(super) fn expire_held(&mut self, now: u64) {
        while let Some(front) = self.held.front() {
            if now > front.meta.ts_ns && now - front.meta.ts_ns > FRAG_HOLD_NS {
                if let Some(h) = self.held.pop_front() {
                    self.orphan(h);
                }
            } else {
                break;
            }
        }
    }

    pub(super) fn orphan(&mut self, h: HeldFrag) {
        let mut out = Outcome::new(Verdict::Drop(DropReason::FragmentOrphan));
        out.notes.fragment = true;
        let src = (h.key >> 64) as u32;
        let dst = (h.key >> 32) as u32;
        let proto = (h.key >> 16) as u8;
        out.before = Tuple {
            proto,
            src,
            sport: 0,
            dst,
            dport: 0,
        };
        out.after = out.before;
        self.events.push_back(Event::Orphan {
            meta: h.meta,
            data: h.data,
            outcome: out,
        });
    }
}
