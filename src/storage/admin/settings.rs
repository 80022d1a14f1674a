//! The writer's side of UpdateStreamMode, the on-demand scaler's reshards, enhanced
//! monitoring and resource policies: each changes the stream's row in the group commit, so
//! an answered request is on disk.
//!
//! Invariant: at most `ON_DEMAND_STREAM_LIMIT` streams are ON_DEMAND (checked here and at
//! creation, where the writer sees every stream); the scaler never reshards a stream that is
//! not ON_DEMAND any more (a switch to PROVISIONED wins over a scaling decision in flight).

use crate::storage::writer::Writer;
use crate::storage::StoreError;
use crate::streams::settings::ON_DEMAND_STREAM_LIMIT;
use crate::streams::{ShardMetric, StreamMode};

impl Writer {
    /// Refuses one more ON_DEMAND stream when the gateway has its limit of them.
    pub(in crate::storage) fn check_on_demand_room(&self) -> Result<(), StoreError> {
        let on_demand = self
            .streams
            .values()
            .filter(|s| s.mode == StreamMode::OnDemand)
            .count() as u32;
        if on_demand >= ON_DEMAND_STREAM_LIMIT {
            return Err(StoreError::LimitExceeded(format!(
                "This request would exceed the gateway's limit of {ON_DEMAND_STREAM_LIMIT} streams in ON_DEMAND mode (currently {on_demand})."
            )));
        }
        Ok(())
    }

    pub(in crate::storage) fn set_stream_mode(
        &mut self,
        stream: String,
        mode: StreamMode,
    ) -> Result<String, StoreError> {
        let current = self.stream_mut(&stream)?.mode;
        if current != mode && mode == StreamMode::OnDemand {
            self.check_on_demand_room()?;
        }
        self.stream_mut(&stream)?.mode = mode;
        if current != mode {
            tracing::info!(%stream, mode = mode.as_aws(), "stream capacity mode changed");
        }
        Ok(stream)
    }

    /// UpdateShardCount is for PROVISIONED streams only, as in Kinesis: an ON_DEMAND
    /// stream's shards follow its write rate.
    pub(in crate::storage) fn refuse_on_demand(&mut self, stream: &str) -> Result<(), StoreError> {
        if self.stream_mut(stream)?.mode == StreamMode::OnDemand {
            return Err(StoreError::InvalidArgument(format!(
                "UpdateShardCount is only supported for streams in PROVISIONED mode; stream {stream} is ON_DEMAND (the gateway scales its shards by its write rate)."
            )));
        }
        Ok(())
    }

    pub(in crate::storage) fn scale_on_demand(
        &mut self,
        stream: String,
        target: u32,
    ) -> Result<String, StoreError> {
        if self.stream_mut(&stream)?.mode != StreamMode::OnDemand {
            return Err(StoreError::InvalidArgument(format!(
                "Stream {stream} is not in ON_DEMAND mode any more; not scaled."
            )));
        }
        let now = crate::storage::now_ms();
        self.reshard(&stream, |meta, last, uids, open| {
            meta.update_shard_count(target, now, last, uids, open)
        })?;
        Ok(stream)
    }

    pub(in crate::storage) fn change_shard_metrics(
        &mut self,
        stream: String,
        metrics: &[ShardMetric],
        enable: bool,
    ) -> Result<String, StoreError> {
        self.stream_mut(&stream)?
            .settings
            .change_metrics(metrics, enable);
        Ok(stream)
    }

    pub(in crate::storage) fn set_policy(
        &mut self,
        stream: String,
        policy: Option<String>,
    ) -> Result<String, StoreError> {
        if let Some(text) = &policy {
            crate::streams::settings::check_policy(text).map_err(StoreError::InvalidArgument)?;
        }
        self.stream_mut(&stream)?.settings.resource_policy = policy;
        Ok(stream)
    }
}
