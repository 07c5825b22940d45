//! Bounded text output into caller buffers, without allocation.

use core::fmt;

/// Writes into a byte buffer, always leaving room for a terminating NUL; records whether
/// text was cut.
pub(crate) struct BufWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
    cut: bool,
}

impl<'a> BufWriter<'a> {
    /// `buf` must not be empty (the NUL needs a byte).
    pub(crate) fn new(buf: &'a mut [u8]) -> BufWriter<'a> {
        BufWriter {
            buf,
            len: 0,
            cut: false,
        }
    }

    /// Terminates the text with NUL; returns its length without the NUL and whether text
    /// was cut to fit.
    pub(crate) fn finish(self) -> (usize, bool) {
        if let Some(b) = self.buf.get_mut(self.len) {
            *b = 0;
        }
        (self.len, self.cut)
    }
}

impl fmt::Write for BufWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len().saturating_sub(1).saturating_sub(self.len);
        let mut n = s.len().min(room);
        // never cut inside a UTF-8 sequence
        while n > 0 && !s.is_char_boundary(n) {
            n -= 1;
        }
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        if n < s.len() {
            self.cut = true;
            return Err(fmt::Error);
        }
        Ok(())
    }
}

/// Counts the bytes of formatted text.
pub(crate) struct Counter(pub usize);

impl fmt::Write for Counter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}
