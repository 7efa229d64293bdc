//! The HTTP server loop: one hyper HTTP/1.1 connection per accepted socket (after a TLS
//! handshake, with `http_tls`, which must finish within the header timeout; a client
//! certificate goes to the requests as `auth::PeerCertificate`), with a timeout on reading a
//! request's headers that also closes keep-alive connections left idle (hyper starts it
//! whenever a connection waits for a request), and a graceful stop.
//!
//! axum's own `serve` sets no timer, so without this loop a client that opens a connection and
//! sends nothing, or one header byte a second, holds it forever.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Serves `app` on `listener` until `stop`, then lets connections finish the requests they
/// are in (the caller bounds how long).
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    header_read_timeout: Duration,
    tls: Option<crate::TlsConfigs>,
    stop: CancellationToken,
) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (app, stop, tls) = (app.clone(), stop.clone(), tls.clone());
        connections.spawn(async move {
            match tls {
                None => serve_connection(stream, app, header_read_timeout, stop).await,
                Some(configs) => {
                    // The newest configuration: certificates read again since start serve.
                    let acceptor = tokio_rustls::TlsAcceptor::from(configs.current());
                    let handshake =
                        tokio::time::timeout(header_read_timeout, acceptor.accept(stream));
                    let stream = match handshake.await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "HTTP TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!("HTTP TLS handshake not finished in time");
                            return;
                        }
                    };
                    let certificate = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| crate::auth::PeerCertificate(c.to_vec()));
                    let app = match certificate {
                        Some(certificate) => app.layer(axum::Extension(certificate)),
                        None => app,
                    };
                    serve_connection(stream, app, header_read_timeout, stop).await;
                }
            }
        });
    }
    while connections.join_next().await.is_some() {}
}

async fn serve_connection<S>(
    stream: S,
    app: Router,
    header_read_timeout: Duration,
    stop: CancellationToken,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(app);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}
