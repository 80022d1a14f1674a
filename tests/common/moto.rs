//! moto's server (S3, Kinesis, Firehose) on a loopback port, killed on drop.
//!
//! moto comes from `scripts/install-deps --test` (the `.venv`), or any `python3` with
//! `moto[server]`; `KINEDGE_PYTHON` picks the interpreter. Without it the tests fail, they never
//! skip.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const REGION: &str = "us-east-1";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("KINEDGE_PYTHON") {
        return p.into();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}

/// A moto server, killed on drop.
pub struct Moto {
    child: Child,
    pub port: u16,
    pub http: reqwest::Client,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts moto on a free port.
    pub async fn start() -> Moto {
        Moto::start_on(free_port()).await
    }

    /// Starts moto on `port` and waits until it answers.
    pub async fn start_on(port: u16) -> Moto {
        let python = python();
        let fail = |why: String| -> ! {
            panic!(
                "moto could not be started with {} ({why}); run scripts/install-deps --test \
                 (or set KINEDGE_PYTHON to a python with moto[server])",
                python.display()
            )
        };
        let child = Command::new(&python)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| fail(e.to_string()));
        let mut moto = Moto {
            child,
            port,
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = moto.child.try_wait() {
                fail(format!("it exited with {status}"));
            }
            let answer = moto
                .http
                .get(moto.url("/moto-api/"))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if answer.is_ok() {
                return moto;
            }
            if Instant::now() > deadline {
                fail("no answer within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn endpoint(&self) -> Option<String> {
        Some(self.url(""))
    }

    /// An Authorization header that only tells moto which service a request is for (moto
    /// does not check signatures).
    pub fn auth(service: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential=testing/20240305/{REGION}/{service}/aws4_request, \
             SignedHeaders=host, Signature=00"
        )
    }

    /// An S3 request.
    pub fn s3(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .header("authorization", Moto::auth("s3"))
            .timeout(Duration::from_secs(60))
    }

    pub async fn create_bucket(&self, bucket: &str) {
        let answer = self
            .s3(reqwest::Method::PUT, &format!("/{bucket}"))
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "{answer:?}");
    }

    /// The bucket's keys, sorted.
    pub async fn keys(&self, bucket: &str) -> Vec<String> {
        let xml = self
            .s3(reqwest::Method::GET, &format!("/{bucket}?list-type=2"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let mut keys: Vec<String> = xml
            .split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(|k| k.replace("&amp;", "&"))
            .collect();
        keys.sort();
        keys
    }

    /// An object's body and the value of one of its response headers.
    pub async fn object_and_header(
        &self,
        bucket: &str,
        key: &str,
        header: &str,
    ) -> (Vec<u8>, String) {
        let answer = self
            .s3(reqwest::Method::GET, &format!("/{bucket}/{key}"))
            .send()
            .await
            .unwrap();
        assert!(
            answer.status().is_success(),
            "GET {key}: {}",
            answer.status()
        );
        let value = answer
            .headers()
            .get(header)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        (answer.bytes().await.unwrap().to_vec(), value)
    }

    pub async fn delete_object(&self, bucket: &str, key: &str) {
        let answer = self
            .s3(reqwest::Method::DELETE, &format!("/{bucket}/{key}"))
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "DELETE {key}");
    }
}
