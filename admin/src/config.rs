//! The nats-server configuration, rendered from the committed template
//! (`nats/nats-server.conf.template`, compiled in) with the secrets and the ports: one
//! template for a single server and for each node of a cluster ([`Cluster`]), with
//! TLS on every listener or none ([`ServerConfig::tls`]).

use std::path::{Path, PathBuf};

use chat_protocol::auth::static_users;

use crate::secrets::Secrets;
use crate::tls::TlsFiles;

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
    /// JetStream `sync_interval`: `2m` (nats-server's default) or `always`
    /// (docs/durability.md).
    pub sync_interval: String,
    /// Certificates for every listener (client, websocket, monitoring, routes); `None`:
    /// plain, for loopback only.
    pub tls: Option<TlsFiles>,
    /// The cluster this server is a node of; `None`: a single server.
    pub cluster: Option<Cluster>,
}

/// What makes a server a node of a cluster.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// The cluster's name (the same on every node).
    pub name: String,
    /// Port this node accepts routes (other nodes) on.
    pub route_port: i32,
    /// Every node's route address, `host:port` (this node's own is skipped by the
    /// server).
    pub routes: Vec<String>,
}

/// The `CHAT` account's storage budget on one server, GiB: 10,000 rooms of the
/// default cap and the buckets (docs/limits.md, "Sizing").
pub const CHAT_BUDGET_GIB: usize = 11;

/// The `AUTH` account's storage budget on one server, GiB (the user table).
pub const AUTH_BUDGET_GIB: usize = 1;

/// Offset of node `node` (1-based) from the base ports, for nodes on one machine.
fn port_of(base: i32, node: usize) -> i32 {
    if base < 0 {
        base
    } else {
        base + node as i32 - 1
    }
}

