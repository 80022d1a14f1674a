//! The read side of the fragment log: fragments by number and by time, init segments, usage,
//! gaps and upload checkpoints, each in one short read transaction (never held across calls).

use std::ops::Bound;

use redb::{AccessGuard, ReadTransaction, ReadableTable, StorageError};

use super::schema::{self, CameraState};
use super::{
    gap_range, number_range, CameraUsage, Context, FragmentLog, FragmentMeta, Gap, Result,
    VideoLogError,
};

impl FragmentLog {
    pub fn init_segment(&self, camera: &str, id: u64) -> Result<Option<Vec<u8>>> {
        let txn = self.begin_read()?;
        let inits = txn
            .open_table(schema::INITS)
            .context("open init segments")?;
        let found = inits.get((camera, id)).context("read init segment")?;
        Ok(found.map(|v| v.value().to_vec()))
    }

    pub fn fragment(&self, camera: &str, number: u64) -> Result<Option<FragmentMeta>> {
        let txn = self.begin_read()?;
        let fragments = open_fragments(&txn)?;
        get_meta(&fragments, camera, number)
    }

    /// The fragment's data (its chunks concatenated).
    pub fn read(&self, camera: &str, number: u64) -> Result<Option<Vec<u8>>> {
        let txn = self.begin_read()?;
        let Some(meta) = get_meta(&open_fragments(&txn)?, camera, number)? else {
            return Ok(None);
        };
        let chunks = txn
            .open_table(schema::CHUNKS)
            .context("open fragment chunks")?;
        let mut data = Vec::with_capacity(usize::try_from(meta.size).unwrap_or(0));
        let range = (camera, number, 0u32)..=(camera, number, u32::MAX);
        for entry in chunks.range(range).context("read fragment chunks")? {
            let (_, chunk) = entry.context("read fragment chunks")?;
            data.extend_from_slice(chunk.value());
        }
        if data.len() as u64 != meta.size {
            return Err(VideoLogError::Storage(format!(
                "fragment {number} of camera {camera:?} has {} bytes of chunks, not {}",
                data.len(),
                meta.size
            )));
        }
        Ok(Some(data))
    }

    /// Fragments overlapping [start_ms, end_ms): producer_ms < end_ms && producer_ms +
    /// duration_ms > start_ms, ascending by number, at most `limit`.
    pub fn fragments(
        &self,
        camera: &str,
        start_ms: i64,
        end_ms: i64,
        limit: usize,
    ) -> Result<Vec<FragmentMeta>> {
        self.fragments_after_in(camera, start_ms, end_ms, 0, limit)
    }

    /// As [`FragmentLog::fragments`], only those numbered above `after` (the next page of a
    /// listing that ended at `after`).
    pub fn fragments_after_in(
        &self,
        camera: &str,
        start_ms: i64,
        end_ms: i64,
        after: u64,
        limit: usize,
    ) -> Result<Vec<FragmentMeta>> {
        if limit == 0 || end_ms <= start_ms {
            return Ok(Vec::new());
        }
        let txn = self.begin_read()?;
        let Some(state) = read_state(&open_cameras(&txn)?, camera)? else {
            return Ok(Vec::new());
        };
        let longest = i64::try_from(state.max_duration_ms).unwrap_or(i64::MAX);
        let from = start_ms.saturating_sub(longest);
        let times = txn
            .open_table(schema::TIMES)
            .context("open fragment times")?;
        let mut numbers = Vec::new();
        let range = (camera, from, 0u64)..(camera, end_ms, 0u64);
        for entry in times.range(range).context("read fragment times")? {
            let (key, duration) = entry.context("read fragment times")?;
            let (_, producer_ms, number) = key.value();
            if number > after && producer_ms.saturating_add(i64::from(duration.value())) > start_ms
            {
                numbers.push(number);
            }
        }
        numbers.sort_unstable();
        numbers.truncate(limit);
        let fragments = open_fragments(&txn)?;
        numbers
            .into_iter()
            .map(|number| {
                get_meta(&fragments, camera, number)?.ok_or_else(|| {
                    VideoLogError::Storage(format!(
                        "fragment {number} of camera {camera:?} is in the time index but not stored"
                    ))
                })
            })
            .collect()
    }

    /// The last `n` fragments, ascending.
    pub fn latest(&self, camera: &str, n: usize) -> Result<Vec<FragmentMeta>> {
        let txn = self.begin_read()?;
        let fragments = open_fragments(&txn)?;
        let range = fragments
            .range(number_range(camera))
            .context("read fragments")?;
        let mut out = range
            .rev()
            .take(n)
            .map(|entry| decode_entry(camera, entry))
            .collect::<Result<Vec<_>>>()?;
        out.reverse();
        Ok(out)
    }

