//! The benchmark mixes: a fixed pool of matched flows, one packet per call, no allocation.

use super::Category;
use super::build::{ACK, PROTO_TCP};
use super::engine::{Core, Flow, imix};

/// One benchmark flow and its sequence numbers in both directions.
#[derive(Debug, Clone, Copy)]
struct BulkFlow {
    f: Flow,
    c_seq: u32,
    s_seq: u32,
}

/// Which benchmark mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BulkKind {
    Tcp64,
    Imix,
    Udp(u16),
}

/// A pool of flows spread round-robin over the targets, so every entry is exercised.
#[derive(Debug)]
pub(crate) struct Bulk {
    kind: BulkKind,
    flows: Vec<BulkFlow>,
}

impl Bulk {
    /// `None` when no target of the mix's protocols resolves.
    pub(crate) fn new(core: &mut Core, kind: BulkKind, n: usize) -> Option<Bulk> {
        let mut targets: Vec<_> = match kind {
            BulkKind::Tcp64 => core.plan.tcp.clone(),
            BulkKind::Imix => core
                .plan
                .tcp
                .iter()
                .chain(&core.plan.udp)
                .copied()
                .collect(),
            BulkKind::Udp(_) => core.plan.udp.clone(),
        };
        // Drop targets the table disagrees with, so the loop below always makes progress.
        let mut probe = core.rng.clone();
        targets.retain(|t| core.plan.resolve(t, &mut probe).is_some());
        if targets.is_empty() {
            return None;
        }
        let mut flows = Vec::with_capacity(n);
        let mut i = 0usize;
        let mut misses = 0usize;
        while flows.len() < n && misses < 64 * targets.len() {
            let t = targets.get(i % targets.len()).copied()?;
            i += 1;
            match core.flow(&t) {
                Some(f) => flows.push(BulkFlow {
                    f,
                    c_seq: core.rng.u32(),
                    s_seq: core.rng.u32(),
                }),
                None => misses += 1,
            }
        }
        if flows.is_empty() {
            return None;
        }
        Some(Bulk { kind, flows })
    }

    /// Writes the next frame; returns its category and L3 length.
    #[inline]
    pub(crate) fn next(&mut self, core: &mut Core, buf: &mut Vec<u8>) -> (Category, u16) {
        let i = core.rng.index(self.flows.len());
        let Some(bf) = self.flows.get_mut(i) else {
            return (Category::TcpMatched, 0);
        };
        let f = bf.f;
        let cat = if f.proto == PROTO_TCP {
            Category::TcpMatched
        } else {
            Category::UdpMatched
        };
        let n = match self.kind {
            BulkKind::Tcp64 => core.tcp_flow(buf, &f, true, bf.c_seq, bf.s_seq, ACK, None, 0, 64),
            BulkKind::Udp(size) => core.sized_flow(buf, &f, true, size, 0, 0),
            BulkKind::Imix => {
                let size = imix(&mut core.rng);
                let inbound = core.rng.chance(1, 2);
                let len = if f.proto == PROTO_TCP {
                    u32::from(size - 40)
                } else {
                    0
                };
                let (seq, ack) = (bf.c_seq, bf.s_seq);
                if inbound {
                    bf.c_seq = seq.wrapping_add(len);
                    core.sized_flow(buf, &f, true, size, seq, ack)
                } else {
                    bf.s_seq = ack.wrapping_add(len);
                    core.sized_flow(buf, &f, false, size, ack, seq)
                }
            }
        };
        (cat, n)
    }
}
