//! TLS with rustls (ring, TLS 1.2/1.3, ALPN `pop3`): PEM files, client certificates, renewed files reloaded.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
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
    /// The server's own certificate (the chain's first), to tell whether it
    /// names what a client asked for.
    leaf: CertificateDer<'static>,
    stamp: Vec<Option<SystemTime>>,
    checked: Instant,
}

impl Tls {
    /// Loads the files; the error names the file that is missing or bad.
    pub fn load(files: TlsFiles) -> Result<Tls, String> {
        let stamp = files.stamp();
        let (config, leaf) = build(&files)?;
        let state = State { config: Arc::new(config), leaf, stamp, checked: Instant::now() };
        Ok(Tls { files, state: Mutex::new(state) })
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
            Ok((config, leaf)) => {
                state.config = Arc::new(config);
                state.leaf = leaf;
                log::info!("TLS certificate reloaded from {}", self.files.cert.display());
            }
            Err(e) => log::error!("TLS reload failed, keeping the previous certificate: {e}"),
        }
    }

    /// Whether the server's certificate names `name` (DNS name or address).
    fn covers(&self, name: &str) -> bool {
        let leaf = self.state.lock().unwrap_or_else(|e| e.into_inner()).leaf.clone();
        let (Ok(cert), Ok(name)) = (ParsedCertificate::try_from(&leaf), ServerName::try_from(name)) else {
            return false;
        };
        rustls::client::verify_server_name(&cert, &name).is_ok()
    }

    /// Why a handshake failed, in words an operator can act on: the error,
    /// with what the client's first bytes (`hello`, its ClientHello's
    /// start) and the server name it asked for (`sni`) tell.
    pub fn explain(&self, e: &rustls::Error, hello: &[u8], sni: Option<&str>) -> String {
        use rustls::{AlertDescription as A, Error as E, PeerIncompatible as P};
        // A TLS record (22, handshake) holding a ClientHello (1): its version.
        let version = match hello {
            [22, _, _, _, _, 1, _, _, _, major, minor, ..] => Some(u16::from_be_bytes([*major, *minor])),
            _ => None,
        };
        match e {
            _ if hello.first().is_some_and(u8::is_ascii_alphabetic) => {
                let line = hello.split(|&b| b == b'\r' || b == b'\n').next().unwrap_or_default();
                format!("the client spoke plaintext on a TLS port: {}", crate::loglimit::client_text(line))
            }
            _ if version.is_some_and(|v| v < 0x0303) => {
                let name = match version {
                    Some(0x0301) => "TLS 1.0",
                    Some(0x0302) => "TLS 1.1",
                    _ => "SSL 3.0 or older",
                };
                format!("the client offers at most {name}; pop3d speaks TLS 1.2 and 1.3 only: upgrade the client or its TLS library ({e})")
            }
            E::PeerIncompatible(P::NoCipherSuitesInCommon) => format!(
                "no cipher suite in common: the client offers none of TLS 1.3's or TLS 1.2's ECDHE with AES-GCM or ChaCha20-Poly1305 ({e})"
            ),
            E::PeerIncompatible(P::NoKxGroupsInCommon) => format!(
                "no key exchange in common: the client offers no ECDHE group pop3d has (X25519, P-256, P-384), and RSA key exchange is not supported ({e})"
            ),
            E::AlertReceived(
                alert @ (A::BadCertificate
                | A::UnknownCA
                | A::CertificateUnknown
                | A::UnsupportedCertificate
                | A::CertificateExpired
                | A::CertificateRevoked),
            ) => {
                let asked = match sni {
                    Some(n) if !self.covers(n) => format!("; it asked for `{n}`, which the certificate does not name"),
                    Some(n) => format!(" (it asked for `{n}`)"),
                    None => " (it sent no server name)".into(),
                };
                format!("the client refused the server's certificate (alert {alert:?}){asked}")
            }
            E::InvalidCertificate(why) => {
                format!("the client's certificate was refused ({why:?}): it must be issued by tls_client_ca and valid now")
            }
            E::NoCertificatesPresented => "the client sent no certificate".into(),
            _ => e.to_string(),
        }
    }

    /// Whether client certificates are requested (EXTERNAL is offered).
    pub fn client_certs(&self) -> bool {
        self.files.client_ca.is_some()
    }
}

/// The configuration and the server's own certificate.
fn build(files: &TlsFiles) -> Result<(ServerConfig, CertificateDer<'static>), String> {
    let certs = load_certs(&files.cert)?;
    let leaf = certs[0].clone();
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
    Ok((config, leaf))
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