    /// Fragments with number > after, ascending, at most limit (for the uploader).
    pub fn fragments_after(
        &self,
        camera: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<FragmentMeta>> {
        let txn = self.begin_read()?;
        let fragments = open_fragments(&txn)?;
        let range = (
            Bound::Excluded((camera, after)),
            Bound::Included((camera, u64::MAX)),
        );
        let range = fragments.range(range).context("read fragments")?;
        range
            .take(limit)
            .map(|entry| decode_entry(camera, entry))
            .collect()
    }

    pub fn usage(&self, camera: &str) -> Result<CameraUsage> {
        let txn = self.begin_read()?;
        let Some(state) = read_state(&open_cameras(&txn)?, camera)? else {
            return Ok(CameraUsage::default());
        };
        let fragments = open_fragments(&txn)?;
        let mut range = fragments
            .range(number_range(camera))
            .context("read fragments")?;
        let first = range.next().map(|e| decode_entry(camera, e)).transpose()?;
        let last = range
            .next_back()
            .map(|e| decode_entry(camera, e))
            .transpose()?;
        Ok(CameraUsage {
            fragments: state.fragments,
            bytes: state.bytes,
            last: last.or_else(|| first.clone()),
            first,
            evicted_fragments: state.evicted_fragments,
            evicted_bytes: state.evicted_bytes,
            denied_fragments: state.denied_fragments,
        })
    }

    /// Every camera that has stored anything (even if all its fragments are gone).
    pub fn cameras(&self) -> Result<Vec<String>> {
        let txn = self.begin_read()?;
        let cameras = open_cameras(&txn)?;
        let range = cameras.iter().context("read cameras")?;
        range
            .map(|entry| {
                let (key, _) = entry.context("read cameras")?;
                Ok(key.value().to_string())
            })
            .collect()
    }

    /// Gaps overlapping [start_ms, end_ms), ascending by start.
    pub fn gaps(&self, camera: &str, start_ms: i64, end_ms: i64) -> Result<Vec<Gap>> {
        let txn = self.begin_read()?;
        let gaps = txn.open_table(schema::GAPS).context("open gaps")?;
        let mut out = Vec::new();
        for entry in gaps.range(gap_range(camera, end_ms)).context("read gaps")? {
            let (key, reason) = entry.context("read gaps")?;
            let (_, start, end) = key.value();
            if end > start_ms {
                out.push(Gap {
                    start_ms: start,
                    end_ms: end,
                    reason: reason.value().to_string(),
                });
            }
        }
        Ok(out)
    }

    /// The highest fragment number of the camera uploaded to `destination`.
    pub fn upload_checkpoint(&self, camera: &str, destination: &str) -> Result<Option<u64>> {
        let txn = self.begin_read()?;
        let checkpoints = txn
            .open_table(schema::CHECKPOINTS)
            .context("open upload checkpoints")?;
        let found = checkpoints
            .get((camera, destination))
            .context("read upload checkpoint")?;
        Ok(found.map(|v| v.value()))
    }
}

fn open_cameras(txn: &ReadTransaction) -> Result<redb::ReadOnlyTable<&'static str, &'static [u8]>> {
    txn.open_table(schema::CAMERAS).context("open cameras")
}

fn open_fragments(
    txn: &ReadTransaction,
) -> Result<redb::ReadOnlyTable<(&'static str, u64), &'static [u8]>> {
    txn.open_table(schema::FRAGMENTS).context("open fragments")
}

pub(super) fn read_state(
    cameras: &impl ReadableTable<&'static str, &'static [u8]>,
    camera: &str,
) -> Result<Option<CameraState>> {
    let Some(row) = cameras.get(camera).context("read camera state")? else {
        return Ok(None);
    };
    CameraState::decode(row.value())
        .map(Some)
        .ok_or_else(|| VideoLogError::Storage(format!("unreadable state of camera {camera:?}")))
}

fn get_meta(
    fragments: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    camera: &str,
    number: u64,
) -> Result<Option<FragmentMeta>> {
    let Some(row) = fragments.get((camera, number)).context("read fragment")? else {
        return Ok(None);
    };
    decode_meta(camera, number, row.value()).map(Some)
}

pub(super) type FragmentEntry<'a> = std::result::Result<
    (
        AccessGuard<'a, (&'static str, u64)>,
        AccessGuard<'a, &'static [u8]>,
    ),
    StorageError,
>;

pub(super) fn decode_entry(camera: &str, entry: FragmentEntry<'_>) -> Result<FragmentMeta> {
    let (key, value) = entry.context("read fragments")?;
    decode_meta(camera, key.value().1, value.value())
}

fn decode_meta(camera: &str, number: u64, bytes: &[u8]) -> Result<FragmentMeta> {
    schema::decode_meta(number, bytes).ok_or_else(|| {
        VideoLogError::Storage(format!(
            "unreadable metadata of fragment {number} of camera {camera:?}"
        ))
    })
}
