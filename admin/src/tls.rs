//! A local certificate authority and the servers' certificate, for a test or a small
//! deployment (`chat-admin init --tls`): made once into `<run-dir>/tls/` and kept.
//!
//! - `ca.pem`: the CA certificate that clients and workers trust (`NATS_CA` /
//!   `--tls-ca`), and that the servers use to check each other's route connections.
//! - `server.pem`, `server-key.pem` (0600): one certificate for every listener of every
//!   node (client, websocket, routes), valid for `localhost`, `127.0.0.1`, `::1` and the
//!   names given (the machines' host names or addresses). It is usable both for serving
//!   and as a client, because a route is a connection from one server to another.
//!
//! The CA's private key is never written: nothing can be signed later, so adding a
//! name means deleting the folder and starting again (and handing out the new
//! `ca.pem`). For anything bigger, use your own CA and point the configuration at it.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// CA certificate file name.
pub const CA_FILE: &str = "ca.pem";
/// Server certificate file name.
pub const CERT_FILE: &str = "server.pem";
/// Server private key file name (mode 0600).
pub const KEY_FILE: &str = "server-key.pem";

/// Names every certificate is valid for: the loopback ones.
const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The files of a TLS setup: what the server configuration points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificate (PEM).
    pub ca: PathBuf,
    /// Server certificate (PEM).
    pub cert: PathBuf,
    /// Server key (PEM, 0600).
    pub key: PathBuf,
}

impl TlsFiles {
    /// The files in folder `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            ca: dir.join(CA_FILE),
            cert: dir.join(CERT_FILE),
            key: dir.join(KEY_FILE),
        }
    }
}

/// Why the certificates could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A name is not a DNS name or an IP address.
    #[error("cannot make a certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// Which.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Makes a CA and a server certificate valid for the loopback names and `names` in
/// `dir` (0700), unless all three files are there already (then they are kept as they
/// are, whatever `names` say).
pub fn load_or_create(dir: &Path, names: &[String]) -> Result<TlsFiles, TlsError> {
    let files = TlsFiles::in_dir(dir);
    if [&files.ca, &files.cert, &files.key]
        .iter()
        .all(|p| p.exists())
    {
        return Ok(files);
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Io { path, source }
    };
    crate::secrets::create_private_dir(dir).map_err(io(dir))?;

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "natschat local CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let mut all: Vec<String> = LOOPBACK_NAMES.iter().map(|n| n.to_string()).collect();
    all.extend(
        names
            .iter()
            .filter(|n| !all.contains(n))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let mut server = CertificateParams::new(all)?;
    server
        .distinguished_name
        .push(DnType::CommonName, "natschat nats-server");
    server.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    server.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let server_key = KeyPair::generate()?;
    let server_cert = server.signed_by(&server_key, &issuer)?;

    // The key first and the CA last: a folder with ca.pem is complete.
    for (path, text) in [
        (&files.key, server_key.serialize_pem()),
        (&files.cert, server_cert.pem()),
        (&files.ca, ca_cert.pem()),
    ] {
        let _ = std::fs::remove_file(path);
        crate::secrets::write_private(path, text.trim_end()).map_err(io(path))?;
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_with_a_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        let files = load_or_create(&tls, &["chat.example.org".into()]).unwrap();
        let ca = std::fs::read_to_string(&files.ca).unwrap();
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
        let again = load_or_create(&tls, &[]).unwrap();
        assert_eq!(std::fs::read_to_string(&again.ca).unwrap(), ca);
        assert!(load_or_create(&dir.path().join("bad"), &["caf\u{e9}.example".into()]).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&files.key), 0o600);
            assert_eq!(mode(&tls), 0o700);
        }
    }
}
