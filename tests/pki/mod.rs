//! Test PKI: a private CA minted at test time and a server certificate for 127.0.0.1 signed by
//! it, for upstreams and identity providers that a public root store must not trust.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Writes `internal-ca.pem`, `<name>.pem` and `<name>.key` to `dir`; returns a TLS acceptor
/// serving that certificate (ALPN h2 and http/1.1).
pub fn private_ca_acceptor(dir: &Path, name: &str) -> tokio_rustls::TlsAcceptor {
    let (cert, key) = private_ca(dir, name);
    portcullis::server::tls::acceptor(&cert, &key).unwrap()
}

/// Writes `internal-ca.pem`, `<name>.pem` and `<name>.key` (a certificate for 127.0.0.1 signed
/// by that CA) to `dir`; returns the certificate's and key's paths.
pub fn private_ca(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let srv_key = rcgen::KeyPair::generate().unwrap();
    let srv_cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&srv_key, &issuer)
        .unwrap();
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(dir.join("internal-ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(&cert, srv_cert.pem()).unwrap();
    std::fs::write(&key, srv_key.serialize_pem()).unwrap();
    (cert, key)
}
