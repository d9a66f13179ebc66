//! Simulated Keylime agents for Cairn's fleet benchmark (`cairn bench fleet`).
//!
//! One process hosts N agents that speak the Keylime agent API over HTTPS (mTLS, one listener
//! each). Each has a software TPM identity — an EK whose certificate comes from a [`BenchCa`]
//! generated for the run, an AK made in software — enrols through the real registrar (register,
//! software ActivateCredential, auth tag) and answers integrity quotes with genuine TPMS_ATTEST
//! structures over each fresh nonce, PCR 10 consistent with an IMA log that grows at a set rate.
//! The simulator is cheap on purpose (ECDSA P-256 signing, one shared runtime, one shared log)
//! so that the verifier, not the simulator, is what a benchmark measures.
//!
//! It can never be mistaken for a real TPM: its EK certificates chain only to the per-run bench CA,
//! which only a registrar configured for the bench trusts. Correctness tests of Cairn itself use
//! swtpm; this crate is a load generator.

mod agent;
mod ca;
mod credential;
mod enrol;
mod error;
mod identity;
mod ima;
mod server;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeySize, PrivateDecryptingKey};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use tokio::sync::watch;

pub use agent::{unix_now, SimAgent};
pub use ca::BenchCa;
pub use error::SimError;
pub use identity::SignAlg;
pub use ima::{Universe, BANK};

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Number of agents.
    pub agents: usize,
    /// How the AKs sign.
    pub sign: SignAlg,
    /// IMA entries every agent's log starts with.
    pub initial_entries: usize,
    /// IMA entries each agent's log grows by per second.
    pub growth_per_second: f64,
    /// How long the logs can keep growing (sizes the shared log).
    pub duration: Duration,
    /// The PEM CA the verifier's client certificate chains to.
    pub client_ca_pem: Vec<u8>,
    /// Loopback network the agents listen in: agent i gets 127.<net>.<i/250>.<i%250+1>.
    pub loopback_net: u8,
    /// Agents offer push-on-change (a verifier long-polls them and attests at once on growth).
    pub push_on_change: bool,
}

/// A running simulated fleet.
pub struct SimFleet {
    /// The agents, in order.
    pub agents: Vec<Arc<SimAgent>>,
    /// Where each listens.
    pub addrs: Vec<SocketAddr>,
    /// The CA that issued their EK certificates.
    pub ca: BenchCa,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for SimFleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimFleet").field("agents", &self.agents.len()).finish_non_exhaustive()
    }
}

/// Entries of the shared log needed for `c`.
fn universe_size(c: &SimConfig) -> usize {
    let growth = c.growth_per_second.max(0.0) * c.duration.as_secs_f64() * 1.2 + 64.0;
    // Bounded well below usize::MAX: the cast keeps the value.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let growth = growth.min(2_000_000.0) as usize;
    c.initial_entries.max(1) + growth
}

/// The agent index a loopback address belongs to (the inverse of [`loopback_addr`]).
pub fn agent_index(net: u8, ip: IpAddr) -> Option<usize> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, hi, lo] = v4.octets();
            (a == 127 && b == net && (1..=250).contains(&lo)).then(|| usize::from(hi) * 250 + usize::from(lo) - 1)
        }
        IpAddr::V6(_) => None,
    }
}

/// Agent `i`'s address on the loopback network.
pub fn loopback_addr(net: u8, i: usize) -> IpAddr {
    let hi = u8::try_from((i / 250) % 256).unwrap_or(0);
    let lo = u8::try_from(i % 250 + 1).unwrap_or(1);
    IpAddr::V4(Ipv4Addr::new(127, net, hi, lo))
}

