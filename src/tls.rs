//! TLS with rustls (ring, TLS 1.2/1.3, ALPN `pop3`): PEM files, client certificates, renewed files reloaded.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::limits::TLS_RELOAD_CHECK;

/// The ALPN protocol name of POP3 (RFC 7301 registry).
pub const ALPN_POP3: &[u8] = b"pop3";

/// Where the server's certificate chain, key and (optional) client CA are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    fn paths(&self) -> impl Iterator<Item = &Path> {
        [Some(self.cert.as_path()), Some(self.key.as_path()), self.client_ca.as_deref()].into_iter().flatten()
    }

    /// The files' change times, to notice a renewal.
    fn stamp(&self) -> Vec<Option<SystemTime>> {
        self.paths().map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok()).collect()
    }
}

/// The TLS configuration in use, replaced when the files change.
pub struct Tls {
    files: TlsFiles,
    state: Mutex<State>,
}

struct State {
    config: Arc<ServerConfig>,
    stamp: Vec<Option<SystemTime>>,
    checked: Instant,
}

impl Tls {
    /// Loads the files; the error names the file that is missing or bad.
    pub fn load(files: TlsFiles) -> Result<Tls, String> {
        let stamp = files.stamp();
        let config = Arc::new(build(&files)?);
        Ok(Tls { files, state: Mutex::new(State { config, stamp, checked: Instant::now() }) })
    }

    /// The configuration for a new session. At most every few seconds the
    /// files are checked and, if changed, loaded again; a broken new file
    /// keeps the old configuration in use and is logged.
    pub fn config(&self) -> Arc<ServerConfig> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.checked.elapsed() >= TLS_RELOAD_CHECK {
            state.checked = Instant::now();
            let stamp = self.files.stamp();
            if stamp != state.stamp {
                state.stamp = stamp;
                self.reload_locked(&mut state);
            }
        }
        state.config.clone()
    }

    /// Loads the files again now (SIGHUP).
    pub fn reload(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.stamp = self.files.stamp();
        state.checked = Instant::now();
        self.reload_locked(&mut state);
    }

    fn reload_locked(&self, state: &mut State) {
        match build(&self.files) {
            Ok(config) => {
                state.config = Arc::new(config);
                log::info!("TLS certificate reloaded from {}", self.files.cert.display());
            }
            Err(e) => log::error!("TLS reload failed, keeping the previous certificate: {e}"),
        }
    }

    /// Whether client certificates are requested (EXTERNAL is offered).
    pub fn client_certs(&self) -> bool {
        self.files.client_ca.is_some()
    }
}

fn build(files: &TlsFiles) -> Result<ServerConfig, String> {
    let certs = load_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("TLS key {}: {}", files.key.display(), pem_error(e)))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS setup: {e}"))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in load_certs(ca)? {
                roots.add(cert).map_err(|e| format!("TLS client CA {}: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("TLS client CA {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("TLS certificate {} and key {}: {e}", files.cert.display(), files.key.display()))?;
    config.alpn_protocols = vec![ALPN_POP3.to_vec()];
    Ok(config)
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("TLS certificate {}: {}", path.display(), pem_error(e)))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("TLS certificate {}: {}", path.display(), pem_error(e)))?;
    if certs.is_empty() {
        return Err(format!("TLS certificate {}: no certificate in the file", path.display()));
    }
    Ok(certs)
}

fn pem_error(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(e) => e.to_string(),
        rustls::pki_types::pem::Error::NoItemsFound => "no PEM item of the expected kind in the file".into(),
        other => format!("bad PEM: {other:?}"),
    }
}

/// The user name a verified client certificate maps to: its subject's
/// common name (CN), the documented rule.
pub fn certificate_user(cert: &CertificateDer<'_>) -> Option<String> {
    crate::der::subject_common_name(cert.as_ref())
}
