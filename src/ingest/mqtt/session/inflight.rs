//! The in-flight FIFO: publishes in arrival order, each with the ticket of the commit that
//! holds its record (none when unrouted). Invariant: a publish is acknowledged (PUBACK,
//! PUBREC) and forwarded to the broker only after its own commit and only after every
//! publish before it; a refused one is answered as refused, in the same order.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use rumqttd::protocol::{Packet, PubAck, PubAckReason, PubRec, PubRecReason};
use tokio::sync::oneshot;

use super::super::codec::PublishHeader;
use super::super::qos2;
use super::super::refusal::{committed, storage_answer, CommitResult, Committed};
use super::live::Session;
use super::SessionError;
use crate::storage::{AppendOutcome, StoreError};

pub(super) type CommitTicket = oneshot::Receiver<Result<Vec<AppendOutcome>, StoreError>>;

/// A publish waiting for its commit (or just for those before it).
pub(super) struct Inflight {
    pub(super) header: PublishHeader,
    pub(super) forward: Packet,
    pub(super) commit: Option<CommitTicket>,
}

/// Waits for the commit of the oldest in-flight publish (at once if it has none).
pub(super) async fn head_commit(inflight: &mut VecDeque<Inflight>) -> CommitResult {
    match inflight.front_mut().and_then(|entry| entry.commit.as_mut()) {
        Some(ticket) => Some(ticket.await),
        None => None,
    }
}

/// The commit result of the oldest in-flight publish if it is known now; `None` (outer)
/// when the FIFO is empty or that commit is still running.
fn ready_head(inflight: &mut VecDeque<Inflight>) -> Option<CommitResult> {
    let next = inflight.front_mut()?;
    let Some(ticket) = next.commit.as_mut() else {
        return Some(None);
    };
    match ticket.try_recv() {
        Ok(r) => Some(Some(Ok(r))),
        Err(oneshot::error::TryRecvError::Empty) => None,
        Err(oneshot::error::TryRecvError::Closed) => Some(Some(Ok(Err(StoreError::ShuttingDown)))),
    }
}

impl Session {
    /// The oldest in-flight publish is committed: acknowledge and forward it, and every
    /// following one whose commit is already done.
    pub(super) async fn complete(&mut self, first: CommitResult) -> Result<(), SessionError> {
        let mut result = first;
        let mut forward = Vec::new();
        while let Some(entry) = self.inflight.pop_front() {
            let header = entry.header;
            let outcome = committed(result);
            match storage_answer(&outcome) {
                None => {
                    if entry.commit.is_some() {
                        self.shared.stats.stored.fetch_add(1, Ordering::Relaxed);
                        let bytes = match &entry.forward {
                            Packet::Publish(p, _) => p.payload.len(),
                            _ => 0,
                        };
                        self.shared.activity.stored(self.identity.name(), bytes);
                    }
                    forward.push(entry.forward);
                    self.acknowledge(header)?;
                }
                Some((reason, text)) => {
                    self.log_refused(&outcome, &text);
                    // What was accepted before it reaches the broker before the refusal.
                    self.send_to_broker(std::mem::take(&mut forward)).await?;
                    self.refuse_publish(
                        header,
                        reason,
                        Some(text),
                        "the record could not be stored (storage refused or failed)",
                    )?;
                }
            }
            // Continue with the next one only if it is ready now.
            result = match ready_head(&mut self.inflight) {
                Some(next) => next,
                None => break,
            };
        }
        self.send_to_broker(forward).await
    }

    /// PUBACK (QoS 1) or PUBREC (QoS 2, whose id is then remembered as received).
    fn acknowledge(&mut self, header: PublishHeader) -> Result<(), SessionError> {
        match header.qos {
            1 => self.write(Packet::PubAck(
                PubAck {
                    pkid: header.pkid,
                    reason: PubAckReason::Success,
                },
                None,
            )),
            2 => {
                qos2::lock(&self.qos2.ids).insert(header.pkid);
                self.write(Packet::PubRec(
                    PubRec {
                        pkid: header.pkid,
                        reason: PubRecReason::Success,
                    },
                    None,
                ))
            }
            _ => Ok(()),
        }
    }

    fn log_refused(&self, outcome: &Committed, text: &str) {
        if matches!(outcome, Committed::Refused(_) | Committed::Invalid(_)) {
            self.shared
                .stats
                .refused_stream
                .fetch_add(1, Ordering::Relaxed);
            self.shared.activity.refused(self.identity.name());
            tracing::warn!(device = self.identity.name(), reason = %text, "MQTT publish refused by its stream");
        } else {
            tracing::error!(device = self.identity.name(), reason = %text, "MQTT publish could not be stored");
        }
    }

    /// After the connection ended: waits for the commits of publishes never acknowledged and
    /// records the stored QoS 2 ones as received (they get PUBREC, not a second record, when
    /// the client resends them on its next connection).
    pub(super) async fn settle_inflight(&mut self) {
        while let Some(entry) = self.inflight.pop_front() {
            let result = match entry.commit {
                Some(ticket) => Some(ticket.await),
                None => None,
            };
            if entry.header.qos == 2 && storage_answer(&committed(result)).is_none() {
                qos2::lock(&self.qos2.ids).insert(entry.header.pkid);
            }
        }
    }
}
