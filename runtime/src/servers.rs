//! Where to connect and whom to trust: the server list of `NATS_URL` and the TLS
//! trust of `NATS_CA` / `--tls-ca`, the same way in every binary.
//!
//! - `NATS_URL` may name several servers, comma-separated (`nats://a:4222,nats://b:4222`):
//!   the client connects to one of them and fails over to the others (and to the ones
//!   the cluster announces) when it goes.
//! - A `tls://` URL, or a server that requires TLS, is checked against the system's
//!   root certificates, or only against the CA file given (a local CA made by
//!   `chat-admin init --tls`: `<run-dir>/tls/ca.pem`). Giving a CA requires TLS.
//! - A server whose certificate cannot be verified is refused, and [`explain`] says so
//!   in words that tell what to do (async-nats only says "invalid peer certificate").

use std::path::{Path, PathBuf};

/// The servers of a comma-separated list (blanks around each are ignored).
pub fn list(urls: &str) -> Vec<String> {
    urls.split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(str::to_string)
        .collect()
}

/// Makes `options` trust the CA in `ca` (a PEM file) instead of the system's roots,
/// and require TLS; without a CA, the system's roots (for `tls://` URLs and servers
/// that require TLS).
pub fn trust(options: async_nats::ConnectOptions, ca: Option<&Path>) -> async_nats::ConnectOptions {
    match ca {
        Some(ca) => options
            .add_root_certificates(PathBuf::from(ca))
            .require_tls(true),
        None => options,
    }
}

/// Whether a connection failed on TLS: the server's certificate could not be
/// verified, the CA file could not be read, or one side wanted TLS and the other not.
/// Retrying does not help.
pub fn is_tls_failure(error: &async_nats::ConnectError) -> bool {
    let text = error.to_string().to_ascii_lowercase();
    error.kind() == async_nats::ConnectErrorKind::Tls
        || text.contains("certificate")
        || text.contains("tls")
}

/// What went wrong connecting to `url`, said so that the reader knows what to change:
/// a TLS failure names the CA in use and the setting to change.
pub fn explain(error: &async_nats::ConnectError, url: &str, ca: Option<&Path>) -> String {
    if !is_tls_failure(error) {
        return format!("cannot reach NATS at {url}: {error}");
    }
    let trusted = match ca {
        Some(ca) => format!("the CA in {}", ca.display()),
        None => "the system's root certificates (no NATS_CA / --tls-ca given)".to_string(),
    };
    format!(
        "cannot connect securely to NATS at {url}: {error}. The server's certificate was \
         checked against {trusted}; give the CA that signed it with --tls-ca or NATS_CA \
         (a stack made by scripts/up --tls: $CHAT_RUN_DIR/tls/ca.pem), or, for a plain \
         server on loopback, neither"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        assert_eq!(list("nats://a:1"), vec!["nats://a:1"]);
        assert_eq!(
            list(" tls://a:1, tls://b:2,,"),
            vec!["tls://a:1", "tls://b:2"]
        );
        assert!(list("").is_empty());
    }
}
