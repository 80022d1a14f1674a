//! Resource policies: PutResourcePolicy, GetResourcePolicy, DeleteResourcePolicy.
//!
//! kinedge stores a stream's policy durably (the stream's `settings.resource_policy`, through
//! the store's writer; deleted with the stream) and returns it as given; `access` enforces
//! its Deny statements for requests signed with the configured API keys. A policy is checked
//! before it is stored: JSON, an object with a `Statement` list whose statements have an
//! `Effect` (Allow or Deny), a `Principal` and an `Action`, nothing kinedge cannot evaluate
//! (`Condition`, `Not*`), at most 20 KB (AWS's limit).
//! Consumer ARNs answer ResourceNotFoundException until kinedge has consumers (see `tagging`).

use serde::{Deserialize, Serialize};

use super::tagging::{consumer_tags, existing_stream, resource_of, Resource};
use crate::api::error::ApiError;
use crate::api::KinesisState;
use crate::storage::AdminOp;
use crate::streams::settings::check_policy;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PutResourcePolicyInput {
    #[serde(rename = "ResourceARN")]
    pub resource_arn: Option<String>,
    pub policy: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ResourcePolicyInput {
    #[serde(rename = "ResourceARN")]
    pub resource_arn: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetResourcePolicyOutput {
    pub policy: String,
}

/// The stream named by a resource ARN. Policies are kept for streams only: the ARN of a
/// consumer that exists is refused with InvalidArgumentException (one that does not: not found).
fn stream_of(state: &KinesisState, arn: Option<String>) -> Result<String, ApiError> {
    let resource = resource_of(&arn.ok_or_else(|| ApiError::missing("resourceARN"))?)?;
    if let Resource::Consumer { consumer, .. } = &resource {
        consumer_tags(state, &resource)?;
        return Err(ApiError::invalid(format!(
            "kinedge keeps resource policies for streams only, not for consumers such as {consumer}; put the policy on the stream's ARN."
        )));
    }
    existing_stream(state, &resource)?;
    Ok(resource.stream().to_string())
}

pub async fn put(state: &KinesisState, input: PutResourcePolicyInput) -> Result<(), ApiError> {
    let policy = input.policy.ok_or_else(|| ApiError::missing("policy"))?;
    let arn = input.resource_arn.clone().unwrap_or_default();
    let stream = stream_of(state, input.resource_arn)?;
    check_policy(&policy).map_err(ApiError::invalid)?;
    super::access::check_storable(state, &policy, None, &arn)?;
    state
        .store
        .admin(AdminOp::ResourcePolicy {
            stream: stream.clone(),
            policy: Some(policy),
        })
        .await
        .map_err(|e| state.store_error(&stream, e))?;
    tracing::info!(%stream, "resource policy stored (kinedge enforces its Deny statements for signed requests: docs/kinesis-api.md)");
    Ok(())
}

pub async fn get(
    state: &KinesisState,
    input: ResourcePolicyInput,
) -> Result<GetResourcePolicyOutput, ApiError> {
    let stream = stream_of(state, input.resource_arn)?;
    let policy = state
        .store
        .catalog()
        .stream(&stream)
        .and_then(|meta| meta.settings.resource_policy.clone());
    // A resource without a policy answers an empty policy document, as Kinesis does.
    Ok(GetResourcePolicyOutput {
        policy: policy.unwrap_or_else(|| "{}".to_string()),
    })
}

pub async fn delete(state: &KinesisState, input: ResourcePolicyInput) -> Result<(), ApiError> {
    let stream = stream_of(state, input.resource_arn)?;
    state
        .store
        .admin(AdminOp::ResourcePolicy {
            stream: stream.clone(),
            policy: None,
        })
        .await
        .map_err(|e| state.store_error(&stream, e))
}
