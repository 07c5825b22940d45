//! Subnet configs: a kernel size and an expand ratio per block slot, a depth per stage;
//! validation against a space and the text form of the original Once-for-All code
//! (`{"ks": [...], "e": [...], "d": [...]}`), parsed and printed without allocation.

use core::fmt;

use crate::space::{Choices, MAX_SLOTS, MAX_STAGES, Space};

/// A subnet of a space. Only the first `n_slots` / `n_stages` entries are meaningful.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubnetConfig {
    n_slots: u8,
    n_stages: u8,
    ks: [u8; MAX_SLOTS],
    e: [u8; MAX_SLOTS],
    d: [u8; MAX_STAGES],
}

/// The field of a config an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Ks,
    E,
    D,
    R,
}

impl Field {
    pub fn name(self) -> &'static str {
        match self {
            Field::Ks => "ks",
            Field::E => "e",
            Field::D => "d",
            Field::R => "r",
        }
    }
}

/// Why a config is not valid for a space, or why its text does not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// A list has the wrong number of entries.
    Length {
        field: Field,
        expected: usize,
        found: usize,
    },
    /// `field[index] = value` is not one of the space's choices.
    NotInSpace {
        field: Field,
        index: usize,
        value: u32,
    },
    /// The resolution given with the config is not the space's.
    Resolution { expected: u32, found: u32 },
    /// A required key is missing.
    Missing(Field),
    /// The text is not a config object; `at` is a byte offset into it.
    Syntax { at: usize, what: &'static str },
    /// A key that is not `ks`, `e`, `d` or `r`; `at` is the byte offset of the key.
    UnknownKey { at: usize },
    /// A key appears twice.
    DuplicateKey(Field),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ConfigError::Length {
                field,
                expected,
                found,
            } => write!(
                f,
                "config field \"{}\" has {found} entries, the space needs {expected}",
                field.name()
            ),
            ConfigError::NotInSpace {
                field,
                index,
                value,
            } => write!(
                f,
                "config field \"{}\"[{index}] = {value} is not a choice of the space",
                field.name()
            ),
            ConfigError::Resolution { expected, found } => write!(
                f,
                "config field \"r\" = {found} differs from the space's resolution {expected}"
            ),
            ConfigError::Missing(field) => {
                write!(f, "config has no \"{}\" field", field.name())
            }
            ConfigError::Syntax { at, what } => {
                write!(f, "config text at byte {at}: expected {what}")
            }
            ConfigError::UnknownKey { at } => write!(
                f,
                "config text at byte {at}: unknown key (allowed: \"ks\", \"e\", \"d\", \"r\")"
            ),
            ConfigError::DuplicateKey(field) => {
                write!(f, "config field \"{}\" appears twice", field.name())
            }
        }
    }
}

impl SubnetConfig {
    /// The config with every choice at its largest.
    pub fn largest(space: &Space) -> SubnetConfig {
        Self::uniform(space, space.ks.max(), space.e.max(), space.d.max())
    }

    /// The config with every choice at its smallest.
    pub fn smallest(space: &Space) -> SubnetConfig {
        Self::uniform(space, space.ks.min(), space.e.min(), space.d.min())
    }

    /// Every slot with kernel `k` and expand `e`, every stage with depth `d` (not
    /// validated: call [`SubnetConfig::validate`]).
    pub fn uniform(space: &Space, k: u8, e: u8, d: u8) -> SubnetConfig {
        let mut c = SubnetConfig {
            n_slots: space.n_slots() as u8,
            n_stages: space.n_stages as u8,
            ks: [0; MAX_SLOTS],
            e: [0; MAX_SLOTS],
            d: [0; MAX_STAGES],
        };
        c.ks[..space.n_slots()].fill(k);
        c.e[..space.n_slots()].fill(e);
        c.d[..space.n_stages].fill(d);
        c
    }

    /// Builds a config from lists and validates it against `space`.
    pub fn new(space: &Space, ks: &[u8], e: &[u8], d: &[u8]) -> Result<SubnetConfig, ConfigError> {
        let slots = space.n_slots();
        let stages = space.n_stages;
        for (field, len, want) in [
            (Field::Ks, ks.len(), slots),
            (Field::E, e.len(), slots),
            (Field::D, d.len(), stages),
        ] {
            if len != want {
                return Err(ConfigError::Length {
                    field,
                    expected: want,
                    found: len,
                });
            }
        }
        let mut c = SubnetConfig::uniform(space, 0, 0, 0);
        c.ks[..slots].copy_from_slice(ks);
        c.e[..slots].copy_from_slice(e);
        c.d[..stages].copy_from_slice(d);
        c.validate(space)?;
        Ok(c)
    }

