//! `oodlab serve`: a read-only web dashboard over a home's store — the experiments, an experiment's
//! live progress, runs table and dashboard panels, each run's curves, and the comparison table —
//! with a JSON API for the same data. Pages are drawn on the server (charts are SVG from
//! `oodlab-plots`), so the browser needs nothing from the network; the little JavaScript there is
//! (live progress) is built into the binary.
//!
//! The server opens the store read-only and never writes it; request values reach SQL only as
//! bound parameters; files are served only from inside the home's `runs/`.

mod api;
mod audit;
mod charts;
pub mod dashboards;
mod error;
mod html;
mod pages;
mod tuning;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use oodlab_store::Store;
use thiserror::Error;

pub use dashboards::{ChartKind, Dashboard, Panel};

/// What every request reads: the store, where run folders may be, the dashboards.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    /// `<home>/runs`, canonical; artifacts are served only from below it.
    runs_root: PathBuf,
    dashboards: Vec<Dashboard>,
}

#[derive(Debug, Error)]
pub enum ServeError {
    #[error("no store at {0}; run an experiment first (`oodlab run SPEC --home ...`)")]
    NoStore(String),
    #[error(transparent)]
    Store(#[from] oodlab_store::StoreError),
    #[error(transparent)]
    Dashboard(#[from] oodlab_spec::SpecError),
}

impl AppState {
    /// Opens `<home>/oodlab.db` read-only and loads the dashboards of `dashboards` (the built-in
    /// ones when `None`).
    pub async fn open(home: &Path, dashboards: Option<&Path>) -> Result<AppState, ServeError> {
        let db = home.join("oodlab.db");
        let store = Store::open_never_writing(&db).await?.ok_or_else(|| ServeError::NoStore(db.display().to_string()))?;
        let dashboards = dashboards::load(dashboards, &store).await?;
        let runs = home.join("runs");
        let runs_root = runs.canonicalize().unwrap_or_else(|_| std::path::absolute(&runs).unwrap_or(runs));
        Ok(AppState { inner: Arc::new(Inner { store, runs_root, dashboards }) })
    }

    pub fn dashboards(&self) -> &[Dashboard] {
        &self.inner.dashboards
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }
}

/// Every page and API route.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(pages::experiments))
        .route("/experiments/{name}", get(pages::experiment))
        .route("/experiments/{name}/compare", get(pages::compare))
        .route("/runs/{id}", get(pages::run))
        .route("/runs/{id}/files/{*path}", get(pages::run_file))
        .route("/assets/{file}", get(pages::asset))
        .route("/api/experiments", get(api::experiments))
        .route("/api/experiments/{name}", get(api::experiment))
        .route("/api/experiments/{name}/runs", get(api::runs))
        .route("/api/experiments/{name}/compare", get(api::compare))
        .route("/api/experiments/{name}/panels/{dashboard}/{index}", get(api::panel))
        .route("/api/dashboards", get(api::dashboards))
        .route("/api/runs/{id}", get(api::run))
        .route("/api/runs/{id}/curves", get(api::curves))
        .fallback(pages::not_found)
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}
