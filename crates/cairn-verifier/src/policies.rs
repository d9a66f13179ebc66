//! Named policies: stored as text, parsed once, shared by every node that uses them.
//!
//! A runtime policy of 10 MB takes a quarter of a second to parse; rounds must never pay that.
//! The cache parses a policy when it is first needed (or when it is stored, which also validates
//! it) and hands out `Arc`s; replacing or deleting a policy drops the cached copy so the next
//! round of every node using it sees the new one.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use cairn_core::policy::measured_boot::MeasuredBootPolicy;
use cairn_core::policy::runtime::RuntimePolicy;
use cairn_store::{PolicyKind, VerifierStore};

use crate::error::VerifierError;

/// A parsed policy of either kind.
#[derive(Clone, Debug)]
pub enum Parsed {
    /// A runtime policy.
    Runtime(Arc<RuntimePolicy>),
    /// A measured-boot reference state.
    MeasuredBoot(Arc<MeasuredBootPolicy>),
}

/// Parses policy text of `kind`, or says why it is not one.
pub fn parse(kind: PolicyKind, text: &str) -> Result<Parsed, VerifierError> {
    match kind {
        PolicyKind::Runtime => RuntimePolicy::from_json(text)
            .map(|p| Parsed::Runtime(Arc::new(p)))
            .map_err(|e| VerifierError::BadRequest(format!("runtime policy: {e}"))),
        PolicyKind::MeasuredBoot => MeasuredBootPolicy::from_json(text)
            .map(|p| Parsed::MeasuredBoot(Arc::new(p)))
            .map_err(|e| VerifierError::BadRequest(format!("measured-boot policy: {e}"))),
    }
}

/// The cache in front of the store.
#[derive(Default)]
pub struct PolicyCache {
    parsed: RwLock<HashMap<(PolicyKind, String), Parsed>>,
}

impl std::fmt::Debug for PolicyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyCache").finish_non_exhaustive()
    }
}

impl PolicyCache {
    /// The parsed policy `name` of `kind`, loading it from `store` on first use.
    pub fn get(&self, store: &dyn VerifierStore, kind: PolicyKind, name: &str) -> Result<Parsed, VerifierError> {
        let key = (kind, name.to_owned());
        if let Some(p) = self.parsed.read().map_err(|_| poisoned())?.get(&key) {
            return Ok(p.clone());
        }
        let text = store
            .policy(kind, name)?
            .ok_or_else(|| VerifierError::NotFound(format!("no {} policy named {name:?}", kind.as_str())))?;
        let p = parse(kind, &text)?;
        self.parsed.write().map_err(|_| poisoned())?.insert(key, p.clone());
        Ok(p)
    }

    /// Keeps an already parsed policy (just stored).
    pub fn put(&self, kind: PolicyKind, name: &str, parsed: Parsed) -> Result<(), VerifierError> {
        self.parsed.write().map_err(|_| poisoned())?.insert((kind, name.to_owned()), parsed);
        Ok(())
    }

    /// Forgets a policy (replaced or deleted).
    pub fn forget(&self, kind: PolicyKind, name: &str) -> Result<(), VerifierError> {
        self.parsed.write().map_err(|_| poisoned())?.remove(&(kind, name.to_owned()));
        Ok(())
    }

    /// The runtime policy `name`.
    pub fn runtime(&self, store: &dyn VerifierStore, name: &str) -> Result<Arc<RuntimePolicy>, VerifierError> {
        match self.get(store, PolicyKind::Runtime, name)? {
            Parsed::Runtime(p) => Ok(p),
            Parsed::MeasuredBoot(_) => Err(VerifierError::Internal("policy cache kind mix-up".into())),
        }
    }

    /// The measured-boot policy `name`.
    pub fn measured_boot(&self, store: &dyn VerifierStore, name: &str) -> Result<Arc<MeasuredBootPolicy>, VerifierError> {
        match self.get(store, PolicyKind::MeasuredBoot, name)? {
            Parsed::MeasuredBoot(p) => Ok(p),
            Parsed::Runtime(_) => Err(VerifierError::Internal("policy cache kind mix-up".into())),
        }
    }
}

fn poisoned() -> VerifierError {
    VerifierError::Internal("policy cache lock poisoned".into())
}
