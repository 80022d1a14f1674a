//! Compression of what a destination sends: gzip, zstd, or Snappy's framing format (what
//! Firehose writes for "Snappy"). Whole objects for S3 and directories; the request body for
//! HTTP endpoints (gzip only, as `Content-Encoding`).

use std::io::Write;

use super::config::Compression;

/// zstd level: 3 is zstd's default, a good ratio at a low CPU cost on a Pi.
const ZSTD_LEVEL: i32 = 3;

/// Compresses `data` whole. `Compression::None` returns a copy.
pub fn compress(compression: Compression, data: &[u8]) -> std::io::Result<Vec<u8>> {
    match compression {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(data.len() / 4),
                flate2::Compression::default(),
            );
            encoder.write_all(data)?;
            encoder.finish()
        }
        Compression::Zstd => zstd::bulk::compress(data, ZSTD_LEVEL),
        Compression::Snappy => {
            let mut encoder = snap::write::FrameEncoder::new(Vec::with_capacity(data.len() / 2));
            encoder.write_all(data)?;
            encoder.into_inner().map_err(|e| e.into_error())
        }
    }
}

/// The file name extension Firehose gives compressed objects (`""` for none).
pub fn extension(compression: Compression) -> &'static str {
    match compression {
        Compression::None => "",
        Compression::Gzip => ".gz",
        Compression::Zstd => ".zst",
        Compression::Snappy => ".snappy",
    }
}

/// The HTTP `Content-Encoding` of a compressed body.
pub fn content_encoding(compression: Compression) -> Option<&'static str> {
    match compression {
        Compression::None => None,
        Compression::Gzip => Some("gzip"),
        Compression::Zstd => Some("zstd"),
        Compression::Snappy => None,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    const DATA: &[u8] = b"{\"temp\":21.5}\n{\"temp\":21.6}\n{\"temp\":21.7}\n";

    #[test]
    fn every_kind_round_trips() {
        let gz = compress(Compression::Gzip, DATA).unwrap();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, DATA);

        let zst = compress(Compression::Zstd, DATA).unwrap();
        assert_eq!(zstd::decode_all(&zst[..]).unwrap(), DATA);

        let sn = compress(Compression::Snappy, DATA).unwrap();
        let mut out = Vec::new();
        snap::read::FrameDecoder::new(&sn[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, DATA);

        assert_eq!(compress(Compression::None, DATA).unwrap(), DATA);
    }

    #[test]
    fn empty_input_round_trips() {
        let gz = compress(Compression::Gzip, b"").unwrap();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert!(out.is_empty() && !gz.is_empty());
        let zst = compress(Compression::Zstd, b"").unwrap();
        assert!(zstd::decode_all(&zst[..]).unwrap().is_empty());
        let sn = compress(Compression::Snappy, b"").unwrap();
        let mut out = Vec::new();
        snap::read::FrameDecoder::new(&sn[..])
            .read_to_end(&mut out)
            .unwrap();
        assert!(out.is_empty());
    }
}