    /// Checks that every entry is a choice of `space` and the lengths match.
    pub fn validate(&self, space: &Space) -> Result<(), ConfigError> {
        if self.n_slots as usize != space.n_slots() {
            return Err(ConfigError::Length {
                field: Field::Ks,
                expected: space.n_slots(),
                found: self.n_slots as usize,
            });
        }
        if self.n_stages as usize != space.n_stages {
            return Err(ConfigError::Length {
                field: Field::D,
                expected: space.n_stages,
                found: self.n_stages as usize,
            });
        }
        check(Field::Ks, self.ks(), &space.ks)?;
        check(Field::E, self.e(), &space.e)?;
        check(Field::D, self.d(), &space.d)?;
        Ok(())
    }

    /// Kernel size per slot.
    pub fn ks(&self) -> &[u8] {
        &self.ks[..self.n_slots as usize]
    }

    /// Expand ratio per slot.
    pub fn e(&self) -> &[u8] {
        &self.e[..self.n_slots as usize]
    }

    /// Depth per stage.
    pub fn d(&self) -> &[u8] {
        &self.d[..self.n_stages as usize]
    }

    pub fn ks_mut(&mut self) -> &mut [u8] {
        &mut self.ks[..self.n_slots as usize]
    }

    pub fn e_mut(&mut self) -> &mut [u8] {
        &mut self.e[..self.n_slots as usize]
    }

    pub fn d_mut(&mut self) -> &mut [u8] {
        &mut self.d[..self.n_stages as usize]
    }

    /// Whether slot `j` of stage `s` runs.
    pub fn active(&self, max_depth: usize, slot: usize) -> bool {
        let s = slot / max_depth;
        let j = slot % max_depth;
        j < self.d[s] as usize
    }

    /// Parses the text form (JSON or Python dict repr) and validates it against `space`.
    pub fn parse(text: &str, space: &Space) -> Result<SubnetConfig, ConfigError> {
        let mut p = Parser {
            b: text.as_bytes(),
            i: 0,
        };
        let mut ks = [0u8; MAX_SLOTS];
        let mut e = [0u8; MAX_SLOTS];
        let mut d = [0u8; MAX_STAGES];
        let (mut nks, mut ne, mut nd) = (None, None, None);
        let mut r: Option<u32> = None;
        p.expect(b'{', "'{'")?;
        p.ws();
        if p.peek() == Some(b'}') {
            p.i += 1;
        } else {
            loop {
                p.ws();
                let key_at = p.i;
                let key = p.string()?;
                let field = match key {
                    b"ks" => Field::Ks,
                    b"e" => Field::E,
                    b"d" => Field::D,
                    b"r" => Field::R,
                    _ => return Err(ConfigError::UnknownKey { at: key_at }),
                };
                p.ws();
                p.expect(b':', "':'")?;
                p.ws();
                let dup = match field {
                    Field::Ks => nks.is_some(),
                    Field::E => ne.is_some(),
                    Field::D => nd.is_some(),
                    Field::R => r.is_some(),
                };
                if dup {
                    return Err(ConfigError::DuplicateKey(field));
                }
                match field {
                    Field::Ks => nks = Some(p.list(field, &mut ks)?),
                    Field::E => ne = Some(p.list(field, &mut e)?),
                    Field::D => nd = Some(p.list(field, &mut d)?),
                    Field::R => {
                        // a number or a one-element list
                        if p.peek() == Some(b'[') {
                            p.i += 1;
                            p.ws();
                            let v = p.number(Field::R, 0)?;
                            p.ws();
                            p.expect(b']', "']' (r takes one value)")?;
                            r = Some(v);
                        } else {
                            r = Some(p.number(Field::R, 0)?);
                        }
                    }
                }
                p.ws();
                match p.peek() {
                    Some(b',') => p.i += 1,
                    Some(b'}') => {
                        p.i += 1;
                        break;
                    }
                    _ => {
                        return Err(ConfigError::Syntax {
                            at: p.i,
                            what: "',' or '}'",
                        });
                    }
                }
            }
        }
        p.ws();
        if p.i != p.b.len() {
            return Err(ConfigError::Syntax {
                at: p.i,
                what: "end of text",
            });
        }
        let nks = nks.ok_or(ConfigError::Missing(Field::Ks))?;
        let ne = ne.ok_or(ConfigError::Missing(Field::E))?;
        let nd = nd.ok_or(ConfigError::Missing(Field::D))?;
        if let Some(r) = r
            && r != space.resolution
        {
            return Err(ConfigError::Resolution {
                expected: space.resolution,
                found: r,
            });
        }
        for (field, found, expected) in [
            (Field::Ks, nks, space.n_slots()),
            (Field::E, ne, space.n_slots()),
            (Field::D, nd, space.n_stages),
        ] {
            if found != expected {
                return Err(ConfigError::Length {
                    field,
                    expected,
                    found,
                });
            }
        }
        SubnetConfig::new(space, &ks[..nks], &e[..ne], &d[..nd])
    }

