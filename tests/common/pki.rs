//! A throw-away test PKI made by the tests: a CA, a server certificate for localhost, client certificates, and rustls client configs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// PEM files of one test PKI, written into a directory.
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    ca_issuer: CertifiedIssuer<'static, KeyPair>,
    dir: PathBuf,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

impl Pki {
    /// A CA and a server certificate for `localhost` and 127.0.0.1 in `dir`.
    pub fn new(dir: &Path) -> Pki {
        let ca_issuer = ca("pop3d test CA");
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, ca_issuer.pem()).unwrap();
        let mut pki = Pki {
            ca,
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            ca_issuer,
            dir: dir.into(),
        };
        pki.issue_server("server");
        pki
    }

    /// (Re)issues the server certificate with subject CN `cn`, replacing the files.
    pub fn issue_server(&mut self, cn: &str) -> CertificateDer<'static> {
        let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca_issuer).unwrap();
        std::fs::write(&self.server_cert, cert.pem()).unwrap();
        std::fs::write(&self.server_key, key.serialize_pem()).unwrap();
        cert.der().clone()
    }

    /// A client certificate with subject CN `cn`, from this CA or (when
    /// `foreign`) from another CA; returns (cert, key) PEM paths.
    pub fn client(&self, cn: &str, foreign: bool) -> (PathBuf, PathBuf) {
        let other;
        let issuer = if foreign {
            other = ca("some other CA");
            &other
        } else {
            &self.ca_issuer
        };
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, issuer).unwrap();
        let tag = if foreign { "foreign" } else { "ours" };
        let (c, k) = (self.dir.join(format!("client-{cn}-{tag}.pem")), self.dir.join(format!("client-{cn}-{tag}.key")));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    /// A rustls client trusting this CA, offering `alpn`, with an optional
    /// client certificate.
    pub fn client_config(&self, alpn: &[&[u8]], cert: Option<&(PathBuf, PathBuf)>) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_file(&self.ca).unwrap()).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match cert {
            Some((c, k)) => builder
                .with_client_auth_cert(
                    CertificateDer::pem_file_iter(c).unwrap().map(Result::unwrap).collect(),
                    PrivateKeyDer::from_pem_file(k).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// Like `client_config`, limited to one TLS version.
    pub fn client_config_version(
        &self,
        version: &'static rustls::SupportedProtocolVersion,
    ) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_file(&self.ca).unwrap()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }

    /// Config lines that turn TLS on in pop3d.
    pub fn server_lines(&self) -> Vec<String> {
        vec![format!("tls_cert = {}", self.server_cert.display()), format!("tls_key = {}", self.server_key.display())]
    }
}
