//! Shape mode's timed transmit queue: frames the bandwidth package delayed wait here until
//! their departure time. One line per egress side; a direction's departures never go
//! backwards (one bucket, first come first served), so each line is a FIFO ring.

/// Frames one line holds (the default queue limit, rate x 50 ms, is 625 full frames at
/// 150 Mbps and about 4,200 at 1 Gbps).
pub const SLOTS: usize = 4096;
/// The longest frame a line holds (MTU 1500 plus Ethernet and VLAN headers, with room).
pub const SLOT_BYTES: usize = 2048;

/// A FIFO of frames with their departure times, preallocated.
#[derive(Debug)]
pub struct DelayLine {
    data: Box<[u8]>,
    lens: Box<[u16]>,
    depart: Box<[u64]>,
    head: usize,
    len: usize,
}

impl Default for DelayLine {
    fn default() -> DelayLine {
        DelayLine {
            data: vec![0; SLOTS * SLOT_BYTES].into_boxed_slice(),
            lens: vec![0; SLOTS].into_boxed_slice(),
            depart: vec![0; SLOTS].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }
}

impl DelayLine {
    /// Queues `frame` to leave at `depart_ns`; false when the line is full or the frame too
    /// long (the caller counts it).
    pub fn push(&mut self, frame: &[u8], depart_ns: u64) -> bool {
        if self.len == SLOTS || frame.len() > SLOT_BYTES {
            return false;
        }
        let i = (self.head + self.len) % SLOTS;
        self.data[i * SLOT_BYTES..i * SLOT_BYTES + frame.len()].copy_from_slice(frame);
        // frame.len() <= SLOT_BYTES, which fits in u16.
        self.lens[i] = frame.len() as u16;
        self.depart[i] = depart_ns;
        self.len += 1;
        true
    }

    /// When the first frame leaves, if any.
    pub fn next_departure(&self) -> Option<u64> {
        (self.len > 0).then(|| self.depart[self.head])
    }

    /// Hands every frame due at `now_ns` to `send`, in order.
    pub fn release(&mut self, now_ns: u64, mut send: impl FnMut(&[u8])) {
        while self.len > 0 && self.depart[self.head] <= now_ns {
            let i = self.head;
            let at = i * SLOT_BYTES;
            send(&self.data[at..at + usize::from(self.lens[i])]);
            self.head = (self.head + 1) % SLOTS;
            self.len -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_leave_in_order_when_due_and_the_line_is_bounded() {
        let mut d = DelayLine::default();
        assert!(d.push(&[1; 60], 10));
        assert!(d.push(&[2; 1514], 20));
        assert!(!d.push(&[3; SLOT_BYTES + 1], 30));
        assert_eq!(d.next_departure(), Some(10));
        let mut out = Vec::new();
        d.release(15, |f| out.push((f[0], f.len())));
        assert_eq!(out, [(1, 60)]);
        d.release(25, |f| out.push((f[0], f.len())));
        assert_eq!(out, [(1, 60), (2, 1514)]);
        assert_eq!(d.next_departure(), None);
        for i in 0..SLOTS {
            assert!(d.push(&[0; 60], i as u64));
        }
        assert!(!d.push(&[0; 60], 0), "full");
    }
}
