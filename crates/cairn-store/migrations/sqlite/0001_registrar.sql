-- Registrar: one row per agent id. A row is written only after every check of a registration
-- passed; it stays active = 0 until the agent proves activation, and `challenge` holds the
-- credential secret only while an activation is pending.
CREATE TABLE registrar_agents (
    agent_id    TEXT PRIMARY KEY NOT NULL,
    ek_tpm      BLOB NOT NULL,
    ekcert      BLOB,
    aik_tpm     BLOB NOT NULL,
    mtls_cert   TEXT,
    ip          TEXT,
    port        INTEGER,
    regcount    INTEGER NOT NULL DEFAULT 1,
    active      INTEGER NOT NULL DEFAULT 0,
    challenge   BLOB,
    registered_at INTEGER NOT NULL
) STRICT;
