//! TLS for the API listener (`[api.tls]`): the server certificate chain and key from PEM
//! files, and ALPN offering `h2` then `http/1.1`, so that clients that speak HTTP/2 (the AWS
//! SDKs for JavaScript and Java) get it and the others keep HTTP/1.1.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::ring::default_provider;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use super::config::ApiTlsConfig;

#[derive(Debug, thiserror::Error)]
pub enum ApiTlsError {
    #[error("cannot read {what} from {} (config key {key}): {source}", path.display())]
    Pem {
        what: &'static str,
        key: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("no PEM certificate in {} (config key api.tls.cert)", .0.display())]
    NoCertificate(std::path::PathBuf),
    #[error("TLS set-up for the API failed: {0}")]
    Rustls(#[from] rustls::Error),
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, ApiTlsError> {
    let pem_error = |source| ApiTlsError::Pem {
        what: "certificates",
        key: "api.tls.cert",
        path: path.to_owned(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    if certs.is_empty() {
        return Err(ApiTlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

/// The acceptor for `[api.tls]`.
pub fn acceptor(config: &ApiTlsConfig) -> Result<TlsAcceptor, ApiTlsError> {
    let chain = certificates(&config.cert)?;
    let key = PrivateKeyDer::from_pem_file(&config.key).map_err(|source| ApiTlsError::Pem {
        what: "a private key",
        key: "api.tls.key",
        path: config.key.clone(),
        source,
    })?;
    let mut server = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}
