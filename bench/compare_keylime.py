"""Keylime 7.14.3's verifier and Cairn's verifier against the same simulated fleet, side by side.

Run through `bench/compare-keylime`, which builds the Keylime venv and Cairn's release binary and
starts this file with the venv's Python.

Keylime's side: its verifier runs as shipped (pull mode, SQLite, mTLS to the agents with its own
generated CA, worker processes, INFO logging, revocations to a webhook) against `cairn bench sim`
(simulated agents: software AKs, genuine TPMS_ATTEST quotes, IMA logs over a shared synthetic
log). Every agent is added through Keylime's REST API with its AK, mTLS certificate, a named
runtime policy (the simulator's, uploaded to /allowlists) and PCR 10 in the mask. Once every agent
is in "Get Quote" and one interval has passed, the window opens: verifier CPU seconds (utime +
stime of every process in its process group, read from /proc), memory (RSS and PSS summed over
the group), quotes served by the simulator and Keylime's attestation_count. During the window some
agents measure a file the policy does not know; the time from that to the revocation arriving at
the webhook is the detection latency.

Cairn's side: `cairn bench fleet --json` with the same agents, interval, window, growth and
injections (the same simulator, in its process; the verifier is its own process, measured the
same way from /proc).

IMA: `cairn bench ima --write-log/--write-policy` times cairn-core on a synthetic log and writes
it; the same log and policy go through Keylime's `ima.process_measurement_list` with the SHA-256
PCR 10 the log ends at (as the verifier calls it for a quote over the sha256 bank).
"""

import argparse
import base64
import http.server
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

KEYLIME_VERSION = "7.14.3"
CLK_TCK = os.sysconf("SC_CLK_TCK")
GET_QUOTE = 3


def log(msg):
    print(f"compare-keylime: {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def quantile(values, q):
    """Nearest rank, as `cairn bench fleet` reports."""
    v = sorted(values)
    if not v:
        return None
    return v[min(len(v) - 1, int((len(v) - 1) * q + 0.5))]


# ---------------------------------------------------------------------------------------------
# /proc: CPU and memory of a process group


def group_pids(pgid):
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid:  # field 5 of the line: pgrp
            pids.append(int(d))
    return pids


def sample_group(pgid):
    """CPU seconds (utime + stime), RSS and PSS bytes summed over every process in the group."""
    cpu, sys_cpu, rss, pss, n = 0.0, 0.0, 0, 0, 0
    for pid in group_pids(pgid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / CLK_TCK
            sys_cpu += int(fields[12]) / CLK_TCK
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1]) * 1024
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
            n += 1
        except (OSError, IndexError, ValueError):
            continue
    return {"cpu_seconds": cpu, "system_cpu_seconds": sys_cpu, "rss_bytes": rss, "pss_bytes": pss, "processes": n}


def stop_group(proc, what, grace=30):
    """SIGTERM to the group `proc` leads (it was started in a session of its own), then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        log(f"{what} did not stop in {grace} s; killing its process group")
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


# ---------------------------------------------------------------------------------------------
# Revocation webhook


class Webhook:
    """Records the first revocation per agent (wall clock, ms), as a SOC would see it."""

    def __init__(self):
        self.arrivals = {}
        self.lock = threading.Lock()
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                at = time.time() * 1000.0
                body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                agent = None
                try:
                    doc = json.loads(body)
                    msg = doc.get("msg")
                    inner = json.loads(msg) if isinstance(msg, str) else msg
                    agent = inner.get("agent_id")
                except (ValueError, AttributeError, TypeError):
                    pass
                if agent:
                    with hook.lock:
                        hook.arrivals.setdefault(agent, at)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *_):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # Keylime's verifier sends webhooks over HTTPS only (with its client TLS context, trusting
        # its own CA): the socket is bound now, so the URL can go into its configuration, and
        # serves once start_tls has a certificate from that CA.
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/revocations"

    def start_tls(self, cert, key):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def at(self, agent):
        with self.lock:
            return self.arrivals.get(agent)

    def close(self):
        self.server.shutdown()


# ---------------------------------------------------------------------------------------------
# Keylime's verifier


def write_keylime_config(d, port, interval, webhook_url, workers):
    # Every option the verifier reads, at the values Keylime's own templates (2.5) ship, except:
    # the ports, quote_interval, the webhook, and tls_dir = generate (its own CA in KEYLIME_DIR).
    verifier = f"""[verifier]
