//! The box walker: a strict, bounds-checked iterator over ISO-BMFF boxes and a cursor over a
//! box's fields. Invariant: every box's size is checked against its parent's end before its
//! body is handed out, so no walk reads past the buffer; garbage is an [`Mp4Error`] naming
//! the box, never a panic.

use super::{FourCc, Mp4Error};

/// One box of a buffer being walked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mp4Box<'a> {
    pub kind: FourCc,
    /// Position of the box's first byte in the buffer the walk started from.
    pub offset: usize,
    header_len: usize,
    /// The whole box, header included.
    pub bytes: &'a [u8],
}

impl<'a> Mp4Box<'a> {
    /// The payload after the header.
    pub fn body(&self) -> &'a [u8] {
        &self.bytes[self.header_len..]
    }

    /// Position of the payload's first byte in the buffer the walk started from.
    pub fn body_offset(&self) -> usize {
        self.offset + self.header_len
    }

    pub fn is(&self, kind: &[u8; 4]) -> bool {
        &self.kind.0 == kind
    }

    /// The boxes inside this one (for container boxes).
    pub fn children(&self) -> Boxes<'a> {
        Boxes::new(self.body(), self.body_offset())
    }

    /// The first child of this kind, if any; children before it must be well formed.
    pub fn child(&self, kind: &[u8; 4]) -> Result<Option<Mp4Box<'a>>, Mp4Error> {
        for child in self.children() {
            let child = child?;
            if child.is(kind) {
                return Ok(Some(child));
            }
        }
        Ok(None)
    }

    pub fn required_child(&self, kind: &[u8; 4]) -> Result<Mp4Box<'a>, Mp4Error> {
        self.child(kind)?.ok_or_else(|| Mp4Error::Missing {
            kind: FourCc(*kind),
            within: format!("the `{}` box at byte {}", self.kind, self.offset),
        })
    }

    /// A reader over the payload, for the box's fields.
    pub(super) fn fields(&self) -> Fields<'a> {
        Fields { of: *self, pos: 0 }
    }

    /// A reader past the version and flags of a full box, with them.
    pub(super) fn full_box(&self) -> Result<(u8, u32, Fields<'a>), Mp4Error> {
        let mut fields = self.fields();
        let word = fields.u32()?;
        Ok(((word >> 24) as u8, word & 0x00ff_ffff, fields))
    }
}

/// The boxes of a buffer, in order; stops after the first error.
pub(crate) struct Boxes<'a> {
    data: &'a [u8],
    /// Position of `data[0]` in the buffer the walk started from.
    base: usize,
    pos: usize,
}

impl<'a> Boxes<'a> {
    pub fn new(data: &'a [u8], base: usize) -> Self {
        Boxes { data, base, pos: 0 }
    }

    fn read(&mut self) -> Result<Mp4Box<'a>, Mp4Error> {
        let rest = &self.data[self.pos..];
        let offset = self.base + self.pos;
        if rest.len() < 8 {
            return Err(Mp4Error::TruncatedHeader { offset });
        }
        let size32 = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let kind = FourCc([rest[4], rest[5], rest[6], rest[7]]);
        let (size, mut header_len) = match size32 {
            0 => (rest.len() as u64, 8),
            1 => (
                be_u64(rest, 8).ok_or(Mp4Error::TruncatedHeader { offset })?,
                16,
            ),
            size => (u64::from(size), 8),
        };
        if &kind.0 == b"uuid" {
            header_len += 16;
        }
        if size < header_len as u64 {
            return Err(Mp4Error::BoxTooShort { kind, offset, size });
        }
        if size > rest.len() as u64 {
            return Err(Mp4Error::BoxPastEnd {
                kind,
                offset,
                size,
                available: rest.len(),
            });
        }
        // Fits: it is at most rest.len().
        let size = size as usize;
        self.pos += size;
        Ok(Mp4Box {
            kind,
            offset,
            header_len,
            bytes: &rest[..size],
        })
    }
}

impl<'a> Iterator for Boxes<'a> {
    type Item = Result<Mp4Box<'a>, Mp4Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.data.len() {
            return None;
        }
        let item = self.read();
        if item.is_err() {
            self.pos = self.data.len();
        }
        Some(item)
    }
}

/// All top-level boxes of a buffer, every one checked.
pub(crate) fn top_level(data: &[u8]) -> Result<Vec<Mp4Box<'_>>, Mp4Error> {
    Boxes::new(data, 0).collect()
}

pub(super) fn find_top<'a>(
    boxes: &[Mp4Box<'a>],
    kind: &[u8; 4],
    within: &str,
) -> Result<Mp4Box<'a>, Mp4Error> {
    boxes
        .iter()
        .find(|b| b.is(kind))
        .copied()
        .ok_or_else(|| Mp4Error::Missing {
            kind: FourCc(*kind),
            within: within.to_string(),
        })
}

pub(super) fn be_u32(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(bytes.try_into().ok()?))
}

pub(super) fn be_u64(data: &[u8], at: usize) -> Option<u64> {
    let bytes = data.get(at..at.checked_add(8)?)?;
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// Reads a box's fields in order; running past the payload is a [`Mp4Error::Malformed`].
pub(super) struct Fields<'a> {
    of: Mp4Box<'a>,
    pos: usize,
}

impl<'a> Fields<'a> {
    pub(super) fn take(&mut self, len: usize) -> Result<&'a [u8], Mp4Error> {
        let body = self.of.body();
        let end = self.pos.checked_add(len).filter(|&end| end <= body.len());
        let end = end.ok_or_else(|| Mp4Error::malformed(&self.of, "it ends inside its fields"))?;
        let bytes = &body[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    pub(super) fn skip(&mut self, len: usize) -> Result<(), Mp4Error> {
        self.take(len).map(|_| ())
    }

    pub(super) fn u8(&mut self) -> Result<u8, Mp4Error> {
        Ok(self.take(1)?[0])
    }

    pub(super) fn u16(&mut self) -> Result<u16, Mp4Error> {
        let bytes = self.take(2)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    pub(super) fn u32(&mut self) -> Result<u32, Mp4Error> {
        let bytes = self.take(4)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    pub(super) fn u64(&mut self) -> Result<u64, Mp4Error> {
        let high = self.u32()?;
        let low = self.u32()?;
        Ok((u64::from(high) << 32) | u64::from(low))
    }

    /// Position of the next field in the buffer the walk started from.
    pub(super) fn position(&self) -> usize {
        self.of.body_offset() + self.pos
    }

    pub(super) fn remaining(&self) -> usize {
        self.of.body().len() - self.pos
    }

    /// The box with the fields read so far counted as its header: its children are the boxes
    /// that follow the fields (`stsd` entries, a sample entry's `avcC`).
    pub(super) fn rest_as_box(&self) -> Mp4Box<'a> {
        Mp4Box {
            header_len: self.of.header_len + self.pos,
            ..self.of
        }
    }
}
