//! Connection limits at the front doors: at most `max_total` SIP connections at once and at
//! most `max_per_source` from one IP address, so one peer (or a flood of TCP handshakes) can
//! never take every file descriptor and starve the others. Taken at accept, before any TLS
//! work; given back when the connection's task ends. Touched once per connection, never per
//! message.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Which limit refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    /// `max_connections`.
    Total,
    /// `max_connections_per_source`.
    PerSource,
}

impl LimitHit {
    /// The metric label value.
    pub fn label(self) -> &'static str {
        match self {
            LimitHit::Total => "max_connections",
            LimitHit::PerSource => "max_connections_per_source",
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// The connection counters shared by every front door.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    max_total: usize,
    max_per_source: usize,
    counts: Arc<Mutex<Counts>>,
}

/// One admitted connection's place; dropping it gives the place back.
#[derive(Debug)]
pub struct ConnectionSlot {
    source: IpAddr,
    counts: Arc<Mutex<Counts>>,
}

impl ConnectionLimits {
    /// Limits of `max_total` connections, `max_per_source` from one address.
    pub fn new(max_total: usize, max_per_source: usize) -> Self {
        Self {
            max_total,
            max_per_source,
            counts: Arc::default(),
        }
    }

    /// A place for a connection from `source`, or the limit that refuses it.
    pub fn acquire(&self, source: IpAddr) -> Result<ConnectionSlot, LimitHit> {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if c.total >= self.max_total {
            return Err(LimitHit::Total);
        }
        let from_source = c.by_source.entry(source).or_default();
        if *from_source >= self.max_per_source {
            return Err(LimitHit::PerSource);
        }
        *from_source += 1;
        c.total += 1;
        Ok(ConnectionSlot {
            source,
            counts: self.counts.clone(),
        })
    }

    /// Connections held now.
    pub fn in_use(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                c.by_source.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_source_and_total_limits_refuse_and_give_back() {
        let limits = ConnectionLimits::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = limits.acquire(a).unwrap();
        let _a2 = limits.acquire(a).unwrap();
        assert_eq!(limits.acquire(a).unwrap_err(), LimitHit::PerSource);
        let _b1 = limits.acquire(b).unwrap();
        assert_eq!(limits.acquire(b).unwrap_err(), LimitHit::Total);
        assert_eq!(limits.in_use(), 3);
        drop(a1);
        assert_eq!(limits.in_use(), 2);
        let _b2 = limits.acquire(b).expect("a place was given back");
        assert_eq!(limits.acquire(b).unwrap_err(), LimitHit::Total);
    }
}