/// A placeholder the template has but nothing fills, or a value that would break it.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The template names a placeholder that is not known.
    #[error("the template has an unknown placeholder {0}")]
    Unknown(String),
    /// A value contains a quote, a line break or a closing bracket.
    #[error("{0} cannot go into the configuration (quote, line break or closing bracket)")]
    Unsafe(String),
    /// A section is not closed, or closed by the wrong name.
    #[error("the template's section {0} is not closed properly")]
    Section(String),
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
            sync_interval: "2m".into(),
            tls: None,
            cluster: None,
        }
    }

    /// Node `node` (1-based) of a cluster of `nodes` servers on this machine (loopback):
    /// its ports are the base ports plus `node - 1` (route ports too), its store is
    /// `run_dir/data/nats-<node>/jetstream`, its name `chat-nats-<node>`.
    pub fn local_node(
        base: &ServerConfig,
        run_dir: &Path,
        nodes: usize,
        node: usize,
        route_port: i32,
    ) -> Self {
        let routes = (1..=nodes)
            .map(|n| format!("{}:{}", base.host_for_routes(), port_of(route_port, n)))
            .collect();
        Self {
            server_name: format!("chat-nats-{node}"),
            port: port_of(base.port, node),
            monitor_port: port_of(base.monitor_port, node),
            ws_port: port_of(base.ws_port, node),
            store_dir: run_dir
                .join("data")
                .join(format!("nats-{node}"))
                .join("jetstream"),
            cluster: Some(Cluster {
                name: "chat".into(),
                route_port: port_of(route_port, node),
                routes,
            }),
            ..base.clone()
        }
    }

    /// The replicas the workers choose for what they create on this server: 1 alone,
    /// the nodes (every route, its own included) up to
    /// [`chat_runtime::replicas::CLUSTER_REPLICAS`] on a cluster. Every replica counts
    /// against an account's budget, so the budgets are rendered times this.
    pub fn replicas(&self) -> usize {
        self.cluster.as_ref().map_or(1, |c| {
            c.routes
                .len()
                .clamp(1, chat_runtime::replicas::CLUSTER_REPLICAS)
        })
    }

    /// The address other nodes on this machine reach this one at.
    fn host_for_routes(&self) -> &str {
        match self.host.as_str() {
            "0.0.0.0" | "::" | "[::]" => "127.0.0.1",
            host => host,
        }
    }

    /// The configuration text: the template with every placeholder filled.
    pub fn render(&self, secrets: &Secrets) -> Result<String, RenderError> {
        let store = self.store_dir.display().to_string();
        let path = |p: Option<&Path>| p.map(|p| p.display().to_string()).unwrap_or_default();
        let tls = self.tls.as_ref();
        let cluster = self.cluster.as_ref();
        let routes = cluster.map_or(String::new(), |c| {
            c.routes
                .iter()
                .map(|r| format!("nats-route://{r}"))
                .collect::<Vec<_>>()
                .join(", ")
        });
        let template = sections(
            TEMPLATE,
            &[("TLS", tls.is_some()), ("CLUSTER", cluster.is_some())],
        )?;
        let values: Vec<(&str, String)> = vec![
            ("SYNC_INTERVAL", self.sync_interval.clone()),
            ("TLS_CERT", path(tls.map(|t| t.cert.as_path()))),
            ("TLS_KEY", path(tls.map(|t| t.key.as_path()))),
            ("TLS_CA", path(tls.map(|t| t.ca.as_path()))),
            (
                "CLUSTER_NAME",
                cluster.map_or(String::new(), |c| c.name.clone()),
            ),
            (
                "ROUTE_PORT",
                cluster.map_or(String::new(), |c| c.route_port.to_string()),
            ),
            ("ROUTES", routes),
            (
                "CHAT_MAX_FILE",
                format!("{}GB", CHAT_BUDGET_GIB * self.replicas()),
            ),
            (
                "AUTH_MAX_FILE",
                format!("{}GB", AUTH_BUDGET_GIB * self.replicas()),
            ),
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
                "MODERATION_PASSWORD",
                secrets.password(static_users::MODERATION).into(),
            ),
            (
                "MODERATION_SYS_PASSWORD",
                secrets.password(static_users::MODERATION_SYS).into(),
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
        let mut out = String::with_capacity(template.len());
        let mut rest = template.as_str();
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
            if value.contains(['"', '\n', '\r', ']', '}']) {
                return Err(RenderError::Unsafe(name.to_string()));
            }
            out.push_str(value);
            rest = &rest[start + end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// Keeps the lines of `template` inside the sections whose condition holds and drops
/// the section lines themselves: `{{#NAME}}` (kept when NAME is on) or `{{^NAME}}`
/// (when off) up to `{{/NAME}}`, each alone on its line; sections may nest.
fn sections(template: &str, conditions: &[(&str, bool)]) -> Result<String, RenderError> {
    let mut out = String::with_capacity(template.len());
    let mut open: Vec<(&str, bool)> = Vec::new();
    for line in template.split_inclusive('\n') {
        let tag = line.trim();
        let inner = tag.strip_prefix("{{").and_then(|t| t.strip_suffix("}}"));
        match inner.and_then(|t| Some((t.chars().next()?, &t[1..]))) {
            Some((kind @ ('#' | '^'), name)) => {
                let on = conditions
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, on)| *on)
                    .ok_or_else(|| RenderError::Unknown(name.to_string()))?;
                open.push((name, on == (kind == '#')));
            }
            Some(('/', name)) => match open.pop() {
                Some((opened, _)) if opened == name => {}
                _ => return Err(RenderError::Section(name.to_string())),
            },
            _ if open.iter().all(|(_, keep)| *keep) => out.push_str(line),
            _ => {}
        }
    }
    match open.pop() {
        Some((name, _)) => Err(RenderError::Section(name.to_string())),
        None => Ok(out),
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
        assert!(
            text.contains("no_tls: true") && !text.contains("cluster {"),
            "{text}"
        );
    }

    /// The `NN` of `key: NNGB` in `text` (nats-server reads GB as GiB), in bytes.
    fn gib_after(text: &str, key: &str) -> i64 {
        let at = text
            .find(key)
            .unwrap_or_else(|| panic!("{key} in the template"));
        let value = text[at + key.len()..].trim_start();
        let (gib, _) = value.split_once("GB").expect("a size in GB");
        gib.parse::<i64>().expect("a whole number of GB") << 30
    }

    /// The `CHAT` and `AUTH` budgets and `max_file_store` of a rendered configuration.
    fn budgets(text: &str) -> (i64, i64, i64) {
        let chat_account = &text[text.find("  CHAT {").expect("the CHAT account")..];
        let auth_account = &text[text.find("  AUTH {").expect("the AUTH account")..];
        (
            gib_after(chat_account, "max_file:"),
            gib_after(auth_account, "max_file:"),
            gib_after(text, "max_file_store:"),
        )
    }

    /// The sizing of docs/limits.md holds for the defaults: every cap the chat reserves
    /// in the `CHAT` budget leaves room for 10,000 rooms of the presence worker's
    /// default cap on one server, and the budgets fit the server's store; on a cluster
    /// of three (R3: every replica counts against the budget) the same 10,000 rooms
    /// fit, and each node's one replica of each fits its store.
    #[test]
    fn the_default_storage_holds_ten_thousand_rooms() {
        use chat_runtime::storage::{
            DEFAULT_ROOM_MAX_BYTES, MODERATION_BUCKET_MAX_BYTES, PRESENCE_BUCKET_MAX_BYTES,
        };
        let dir = tempfile::tempdir().unwrap();
        let secrets = Secrets::load_or_create(&dir.path().join("secrets")).unwrap();
        let single = ServerConfig::local(dir.path(), 4222, 8222, 8080);
        for (server, replicas) in [
            (single.clone(), 1),
            (ServerConfig::local_node(&single, dir.path(), 2, 1, 6222), 2),
            (ServerConfig::local_node(&single, dir.path(), 3, 2, 6222), 3),
            (ServerConfig::local_node(&single, dir.path(), 5, 2, 6222), 3),
        ] {
            assert_eq!(server.replicas() as i64, replicas);
            let (chat, auth, store) = budgets(&server.render(&secrets).unwrap());
            // Both presence buckets (sessions, announced state) and the moderation
            // bucket, each with as many replicas as the rooms.
            let buckets = 2 * PRESENCE_BUCKET_MAX_BYTES + MODERATION_BUCKET_MAX_BYTES;
            let rooms = (chat / replicas - buckets) / DEFAULT_ROOM_MAX_BYTES;
            assert!(
                rooms >= 10_000,
                "the CHAT budget holds {rooms} rooms of {replicas} replicas"
            );
            // A node keeps at most one replica of each stream.
            assert!(
                (chat + auth) / replicas <= store,
                "one node's share of the budgets exceeds max_file_store"
            );
        }
    }

    #[test]
    fn renders_a_node_of_a_cluster_with_tls() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = Secrets::load_or_create(&dir.path().join("secrets")).unwrap();
        let mut base = ServerConfig::local(dir.path(), 4222, 8222, 8080);
        base.tls = Some(crate::tls::TlsFiles::in_dir(&dir.path().join("tls")));
        let node = ServerConfig::local_node(&base, dir.path(), 3, 2, 6222);
        assert_eq!(
            (node.port, node.monitor_port, node.ws_port),
            (4223, 8223, 8081)
        );
        let text = node.render(&secrets).unwrap();
        assert!(!text.contains("{{"), "{text}");
        assert!(text.contains("server_name: chat-nats-2"), "{text}");
        assert!(text.contains("listen: \"127.0.0.1:6223\""), "{text}");
        assert!(text.contains("nats-route://127.0.0.1:6222, nats-route://127.0.0.1:6223, nats-route://127.0.0.1:6224"), "{text}");
        assert!(
            text.contains("https: 127.0.0.1:8223") && !text.contains("no_tls"),
            "{text}"
        );
        assert_eq!(text.matches("cert_file").count(), 3, "{text}");
        assert!(text.contains("verify: true"), "{text}");
    }

    #[test]
    fn sections_must_be_closed() {
        assert!(sections("{{#TLS}}\na\n", &[("TLS", true)]).is_err());
        assert!(sections("{{#TLS}}\n{{/CLUSTER}}\n", &[("TLS", true)]).is_err());
        assert!(sections("{{#NOPE}}\n{{/NOPE}}\n", &[("TLS", true)]).is_err());
        let text = "a\n{{#TLS}}\nb\n{{^CLUSTER}}\nc\n{{/CLUSTER}}\n{{/TLS}}\nd\n";
        let both = [("TLS", true), ("CLUSTER", true)];
        assert_eq!(sections(text, &both).unwrap(), "a\nb\nd\n");
        let none = [("TLS", false), ("CLUSTER", false)];
        assert_eq!(sections(text, &none).unwrap(), "a\nd\n");
    }
}
