//! Reading NumPy `.npy` files of float32 inputs (`N x C x H x W`, or `C x H x W` for one
//! input), as the original code's tooling saves them. Only little-endian `<f4` in C order is
//! accepted; anything else is a clear error.

use std::path::Path;

use anyhow::{Context, bail};

/// A float32 array with its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Npy {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Value of `'key': value` in the header dict (up to the next `,` at depth 0 or `}`).
fn field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
    let mut depth = 0i32;
    for (i, c) in rest.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(rest[..i].trim()),
            _ => {}
        }
    }
    Some(rest.trim())
}

/// Parses the bytes of a `.npy` file.
pub fn parse(bytes: &[u8]) -> anyhow::Result<Npy> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        bail!("not a NumPy .npy file (bad magic)");
    }
    let major = bytes[6];
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 => {
            if bytes.len() < 12 {
                bail!("truncated .npy header");
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => bail!(".npy format version {v} is not supported"),
    };
    let end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .context("truncated .npy header")?;
    let header = std::str::from_utf8(&bytes[start..end]).context(".npy header is not text")?;
    let descr = field(header, "descr").context(".npy header has no 'descr'")?;
    if descr.trim_matches(|c| c == '\'' || c == '"') != "<f4" {
        bail!(
            ".npy data type is {descr}; float32 little-endian ('<f4') is needed (use x.astype(np.float32))"
        );
    }
    let fortran = field(header, "fortran_order").context(".npy header has no 'fortran_order'")?;
    if fortran != "False" {
        bail!(".npy array is in Fortran order; save it C-ordered (np.ascontiguousarray)");
    }
    let shape_text = field(header, "shape").context(".npy header has no 'shape'")?;
    let inner = shape_text
        .trim()
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .with_context(|| format!(".npy shape {shape_text} is not a tuple"))?;
    let shape: Vec<usize> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .with_context(|| format!(".npy shape entry {s:?} is not a number"))
        })
        .collect::<anyhow::Result<_>>()?;
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .context(".npy shape overflows")?;
    let payload = &bytes[end..];
    if payload.len() != count * 4 {
        bail!(
            ".npy payload has {} bytes, the shape {:?} needs {}",
            payload.len(),
            shape,
            count * 4
        );
    }
    let data = payload
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(Npy { shape, data })
}

/// Reads a `.npy` file; errors name the file.
pub fn read(path: &Path) -> anyhow::Result<Npy> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&bytes).with_context(|| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(header: &str, data: &[f32]) -> Vec<u8> {
        let mut h = header.to_string();
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(' ');
        }
        h.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend((h.len() as u16).to_le_bytes());
        b.extend(h.as_bytes());
        for v in data {
            b.extend(v.to_le_bytes());
        }
        b
    }

    #[test]
    fn reads_float32_arrays() {
        let b = npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1, 1, 2), }",
            &[1.0, 2.0, 3.0, 4.0],
        );
        let a = parse(&b).unwrap();
        assert_eq!(a.shape, vec![2, 1, 1, 2]);
        assert_eq!(a.data, vec![1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        let e = |b: &[u8]| format!("{:#}", parse(b).unwrap_err());
        assert!(e(b"hello world").contains("magic"));
        assert!(
            e(&npy(
                "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }",
                &[0.0, 0.0]
            ))
            .contains("<f4")
        );
        assert!(
            e(&npy(
                "{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }",
                &[0.0]
            ))
            .contains("Fortran")
        );
        assert!(
            e(&npy(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
                &[0.0]
            ))
            .contains("needs 12")
        );
    }
}
