//! `cairn placement`: which hosts a scheduler may use now, by integrity level.
//!
//! `hosts` asks the verifier's placement API (`GET /cairn/v1/placement`) — the same question an
//! OpenStack filter (`contrib/nova`) asks for every candidate host. `labels` turns the current levels
//! into Kubernetes node labels and taints, printed as `kubectl` commands (or JSON for a controller):
//! every node gets its level and the level's rank (0 = `boot_untrusted` … 4 = `ima_all_ok`, so a pod
//! asks for "level ≥ L" with a node-affinity `Gt` on the rank), and a node that does not qualify now
//! (failed, unreachable, not attested recently, or `boot_untrusted`) is tainted `NoSchedule`; the taint
//! is removed once it qualifies again. Run it from cron or a loop; the output is idempotent.

use std::process::ExitCode;

use anyhow::Context;
use cairn_core::levels::IntegrityLevel;
use cairn_proto::verifier::{AgentView, Placement};
use clap::{Args, Subcommand};
use serde_json::json;

use super::node::{get, Endpoints};

/// `cairn placement …`.
#[derive(Args)]
pub struct PlacementArgs {
    #[command(flatten)]
    endpoints: Endpoints,
    #[command(subcommand)]
    command: PlacementCommand,
}

#[derive(Subcommand)]
enum PlacementCommand {
    /// Hosts that qualify now: exactly at --trusted-host, or at --min-trusted-host or better.
    /// Exit 0 when at least one host qualifies, 1 when none does.
    Hosts {
        /// Exactly this level (boot_untrusted, ima_digest_not_found, ima_pkg_security_updates,
        /// ima_pkg_not_security_updates, ima_all_ok).
        #[arg(long, value_name = "LEVEL", required_unless_present = "min_trusted_host")]
        trusted_host: Option<IntegrityLevel>,
        /// This level or a better one.
        #[arg(long, value_name = "LEVEL")]
        min_trusted_host: Option<IntegrityLevel>,
    },
    /// Kubernetes node labels and taints for the current levels, as kubectl commands (--json: data).
    Labels {
        /// Label and taint key prefix (a DNS subdomain you own).
        #[arg(long, default_value = "cairn.io")]
        prefix: String,
    },
}

