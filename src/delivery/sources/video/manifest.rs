//! The upload manifest of one camera and video delivery stream, under
//! `manifest_dir/<camera>/<delivery stream>/`: a JSON-lines file per UTC day of the objects
//! uploaded (removed after two days without change) and one of the init segments uploaded,
//! so that playlists survive restarts and the deletion of local fragments. Lines are appended
//! durably; a line cut short by a crash is skipped when read.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

/// Day files of the manifest unchanged for this long are removed.
const MANIFEST_KEEP: Duration = Duration::from_secs(2 * 24 * 3600);
/// Init segments remembered in the manifest (the newest).
pub(super) const MANIFEST_INITS: usize = 100;
pub(super) const INITS_FILE: &str = "inits.jsonl";

/// One uploaded object, as the manifest keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct ObjectEntry {
    pub(super) key: String,
    pub(super) init_key: String,
    pub(super) first: u64,
    pub(super) last: u64,
    pub(super) start_ms: i64,
    pub(super) end_ms: i64,
    pub(super) duration_ms: u32,
    /// The first fragment starts a new recording run.
    #[serde(default)]
    pub(super) discontinuity: bool,
}

/// An uploaded init segment, as the manifest keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct InitEntry {
    pub(super) init_id: u64,
    pub(super) key: String,
}

pub(super) fn day_file(day: NaiveDate) -> String {
    format!(
        "{:04}-{:02}-{:02}.jsonl",
        day.year(),
        day.month(),
        day.day()
    )
}

pub(super) fn json_line<T: Serialize>(value: &T) -> String {
    let mut line = serde_json::to_string(value).unwrap_or_default();
    line.push('\n');
    line
}

/// Appends `line` to `file` durably, creating its folder.
pub(super) fn append_line(file: &Path, line: &str) -> Result<(), String> {
    let error = |e: std::io::Error| format!("{}: {e}", file.display());
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(error)?;
    }
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .map_err(error)?;
    f.write_all(line.as_bytes()).map_err(error)?;
    f.sync_data().map_err(error)
}

/// The readable lines of a JSON-lines file (a line cut short by a crash is skipped).
pub(super) fn read_lines<T: for<'de> Deserialize<'de>>(file: &Path) -> Result<Vec<T>, String> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("{}: {e}", file.display())),
    }
}

/// The day's objects, each once (the last line for a key uploaded again), in number order.
pub(super) fn read_objects(file: &Path) -> Result<Vec<ObjectEntry>, String> {
    let mut by_first: BTreeMap<u64, ObjectEntry> = BTreeMap::new();
    for entry in read_lines::<ObjectEntry>(file)? {
        by_first.insert(entry.first, entry);
    }
    Ok(by_first.into_values().collect())
}

/// The uploaded init segments; the file is cut to the newest [`MANIFEST_INITS`] when it grew
/// to twice that.
pub(super) fn read_inits(dir: &Path) -> Result<BTreeMap<u64, String>, String> {
    let file = dir.join(INITS_FILE);
    let entries = read_lines::<InitEntry>(&file)?;
    let grown = entries.len() >= 2 * MANIFEST_INITS;
    let mut inits: BTreeMap<u64, String> =
        entries.into_iter().map(|e| (e.init_id, e.key)).collect();
    while inits.len() > MANIFEST_INITS {
        inits.pop_first();
    }
    if grown {
        let text: String = inits
            .iter()
            .map(|(&init_id, key)| {
                json_line(&InitEntry {
                    init_id,
                    key: key.clone(),
                })
            })
            .collect();
        crate::delivery::destinations::directory::write_atomically(&file, text.as_bytes())
            .map_err(|e| e.to_string())?;
    }
    Ok(inits)
}

/// The days the manifest keeps, after removing those unchanged for [`MANIFEST_KEEP`].
pub(super) fn manifest_days(dir: &Path) -> Result<Vec<NaiveDate>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    let mut days = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(day) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".jsonl"))
            .and_then(|n| NaiveDate::parse_from_str(n, "%Y-%m-%d").ok())
        else {
            continue;
        };
        let age = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok());
        if age.is_some_and(|age| age > MANIFEST_KEEP) {
            if let Err(e) = std::fs::remove_file(entry.path()) {
                tracing::warn!(file = %entry.path().display(), error = %e, "cannot remove an old upload manifest");
            }
        } else {
            days.push(day);
        }
    }
    Ok(days)
}
