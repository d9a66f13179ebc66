//! One owner for all TPM work: a dedicated thread that runs jobs one at a time.
//!
//! swtpm (and a TPM without a resource manager) serves one client at a time and has three
//! transient slots, so two requests must never talk to the TPM at once — and PCR 16's
//! reset-extend-quote sequence must not interleave with another quote. Every job opens its own
//! [`Tpm`] connection and closes it when the job ends: the agent never holds the connection
//! while idle, so an operator's `cairn tpm pcr-extend` (or `tpm2_pcrextend`) against the same
//! swtpm succeeds between two agent operations. (On a hardware TPM behind the kernel's resource
//! manager, `/dev/tpmrm0`, concurrent clients are fine anyway.)

use std::sync::mpsc;
use std::thread;

use cairn_tpm::Tpm;
use tokio::sync::oneshot;

use crate::error::AgentError;

type Job = Box<dyn FnOnce(&str) + Send>;

/// A handle to the TPM worker; cheap to clone.
#[derive(Clone, Debug)]
pub struct TpmOwner {
    jobs: mpsc::Sender<Job>,
}

impl TpmOwner {
    /// Starts the worker for the TPM at `tcti`. It stops when every handle is dropped.
    pub fn start(tcti: String) -> Result<TpmOwner, AgentError> {
        let (tx, rx) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("cairn-tpm".into())
            .spawn(move || {
                for job in rx {
                    job(&tcti);
                }
            })
            .map_err(|source| AgentError::Io { path: "thread cairn-tpm".into(), source })?;
        Ok(TpmOwner { jobs: tx })
    }

    /// Runs `f` on a freshly opened TPM, in turn with every other job; waits for its result.
    pub async fn run<T, F>(&self, f: F) -> Result<T, AgentError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tpm) -> Result<T, AgentError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |tcti| {
            let result = Tpm::open(tcti).map_err(AgentError::from).and_then(|mut tpm| f(&mut tpm));
            let _ = tx.send(result);
        });
        self.jobs.send(job).map_err(|_| AgentError::TpmWorkerGone)?;
        rx.await.map_err(|_| AgentError::TpmWorkerGone)?
    }
}
