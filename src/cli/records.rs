//! `kinedge get` and `kinedge tail`: reading a whole stream through the API, shard by shard,
//! parents before children.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use super::KinesisClient;

/// Every shard of a stream (ListShards, all pages).
pub async fn list_all_shards(client: &KinesisClient, stream: &str) -> anyhow::Result<Vec<Value>> {
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let input = match &token {
            Some(t) => json!({"NextToken": t}),
            None => json!({"StreamName": stream}),
        };
        let out = client.call("ListShards", input).await?;
        if let Some(page) = out["Shards"].as_array() {
            shards.extend(page.iter().cloned());
        }
        match out["NextToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    Ok(shards)
}

enum From {
    TrimHorizon,
    Latest,
    Sequence(String),
    Timestamp(f64),
}

fn parse_from(text: &str) -> anyhow::Result<From> {
    Ok(match text {
        "trim-horizon" | "TRIM_HORIZON" => From::TrimHorizon,
        "latest" | "LATEST" => From::Latest,
        t if t.len() == 56 && t.bytes().all(|b| b.is_ascii_digit()) => {
            From::Sequence(t.to_string())
        }
        t if t.bytes().all(|b| b.is_ascii_digit()) => {
            let ms: u64 = t
                .parse()
                .context("--from: epoch milliseconds out of range")?;
            From::Timestamp(ms as f64 / 1000.0)
        }
        t => {
            let at = humantime::parse_rfc3339_weak(t).with_context(|| {
                format!("--from '{t}': expected trim-horizon, latest, a 56-digit sequence number, RFC 3339 time or epoch milliseconds")
            })?;
            let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
            From::Timestamp(since.as_secs_f64())
        }
    })
}

fn print_record(shard: &str, record: &Value, raw: bool) -> anyhow::Result<()> {
    let data = STANDARD
        .decode(record["Data"].as_str().unwrap_or(""))
        .context("record data is not base64")?;
    let mut out = std::io::stdout().lock();
    if raw {
        out.write_all(&data)?;
        out.write_all(b"\n")?;
        return Ok(());
    }
    let arrival = record["ApproximateArrivalTimestamp"]
        .as_f64()
        .unwrap_or(0.0);
    let arrival =
        humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_secs_f64(arrival.max(0.0)));
    let mut line = json!({
        "shard": shard,
        "sequence": record["SequenceNumber"],
        "partition_key": record["PartitionKey"],
        "arrival": arrival.to_string(),
    });
    match String::from_utf8(data) {
        Ok(text) => line["data"] = json!(text),
        Err(e) => line["data_base64"] = json!(STANDARD.encode(e.into_bytes())),
    }
    writeln!(out, "{line}")?;
    Ok(())
}

async fn iterator(
    client: &KinesisClient,
    stream: &str,
    shard: &str,
    from: &From,
) -> anyhow::Result<String> {
    let mut input = json!({"StreamName": stream, "ShardId": shard});
    match from {
        From::TrimHorizon => input["ShardIteratorType"] = json!("TRIM_HORIZON"),
        From::Latest => input["ShardIteratorType"] = json!("LATEST"),
        From::Sequence(seq) => {
            input["ShardIteratorType"] = json!("AT_SEQUENCE_NUMBER");
            input["StartingSequenceNumber"] = json!(seq);
        }
        From::Timestamp(t) => {
            input["ShardIteratorType"] = json!("AT_TIMESTAMP");
            input["Timestamp"] = json!(t);
        }
    }
    let out = client.call("GetShardIterator", input).await?;
    out["ShardIterator"]
        .as_str()
        .map(String::from)
        .context("GetShardIterator answered without an iterator")
}

/// The shard a kinedge sequence number belongs to (digits 2-13 are the shard index).
fn shard_of_sequence(seq: &str) -> Option<String> {
    seq.get(1..13)
        .and_then(|d| d.parse::<u64>().ok())
        .map(crate::streams::shard_id)
}

