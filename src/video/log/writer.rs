//! The write side of the fragment log: init segments, appends, gaps and upload checkpoints,
//! and [`Tables`], the tables one write transaction changes.
//!
//! Invariants kept here: an append writes the fragment's metadata, its chunks, its time-index
//! row, its init reference and the camera's state row in one transaction committed with
//! `Durability::Immediate`; the state row's `bytes` and `fragments` are the exact sums over the
//! stored fragments; `last_number` only grows, so a number is never handed out twice; and a
//! camera's fragments are one contiguous run of numbers (deletion takes the oldest first).

use redb::{ReadableTable, Table, WriteTransaction};

use super::reader::{decode_entry, read_state};
use super::retention::refusal;
use super::schema::{self, CameraState, CHUNK_BYTES};
use super::{
    gap_range, id_range, number_range, AppendOutcome, Context, FragmentLog, FragmentMeta, Gap,
    NewFragment, Result, RetentionPolicy, VideoLogError, MAX_CODEC_LEN, MAX_GAPS_PER_CAMERA,
};

impl FragmentLog {
    /// Keeps an init segment and returns its id; bytes identical to the camera's latest init
    /// segment return that one's id without writing. Ids increase per camera.
    pub fn put_init(&self, camera: &str, data: &[u8]) -> Result<u64> {
        let txn = self.begin_write()?;
        let id = {
            let mut t = Tables::open(&txn)?;
            let latest = match t
                .inits
                .range(id_range(camera))
                .context("read init segments")?
                .next_back()
            {
                Some(entry) => {
                    let (key, value) = entry.context("read init segments")?;
                    Some((key.value().1, value.value() == data))
                }
                None => None,
            };
            if let Some((id, true)) = latest {
                return Ok(id);
            }
            let id = latest.map_or(1, |(id, _)| id + 1);
            t.inits
                .insert((camera, id), data)
                .context("write init segment")?;
            if t.state(camera)?.is_none() {
                t.save_state(camera, &CameraState::default())?;
            }
            id
        };
        txn.commit().context("commit init segment")?;
        Ok(id)
    }

    /// Stores a fragment as the camera's next number and commits it durably, after applying
    /// `max_bytes` and `min_free_disk` (evicting the oldest fragments or refusing).
    pub fn append(
        &self,
        camera: &str,
        fragment: NewFragment,
        policy: &RetentionPolicy,
        now_ms: i64,
    ) -> Result<AppendOutcome> {
        if fragment.codec.len() > MAX_CODEC_LEN {
            return Err(VideoLogError::Invalid(format!(
                "codec name of {} bytes (at most {MAX_CODEC_LEN})",
                fragment.codec.len()
            )));
        }
        let size = fragment.data.len() as u64;
        let disk_short = self.free_disk_short(size, policy.min_free_disk);
        let txn = self.begin_write()?;
        let appended = {
            let mut t = Tables::open(&txn)?;
            t.append(camera, fragment, policy, now_ms, disk_short)?
        };
        txn.commit().context("commit fragment")?;
        if appended.is_ok() {
            self.appended.send_modify(|n| *n = n.wrapping_add(1));
        }
        appended.inspect_err(|error| tracing::debug!(camera, %error, "fragment refused"))
    }

    /// Records a time when the camera produced nothing; at most `MAX_GAPS_PER_CAMERA` are
    /// kept (the oldest go first). Recording the same start and end again replaces the reason.
    pub fn record_gap(&self, camera: &str, gap: Gap) -> Result<()> {
        if gap.end_ms < gap.start_ms {
            return Err(VideoLogError::Invalid(format!(
                "a gap cannot end ({}) before it starts ({})",
                gap.end_ms, gap.start_ms
            )));
        }
        let txn = self.begin_write()?;
        Tables::open(&txn)?.insert_gap(camera, &gap)?;
        txn.commit().context("commit gap")
    }

    /// Sets the checkpoint to `number` (it may move back, to upload again).
    pub fn set_upload_checkpoint(
        &self,
        camera: &str,
        destination: &str,
        number: u64,
    ) -> Result<()> {
        let txn = self.begin_write()?;
        txn.open_table(schema::CHECKPOINTS)
            .context("open upload checkpoints")?
            .insert((camera, destination), number)
            .context("write upload checkpoint")?;
        txn.commit().context("commit upload checkpoint")
    }
}

/// The tables a write transaction changes.
pub(super) struct Tables<'txn> {
    cameras: Table<'txn, &'static str, &'static [u8]>,
    fragments: Table<'txn, (&'static str, u64), &'static [u8]>,
    chunks: Table<'txn, (&'static str, u64, u32), &'static [u8]>,
    times: Table<'txn, (&'static str, i64, u64), u32>,
    inits: Table<'txn, (&'static str, u64), &'static [u8]>,
    init_refs: Table<'txn, (&'static str, u64), u64>,
    gaps: Table<'txn, (&'static str, i64, i64), &'static str>,
}

