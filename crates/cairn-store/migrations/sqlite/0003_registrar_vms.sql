-- Registrar, VM layer: what a node is (`host` or `vm`); for a host, the vTPM CA certificate it
-- proved (TPM2_Certify by its AK) is resident in its TPM; for a VM, the host whose vTPM CA issued
-- its EK certificate.
ALTER TABLE registrar_agents ADD COLUMN kind TEXT NOT NULL DEFAULT 'host';
ALTER TABLE registrar_agents ADD COLUMN vtpm_ca_cert BLOB;
ALTER TABLE registrar_agents ADD COLUMN host_agent_id TEXT;
