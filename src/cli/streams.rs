//! `kinedge streams`: create, list, describe, delete and reshard streams through the API.

use serde_json::json;

use super::args::StreamsAction;
use super::{records, KinesisClient};

pub(super) async fn streams_command(
    client: &KinesisClient,
    action: StreamsAction,
) -> anyhow::Result<()> {
    match action {
        StreamsAction::Create { name, shards } => {
            client
                .call(
                    "CreateStream",
                    json!({"StreamName": name, "ShardCount": shards}),
                )
                .await?;
            println!("created stream {name} with {shards} shards");
        }
        StreamsAction::List => {
            let mut start: Option<String> = None;
            loop {
                let mut input = json!({"Limit": 1000});
                if let Some(s) = &start {
                    input["ExclusiveStartStreamName"] = json!(s);
                }
                let out = client.call("ListStreams", input).await?;
                let names: Vec<String> = out["StreamNames"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                for name in &names {
                    println!("{name}");
                }
                if out["HasMoreStreams"].as_bool() != Some(true) || names.is_empty() {
                    break;
                }
                start = names.last().cloned();
            }
        }
        StreamsAction::Describe { name } => {
            let summary = client
                .call("DescribeStreamSummary", json!({"StreamName": name}))
                .await?;
            let shards = records::list_all_shards(client, &name).await?;
            let out = json!({
                "summary": summary["StreamDescriptionSummary"],
                "shards": shards,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        StreamsAction::Delete { name } => {
            client
                .call("DeleteStream", json!({"StreamName": name}))
                .await?;
            println!("deleted stream {name}");
        }
        StreamsAction::Reshard { name, shards } => {
            let out = client
                .call(
                    "UpdateShardCount",
                    json!({"StreamName": name, "TargetShardCount": shards, "ScalingType": "UNIFORM_SCALING"}),
                )
                .await?;
            println!(
                "stream {name}: {} -> {} open shards",
                out["CurrentShardCount"], out["TargetShardCount"]
            );
        }
    }
    Ok(())
}
