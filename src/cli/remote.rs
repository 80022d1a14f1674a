//! The client commands: each talks to a running gateway over its API.

use anyhow::Context;
use serde_json::json;

use super::args::{Command, DeliveriesAction};
use super::{analytics, deliveries, query, records, status, streams, KinesisClient};

pub(super) async fn run_client(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Streams { action, endpoint } => {
            let client = KinesisClient::new(endpoint.endpoint);
            streams::streams_command(&client, action).await
        }
        Command::Put {
            stream,
            partition_key,
            data,
            endpoint,
        } => {
            let client = KinesisClient::new(endpoint.endpoint);
            let bytes = match data.as_deref() {
                Some("-") | None => {
                    use std::io::Read;
                    let mut buf = Vec::new();
                    std::io::stdin()
                        .read_to_end(&mut buf)
                        .context("reading the record from standard input")?;
                    buf
                }
                Some(text) => text.as_bytes().to_vec(),
            };
            let out = client
                .call(
                    "PutRecord",
                    json!({
                        "StreamName": stream,
                        "PartitionKey": partition_key,
                        "Data": base64_encode(&bytes),
                    }),
                )
                .await?;
            println!(
                "{} {}",
                out["ShardId"].as_str().unwrap_or("?"),
                out["SequenceNumber"].as_str().unwrap_or("?")
            );
            Ok(())
        }
        Command::Get {
            stream,
            from,
            limit,
            raw,
            endpoint,
        } => {
            let client = KinesisClient::new(endpoint.endpoint);
            records::get(&client, &stream, &from, limit, raw).await
        }
        Command::Tail {
            stream,
            raw,
            endpoint,
        } => {
            let client = KinesisClient::new(endpoint.endpoint);
            records::tail(&client, &stream, raw).await
        }
        Command::Deliveries {
            action: DeliveriesAction::Status { json },
            endpoint,
        } => {
            let client = KinesisClient::new(endpoint.endpoint);
            let status = client.get_json("/deliveries").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", deliveries::deliveries_table(&status));
            }
            Ok(())
        }
        Command::Status { json, endpoint } => {
            let client = KinesisClient::new(endpoint.endpoint);
            let status = client.get_json("/status").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!(
                    "{}",
                    status::render(&status, crate::storage::now_ms() as i64)
                );
            }
            Ok(())
        }
        Command::Analytics { action, endpoint } => {
            let client = KinesisClient::new(endpoint.endpoint);
            analytics::analytics_command(&client, action).await
        }
        Command::Query {
            sql,
            file,
            format,
            max_rows,
            endpoint,
        } => {
            let client = KinesisClient::new(endpoint.endpoint).with_timeout(query::TIMEOUT);
            let args = query::QueryArgs {
                sql,
                file,
                format,
                max_rows,
            };
            query::query_command(&client, args).await
        }
        Command::Run { .. }
        | Command::CheckConfig { .. }
        | Command::Devices { .. }
        | Command::Storage { .. } => Ok(()),
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
