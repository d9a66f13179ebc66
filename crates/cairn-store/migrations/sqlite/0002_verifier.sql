-- The verifier: the nodes tenants added (spec: the tenant's request as the verifier normalised it,
-- JSON owned by the verifier), their attestation status, a bounded history of what happened, named
-- policies, and the delivery record of signed revocations.
CREATE TABLE verifier_agents (
    agent_id TEXT PRIMARY KEY NOT NULL,
    spec TEXT NOT NULL,
    added_at INTEGER NOT NULL,
    operational_state INTEGER NOT NULL,
    attestation_count INTEGER NOT NULL DEFAULT 0,
    last_received_quote INTEGER,
    last_successful_attestation INTEGER,
    failure TEXT,
    round_state TEXT
);

CREATE TABLE verifier_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX verifier_history_agent ON verifier_history (agent_id, id);

CREATE TABLE verifier_policies (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (kind, name)
);

CREATE TABLE verifier_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    target TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    outcome TEXT NOT NULL
);
CREATE INDEX verifier_deliveries_agent ON verifier_deliveries (agent_id, id);
