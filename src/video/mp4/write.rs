//! Writing fragmented MP4 for video that arrives already encoded in another container
//! (PutMedia's MKV): an init segment for one H.264 or H.265 track from its decoder
//! configuration record (`avcC` / `hvcC`, which is what MKV's CodecPrivate holds), and
//! `moof` + `mdat` fragments from frames, laid out as the camera pipeline's `cmafmux` does
//! (track 1, `default-base-is-moof`, a `trun` with per-sample duration, size, flags and
//! signed composition offsets), so HLS, clips and images play them alike.
//!
//! Invariant: the data offset of the `trun` points at the first byte of the `mdat` payload,
//! and the samples' sizes add up to that payload.

/// The track id of the one video track.
pub const TRACK_ID: u32 = 1;

/// The video codecs a track may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    H264,
    H265,
}

impl VideoCodec {
    /// The fragment log's codec name.
    pub fn name(self) -> &'static str {
        match self {
            VideoCodec::H264 => "h264",
            VideoCodec::H265 => "h265",
        }
    }
}

/// One sample of a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleSpec {
    pub duration: u32,
    pub size: u32,
    pub sync: bool,
    /// Presentation time minus decode time, in the track's timescale.
    pub composition_offset: i32,
}

fn put_box(out: &mut Vec<u8>, kind: &[u8; 4], fill: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(kind);
    fill(out);
    let size = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

fn put_full_box(
    out: &mut Vec<u8>,
    kind: &[u8; 4],
    version: u8,
    flags: u32,
    fill: impl FnOnce(&mut Vec<u8>),
) {
    put_box(out, kind, |out| {
        out.extend_from_slice(&((u32::from(version) << 24) | (flags & 0x00FF_FFFF)).to_be_bytes());
        fill(out);
    });
}

fn u16s(out: &mut Vec<u8>, values: &[u16]) {
    for v in values {
        out.extend_from_slice(&v.to_be_bytes());
    }
}

fn u32s(out: &mut Vec<u8>, values: &[u32]) {
    for v in values {
        out.extend_from_slice(&v.to_be_bytes());
    }
}

const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// An init segment for one video track: `config` is the `avcC` (H.264) or `hvcC` (H.265)
/// record, `timescale` the units of the fragments' decode times.
pub fn init_segment(
    codec: VideoCodec,
    config: &[u8],
    width: u32,
    height: u32,
    timescale: u32,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(config.len() + 800);
    put_box(&mut out, b"ftyp", |o| {
        o.extend_from_slice(b"iso6");
        u32s(o, &[0]);
        o.extend_from_slice(b"iso6isommp41");
    });
    put_box(&mut out, b"moov", |o| {
        put_full_box(o, b"mvhd", 0, 0, |o| {
            u32s(o, &[0, 0, 1000, 0, 0x0001_0000]);
            u16s(o, &[0x0100, 0]);
            u32s(o, &[0, 0]);
            u32s(o, &MATRIX);
            u32s(o, &[0; 6]);
            u32s(o, &[TRACK_ID + 1]);
        });
        put_box(o, b"trak", |o| {
            put_full_box(o, b"tkhd", 0, 3, |o| {
                u32s(o, &[0, 0, TRACK_ID, 0, 0, 0, 0]);
                u16s(o, &[0, 0, 0, 0]);
                u32s(o, &MATRIX);
                u32s(o, &[width << 16, height << 16]);
            });
            put_box(o, b"mdia", |o| {
                put_full_box(o, b"mdhd", 0, 0, |o| {
                    u32s(o, &[0, 0, timescale, 0]);
                    u16s(o, &[0x55C4, 0]); // "und"
                });
                put_full_box(o, b"hdlr", 0, 0, |o| {
                    u32s(o, &[0]);
                    o.extend_from_slice(b"vide");
                    u32s(o, &[0, 0, 0]);
                    o.extend_from_slice(b"VideoHandler\0");
                });
                put_box(o, b"minf", |o| {
                    put_full_box(o, b"vmhd", 0, 1, |o| u16s(o, &[0, 0, 0, 0]));
                    put_box(o, b"dinf", |o| {
                        put_full_box(o, b"dref", 0, 0, |o| {
                            u32s(o, &[1]);
                            put_full_box(o, b"url ", 0, 1, |_| {});
                        });
                    });
                    put_box(o, b"stbl", |o| {
                        put_full_box(o, b"stsd", 0, 0, |o| {
                            u32s(o, &[1]);
                            sample_entry(o, codec, config, width, height);
                        });
                        put_full_box(o, b"stts", 0, 0, |o| u32s(o, &[0]));
                        put_full_box(o, b"stsc", 0, 0, |o| u32s(o, &[0]));
                        put_full_box(o, b"stsz", 0, 0, |o| u32s(o, &[0, 0]));
                        put_full_box(o, b"stco", 0, 0, |o| u32s(o, &[0]));
                    });
                });
            });
        });
        put_box(o, b"mvex", |o| {
            put_full_box(o, b"trex", 0, 0, |o| u32s(o, &[TRACK_ID, 1, 0, 0, 0]));
        });
    });
    out
}

fn sample_entry(o: &mut Vec<u8>, codec: VideoCodec, config: &[u8], width: u32, height: u32) {
    let (entry, record) = match codec {
        VideoCodec::H264 => (b"avc1", b"avcC"),
        VideoCodec::H265 => (b"hvc1", b"hvcC"),
    };
    put_box(o, entry, |o| {
        o.extend_from_slice(&[0; 6]);
        u16s(o, &[1, 0, 0]);
        u32s(o, &[0, 0, 0]);
        u16s(o, &[width.min(0xFFFF) as u16, height.min(0xFFFF) as u16]);
        u32s(o, &[0x0048_0000, 0x0048_0000, 0]);
        u16s(o, &[1]);
        o.extend_from_slice(&[0; 32]);
        u16s(o, &[0x0018, 0xFFFF]);
        put_box(o, record, |o| o.extend_from_slice(config));
    });
}

/// `sample_depends_on = 2` (an I frame).
const SYNC_FLAGS: u32 = 0x0200_0000;
/// `sample_depends_on = 1`, `sample_is_non_sync_sample`.
const NON_SYNC_FLAGS: u32 = 0x0101_0000;

/// A fragment (`moof` + `mdat`) of `samples`, whose data is `payload` (the samples' bytes in
/// order), starting at `base_decode_time`.
pub fn fragment(
    sequence: u32,
    base_decode_time: u64,
    samples: &[SampleSpec],
    payload: &[&[u8]],
) -> Vec<u8> {
    let data_len: usize = payload.iter().map(|p| p.len()).sum();
    debug_assert_eq!(
        data_len as u64,
        samples.iter().map(|s| u64::from(s.size)).sum::<u64>(),
        "the samples' sizes add up to the payload"
    );
    let mut out = Vec::with_capacity(data_len + 64 + samples.len() * 16);
    let mut data_offset_at = 0;
    put_box(&mut out, b"moof", |o| {
        put_full_box(o, b"mfhd", 0, 0, |o| u32s(o, &[sequence]));
        put_box(o, b"traf", |o| {
            // default-base-is-moof
            put_full_box(o, b"tfhd", 0, 0x02_0000, |o| u32s(o, &[TRACK_ID]));
            put_full_box(o, b"tfdt", 1, 0, |o| {
                o.extend_from_slice(&base_decode_time.to_be_bytes())
            });
            // data offset, duration, size, flags, composition offset (signed: version 1)
            put_full_box(
                o,
                b"trun",
                1,
                0x0001 | 0x0100 | 0x0200 | 0x0400 | 0x0800,
                |o| {
                    u32s(o, &[samples.len() as u32]);
                    data_offset_at = o.len();
                    u32s(o, &[0]);
                    for s in samples {
                        let flags = if s.sync { SYNC_FLAGS } else { NON_SYNC_FLAGS };
                        u32s(o, &[s.duration, s.size, flags]);
                        o.extend_from_slice(&s.composition_offset.to_be_bytes());
                    }
                },
            );
        });
    });
    // The payload starts after the moof and the mdat's header.
    let data_offset = (out.len() + 8) as u32;
    out[data_offset_at..data_offset_at + 4].copy_from_slice(&data_offset.to_be_bytes());
    out.extend_from_slice(&((data_len + 8) as u32).to_be_bytes());
    out.extend_from_slice(b"mdat");
    for part in payload {
        out.extend_from_slice(part);
    }
    out
}
