//! A deterministic, fault-injecting server that speaks the OpenAI chat-completions API
//! (`POST /v1/chat/completions`) and the Anthropic Messages API (`POST /v1/messages`), streamed and
//! not, with realistic usage blocks.
//!
//! Replies come from a [`Scenario`]; latency, jitter, TTFT, errors (429 with `Retry-After`, 500,
//! 503/529), stalls, loops and truncated streams are injected at configured rates. Decisions derive
//! from hash(seed, request content, arrival count of that content), so a fresh simulator replays a
//! run identically whatever the concurrency. See `docs/simulator.md`.

mod plan;
mod scenario;
mod server;
mod wire;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use plan::SimStats;
pub use scenario::{DEFAULT_REPLY, Scenario, ScenarioError};

use server::Shared;

/// How the simulator behaves. Rates are probabilities per request, between 0 and 1.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub host: IpAddr,
    /// 0 picks a free port.
    pub port: u16,
    /// Generation time of a whole reply, spread over its chunks.
    pub latency: Duration,
    /// Latency varies uniformly within ± this.
    pub jitter: Duration,
    /// Time to the first byte of a reply (and the delay before an injected error).
    pub ttft: Duration,
    /// Share of requests answered with 429 (half), 500 (a quarter) or 503/529 (a quarter).
    pub error_rate: f64,
    /// `Retry-After` seconds sent with a 429.
    pub retry_after_secs: u64,
    /// Share of replies that pause mid-stream for `stall`.
    pub stall_rate: f64,
    pub stall: Duration,
    /// Share of replies that repeat their opening phrase until cut at `length`.
    pub loop_rate: f64,
    /// Share of replies cut in half: a stream ends without finish reason, usage or `[DONE]`.
    pub truncate_rate: f64,
    /// Share of replies whose TTFT grows by `slow_ttft` (a TTFT regression).
    pub slow_ttft_rate: f64,
    pub slow_ttft: Duration,
    pub seed: u64,
    pub scenario: Scenario,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            ttft: Duration::ZERO,
            error_rate: 0.0,
            retry_after_secs: 1,
            stall_rate: 0.0,
            stall: Duration::from_secs(2),
            loop_rate: 0.0,
            truncate_rate: 0.0,
            slow_ttft_rate: 0.0,
            slow_ttft: Duration::from_secs(2),
            seed: 0,
            scenario: Scenario::default(),
        }
    }
}

impl SimConfig {
    /// Rejects rates outside [0, 1].
    pub fn validate(&self) -> Result<(), SimError> {
        let rates = [
            ("error_rate", self.error_rate),
            ("stall_rate", self.stall_rate),
            ("loop_rate", self.loop_rate),
            ("truncate_rate", self.truncate_rate),
            ("slow_ttft_rate", self.slow_ttft_rate),
        ];
        match rates.iter().find(|(_, r)| !(0.0..=1.0).contains(r)) {
            Some((name, value)) => Err(SimError::InvalidRate { name, value: *value }),
            None => Ok(()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{name} must be between 0 and 1, got {value}")]
    InvalidRate { name: &'static str, value: f64 },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot wait for Ctrl-C: {0}")]
    Signal(io::Error),
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
}

/// A running simulator. Dropping it stops the server; [`SimHandle::shutdown`] also waits for it.
#[derive(Debug)]
pub struct SimHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

/// In-flight responses get this long to finish once shutdown is asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

impl SimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL clients use for both APIs, e.g. `http://127.0.0.1:41234/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn stats(&self) -> SimStats {
        self.shared.decider.stats()
    }

    /// Forgets arrival counts and the prompt cache, so the next run replays like the first.
    pub fn reset(&self) {
        self.shared.decider.reset();
    }

    /// Stops accepting, lets in-flight responses finish (for a short grace period) and returns the
    /// final counters.
    pub async fn shutdown(mut self) -> SimStats {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await.is_err()
        {
            task.abort();
        }
        self.stats()
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Binds and starts serving in the background on the current tokio runtime.
pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
    config.validate()?;
    let requested = SocketAddr::new(config.host, config.port);
    let bind_error = |source| SimError::Bind { addr: requested, source };
    let listener = tokio::net::TcpListener::bind(requested).await.map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let shared = Arc::new(Shared { config, decider: plan::Decider::default() });
    let app = server::router(shared.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    Ok(SimHandle { addr, shared, stop: Some(stop), task: Some(task) })
}

/// Serves until `until` resolves. `on_ready` gets the bound address once the server accepts
/// connections (so a CLI can print it, and port 0 becomes useful).
pub async fn serve(
    config: SimConfig,
    on_ready: impl FnOnce(SocketAddr),
    until: impl Future<Output = ()>,
) -> Result<SimStats, SimError> {
    let handle = start(config).await?;
    on_ready(handle.addr());
    until.await;
    Ok(handle.shutdown().await)
}

/// `promptctl sim serve`: serves until Ctrl-C.
pub async fn serve_until_ctrl_c(config: SimConfig, on_ready: impl FnOnce(SocketAddr)) -> Result<SimStats, SimError> {
    let handle = start(config).await?;
    on_ready(handle.addr());
    tokio::signal::ctrl_c().await.map_err(SimError::Signal)?;
    Ok(handle.shutdown().await)
}