impl SimFleet {
    /// Makes the identities (EK certificates from `ca`) and starts every agent's listener (not
    /// yet enrolled); `progress` gets a line now and then.
    pub async fn start(c: &SimConfig, ca: BenchCa, progress: &(dyn Fn(String) + Sync)) -> Result<SimFleet, SimError> {
        if c.agents > 250 * 256 {
            return Err(SimError::Keys(format!("at most {} simulated agents", 250 * 256)));
        }
        let universe = Universe::generate(universe_size(c))?;
        let nk = PrivateDecryptingKey::generate(KeySize::Rsa2048).map_err(SimError::keys)?;
        let der = nk.public_key().as_der().map_err(SimError::keys)?;
        let nk_pem = pem("PUBLIC KEY", der.as_ref());
        let pcr16 = BANK.extend(&BANK.zero(), BANK.hash(nk_pem.as_bytes()).as_bytes());
        let shared = Arc::new(agent::Shared {
            universe,
            nk_pem,
            pcr16,
            started: Instant::now(),
            boottime: unix_now(),
            push_offered: c.push_on_change,
            push_active: std::sync::atomic::AtomicBool::new(true),
        });
        let pool = identity::RsaPool::new(if c.sign == SignAlg::Rsa2048 { 16.min(c.agents) } else { 0 })?;
        let clients = server::client_verifier(&c.client_ca_pem)?;
        let (stop, stop_rx) = watch::channel(false);
        let mut agents = Vec::with_capacity(c.agents);
        let mut addrs = Vec::with_capacity(c.agents);
        let mut tasks = Vec::with_capacity(2);
        let mut fronts = Vec::with_capacity(c.agents);
        let initial = c.initial_entries.max(1).min(shared.universe.len());
        // One listening socket for the whole fleet: every agent has its own loopback address and
        // the same port, and a connection is served by the agent whose address it was made to.
        // (A socket per agent would cost ten thousand descriptors for ten thousand agents.)
        let listener = server::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)).await?;
        let port = listener.local_addr().map_err(|source| SimError::Io { what: "listener address".into(), source })?.port();
        for i in 0..c.agents {
            let uuid = uuid_for(i);
            let ip = loopback_addr(c.loopback_net, i);
            let id = identity::Identity::generate(&ca, i as u64 + 1, &uuid, ip, c.sign, &pool)?;
            let agent = Arc::new(SimAgent::new(uuid, id, shared.clone(), initial, 1_000_000 + i as u64));
            fronts.push((agent.clone(), server::server_config(&agent, clients.clone())?));
            agents.push(agent);
            addrs.push(SocketAddr::new(ip, port));
            if (i + 1) % 1000 == 0 {
                progress(format!("simulated agents: {} of {} ready", i + 1, c.agents));
                tokio::task::yield_now().await;
            }
        }
        tasks.push(tokio::spawn(server::serve(listener, c.loopback_net, fronts, stop_rx.clone())));
        let grow = c.growth_per_second;
        if grow > 0.0 {
            let (list, rx) = (agents.clone(), stop_rx.clone());
            tasks.push(tokio::spawn(grow_logs(list, grow, rx)));
        }
        Ok(SimFleet { agents, addrs, ca, stop, tasks })
    }

    /// Enrols every agent at `registrar` (its HTTP registration URL), `parallel` at a time.
    pub async fn enrol_all(&self, registrar: &str, parallel: usize, progress: &(dyn Fn(String) + Sync)) -> Result<(), SimError> {
        // reqwest builds its TLS stack even for plain HTTP; aws-lc-rs is the process's provider.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| SimError::Tls(format!("HTTP client: {e}")))?;
        let sem = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
        let mut set = tokio::task::JoinSet::new();
        for (agent, addr) in self.agents.iter().zip(&self.addrs) {
            let (agent, addr, http, sem, reg) = (agent.clone(), *addr, http.clone(), sem.clone(), registrar.to_owned());
            set.spawn(async move {
                let _permit = sem.acquire_owned().await;
                enrol::enrol(&http, &reg, &agent, addr).await
            });
        }
        let mut done = 0usize;
        while let Some(r) = set.join_next().await {
            r.map_err(|e| SimError::Keys(format!("enrolment task: {e}")))??;
            done += 1;
            if done % 1000 == 0 {
                progress(format!("simulated agents: {done} of {} enrolled", self.agents.len()));
            }
        }
        Ok(())
    }

    /// The AK of agent `i` (TPM2B_PUBLIC, base64) — what a tenant reads from the registrar.
    pub fn ak_b64(&self, i: usize) -> Option<String> {
        self.agents.get(i).map(|a| B64.encode(a.identity.ak.to_tpm2b()))
    }

    /// Agent `i` measures a file its policy does not know; returns when it did.
    pub fn inject_unknown(&self, i: usize, tag: &str) -> Result<Instant, SimError> {
        let agent = self.agents.get(i).ok_or_else(|| SimError::Keys(format!("no agent {i}")))?;
        let mut log = agent.log.lock().map_err(|_| SimError::Keys("log lock poisoned".into()))?;
        let path = format!("/tmp/cairn-bench/unknown-{tag}");
        log.measure_unknown(&agent.shared().universe, &path, tag.as_bytes())?;
        drop(log);
        let at = Instant::now();
        agent.changed.notify_waiters();
        Ok(at)
    }

    /// Holds pushes back (false) or answers them (true); only matters with push-on-change offered.
    pub fn set_push_active(&self, active: bool) {
        if let Some(a) = self.agents.first() {
            a.shared().push_active.store(active, std::sync::atomic::Ordering::Release);
        }
        for a in &self.agents {
            a.changed.notify_waiters();
        }
    }

    /// The runtime policy (Keylime JSON) that allows every shared entry.
    pub fn policy_json(&self) -> &str {
        self.agents.first().map(|a| a.shared().universe.policy_json.as_str()).unwrap_or("{}")
    }

    /// Quotes served by each agent, in order.
    pub fn per_agent_quotes(&self) -> Vec<u64> {
        self.agents.iter().map(|a| a.quotes.load(std::sync::atomic::Ordering::Relaxed)).collect()
    }

    /// Quotes served by all agents.
    pub fn quotes_served(&self) -> u64 {
        self.agents.iter().map(|a| a.quotes.load(std::sync::atomic::Ordering::Relaxed)).sum()
    }

    /// Stops every listener and connection.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