impl<'txn> Tables<'txn> {
    pub(super) fn open(txn: &'txn WriteTransaction) -> Result<Self> {
        Ok(Tables {
            cameras: txn.open_table(schema::CAMERAS).context("open cameras")?,
            fragments: txn
                .open_table(schema::FRAGMENTS)
                .context("open fragments")?,
            chunks: txn
                .open_table(schema::CHUNKS)
                .context("open fragment chunks")?,
            times: txn
                .open_table(schema::TIMES)
                .context("open fragment times")?,
            inits: txn
                .open_table(schema::INITS)
                .context("open init segments")?,
            init_refs: txn
                .open_table(schema::INIT_REFS)
                .context("open init references")?,
            gaps: txn.open_table(schema::GAPS).context("open gaps")?,
        })
    }

    pub(super) fn state(&self, camera: &str) -> Result<Option<CameraState>> {
        read_state(&self.cameras, camera)
    }

    pub(super) fn save_state(&mut self, camera: &str, state: &CameraState) -> Result<()> {
        self.cameras
            .insert(camera, state.encode().as_slice())
            .context("write camera state")?;
        Ok(())
    }

    pub(super) fn first(&self, camera: &str) -> Result<Option<FragmentMeta>> {
        let mut range = self
            .fragments
            .range(number_range(camera))
            .context("read fragments")?;
        range.next().map(|e| decode_entry(camera, e)).transpose()
    }

    /// Decides, evicts and writes one append. A refusal is counted in the state row and
    /// returned as the inner error (the transaction is still committed, to keep the count).
    pub(super) fn append(
        &mut self,
        camera: &str,
        fragment: NewFragment,
        policy: &RetentionPolicy,
        now_ms: i64,
        disk_short: Option<u64>,
    ) -> Result<Result<AppendOutcome>> {
        let mut state = self.state(camera)?.unwrap_or_default();
        let size = fragment.data.len() as u64;
        let init_known = self
            .inits
            .get((camera, fragment.init_id))
            .context("read init segment")?
            .is_some();
        if !init_known {
            return Err(VideoLogError::Invalid(format!(
                "camera {camera:?} has no init segment {}",
                fragment.init_id
            )));
        }
        if let Some(refusal) = refusal(camera, &state, size, policy, disk_short) {
            state.denied_fragments += 1;
            self.save_state(camera, &state)?;
            return Ok(Err(refusal));
        }

        let (mut evicted_fragments, mut evicted_bytes) = (0, 0);
        loop {
            let over_max = policy.max_bytes.is_some_and(|max| state.bytes + size > max);
            let disk_needs_room = disk_short.is_some() && evicted_bytes < size;
            if !over_max && !disk_needs_room {
                break;
            }
            let Some(oldest) = self.first(camera)? else {
                return Err(VideoLogError::Storage(format!(
                    "camera {camera:?} counts {} bytes but has no fragments left",
                    state.bytes
                )));
            };
            self.delete_fragment(camera, &oldest, &mut state)?;
            evicted_fragments += 1;
            evicted_bytes += oldest.size;
        }

        let meta = FragmentMeta {
            number: state.last_number + 1,
            producer_ms: fragment.producer_ms,
            server_ms: now_ms,
            duration_ms: fragment.duration_ms,
            size,
            keyframe: fragment.keyframe,
            discontinuity: fragment.discontinuity,
            discontinuity_sequence: state.discontinuities + u64::from(fragment.discontinuity),
            codec: fragment.codec,
            width: fragment.width,
            height: fragment.height,
            init_id: fragment.init_id,
        };
        self.insert_fragment(camera, &meta, &fragment.data)?;
        state.last_number = meta.number;
        state.fragments += 1;
        state.bytes += size;
        state.evicted_fragments += evicted_fragments;
        state.evicted_bytes += evicted_bytes;
        state.max_duration_ms = state.max_duration_ms.max(u64::from(meta.duration_ms));
        state.discontinuities = meta.discontinuity_sequence;
        self.debug_check_run(camera, &state);
        self.save_state(camera, &state)?;
        Ok(Ok(AppendOutcome {
            meta,
            evicted_fragments,
            evicted_bytes,
        }))
    }

