//! EBML, the binary format under Matroska: variable-length integers (element ids keep their
//! length marker, sizes drop it), element headers, and a writer of elements.
//!
//! Invariant: every read is bounds-checked; `None` means "not enough bytes yet" (a streamed
//! input may have more to come), an error means the bytes can never be EBML.

use super::MkvError;

/// The size value that says "unknown" (all ones after the length marker), for a size of any
/// length.
pub const UNKNOWN_SIZE: u64 = u64::MAX;

/// An element header: its id (with the length marker, as ids are written), its body size
/// (`UNKNOWN_SIZE` when unknown) and the header's length in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub id: u32,
    pub size: u64,
    pub len: usize,
}

/// Reads a variable-length integer at the start of `data`: (value without the marker, raw
/// value with it, length). `None`: more bytes are needed.
fn vint(data: &[u8], max_len: usize, at: u64) -> Result<Option<(u64, u64, usize)>, MkvError> {
    let Some(&first) = data.first() else {
        return Ok(None);
    };
    let len = first.leading_zeros() as usize + 1;
    if len > max_len {
        return Err(MkvError::invalid(
            at,
            "an EBML variable-length integer is too long",
        ));
    }
    if data.len() < len {
        return Ok(None);
    }
    let mut raw = 0u64;
    for &byte in &data[..len] {
        raw = (raw << 8) | u64::from(byte);
    }
    let value = raw & (u64::MAX >> (64 - 7 * len));
    Ok(Some((value, raw, len)))
}

/// Reads an element header at the start of `data` (`at`: its position in the stream, for
/// errors). `None`: more bytes are needed.
pub fn header(data: &[u8], at: u64) -> Result<Option<Header>, MkvError> {
    let Some((_, id, id_len)) = vint(data, 4, at)? else {
        return Ok(None);
    };
    let Some((size, _, size_len)) = vint(&data[id_len..], 8, at)? else {
        return Ok(None);
    };
    let all_ones = u64::MAX >> (64 - 7 * size_len);
    Ok(Some(Header {
        id: id as u32,
        size: if size == all_ones { UNKNOWN_SIZE } else { size },
        len: id_len + size_len,
    }))
}

/// The elements in a complete element body, as (id, body).
pub fn children(body: &[u8], at: u64) -> Result<Vec<(u32, &[u8])>, MkvError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < body.len() {
        let here = at + pos as u64;
        let h = header(&body[pos..], here)?
            .ok_or_else(|| MkvError::invalid(here, "an element header is cut short"))?;
        let start = pos + h.len;
        let end = usize::try_from(h.size)
            .ok()
            .and_then(|size| start.checked_add(size))
            .filter(|&end| end <= body.len())
            .ok_or_else(|| MkvError::invalid(here, "an element runs past its parent"))?;
        out.push((h.id, &body[start..end]));
        pos = end;
    }
    Ok(out)
}

/// An unsigned integer element's value (0 to 8 bytes, big-endian).
pub fn uint(body: &[u8], at: u64) -> Result<u64, MkvError> {
    if body.len() > 8 {
        return Err(MkvError::invalid(
            at,
            "an unsigned integer longer than 8 bytes",
        ));
    }
    Ok(body.iter().fold(0u64, |v, &b| (v << 8) | u64::from(b)))
}

/// A signed integer element's value.
pub fn int(body: &[u8], at: u64) -> Result<i64, MkvError> {
    if body.is_empty() {
        return Ok(0);
    }
    let raw = uint(body, at)?;
    let shift = 64 - 8 * body.len() as u32;
    Ok(((raw << shift) as i64) >> shift)
}

/// A string element's value (trailing zero bytes are padding).
pub fn string(body: &[u8]) -> String {
    let end = body.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    String::from_utf8_lossy(&body[..end]).into_owned()
}

/// Writes EBML elements into a buffer.
#[derive(Debug, Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn id(&mut self, id: u32) {
        let bytes = id.to_be_bytes();
        let skip = bytes.iter().position(|&b| b != 0).unwrap_or(3);
        self.buf.extend_from_slice(&bytes[skip..]);
    }

    /// A size in the shortest form (8 bytes for `UNKNOWN_SIZE`).
    pub fn size(&mut self, size: u64) {
        if size == UNKNOWN_SIZE {
            self.buf
                .extend_from_slice(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
            return;
        }
        // A size of all ones at a length would read as unknown: take the next length.
        let len = (1..=8usize)
            .find(|&len| size < (1u64 << (7 * len)) - 1)
            .unwrap_or(8);
        let marked = size | (1u64 << (7 * len));
        self.buf.extend_from_slice(&marked.to_be_bytes()[8 - len..]);
    }

    pub fn bytes(&mut self, id: u32, body: &[u8]) {
        self.id(id);
        self.size(body.len() as u64);
        self.buf.extend_from_slice(body);
    }

    pub fn uint(&mut self, id: u32, value: u64) {
        let bytes = value.to_be_bytes();
        let skip = bytes.iter().position(|&b| b != 0).unwrap_or(7);
        self.bytes(id, &bytes[skip..]);
    }

    pub fn string(&mut self, id: u32, value: &str) {
        self.bytes(id, value.as_bytes());
    }

    /// A master element whose body `fill` writes.
    pub fn master(&mut self, id: u32, fill: impl FnOnce(&mut Writer)) {
        let mut inner = Writer::default();
        fill(&mut inner);
        self.bytes(id, &inner.buf);
    }

    /// The header of a master element of unknown size; its children follow.
    pub fn open_unknown(&mut self, id: u32) {
        self.id(id);
        self.size(UNKNOWN_SIZE);
    }
}
