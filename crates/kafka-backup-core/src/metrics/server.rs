//! The metrics endpoint: `/metrics` (Prometheus text format), `/health` (the process answers) and
//! `/ready` (the run is connected and working), served over HTTP/1 by hyper.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::metrics;

/// Starts serving on `address` until the process exits; returns the address bound (a port 0 is
/// given one). Fails when the address cannot be bound.
pub async fn serve(address: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service_fn(answer));
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "a metrics connection failed");
                }
            });
        }
    });
    Ok(bound)
}

async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, content_type: &str, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(hyper::header::CONTENT_TYPE, content_type.parse().expect("a valid header"));
        Ok(response)
    };
    let text = "text/plain; charset=utf-8";
    if request.method() != Method::GET {
        return reply(StatusCode::METHOD_NOT_ALLOWED, text, "only GET\n".into());
    }
    match request.uri().path() {
        "/metrics" => reply(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", metrics().encode()),
        "/health" => reply(StatusCode::OK, text, "ok\n".into()),
        "/ready" if metrics().is_ready() => reply(StatusCode::OK, text, "ready\n".into()),
        "/ready" => reply(StatusCode::SERVICE_UNAVAILABLE, text, "not ready\n".into()),
        _ => reply(StatusCode::NOT_FOUND, text, "not found: /metrics, /health or /ready\n".into()),
    }
}