version = 2.5
uuid = default
ip = 127.0.0.1
port = {port}
registrar_ip = 127.0.0.1
registrar_port = 8891
enable_agent_mtls = True
tls_dir = generate
server_key = default
server_key_password =
server_cert = default
trusted_client_ca = default
client_key = default
client_key_password =
client_cert = default
trusted_server_ca = default
database_url = sqlite
database_pool_sz_ovfl = 5,10
auto_migrate_db = True
num_workers = {workers}
exponential_backoff = True
retry_interval = 2
max_retries = 5
quote_interval = {interval}
max_upload_size = 104857600
request_timeout = 60
measured_boot_policy_name = accept-all
measured_boot_imports = []
measured_boot_evaluate = once
severity_labels = ["info", "notice", "warning", "error", "critical", "alert", "emergency"]
severity_policy = [{{"event_id": ".*", "severity_label" : "emergency"}}]
ignore_tomtou_errors = False
durable_attestation_import =
persistent_store_url =
transparency_log_url =
time_stamp_authority_url =
time_stamp_authority_certs_path =
persistent_store_format = json
persistent_store_encoding =
transparency_log_sign_algo = sha256
signed_attributes =
require_allow_list_signatures = False
mode = pull
challenge_lifetime = 1800
verification_timeout = 0
session_create_rate_limit_per_ip = 50
session_create_rate_limit_window_ip = 60
session_create_rate_limit_per_agent = 15
session_create_rate_limit_window_agent = 60
session_lifetime = 180
extend_token_on_attestation = True
authorization_provider = simple
cert_subject_alternative_names =

