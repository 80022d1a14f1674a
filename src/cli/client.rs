//! A small Kinesis API client for the command line: JSON 1.1 over HTTP to a running gateway,
//! signed with SigV4 when `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` are set.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use serde_json::Value;

pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4567";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{kind}: {message}")]
    Api { kind: String, message: String },
    #[error("cannot reach the gateway at {endpoint}: {detail} (is `kinedge run` running? set --endpoint or KINEDGE_ENDPOINT)")]
    Unreachable { endpoint: String, detail: String },
    #[error("unexpected answer from the gateway: {0}")]
    Protocol(String),
    #[error("cannot sign the request: {0}")]
    Signing(String),
}

pub struct KinesisClient {
    http: reqwest::Client,
    endpoint: String,
    credentials: Option<Credentials>,
    region: String,
}

impl KinesisClient {
    pub fn new(endpoint: String) -> Self {
        let credentials = match (
            std::env::var("AWS_ACCESS_KEY_ID"),
            std::env::var("AWS_SECRET_ACCESS_KEY"),
        ) {
            (Ok(id), Ok(secret)) if !id.is_empty() && !secret.is_empty() => Some(Credentials::new(
                id,
                secret,
                std::env::var("AWS_SESSION_TOKEN").ok(),
                None,
                "environment",
            )),
            _ => None,
        };
        let region = std::env::var("AWS_REGION")
            .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|_| "us-east-1".to_string());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        KinesisClient {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            credentials,
            region,
        }
    }

    /// The same client, waiting up to `timeout` for an answer (30 s by default): a query over
    /// a long history takes longer.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .unwrap_or_default();
        self
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Calls a Kinesis operation with a JSON input; returns the JSON output.
    pub async fn call(&self, operation: &str, input: Value) -> Result<Value, ClientError> {
        let body = serde_json::to_vec(&input).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let url = format!("{}/", self.endpoint);
        let target = format!("Kinesis_20131202.{operation}");
        let mut headers: Vec<(String, String)> = vec![
            ("content-type".into(), "application/x-amz-json-1.1".into()),
            ("x-amz-target".into(), target),
        ];
        if let Some(credentials) = &self.credentials {
            headers.extend(self.sign(credentials, &url, &headers, &body)?);
        }
        let mut request = self.http.post(&url).body(body);
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|e| ClientError::Unreachable {
            endpoint: self.endpoint.clone(),
            detail: e.to_string(),
        })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let value: Value = if bytes.is_empty() {
            Value::Object(Default::default())
        } else {
            serde_json::from_slice(&bytes).map_err(|e| {
                ClientError::Protocol(format!("HTTP {status}, body is not JSON: {e}"))
            })?
        };
        if status.is_success() {
            return Ok(value);
        }
        Err(api_error(status, &value))
    }

    /// GETs a JSON path of the gateway (`/deliveries`, `/status`), signed when credentials
    /// are in the environment.
    pub async fn get_json(&self, path: &str) -> Result<Value, ClientError> {
        self.send_json(reqwest::Method::GET, path, None).await
    }

    /// Sends `body` (none: an empty body) as JSON to a path of the gateway (`/analytics`),
    /// signed when credentials are in the environment; returns the JSON answer.
    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.endpoint);
        let body = match body {
            Some(body) => {
                serde_json::to_vec(body).map_err(|e| ClientError::Protocol(e.to_string()))?
            }
            None => Vec::new(),
        };
        let headers: Vec<(String, String)> = if body.is_empty() {
            Vec::new()
        } else {
            vec![("content-type".into(), "application/json".into())]
        };
        let mut request = self.http.request(method.clone(), &url);
        if let Some(credentials) = &self.credentials {
            let signed = self.sign_method(credentials, method.as_str(), &url, &headers, &body)?;
            for (name, value) in signed {
                request = request.header(name, value);
            }
        }
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        if !body.is_empty() {
            request = request.body(body);
        }
        let response = request.send().await.map_err(|e| ClientError::Unreachable {
            endpoint: self.endpoint.clone(),
            detail: e.to_string(),
        })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Protocol(format!("HTTP {status}, body is not JSON: {e}")))?;
        if status.is_success() {
            return Ok(value);
        }
        Err(api_error(status, &value))
    }

    fn sign(
        &self,
        credentials: &Credentials,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Vec<(String, String)>, ClientError> {
        self.sign_method(credentials, "POST", url, headers, body)
    }

    fn sign_method(
        &self,
        credentials: &Credentials,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Vec<(String, String)>, ClientError> {
        let identity = credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("kinesis")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| ClientError::Signing(e.to_string()))?
            .into();
        let signable = SignableRequest::new(
            method,
            url,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body),
        )
        .map_err(|e| ClientError::Signing(e.to_string()))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| ClientError::Signing(e.to_string()))?
            .into_parts();
        Ok(instructions
            .headers()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }
}

/// The error in a failed answer: its `__type` (without namespace) or `error` (the
/// gateway's own JSON paths), and its message.
fn api_error(status: reqwest::StatusCode, value: &Value) -> ClientError {
    let kind = value["__type"]
        .as_str()
        .or_else(|| value["error"].as_str())
        .map(|t| t.rsplit('#').next().unwrap_or(t).to_string())
        .unwrap_or_else(|| format!("HTTP {status}"));
    let message = value["message"]
        .as_str()
        .or_else(|| value["Message"].as_str())
        .unwrap_or("")
        .to_string();
    ClientError::Api { kind, message }
}
