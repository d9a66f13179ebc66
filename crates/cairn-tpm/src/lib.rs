//! Talking to a TPM.