[revocations]
enabled_revocation_notifications = ["webhook"]
zmq_ip = 127.0.0.1
zmq_port = 8992
webhook_url = {webhook_url}
"""
    (d / "verifier.conf").write_text(verifier)
    (d / "ca.conf").write_text(
        "[ca]\nversion = 2.0\npassword = default\ncert_country = US\ncert_ca_name = Keylime Certificate Authority\n"
        "cert_state = MA\ncert_locality = Lexington\ncert_organization = MITLL\ncert_org_unit = 53\n"
        "cert_ca_lifetime = 3650\ncert_lifetime = 365\ncert_bits = 2048\ncert_crl_dist = http://localhost:38080/crl\n"
    )
    (d / "logging.conf").write_text(
        "[loggers]\nkeys = root,keylime\n\n[handlers]\nkeys = consoleHandler\n\n[formatters]\nkeys = formatter\n\n"
        "[formatter_formatter]\nformat = %(asctime)s.%(msecs)03d - %(name)s - %(levelname)s - %(message)s\n"
        "datefmt = %Y-%m-%d %H:%M:%S\n\n[logger_root]\nlevel = INFO\nhandlers = consoleHandler\n\n"
        "[handler_consoleHandler]\nclass = StreamHandler\nlevel = INFO\nformatter = formatter\nargs = (sys.stdout,)\n\n"
        "[logger_keylime]\nlevel = INFO\nqualname = keylime\nhandlers =\n"
    )


def keylime_env(d):
    env = dict(os.environ)
    env.update(
        KEYLIME_DIR=str(d / "work"),
        KEYLIME_VERIFIER_CONFIG=str(d / "verifier.conf"),
        KEYLIME_CA_CONFIG=str(d / "ca.conf"),
        KEYLIME_LOGGING_CONFIG=str(d / "logging.conf"),
    )
    return env


def start_keylime_verifier(venv, d, port):
    (d / "work").mkdir(parents=True, exist_ok=True)
    out = open(d / "verifier.log", "wb")
    proc = subprocess.Popen(
        [str(venv / "bin/keylime_verifier")],
        cwd=d,
        env=keylime_env(d),
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"keylime_verifier exited ({proc.returncode}); see {d / 'verifier.log'}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                if (d / "work/cv_ca/client-cert.crt").exists():
                    return proc
        except OSError:
            pass
        time.sleep(0.2)
    stop_group(proc, "keylime_verifier")
    raise SystemExit(f"keylime_verifier did not listen on {port} within 120 s; see {d / 'verifier.log'}")


class KeylimeApi:
    def __init__(self, d, port):
        ca = d / "work/cv_ca"
        self.s = requests.Session()
        self.s.trust_env = False  # REQUESTS_CA_BUNDLE and the like would replace `verify`
        self.s.cert = (str(ca / "client-cert.crt"), str(ca / "client-private.pem"))
        self.s.verify = str(ca / "cacert.crt")
        self.base = f"https://127.0.0.1:{port}"
        v = self.s.get(f"{self.base}/version", timeout=30).json()["results"]["current_version"]
        self.v = f"v{v}"

    def call(self, method, path, body=None):
        r = self.s.request(method, f"{self.base}/{self.v}{path}", data=None if body is None else json.dumps(body), timeout=120)
        try:
            doc = r.json()
        except ValueError:
            doc = {"status": r.text}
        return r.status_code, doc


def add_agents(api, agents, policy_name, revocation_key, supported_version):
    def add(a):
        body = {
            "v": None,
            "cloudagent_ip": a["ip"],
            "cloudagent_port": a["port"],
            "verifier_ip": "127.0.0.1",
            "verifier_port": None,
            "tpm_policy": json.dumps({"mask": hex(1 << 10)}),
            "runtime_policy": "",
            "runtime_policy_name": policy_name,
            "runtime_policy_key": "",
            "mb_policy": None,
            "mb_policy_name": "",
            "ima_sign_verification_keys": "",
            "metadata": json.dumps({}),
            "revocation_key": revocation_key,
            "accept_tpm_hash_algs": ["sha512", "sha384", "sha256"],
            "accept_tpm_encryption_algs": ["ecc", "rsa"],
            "accept_tpm_signing_algs": ["ecdsa", "ecschnorr", "rsassa"],
            "ak_tpm": a["ak_tpm"],
            "mtls_cert": a["mtls_cert"],
            "supported_version": supported_version,
        }
        body["verifier_port"] = int(api.base.rsplit(":", 1)[1])
        code, doc = api.call("POST", f"/agents/{a['uuid']}", body)
        if code != 200:
            raise SystemExit(f"adding {a['uuid']} to Keylime's verifier: HTTP {code} {doc.get('status')}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(add, agents))


def keylime_states(api, agents):
    code, doc = api.call("GET", "/agents/?bulk=1")
    if code == 200 and isinstance(doc.get("results"), dict) and doc["results"]:
        return doc["results"]
    out = {}
    for a in agents:
        code, doc = api.call("GET", f"/agents/{a['uuid']}")
        out[a["uuid"]] = doc.get("results", {}) if code == 200 else {}
    return out


# ---------------------------------------------------------------------------------------------
# The simulator


def start_sim(cairn, d, args, client_ca):
    out = d / "agents.json"
    log_file = open(d / "sim.log", "wb")
    cmd = [
        cairn, "bench", "sim",
        "--agents", str(args.agents),
        "--ima-growth", str(args.ima_growth),
        "--initial-entries", str(args.initial_entries),
        "--sign", args.sign,
        # Sized as `cairn bench fleet` sizes its shared log, so both verifiers get the same
        # runtime policy (the policy lists every entry the logs can reach).
        "--duration", str(args.duration + args.interval * 4 + 600),
        "--client-ca", str(client_ca),
        "--out", str(out),
    ]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 300
    while not out.exists():
        if proc.poll() is not None:
            raise SystemExit(f"cairn bench sim exited ({proc.returncode}); see {d / 'sim.log'}")
        if time.time() > deadline:
            stop_group(proc, "cairn bench sim")
            raise SystemExit("cairn bench sim did not write its agents within 300 s")
        time.sleep(0.1)
    return proc, json.loads(out.read_text())


LOCAL = requests.Session()
LOCAL.trust_env = False  # the control endpoint is on loopback: no proxy


def sim_get(control, path):
    return LOCAL.get(f"{control}{path}", timeout=30).json()


def sim_inject(control, index):
    r = LOCAL.post(f"{control}/inject/{index}", timeout=30)
    r.raise_for_status()
    return r.json()


# ---------------------------------------------------------------------------------------------
# Keylime run


def run_keylime(args, root):
    d = root / "keylime"
    d.mkdir(parents=True, exist_ok=True)
    port = free_port()
    hook = Webhook()
    write_keylime_config(d, port, args.interval, hook.url, args.keylime_workers)
    log(f"starting Keylime {KEYLIME_VERSION}'s verifier (pull mode, SQLite, mTLS, {args.keylime_workers or 'one per CPU'} workers) on {port}")
    verifier = start_keylime_verifier(args.venv, d, port)
    sim = None
    try:
        # The webhook receiver's certificate, from Keylime's CA by Keylime's own CA code.
        subprocess.run(
            [str(args.venv / "bin/python"), "-c",
             "import sys; from keylime import ca_util; ca_util.read_password(None); "
             "ca_util.cmd_mkcert(sys.argv[1], 'webhook', san_dns=['localhost'], san_ips=['127.0.0.1'])",
             str(d / "work/cv_ca")],
            env=keylime_env(d), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        hook.start_tls(str(d / "work/cv_ca/webhook-cert.crt"), str(d / "work/cv_ca/webhook-private.pem"))
        api = KeylimeApi(d, port)
        sim, fleet = start_sim(args.cairn, d, args, d / "work/cv_ca/cacert.crt")
        agents = fleet["agents"]
        control = fleet["control"]
        log(f"{len(agents)} simulated agents up (control {control}); adding them to Keylime's verifier ({api.v})")

        policy = Path(fleet["runtime_policy"]).read_bytes()
        code, doc = api.call("POST", "/allowlists/bench", {
            "runtime_policy": base64.b64encode(policy).decode(),
            "runtime_policy_key": "",
            "tpm_policy": json.dumps({"mask": hex(1 << 10)}),
        })
        if code not in (200, 201):
            raise SystemExit(f"uploading the runtime policy: HTTP {code} {doc.get('status')}")
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        revocation_key = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        added = time.time()
        add_agents(api, agents, "bench", revocation_key, "2.5")
        log(f"{len(agents)} agents added in {time.time() - added:.1f} s; waiting for every one to be in Get Quote with a quote")

        deadline = time.time() + args.settle_timeout
        while True:
            states = keylime_states(api, agents)
            ready = [u for u, s in states.items() if s.get("operational_state") == GET_QUOTE and s.get("attestation_count", 0) > 0]
            bad = {u: s.get("operational_state") for u, s in states.items() if s.get("operational_state") in (7, 9, 10)}
            if bad:
                raise SystemExit(f"Keylime's verifier failed agents before the window: {bad}; see {d / 'verifier.log'}")
            if len(ready) >= len(agents):
                break
            if time.time() > deadline:
                raise SystemExit(f"only {len(ready)} of {len(agents)} agents attested by Keylime after {args.settle_timeout} s")
            time.sleep(1)
        log(f"all attested {time.time() - added:.1f} s after the first add; measuring {args.duration} s")
        time.sleep(args.interval)

        window = measure_window(args, len(agents), lambda: sample_group(verifier.pid), control, hook,
                                [a["uuid"] for a in agents],
                                lambda: keylime_states(api, agents))
        states = keylime_states(api, agents)
        failed = sorted(u for u, s in states.items() if s.get("operational_state") != GET_QUOTE)
        injected = {x["uuid"] for x in window["injections"]}
        window["failed_agents_not_injected"] = [u for u in failed if u not in injected]
        window["verifier"] = f"keylime {KEYLIME_VERSION}"
        window["workers"] = args.keylime_workers
        return window
    finally:
        stop_group(sim, "cairn bench sim")
        stop_group(verifier, "keylime_verifier")
        hook.close()


def measure_window(args, n, sample, control, hook, uuids, attestation_counts):
    """The common window: CPU, memory, quotes served, injections and their detection."""
    window, interval = args.duration, args.interval
    injections = min(args.injections, n)
    victims = random.sample(range(n), injections)
    schedule = sorted(window * (k + 0.25 + 0.5 * random.random()) / max(injections, 1) for k in range(injections))

    counts0 = attestation_counts()
    load0 = loadavg()
    p0, q0 = sample(), sim_get(control, "/quotes")["quotes_served"]
    t0 = time.monotonic()
    injected = []
    while time.monotonic() - t0 < window:
        k = len(injected)
        if k < injections and time.monotonic() - t0 >= schedule[k]:
            r = sim_inject(control, victims[k])
            injected.append({"uuid": r["uuid"], "injected_unix_ms": r["injected_unix_ms"]})
        time.sleep(0.005)
    elapsed = time.monotonic() - t0
    p1, q1 = sample(), sim_get(control, "/quotes")["quotes_served"]
    counts1 = attestation_counts()

    wait_until = time.time() + interval * 3 + 10
    while any(hook.at(x["uuid"]) is None for x in injected) and time.time() < wait_until:
        time.sleep(0.02)
    for x in injected:
        at = hook.at(x["uuid"])
        x["detected_ms"] = None if at is None else at - x["injected_unix_ms"]
    det = [x["detected_ms"] for x in injected if x["detected_ms"] is not None]

    def count(states):
        return sum(s.get("attestation_count", 0) or 0 for s in states.values())

    quotes = q1 - q0
    cpu = p1["cpu_seconds"] - p0["cpu_seconds"]
    return {
        "agents": n,
        "interval_s": interval,
        "duration_s": elapsed,
        "quotes_served": quotes,
        "attestation_count_delta": count(counts1) - count(counts0),
        "attestations_per_second": quotes / elapsed,
        "expected_attestations_per_second": n / interval,
        "verifier_cpu_seconds": cpu,
        "verifier_system_cpu_seconds": p1["system_cpu_seconds"] - p0["system_cpu_seconds"],
        "verifier_cpu_us_per_attestation": cpu * 1e6 / quotes if quotes else None,
        "attestations_per_verifier_cpu_second": quotes / cpu if cpu > 0 else None,
        "verifier_processes": p1["processes"],
        "load_average_1m": {"start": load0, "end": loadavg()},
        "verifier_rss_bytes": p1["rss_bytes"],
        "verifier_pss_bytes": p1["pss_bytes"],
        "verifier_rss_bytes_per_agent": p1["rss_bytes"] // n,
        "detection_latency_ms": {"p50": quantile(det, 0.5), "p99": quantile(det, 0.99),
                                 "injected": len(injected), "detected": len(det)},
        "injections": injected,
    }


# ---------------------------------------------------------------------------------------------
# Cairn run


def run_cairn(args, root):
    cmd = [
        args.cairn, "bench", "fleet",
        "--agents", str(args.agents),
        "--interval", str(args.interval),
        "--duration", str(args.duration),
        "--ima-growth", str(args.ima_growth),
        "--initial-entries", str(args.initial_entries),
        "--sign", args.sign,
        "--injections", str(args.injections),
        "--keep", str(root / "cairn"),
        "--json",
    ]
    log("running cairn " + " ".join(cmd[1:]))
    load0 = loadavg()
    with open(root / "cairn-fleet.log", "wb") as err:
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, check=False)
    if out.returncode != 0:
        raise SystemExit(f"cairn bench fleet failed ({out.returncode}); see {root / 'cairn-fleet.log'}")
    report = json.loads(out.stdout)
    report["load_average_1m"] = {"start": load0, "end": loadavg()}
    return report


# ---------------------------------------------------------------------------------------------
# IMA replay


def run_ima(args, root):
    d = root / "ima"
    d.mkdir(parents=True, exist_ok=True)
    log_path, policy_path = d / "ascii_runtime_measurements", d / "policy.json"
    log(f"IMA: cairn bench ima over a {args.ima_entries}-entry synthetic log")
    out = subprocess.run(
        [args.cairn, "bench", "ima", "--entries", str(args.ima_entries), "--runs", str(args.ima_runs),
         "--write-log", str(log_path), "--write-policy", str(policy_path)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True,
    )
    cairn = json.loads(out.stdout)
    log(f"IMA: Keylime {KEYLIME_VERSION}'s ima.process_measurement_list over the same log")
    kl_dir = root / "keylime-ima"
    kl_dir.mkdir(parents=True, exist_ok=True)
    write_keylime_config(kl_dir, 0, 1, "", 1)
    env = keylime_env(kl_dir)
    out = subprocess.run(
        [str(args.venv / "bin/python"), __file__, "--keylime-ima", str(log_path), str(policy_path), str(args.ima_runs)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"timing Keylime's IMA module failed:\n{out.stderr.decode(errors='replace')}")
    keylime = json.loads(out.stdout)
    c = cairn["results"]["sha256"]
    if keylime["pcr10_sha256"] != cairn["pcr10"]["sha256"]:
        raise SystemExit(f"Keylime and Cairn replay the log to different PCR 10 values: {keylime['pcr10_sha256']} vs {cairn['pcr10']['sha256']}")
    return {
        "entries": cairn["entries"],
        "pcr10_sha256": keylime["pcr10_sha256"],
        "keylime": keylime,
        "cairn": {"policy_parse_ms": cairn["policy_parse_ms"], "replay_and_policy_ms": c["replay_and_policy_ms"],
                  "entries_per_second": c["replay_and_policy_entries_per_sec"]},
        "ratio_replay_and_policy": keylime["replay_and_policy_ms"] / c["replay_and_policy_ms"],
    }


def keylime_ima_main(log_path, policy_path, runs):
    """Child process: times Keylime's IMA module (imported here, with its config in the env)."""
    from keylime.common.algorithms import Hash
    from keylime.ima import ima

    lines = Path(log_path).read_text().split("\n")
    text = Path(policy_path).read_text()
    t = time.perf_counter()
    policy = ima.deserialize_runtime_policy(text)
    parse_ms = (time.perf_counter() - t) * 1000
    # Untimed: the PCR 10 the log ends at, and that the log passes its own policy.
    pcr10, failure = ima.process_measurement_list(None, lines, policy, pcrval=None, hash_alg=Hash.SHA256)
    if failure:
        raise SystemExit(f"the synthetic log does not pass its policy under Keylime: {failure.get_event_ids()}")
    best = None
    for _ in range(runs):
        t = time.perf_counter()
        _, failure = ima.process_measurement_list(None, lines, policy, pcrval=pcr10, hash_alg=Hash.SHA256)
        took = time.perf_counter() - t
        if failure:
            raise SystemExit(f"Keylime failed the synthetic log: {failure.get_event_ids()}")
        best = took if best is None else min(best, took)
    entries = sum(1 for line in lines if line.strip())
    print(json.dumps({
        "policy_parse_ms": round(parse_ms, 2),
        "replay_and_policy_ms": round(best * 1000, 2),
        "entries_per_second": round(entries / best),
        "pcr10_sha256": pcr10,
        "call": "keylime.ima.ima.process_measurement_list(None, lines, policy, pcrval, hash_alg=SHA256)",
    }))


