//! The console's assets, embedded at build time: build.rs bundles `web/` with esbuild and
//! writes the gzip-compressed files and their list (`console_assets.rs` in `OUT_DIR`). They
//! are kept compressed in the binary; the rare client that does not take gzip gets them
//! decompressed on the fly.

use std::io::Read;

use http::HeaderValue;

include!(concat!(env!("OUT_DIR"), "/console_assets.rs"));

/// The gzip-compressed contents of the asset named `file`.
pub fn find(file: &str) -> Option<&'static [u8]> {
    ASSETS
        .iter()
        .find(|(name, _)| *name == file)
        .map(|(_, bytes)| *bytes)
}

/// An asset's contents, decompressed.
pub fn gunzip(gzipped: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gzipped).read_to_end(&mut out)?;
    Ok(out)
}

/// The `Content-Type` of an asset, by its extension.
pub fn content_type(file: &str) -> HeaderValue {
    let kind = match file.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    };
    HeaderValue::from_static(kind)
}

/// Every asset's size, compressed: what a first visit downloads at most.
pub fn total_gzipped_bytes() -> usize {
    ASSETS.iter().map(|(_, bytes)| bytes.len()).sum()
}
