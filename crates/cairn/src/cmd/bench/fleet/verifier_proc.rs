//! The verifier under test, as its own process (`cairn verifier`), so its CPU time and memory are
//! its own and not the simulator's.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};

/// What the verifier is started with.
pub struct VerifierSetup<'a> {
    /// Its directory (state, database, log).
    pub dir: &'a Path,
    /// The local CA directory it shares with the registrar.
    pub tls_dir: &'a Path,
    /// Quote interval.
    pub interval: Duration,
    /// Rounds in flight.
    pub max_in_flight: usize,
    /// Where revocations go.
    pub webhook: &'a str,
}

/// The running verifier process.
pub struct VerifierProcess {
    child: Child,
    /// Its tenant API address.
    pub addr: SocketAddr,
    /// Its database file.
    pub database: PathBuf,
}

impl VerifierProcess {
    /// Starts `cairn verifier` (this executable) and waits for its API address.
    pub fn start(s: &VerifierSetup<'_>) -> anyhow::Result<VerifierProcess> {
        std::fs::create_dir_all(s.dir)?;
        let database = s.dir.join("verifier.sqlite");
        let interval_ms = u64::try_from(s.interval.as_millis()).unwrap_or(u64::MAX).max(1);
        let config = format!(
            "ip = \"127.0.0.1\"\nport = 0\nstate_dir = {:?}\ndatabase = {:?}\ntls_dir = {:?}\nquote_interval_ms = {interval_ms}\n\
             request_timeout_ms = {}\nretry_base_ms = 1000\nretry_max_ms = 10000\nmax_in_flight = {}\nwebhooks = [{:?}]\n\
             notify_agents = false\n",
            s.dir.display().to_string(),
            database.display().to_string(),
            s.tls_dir.display().to_string(),
            interval_ms.max(10_000),
            s.max_in_flight,
            s.webhook,
        );
        let config_path = s.dir.join("verifier.toml");
        std::fs::write(&config_path, config)?;
        let log = std::fs::File::create(s.dir.join("verifier.log"))?;
        let exe = std::env::current_exe().context("finding the cairn executable")?;
        let mut child = Command::new(exe)
            .arg("verifier")
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", std::env::var("CAIRN_BENCH_VERIFIER_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting cairn verifier")?;
        let stdout = child.stdout.take().context("verifier stdout")?;
        let mut addr = None;
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line?;
            if let Some(rest) = line.split("tenant API https://").nth(1) {
                addr = rest.split_whitespace().next().and_then(|a| a.parse().ok());
                break;
            }
        }
        let Some(addr) = addr else {
            let _ = child.kill();
            bail!("the verifier did not start; see {}", s.dir.join("verifier.log").display());
        };
        Ok(VerifierProcess { child, addr, database })
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Bytes of its database (with the WAL).
    pub fn store_bytes(&self) -> u64 {
        let size = |p: PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let wal = PathBuf::from(format!("{}-wal", self.database.display()));
        size(self.database.clone()) + size(wal)
    }

    /// SIGTERM, then waits (SIGKILL after 10 s).
    pub fn stop(mut self) {
        let pid = self.child.id();
        let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