# ---------------------------------------------------------------------------------------------
# Report


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def fmt(v, unit="", digits=1):
    return "-" if v is None else f"{v:,.{digits}f}{unit}"


def summary(side):
    """The figures compared, computed the same way for both sides: an attestation is a quote the
    simulated agents served in the window (each was fetched and judged by the verifier)."""
    quotes, cpu = side["quotes_served"], side["verifier_cpu_seconds"]
    return {
        "attestations_per_second": quotes / side["duration_s"],
        "cpu_us_per_attestation": ratio(cpu * 1e6, quotes),
        "attestations_per_cpu_second": ratio(quotes, cpu),
        "rss_bytes": side["verifier_rss_bytes"],
        "rss_bytes_per_agent": side["verifier_rss_bytes"] / side["agents"],
        "detection_p50_ms": side["detection_latency_ms"]["p50"],
        "detection_p99_ms": side["detection_latency_ms"]["p99"],
    }


def report(args, keylime, cairn, ima_result):
    doc = {
        "bench": "compare-keylime",
        "keylime_version": KEYLIME_VERSION,
        "agents": args.agents,
        "interval_s": args.interval,
        "duration_s": args.duration,
        "ima_growth_per_agent_per_s": args.ima_growth,
        "sign": args.sign,
        "machine": machine(),
        "keylime": keylime,
        "cairn": cairn,
        "ima_replay": ima_result,
    }
    rows = []
    if keylime and cairn:
        k, c = summary(keylime), summary(cairn)
        doc["summary"] = {"keylime": k, "cairn": c}
        doc["ratio_attestations_per_cpu_second"] = ratio(c["attestations_per_cpu_second"], k["attestations_per_cpu_second"])
        doc["ratio_memory_per_agent"] = ratio(k["rss_bytes_per_agent"], c["rss_bytes_per_agent"])
        doc["ratio_detection_latency_p50"] = ratio(k["detection_p50_ms"], c["detection_p50_ms"])
        doc["ratio_detection_latency_p99"] = ratio(k["detection_p99_ms"], c["detection_p99_ms"])
        mib = 2**20
        rows += [
            ("attestations/s", fmt(k["attestations_per_second"]), fmt(c["attestations_per_second"]), None),
            ("verifier CPU per attestation", fmt(k["cpu_us_per_attestation"], " µs", 0), fmt(c["cpu_us_per_attestation"], " µs", 0), None),
            ("attestations per CPU-second", fmt(k["attestations_per_cpu_second"]), fmt(c["attestations_per_cpu_second"]),
             doc["ratio_attestations_per_cpu_second"]),
            ("verifier RSS", fmt(k["rss_bytes"] / mib, " MiB"), fmt(c["rss_bytes"] / mib, " MiB"), None),
            ("memory per agent (RSS / agents)", fmt(k["rss_bytes_per_agent"] / 1024, " KiB"), fmt(c["rss_bytes_per_agent"] / 1024, " KiB"),
             doc["ratio_memory_per_agent"]),
            ("detection latency p50", fmt(k["detection_p50_ms"], " ms", 0), fmt(c["detection_p50_ms"], " ms", 0), doc["ratio_detection_latency_p50"]),
            ("detection latency p99", fmt(k["detection_p99_ms"], " ms", 0), fmt(c["detection_p99_ms"], " ms", 0), doc["ratio_detection_latency_p99"]),
        ]
    if ima_result:
        doc["ratio_ima_replay"] = ima_result["ratio_replay_and_policy"]
        rows.append((f"IMA replay+policy, {ima_result['entries']:,} entries",
                     fmt(ima_result["keylime"]["replay_and_policy_ms"], " ms"),
                     fmt(ima_result["cairn"]["replay_and_policy_ms"], " ms"), ima_result["ratio_replay_and_policy"]))
    head = (f"compare-keylime: {args.agents} simulated agents ({args.sign} AKs), interval {args.interval} s, "
            f"window {args.duration} s, IMA growth {args.ima_growth}/s per agent")
    lines = [head, f"{'':34} {'Keylime ' + KEYLIME_VERSION:>16} {'Cairn':>14} {'Cairn ×':>9}"]
    for name, kv, cv, r in rows:
        lines.append(f"{name:34} {kv:>16} {cv:>14} {fmt(r, '×'):>9}")
    return doc, "\n".join(lines)