    /// The JSON text form, written to any `fmt::Write` (no allocation).
    pub fn write_json<W: fmt::Write>(&self, w: &mut W) -> fmt::Result {
        fn list<W: fmt::Write>(w: &mut W, v: &[u8]) -> fmt::Result {
            w.write_char('[')?;
            for (i, x) in v.iter().enumerate() {
                if i > 0 {
                    w.write_str(", ")?;
                }
                write!(w, "{x}")?;
            }
            w.write_char(']')
        }
        w.write_str("{\"ks\": ")?;
        list(w, self.ks())?;
        w.write_str(", \"e\": ")?;
        list(w, self.e())?;
        w.write_str(", \"d\": ")?;
        list(w, self.d())?;
        w.write_char('}')
    }
}

impl fmt::Display for SubnetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_json(f)
    }
}

impl fmt::Debug for SubnetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_json(f)
    }
}

fn check(field: Field, vals: &[u8], choices: &Choices) -> Result<(), ConfigError> {
    for (index, &v) in vals.iter().enumerate() {
        if !choices.contains(v) {
            return Err(ConfigError::NotInSpace {
                field,
                index,
                value: v as u32,
            });
        }
    }
    Ok(())
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8, what: &'static str) -> Result<(), ConfigError> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(ConfigError::Syntax { at: self.i, what })
        }
    }

    /// A key in double or single quotes (no escapes: keys are short ASCII names).
    fn string(&mut self) -> Result<&'a [u8], ConfigError> {
        let q = match self.peek() {
            Some(q @ (b'"' | b'\'')) => q,
            _ => {
                return Err(ConfigError::Syntax {
                    at: self.i,
                    what: "a quoted key",
                });
            }
        };
        self.i += 1;
        let start = self.i;
        while let Some(c) = self.peek() {
            if c == q {
                let s = &self.b[start..self.i];
                self.i += 1;
                return Ok(s);
            }
            if c == b'\\' {
                return Err(ConfigError::Syntax {
                    at: self.i,
                    what: "a key without escapes",
                });
            }
            self.i += 1;
        }
        Err(ConfigError::Syntax {
            at: self.i,
            what: "closing quote",
        })
    }

    /// A non-negative integer (up to 9 digits).
    fn number(&mut self, field: Field, index: usize) -> Result<u32, ConfigError> {
        let start = self.i;
        let mut v: u32 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            if self.i - start >= 9 {
                return Err(ConfigError::NotInSpace {
                    field,
                    index,
                    value: u32::MAX,
                });
            }
            v = v * 10 + (c - b'0') as u32;
            self.i += 1;
        }
        if self.i == start {
            return Err(ConfigError::Syntax {
                at: self.i,
                what: "a non-negative integer",
            });
        }
        Ok(v)
    }

    /// `[n, n, ...]` into `out`; returns the count of entries, which may exceed `out.len()`
    /// (the extra entries are read but not stored). Values above 255 are not in any space.
    fn list(&mut self, field: Field, out: &mut [u8]) -> Result<usize, ConfigError> {
        self.expect(b'[', "'['")?;
        self.ws();
        let mut n = 0usize;
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(0);
        }
        loop {
            self.ws();
            let v = self.number(field, n)?;
            if n < out.len() {
                if v > 255 {
                    return Err(ConfigError::NotInSpace {
                        field,
                        index: n,
                        value: v,
                    });
                }
                out[n] = v as u8;
            }
            n += 1;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    break;
                }
                _ => {
                    return Err(ConfigError::Syntax {
                        at: self.i,
                        what: "',' or ']'",
                    });
                }
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space() -> Space {
        Space::ofa_mobilenet_v3(1.0, 1, 28, 10).unwrap()
    }

    struct Buf {
        b: [u8; 512],
        n: usize,
    }

    impl fmt::Write for Buf {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let end = self.n + s.len();
            if end > self.b.len() {
                return Err(fmt::Error);
            }
            self.b[self.n..end].copy_from_slice(s.as_bytes());
            self.n = end;
            Ok(())
        }
    }

    #[test]
    fn round_trip_through_text() {
        let s = space();
        let mut c = SubnetConfig::largest(&s);
        c.ks_mut()[3] = 5;
        c.e_mut()[7] = 3;
        c.d_mut()[2] = 2;
        let mut buf = Buf { b: [0; 512], n: 0 };
        fmt::Write::write_fmt(&mut buf, format_args!("{c}")).unwrap();
        let text = core::str::from_utf8(&buf.b[..buf.n]).unwrap();
        assert!(text.starts_with("{\"ks\": [7, 7, 7, 5,"));
        assert_eq!(SubnetConfig::parse(text, &s).unwrap(), c);
    }

    #[test]
    fn python_repr_and_r_key_are_accepted() {
        let s = space();
        let text = "{'ks': [3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3], \
                    'e': [3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3], \
                    'd': [2, 2, 2, 2, 2], 'r': [28]}";
        assert_eq!(
            SubnetConfig::parse(text, &s).unwrap(),
            SubnetConfig::smallest(&s)
        );
        let wrong_r = text.replace("[28]", "32");
        assert_eq!(
            SubnetConfig::parse(&wrong_r, &s),
            Err(ConfigError::Resolution {
                expected: 28,
                found: 32
            })
        );
    }

    #[test]
    fn errors_name_the_field() {
        let s = space();
        let ks19 = "[3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3]";
        let e20 = "[3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3]";
        let t = format!("{{\"ks\": {ks19}, \"e\": {e20}, \"d\": [2, 2, 2, 2, 2]}}");
        assert_eq!(
            SubnetConfig::parse(&t, &s),
            Err(ConfigError::Length {
                field: Field::Ks,
                expected: 20,
                found: 19
            })
        );
        let t = format!("{{\"ks\": {e20}, \"e\": {e20}, \"d\": [2, 2, 5, 2, 2]}}");
        assert_eq!(
            SubnetConfig::parse(&t, &s),
            Err(ConfigError::NotInSpace {
                field: Field::D,
                index: 2,
                value: 5
            })
        );
        let t = format!("{{\"ks\": {e20}, \"e\": {e20}, \"d\": [2, 2, 2, 2, 2], \"w\": 1}}");
        assert!(matches!(
            SubnetConfig::parse(&t, &s),
            Err(ConfigError::UnknownKey { .. })
        ));
        let t = format!("{{\"ks\": {e20}, \"d\": [2, 2, 2, 2, 2]}}");
        assert_eq!(
            SubnetConfig::parse(&t, &s),
            Err(ConfigError::Missing(Field::E))
        );
        let t = format!("{{\"ks\": {e20}, \"e\": {e20}, \"d\": [2, 2, 2, 2, 2]");
        assert!(matches!(
            SubnetConfig::parse(&t, &s),
            Err(ConfigError::Syntax { .. })
        ));
        let t = format!("{{\"ks\": {e20}, \"e\": {e20}, \"e\": {e20}, \"d\": [2, 2, 2, 2, 2]}}");
        assert_eq!(
            SubnetConfig::parse(&t, &s),
            Err(ConfigError::DuplicateKey(Field::E))
        );
        let long: String = format!("[{}3]", "3, ".repeat(100));
        let t = format!("{{\"ks\": {long}, \"e\": {e20}, \"d\": [2, 2, 2, 2, 2]}}");
        assert_eq!(
            SubnetConfig::parse(&t, &s),
            Err(ConfigError::Length {
                field: Field::Ks,
                expected: 20,
                found: 101
            })
        );
        let t = format!("{{\"ks\": {e20}, \"e\": {e20}, \"d\": [2, 2, 2, 2, 99999999999]}}");
        assert!(SubnetConfig::parse(&t, &s).is_err());
    }

    extern crate std;
    use std::format;
    use std::string::String;
}