pub async fn get(
    client: &KinesisClient,
    stream: &str,
    from: &str,
    limit: Option<usize>,
    raw: bool,
) -> anyhow::Result<()> {
    let from = parse_from(from)?;
    let mut shards: Vec<String> = list_all_shards(client, stream)
        .await?
        .iter()
        .filter_map(|s| s["ShardId"].as_str().map(String::from))
        .collect();
    // Children always have higher indices than their parents: index order reads parents first.
    shards.sort();
    if let From::Sequence(seq) = &from {
        let Some(own) = shard_of_sequence(seq) else {
            bail!("--from {seq}: not a kinedge sequence number");
        };
        shards.retain(|s| *s == own);
    }
    let mut printed = 0usize;
    for shard in shards {
        let mut it = Some(iterator(client, stream, &shard, &from).await?);
        while let Some(current) = it {
            let out = client
                .call(
                    "GetRecords",
                    json!({"ShardIterator": current, "Limit": 10000}),
                )
                .await?;
            let records = out["Records"].as_array().cloned().unwrap_or_default();
            for record in &records {
                if limit.is_some_and(|l| printed >= l) {
                    return Ok(());
                }
                print_record(&shard, record, raw)?;
                printed += 1;
            }
            // Stop at the tip of an open shard, or the end of a closed one.
            if records.is_empty()
                || out["MillisBehindLatest"].as_u64() == Some(0) && records.len() < 10000
            {
                break;
            }
            it = out["NextShardIterator"].as_str().map(String::from);
        }
    }
    Ok(())
}

pub async fn tail(client: &KinesisClient, stream: &str, raw: bool) -> anyhow::Result<()> {
    let shards = list_all_shards(client, stream).await?;
    let mut known: HashSet<String> = HashSet::new();
    let mut iterators: BTreeMap<String, String> = BTreeMap::new();
    for shard in &shards {
        let id = shard["ShardId"].as_str().unwrap_or_default().to_string();
        known.insert(id.clone());
        if shard["SequenceNumberRange"]["EndingSequenceNumber"].is_null() {
            let it = iterator(client, stream, &id, &From::Latest).await?;
            iterators.insert(id, it);
        }
    }
    let mut last_refresh = SystemTime::now();
    loop {
        let mut got_any = false;
        let ids: Vec<String> = iterators.keys().cloned().collect();
        for id in ids {
            let Some(current) = iterators.get(&id).cloned() else {
                continue;
            };
            let out = match client
                .call("GetRecords", json!({"ShardIterator": current}))
                .await
            {
                Ok(out) => out,
                Err(super::ClientError::Api { kind, .. }) if kind == "ExpiredIteratorException" => {
                    let it = iterator(client, stream, &id, &From::Latest).await?;
                    iterators.insert(id, it);
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            for record in out["Records"].as_array().into_iter().flatten() {
                got_any = true;
                print_record(&id, record, raw)?;
            }
            match out["NextShardIterator"].as_str() {
                Some(next) => {
                    iterators.insert(id, next.to_string());
                }
                None => {
                    iterators.remove(&id);
                    for child in out["ChildShards"].as_array().into_iter().flatten() {
                        if let Some(child_id) = child["ShardId"].as_str() {
                            if known.insert(child_id.to_string()) {
                                let it =
                                    iterator(client, stream, child_id, &From::TrimHorizon).await?;
                                iterators.insert(child_id.to_string(), it);
                            }
                        }
                    }
                }
            }
        }
        // Pick up shards created by resharding that we have not seen through ChildShards.
        if last_refresh.elapsed().unwrap_or_default() > Duration::from_secs(10) {
            last_refresh = SystemTime::now();
            for shard in list_all_shards(client, stream).await? {
                let id = shard["ShardId"].as_str().unwrap_or_default().to_string();
                if known.insert(id.clone())
                    && shard["SequenceNumberRange"]["EndingSequenceNumber"].is_null()
                {
                    let it = iterator(client, stream, &id, &From::TrimHorizon).await?;
                    iterators.insert(id, it);
                }
            }
        }
        if !got_any {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