impl PlacementArgs {
    /// Runs the command.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let e = &self.endpoints;
        let http = e.client()?;
        match &self.command {
            PlacementCommand::Hosts { trusted_host, min_trusted_host } => {
                let Some(p) = placement(&http, e, *trusted_host, *min_trusted_host)? else { return Ok(ExitCode::from(2)) };
                if e.json() {
                    println!("{}", serde_json::to_string_pretty(&p)?);
                } else {
                    println!("{:<40} {:<28} {:<64} IP", "HOST", "INTEGRITY LEVEL", "NODE");
                    for h in &p.hosts {
                        println!("{:<40} {:<28} {:<64} {}", h.host_name, h.integrity_level, h.agent_id, h.ip);
                    }
                }
                Ok(if p.hosts.is_empty() { ExitCode::from(1) } else { ExitCode::SUCCESS })
            }
            PlacementCommand::Labels { prefix } => {
                let views = e.nodes(&http)?;
                // Every level qualifies: what is left out is failed, unreachable or stale.
                let Some(p) = placement(&http, e, None, Some(IntegrityLevel::BootUntrusted))? else {
                    return Ok(ExitCode::from(2));
                };
                let plans: Vec<NodePlan> = views.iter().map(|v| plan(v, &p, prefix)).collect();
                if e.json() {
                    let out: Vec<serde_json::Value> = plans.iter().map(NodePlan::to_json).collect();
                    println!("{}", serde_json::to_string_pretty(&out)?);
                } else {
                    for p in &plans {
                        p.print_kubectl();
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

fn placement(
    http: &reqwest::blocking::Client,
    e: &Endpoints,
    exact: Option<IntegrityLevel>,
    min: Option<IntegrityLevel>,
) -> anyhow::Result<Option<Placement>> {
    let mut query = Vec::new();
    if let Some(l) = exact {
        query.push(format!("trusted_host={}", l.name()));
    }
    if let Some(l) = min {
        query.push(format!("min_trusted_host={}", l.name()));
    }
    let url = format!("{}/cairn/v1/placement?{}", e.verifier_url(), query.join("&"));
    get::<Placement>(http, &url).with_context(|| format!("asking {url}"))
}

/// What one Kubernetes node should carry.
struct NodePlan {
    node: String,
    labels: Vec<(String, String)>,
    /// `Some(reason)`: tainted NoSchedule; `None`: the taint is removed.
    taint: Option<String>,
    taint_key: String,
}

fn rank(level: IntegrityLevel) -> usize {
    IntegrityLevel::ALL.iter().position(|l| *l == level).unwrap_or(0)
}

fn plan(v: &AgentView, p: &Placement, prefix: &str) -> NodePlan {
    let node = v.host_name.clone().unwrap_or_else(|| v.ip.clone());
    let level = v.integrity_level.as_deref().and_then(|l| l.parse::<IntegrityLevel>().ok());
    let qualifies = p.hosts.iter().any(|h| h.agent_id == v.agent_id);
    let mut labels = vec![
        (format!("{prefix}/integrity-level"), level.map_or("unknown", IntegrityLevel::name).to_owned()),
        (format!("{prefix}/attested"), qualifies.to_string()),
        (format!("{prefix}/agent-id"), v.agent_id.chars().take(63).collect()),
    ];
    if let Some(l) = level {
        labels.push((format!("{prefix}/integrity-rank"), rank(l).to_string()));
    }
    // Taint values are label values: short words.
    let taint = match (qualifies, level) {
        (true, Some(IntegrityLevel::BootUntrusted)) => Some("boot_untrusted".to_owned()),
        (true, _) => None,
        (false, _) => Some(v.cairn_state.clone()),
    };
    NodePlan { node, labels, taint, taint_key: format!("{prefix}/untrusted") }
}

impl NodePlan {
    fn to_json(&self) -> serde_json::Value {
        let labels: serde_json::Map<String, serde_json::Value> = self.labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        let taints = match &self.taint {
            Some(reason) => json!([{"key": self.taint_key, "value": reason, "effect": "NoSchedule"}]),
            None => json!([]),
        };
        json!({"node": self.node, "labels": labels, "taints": taints})
    }

    fn print_kubectl(&self) {
        let labels: Vec<String> = self.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("kubectl label node {} --overwrite {}", self.node, labels.join(" "));
        match &self.taint {
            Some(reason) => println!("kubectl taint node {} --overwrite {}={reason}:NoSchedule", self.node, self.taint_key),
            None => println!("kubectl taint node {} {}:NoSchedule- 2>/dev/null || true", self.node, self.taint_key),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn view(id: &str, state: &str, level: Option<&str>) -> AgentView {
        let mut v: AgentView = serde_json::from_value(json!({
            "operational_state": 3, "attestation_status": "PASS", "ip": "10.0.0.7", "port": 9002,
            "tpm_policy": "{}", "meta_data": "{}", "has_mb_refstate": 0, "has_runtime_policy": 0,
            "accept_tpm_hash_algs": [], "accept_tpm_encryption_algs": [], "accept_tpm_signing_algs": [],
            "hash_alg": "sha256", "enc_alg": "ecc256", "sign_alg": "ecdsa", "verifier_id": "default",
            "verifier_ip": "127.0.0.1", "verifier_port": 8881, "last_event_id": null, "attestation_count": 3,
            "last_received_quote": 1, "last_successful_attestation": 1, "agent_id": id, "cairn_state": state,
            "failures": [], "runtime_policy_name": null, "mb_policy_name": null
        }))
        .unwrap();
        v.integrity_level = level.map(str::to_owned);
        v.host_name = Some(format!("{id}.example"));
        v
    }

    fn qualifying(ids: &[&str]) -> Placement {
        let hosts = ids
            .iter()
            .map(|id| cairn_proto::verifier::PlacementHost {
                agent_id: (*id).into(),
                host_name: format!("{id}.example"),
                ip: "10.0.0.7".into(),
                integrity_level: "ima_all_ok".into(),
                last_successful_attestation: 1,
            })
            .collect();
        Placement { trusted_host: None, min_trusted_host: Some("boot_untrusted".into()), hosts, levels: vec![] }
    }

    #[test]
    fn ranks_labels_and_taints_follow_level_and_qualification() {
        let p = qualifying(&["a", "b"]);
        let a = plan(&view("a", "attested", Some("ima_pkg_security_updates")), &p, "cairn.io").to_json();
        assert_eq!(a["node"], "a.example");
        assert_eq!(a["labels"]["cairn.io/integrity-level"], "ima_pkg_security_updates");
        assert_eq!(a["labels"]["cairn.io/integrity-rank"], "2");
        assert_eq!(a["labels"]["cairn.io/attested"], "true");
        assert_eq!(a["taints"], json!([]));
        let b = plan(&view("b", "attested", Some("boot_untrusted")), &p, "cairn.io").to_json();
        assert_eq!(b["taints"][0]["value"], "boot_untrusted");
        let c = plan(&view("c", "unreachable", Some("ima_all_ok")), &p, "x.example").to_json();
        assert_eq!(c["labels"]["x.example/attested"], "false");
        assert_eq!(c["taints"], json!([{"key": "x.example/untrusted", "value": "unreachable", "effect": "NoSchedule"}]));
        let d = plan(&view("d", "pending", None), &p, "cairn.io").to_json();
        assert_eq!(d["labels"]["cairn.io/integrity-level"], "unknown");
        assert!(d["labels"].get("cairn.io/integrity-rank").is_none());
    }
}
