//! The strings of a `[camera]` table that have a grammar: the source URL (rtsp, srt, v4l2,
//! file; never with credentials in it) and the daily upload window.

use std::path::PathBuf;

use super::CameraSource;

/// `"01:00-05:00"` → minutes after midnight (start, end).
pub fn parse_window(text: &str) -> Result<(u16, u16), String> {
    let bad =
        || format!("`{text}` is not a window: HH:MM-HH:MM in local time, e.g. \"01:00-05:00\"");
    let (start, end) = text.split_once('-').ok_or_else(bad)?;
    let minutes = |t: &str| -> Option<u16> {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60).then_some(h * 60 + m)
    };
    let (start, end) = (
        minutes(start).ok_or_else(bad)?,
        minutes(end).ok_or_else(bad)?,
    );
    if start == end {
        return Err(format!(
            "`{text}`: the window is empty; leave window out to upload at any time"
        ));
    }
    Ok((start, end))
}

/// Checks a source URL.
pub fn parse_source(text: &str) -> Result<CameraSource, String> {
    let (scheme, rest) = text.split_once("://").ok_or_else(|| {
        format!("`{text}` is not a source: rtsp://, srt://, v4l2:///dev/videoN or file:///path")
    })?;
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    match scheme {
        "rtsp" | "rtsps" => {
            if authority.contains('@') {
                return Err("credentials in the URL are plaintext secrets: use username and password_file (or password_env)".into());
            }
            if authority.is_empty() {
                return Err(format!("`{text}` has no host"));
            }
            Ok(CameraSource::Rtsp { url: text.into() })
        }
        "srt" => {
            let query = rest.split_once('?').map(|(_, q)| q).unwrap_or("");
            let mode = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("mode="))
                .unwrap_or("");
            let (host, port) = authority.rsplit_once(':').ok_or_else(|| {
                format!("`{text}` has no port: srt://host:port (caller) or srt://:port (listener)")
            })?;
            port.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("`{port}` is not a port"))?;
            let listener = match mode {
                "listener" => true,
                "caller" => false,
                "" => host.is_empty(),
                other => {
                    return Err(format!(
                        "mode `{other}`: srt sources are mode=caller or mode=listener"
                    ))
                }
            };
            if !listener && host.is_empty() {
                return Err("a caller needs a host: srt://host:port".into());
            }
            Ok(CameraSource::Srt {
                url: text.into(),
                listener,
            })
        }
        "v4l2" => {
            let device = PathBuf::from(rest);
            if !rest.starts_with("/dev/") {
                return Err(format!(
                    "`{text}`: a v4l2 source names a device, v4l2:///dev/video0"
                ));
            }
            Ok(CameraSource::V4l2 { device })
        }
        "file" => {
            if !rest.starts_with('/') {
                return Err(format!(
                    "`{text}`: a file source needs an absolute path, file:///path/to/video.ts"
                ));
            }
            Ok(CameraSource::File {
                path: PathBuf::from(rest),
            })
        }
        other => Err(format!(
            "`{other}://` is not supported: rtsp://, srt://, v4l2:///dev/videoN or file:///path"
        )),
    }
}
