//! The rows of a lookup join's table, by key: a CSV or JSON-lines file (read again when its
//! modification time or size changes, checked at most every `CHECK_EVERY`), or a stream (every
//! record read from the start, the latest per key). A file that cannot be read keeps the rows
//! loaded before and reports why.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use crate::analytics::format::Decoder;
use crate::analytics::sql::plan::{LookupPlan, LookupSource, StartPosition};
use crate::analytics::value::Value;
use crate::storage::Store;

use super::reader::StreamReader;

const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Most rows a lookup table holds.
pub const MAX_LOOKUP_ROWS: usize = 1_000_000;

pub struct Lookup {
    pub plan: LookupPlan,
    decoder: Decoder,
    rows: HashMap<Vec<Value>, Vec<Value>>,
    file_version: Option<(SystemTime, u64)>,
    last_check: Option<Instant>,
    reader: Option<StreamReader>,
    /// Why the last refresh failed (the rows loaded before stay).
    pub error: Option<String>,
}

impl Lookup {
    pub fn new(plan: LookupPlan, store: &Store) -> Lookup {
        let decoder = Decoder {
            format: plan.format,
            fields: plan.fields.clone(),
            delimiter: plan.csv_delimiter,
        };
        let reader = match &plan.source {
            LookupSource::Stream { stream } => Some(StreamReader::new(
                store.clone(),
                stream.clone(),
                StartPosition::TrimHorizon,
            )),
            LookupSource::File { .. } => None,
        };
        Lookup {
            plan,
            decoder,
            rows: HashMap::new(),
            file_version: None,
            last_check: None,
            reader,
            error: None,
        }
    }

    pub fn width(&self) -> usize {
        self.plan.fields.len()
    }

    pub fn get(&self, key: &[Value]) -> Option<&Vec<Value>> {
        if key.iter().any(Value::is_null) {
            return None;
        }
        self.rows.get(key)
    }

    fn insert(&mut self, data: &[u8]) -> Result<(), String> {
        let mut row = vec![Value::Null; self.width()];
        self.decoder.decode(data, &mut row)?;
        let key: Vec<Value> = self
            .plan
            .right_keys
            .iter()
            .map(|i| row[*i].clone())
            .collect();
        if self.rows.len() >= MAX_LOOKUP_ROWS && !self.rows.contains_key(&key) {
            return Err(format!(
                "lookup table {} holds {MAX_LOOKUP_ROWS} rows, the most it may",
                self.plan.table
            ));
        }
        self.rows.insert(key, row);
        Ok(())
    }

    /// Brings the rows up to date (blocking). True when they changed.
    pub fn refresh(&mut self) -> bool {
        if self.last_check.is_some_and(|t| t.elapsed() < CHECK_EVERY) {
            return false;
        }
        self.last_check = Some(Instant::now());
        match self.plan.source.clone() {
            LookupSource::File { path } => {
                let version = std::fs::metadata(&path).and_then(|m| Ok((m.modified()?, m.len())));
                let version = match version {
                    Ok(v) => v,
                    Err(e) => {
                        self.error = Some(format!("cannot read lookup file {path}: {e}"));
                        return false;
                    }
                };
                if self.file_version == Some(version) {
                    return false;
                }
                let text = match std::fs::read(&path) {
                    Ok(t) => t,
                    Err(e) => {
                        self.error = Some(format!("cannot read lookup file {path}: {e}"));
                        return false;
                    }
                };
                let old = std::mem::take(&mut self.rows);
                let mut bad = None;
                for (i, line) in text.split(|b| *b == b'\n').enumerate() {
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    if let Err(e) = self.insert(line) {
                        bad = Some(format!("lookup file {path}, line {}: {e}", i + 1));
                        break;
                    }
                }
                if let Some(error) = bad {
                    self.rows = old;
                    self.error = Some(error);
                    return false;
                }
                self.file_version = Some(version);
                self.error = None;
                tracing::info!(table = %self.plan.table, %path, rows = self.rows.len(), "lookup table loaded");
                true
            }
            LookupSource::Stream { stream } => {
                let Some(mut reader) = self.reader.take() else {
                    return false;
                };
                let mut changed = false;
                loop {
                    reader.discover();
                    match reader.read(10_000, 4 * 1024 * 1024) {
                        Ok((chunks, more)) => {
                            for chunk in chunks {
                                for record in chunk.records {
                                    if let Err(e) = self.insert(&record.data) {
                                        self.error = Some(format!("lookup stream {stream}: {e}"));
                                    }
                                    changed = true;
                                }
                            }
                            if !more {
                                break;
                            }
                        }
                        Err(e) => {
                            self.error = Some(format!("cannot read lookup stream {stream}: {e}"));
                            break;
                        }
                    }
                }
                self.reader = Some(reader);
                changed
            }
        }
    }
}
