//! A small fixed-capacity table keyed by SSRC: which streams an SRTP context has admitted, with
//! a little state each. Its capacity bounds the state a peer can make us keep.

/// Streams (SSRCs) one SRTP context will hold state for. A voice call has one or two per
/// direction; new keys (re-INVITE) start a fresh context.
pub(super) const MAX_SSRCS: usize = 32;

/// The table is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Full;

/// Up to [`MAX_SSRCS`] entries; lookups scan from the last hit, which is the common case for a
/// stream of packets from one source. Room is made as streams are admitted (1, 2, 4 ... up to
/// [`MAX_SSRCS`] entries), not up front: a call has four contexts of two tables each and usually
/// one stream in each, so preallocating every table for 32 cost ~10 KiB per call. Admitting a
/// stream allocates anyway (its replay bitmap); a packet of a known stream never does.
#[derive(Debug)]
pub(super) struct SsrcTable<T> {
    entries: Vec<(u32, T)>,
    last_hit: usize,
}

impl<T> SsrcTable<T> {
    /// An empty table (no allocation until the first entry).
    pub(super) fn new() -> Self {
        Self {
            entries: Vec::new(),
            last_hit: 0,
        }
    }

    fn position(&self, ssrc: u32) -> Option<usize> {
        if self.entries.get(self.last_hit).is_some_and(|e| e.0 == ssrc) {
            return Some(self.last_hit);
        }
        self.entries.iter().position(|e| e.0 == ssrc)
    }

    /// True if `ssrc` has an entry.
    #[cfg(test)]
    pub(super) fn contains(&self, ssrc: u32) -> bool {
        self.position(ssrc).is_some()
    }

    /// The entry for `ssrc`.
    pub(super) fn get_mut(&mut self, ssrc: u32) -> Option<&mut T> {
        let at = self.position(ssrc)?;
        self.last_hit = at;
        Some(&mut self.entries[at].1)
    }

    /// The entry for `ssrc`, made with `make` if there is none and there is room.
    pub(super) fn get_or_insert_with(
        &mut self,
        ssrc: u32,
        make: impl FnOnce() -> T,
    ) -> Result<&mut T, Full> {
        let at = match self.position(ssrc) {
            Some(at) => at,
            None if self.entries.len() < MAX_SSRCS => {
                if self.entries.len() == self.entries.capacity() {
                    // Doubling from 1: never more room than MAX_SSRCS (a power of two).
                    self.entries.reserve_exact(self.entries.len().max(1));
                }
                self.entries.push((ssrc, make()));
                self.entries.len() - 1
            }
            None => return Err(Full),
        };
        self.last_hit = at;
        Ok(&mut self.entries[at].1)
    }

    /// Number of entries.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if no SSRC has an entry.
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<T> Default for SsrcTable<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_up_to_the_limit() {
        let mut t = SsrcTable::new();
        for ssrc in 0..MAX_SSRCS as u32 {
            *t.get_or_insert_with(ssrc, || 0u32).unwrap() += ssrc;
        }
        assert_eq!(t.len(), MAX_SSRCS);
        assert_eq!(t.get_or_insert_with(1000, || 0), Err(Full));
        assert_eq!(
            t.get_or_insert_with(7, || 0).copied(),
            Ok(7),
            "existing entries still found"
        );
        assert_eq!(t.get_mut(5).copied(), Some(5));
        assert!(t.contains(0) && !t.contains(1000));
    }
}