/// A stable uuid-shaped id for agent `i` (the `5e7a` group marks a simulated agent).
pub fn uuid_for(i: usize) -> String {
    format!("00000000-0000-4000-5e7a-{:012x}", i)
}

async fn grow_logs(agents: Vec<Arc<SimAgent>>, per_second: f64, mut stop: watch::Receiver<bool>) {
    let tick = Duration::from_millis(100);
    let mut timer = tokio::time::interval(tick);
    loop {
        tokio::select! {
            _ = timer.tick() => {}
            () = stopped(&mut stop) => return,
        }
        for a in &agents {
            let grew = match a.log.lock() {
                Ok(mut log) => {
                    let before = log.len();
                    log.grow(&a.shared().universe, per_second * tick.as_secs_f64());
                    log.len() != before
                }
                Err(_) => false,
            };
            if grew {
                a.changed.notify_waiters();
            }
        }
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Completes when `stop` turns true (the guard `wait_for` returns is dropped here, so callers
/// stay `Send`).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses_map_back_to_their_agent() {
        for i in [0usize, 1, 249, 250, 251, 9_999, 63_999] {
            assert_eq!(agent_index(77, loopback_addr(77, i)), Some(i), "{i}");
        }
        assert_eq!(agent_index(78, loopback_addr(77, 5)), None);
        assert_eq!(agent_index(77, IpAddr::V4(Ipv4Addr::new(127, 77, 0, 0))), None);
        assert_eq!(agent_index(77, IpAddr::V4(Ipv4Addr::new(10, 77, 0, 1))), None);
    }
}