    pub(super) fn insert_fragment(
        &mut self,
        camera: &str,
        meta: &FragmentMeta,
        data: &[u8],
    ) -> Result<()> {
        let number = meta.number;
        self.fragments
            .insert((camera, number), schema::encode_meta(meta).as_slice())
            .context("write fragment")?;
        for (index, chunk) in data.chunks(CHUNK_BYTES).enumerate() {
            let index = u32::try_from(index)
                .map_err(|_| VideoLogError::Invalid("fragment too large".into()))?;
            self.chunks
                .insert((camera, number, index), chunk)
                .context("write fragment chunk")?;
        }
        self.times
            .insert((camera, meta.producer_ms, number), meta.duration_ms)
            .context("write fragment time")?;
        let refs = self.init_refs(camera, meta.init_id)?;
        self.init_refs
            .insert((camera, meta.init_id), refs + 1)
            .context("write init reference")?;
        Ok(())
    }

    pub(super) fn delete_fragment(
        &mut self,
        camera: &str,
        meta: &FragmentMeta,
        state: &mut CameraState,
    ) -> Result<()> {
        let number = meta.number;
        self.fragments
            .remove((camera, number))
            .context("delete fragment")?;
        self.chunks
            .retain_in(
                (camera, number, 0u32)..=(camera, number, u32::MAX),
                |_, _| false,
            )
            .context("delete fragment chunks")?;
        self.times
            .remove((camera, meta.producer_ms, number))
            .context("delete fragment time")?;
        let refs = self.init_refs(camera, meta.init_id)?;
        if refs > 1 {
            self.init_refs
                .insert((camera, meta.init_id), refs - 1)
                .context("write init reference")?;
        } else {
            self.init_refs
                .remove((camera, meta.init_id))
                .context("delete init reference")?;
        }
        debug_assert!(
            state.fragments > 0 && state.bytes >= meta.size,
            "camera {camera:?}: the state row counts every stored fragment"
        );
        state.fragments = state.fragments.saturating_sub(1);
        state.bytes = state.bytes.saturating_sub(meta.size);
        Ok(())
    }

    pub(super) fn init_refs(&self, camera: &str, init_id: u64) -> Result<u64> {
        let refs = self
            .init_refs
            .get((camera, init_id))
            .context("read init reference")?;
        Ok(refs.map_or(0, |r| r.value()))
    }

    /// Stores a gap and drops the camera's oldest beyond `MAX_GAPS_PER_CAMERA`.
    pub(super) fn insert_gap(&mut self, camera: &str, gap: &Gap) -> Result<()> {
        let mut state = self.state(camera)?.unwrap_or_default();
        let replaced = self
            .gaps
            .insert((camera, gap.start_ms, gap.end_ms), gap.reason.as_str())
            .context("write gap")?
            .is_some();
        if !replaced {
            state.gaps += 1;
        }
        let excess = state.gaps.saturating_sub(MAX_GAPS_PER_CAMERA);
        let oldest = self
            .gaps
            .extract_from_if(gap_range(camera, i64::MAX), |_, _| true)
            .context("delete gaps")?;
        // Only the rows taken from the iterator are deleted.
        for removed in oldest.take(usize::try_from(excess).unwrap_or(usize::MAX)) {
            removed.context("delete gaps")?;
            state.gaps -= 1;
        }
        self.save_state(camera, &state)
    }

    /// Deletes gaps that ended before `cutoff`; returns how many.
    pub(super) fn trim_gaps(
        &mut self,
        camera: &str,
        cutoff: i64,
        state: &mut CameraState,
    ) -> Result<u64> {
        let mut removed = 0;
        self.gaps
            .retain_in(gap_range(camera, cutoff), |(_, _, end), _| {
                let keep = end >= cutoff;
                removed += u64::from(!keep);
                keep
            })
            .context("delete gaps")?;
        state.gaps = state.gaps.saturating_sub(removed);
        Ok(removed)
    }

    /// Deletes the camera's init segments that no fragment plays with, except the latest;
    /// returns how many.
    pub(super) fn sweep_inits(&mut self, camera: &str) -> Result<u64> {
        let ids = self
            .inits
            .range(id_range(camera))
            .context("read init segments")?
            .map(|entry| Ok(entry.context("read init segments")?.0.value().1))
            .collect::<Result<Vec<u64>>>()?;
        let Some((_latest, older)) = ids.split_last() else {
            return Ok(0);
        };
        let mut removed = 0;
        for &id in older {
            if self.init_refs(camera, id)? == 0 {
                self.inits
                    .remove((camera, id))
                    .context("delete init segment")?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Debug builds: the camera's fragments are one contiguous run of numbers ending at the
    /// last number handed out (deletion takes the oldest first; numbers are never reused).
    pub(super) fn debug_check_run(&self, camera: &str, state: &CameraState) {
        if !cfg!(debug_assertions) || state.fragments == 0 {
            return;
        }
        if let Ok(Some(first)) = self.first(camera) {
            debug_assert_eq!(
                first.number + state.fragments - 1,
                state.last_number,
                "camera {camera:?}: the fragments are one contiguous run of numbers"
            );
        }
    }
}
