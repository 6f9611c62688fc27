//! `oodlab serve`: the dashboard of a home, read-only, until Ctrl-C or SIGTERM.

use std::io::Write;
use std::path::Path;

use crate::args::ServeArgs;

pub async fn serve(home: &Path, args: ServeArgs) -> anyhow::Result<i32> {
    let dashboards = args.dashboards.clone().or_else(|| Path::new("dashboards").is_dir().then(|| "dashboards".into()));
    let state = oodlab_web::AppState::open(home, dashboards.as_deref()).await.map_err(|e| match e {
        oodlab_web::ServeError::Store(s) => anyhow::Error::from(s),
        other => crate::invalid(other.to_string()),
    })?;
    let listener = tokio::net::TcpListener::bind(&args.addr)
        .await
        .map_err(|e| crate::invalid(format!("--addr {}: cannot listen there: {e}", args.addr)))?;
    let addr = listener.local_addr()?;
    let from = match &dashboards {
        Some(d) => format!("dashboards from {}", d.display()),
        None => "built-in dashboards".into(),
    };
    // The first line names the address (tests and scripts read it when the port was 0). A reader
    // that closes the pipe after it must not stop the server: write errors are ignored.
    let banner = format!(
        "oodlab serve: http://{addr}/\n  store {} (read-only), {} ({})\n",
        home.join("oodlab.db").display(),
        from,
        state.dashboards().len()
    );
    let mut out = std::io::stdout();
    let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    oodlab_web::serve(listener, state, shutdown).await?;
    Ok(0)
}
