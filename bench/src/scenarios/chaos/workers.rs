//! The real worker binaries on the chaos cluster: several instances of each (auth,
//! presence, history), every one given the whole server list and the cluster's CA, any
//! of which can be killed with SIGKILL and started again with the same flags.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use chat_protocol::auth::static_users;
use test_support::Cluster;

use crate::processes::{Binaries, Process};
use crate::setup::{BenchError, AUTH_LOG_LEVEL};

/// One worker instance: how to start it, and its process while it runs.
struct Instance {
    name: String,
    bin: PathBuf,
    args: Vec<String>,
    env: Vec<(String, OsString)>,
    /// Starts so far (each gets its own log file).
    starts: u32,
    process: Option<Process>,
}

/// Every worker instance of the run; all killed on drop.
pub struct Workers {
    instances: Vec<Instance>,
    logs: PathBuf,
}

impl Workers {
    /// Starts `instances` instances each of the auth, presence (session TTL `ttl`
    /// seconds) and history workers on `cluster`, logging into `logs`.
    pub fn start(
        cluster: &Cluster,
        bins: &Binaries,
        instances: usize,
        ttl: u64,
        logs: &Path,
    ) -> Result<Self, BenchError> {
        let seed = cluster.secrets_dir().join("issuer.seed");
        let kinds: [(&str, &Path, &str, Vec<String>, &str); 3] = [
            (
                "auth-worker",
                &bins.auth,
                static_users::AUTH,
                vec!["--issuer-seed-file".into(), seed.display().to_string()],
                AUTH_LOG_LEVEL,
            ),
            (
                "presence-worker",
                &bins.presence,
                static_users::PRESENCE,
                vec!["--ttl".into(), ttl.to_string()],
                "warn",
            ),
            (
                "history-worker",
                &bins.history,
                static_users::HISTORY,
                Vec::new(),
                "warn",
            ),
        ];
        let mut workers = Self {
            instances: Vec::new(),
            logs: logs.to_path_buf(),
        };
        for (kind, bin, user, args, level) in kinds {
            for i in 1..=instances.max(1) {
                let mut all = vec!["--nats-url".to_string(), cluster.url()];
                all.extend(args.iter().cloned());
                workers.instances.push(Instance {
                    name: format!("{kind}-{i}"),
                    bin: bin.to_path_buf(),
                    args: all,
                    env: vec![
                        ("NATS_USER".into(), user.into()),
                        (
                            "NATS_PASSWORD_FILE".into(),
                            cluster.password_file(user).into_os_string(),
                        ),
                        ("NATS_CA".into(), cluster.ca().as_os_str().to_owned()),
                        ("LOG_LEVEL".into(), level.into()),
                    ],
                    starts: 0,
                    process: None,
                });
            }
        }
        for i in 0..workers.count() {
            workers.restart(i)?;
        }
        Ok(workers)
    }

    /// How many instances there are.
    pub fn count(&self) -> usize {
        self.instances.len()
    }

    /// Instance `i`'s name, e.g. `presence-worker-2`.
    pub fn name(&self, i: usize) -> &str {
        &self.instances[i].name
    }

    /// Kills instance `i` with SIGKILL.
    pub async fn kill(&mut self, i: usize) {
        if let Some(mut process) = self.instances[i].process.take() {
            process.kill().await;
        }
    }

    /// Starts instance `i` (again) with its flags, unless it runs.
    pub fn restart(&mut self, i: usize) -> Result<(), BenchError> {
        let instance = &mut self.instances[i];
        if instance.process.is_some() {
            return Ok(());
        }
        instance.starts += 1;
        let log_name = format!("{}.{}", instance.name, instance.starts);
        let args: Vec<&str> = instance.args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &std::ffi::OsStr)> = instance
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_os_str()))
            .collect();
        let process = Process::spawn(
            &log_name,
            &instance.bin,
            &args,
            &env,
            &self.logs,
            (Stdio::null(), Stdio::null()),
        )
        .map_err(|e| BenchError::Spawn(instance.name.clone(), e))?;
        instance.process = Some(process);
        Ok(())
    }

    /// Instances that exited by themselves (not killed by the scenario), by name.
    pub fn exited(&mut self) -> Vec<String> {
        self.instances
            .iter_mut()
            .filter_map(|i| Some((i.process.as_mut()?.exited(), &i.name)))
            .filter(|(exited, _)| *exited)
            .map(|(_, name)| name.clone())
            .collect()
    }
}
