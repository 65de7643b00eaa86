//! The nats-server configuration, rendered from the committed template
//! (`nats/nats-server.conf.template`, compiled in) with the secrets and the ports.

use std::path::{Path, PathBuf};

use chat_protocol::auth::static_users;

use crate::secrets::Secrets;

/// The template, as committed.
pub const TEMPLATE: &str = include_str!("../../nats/nats-server.conf.template");

/// Where the server listens and keeps its store.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `server_name`.
    pub server_name: String,
    /// Interface to listen on (`127.0.0.1`, or `0.0.0.0` in a container).
    pub host: String,
    /// Client port (-1: any free port).
    pub port: i32,
    /// Monitoring port (-1: any free port).
    pub monitor_port: i32,
    /// WebSocket port (-1: any free port).
    pub ws_port: i32,
    /// Port of the web page (chat-web): its origin is the only one whose pages may
    /// open the WebSocket.
    pub web_port: u16,
    /// JetStream store folder.
    pub store_dir: PathBuf,
}

/// A placeholder the template has but nothing fills, or a value that would break it.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The template names a placeholder that is not known.
    #[error("the template has an unknown placeholder {0}")]
    Unknown(String),
    /// A value contains a quote or a line break.
    #[error("{0} cannot go into the configuration (quote or line break)")]
    Unsafe(String),
}

impl ServerConfig {
    /// A server on loopback with its store in `run_dir/data/jetstream`.
    pub fn local(run_dir: &Path, port: i32, monitor_port: i32, ws_port: i32) -> Self {
        Self {
            server_name: "chat-nats".into(),
            host: "127.0.0.1".into(),
            port,
            monitor_port,
            ws_port,
            web_port: 8000,
            store_dir: run_dir.join("data").join("jetstream"),
        }
    }

    /// The configuration text: the template with every placeholder filled.
    pub fn render(&self, secrets: &Secrets) -> Result<String, RenderError> {
        let store = self.store_dir.display().to_string();
        let values: Vec<(&str, String)> = vec![
            ("SERVER_NAME", self.server_name.clone()),
            ("HOST", self.host.clone()),
            ("PORT", self.port.to_string()),
            ("MONITOR_PORT", self.monitor_port.to_string()),
            ("WS_PORT", self.ws_port.to_string()),
            ("WEB_PORT", self.web_port.to_string()),
            ("STORE_DIR", store),
            ("ISSUER_PUBLIC_KEY", secrets.issuer().public_key()),
            ("AUTH_PASSWORD", secrets.password(static_users::AUTH).into()),
            (
                "PRESENCE_PASSWORD",
                secrets.password(static_users::PRESENCE).into(),
            ),
            (
                "HISTORY_PASSWORD",
                secrets.password(static_users::HISTORY).into(),
            ),
            (
                "ADMIN_PASSWORD",
                secrets.password(static_users::ADMIN).into(),
            ),
            (
                "SYS_PASSWORD",
                secrets.password(static_users::SYSTEM).into(),
            ),
        ];
        let mut out = String::with_capacity(TEMPLATE.len());
        let mut rest = TEMPLATE;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let end = rest[start..]
                .find("}}")
                .ok_or_else(|| RenderError::Unknown(rest[start..].chars().take(20).collect()))?;
            let name = &rest[start + 2..start + end];
            let value = values
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value)
                .ok_or_else(|| RenderError::Unknown(name.to_string()))?;
            if value.contains(['"', '\n', '\r']) {
                return Err(RenderError::Unsafe(name.to_string()));
            }
            out.push_str(value);
            rest = &rest[start + end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// Writes the rendered configuration with mode 0600 (it holds passwords), replacing
/// an older one.
pub fn write(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("conf.tmp");
    let _ = std::fs::remove_file(&tmp);
    crate::secrets::write_private(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_placeholder() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = Secrets::load_or_create(&dir.path().join("secrets")).unwrap();
        let text = ServerConfig::local(dir.path(), 4222, 8222, 8080)
            .render(&secrets)
            .unwrap();
        assert!(!text.contains("{{"), "{text}");
        assert!(text.contains(&secrets.issuer().public_key()));
        assert!(text.contains(secrets.password(static_users::PRESENCE)));
        assert!(!text.contains(&secrets.issuer().seed().unwrap()));
    }
}