def machine():
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {"cpu": cpu, "cpus": os.cpu_count(), "memory_bytes": mem, "kernel": os.uname().release,
            "python": sys.version.split()[0]}


def loadavg():
    """The 1-minute load average: other work on the machine inflates CPU time per operation."""
    try:
        return float(open("/proc/loadavg").read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--keylime-ima":
        keylime_ima_main(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    p = argparse.ArgumentParser(description="Keylime's verifier and Cairn's on the same simulated fleet.")
    p.add_argument("--cairn", required=True, help="the cairn binary")
    p.add_argument("--venv", required=True, type=Path, help=f"a virtualenv with Keylime {KEYLIME_VERSION}")
    p.add_argument("--agents", type=int, default=50)
    p.add_argument("--interval", type=float, default=1.0, help="quote interval, seconds")
    p.add_argument("--duration", type=float, default=60.0, help="measured window, seconds")
    p.add_argument("--ima-growth", type=float, default=0.0, help="IMA entries per agent per second")
    p.add_argument("--initial-entries", type=int, default=100, help="IMA entries every log starts with")
    p.add_argument("--sign", default="ecc256", choices=["ecc256", "rsa2048"], help="AK of the simulated agents")
    p.add_argument("--injections", type=int, default=5, help="unknown files measured in the window")
    p.add_argument("--keylime-workers", type=int, default=0, help="Keylime's num_workers (0: one per CPU, its default)")
    p.add_argument("--settle-timeout", type=float, default=600)
    p.add_argument("--ima-entries", type=int, default=100_000)
    p.add_argument("--ima-runs", type=int, default=3)
    p.add_argument("--skip", choices=["keylime", "cairn", "ima"], action="append", default=[])
    p.add_argument("--keep", type=Path, help="keep the run's files (configs, logs, databases) here")
    p.add_argument("--json-out", type=Path, help="also write the JSON report here")
    args = p.parse_args()
    args.venv = args.venv.resolve()
    if args.agents <= 0 or args.interval <= 0 or args.duration <= 0:
        p.error("--agents, --interval and --duration must be positive")

    tmp = None
    if args.keep:
        root = args.keep.resolve()
        root.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.mkdtemp(prefix="cairn-compare-keylime-")
        root = Path(tmp)
    try:
        keylime = None if "keylime" in args.skip else run_keylime(args, root)
        cairn = None if "cairn" in args.skip else run_cairn(args, root)
        ima_result = None if "ima" in args.skip else run_ima(args, root)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    doc, table = report(args, keylime, cairn, ima_result)
    print(table, file=sys.stderr)
    text = json.dumps(doc, indent=2)
    if args.json_out:
        args.json_out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
