//! The HTTP API's own metrics, appended to the broker's at `GET /metrics`:
//! `sluice_http_requests_total` and `sluice_http_request_duration_seconds`, both by `method`,
//! `route` (the route's template, `/v1/topics/{topic}`, so a name in the path never makes a
//! series of its own; `unmatched` for a request no route took) and `status`.
//!
//! Owns: counting and timing HTTP requests. Not: the broker's metrics (rendered by the
//! function the binary hands in).

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

pub(crate) struct HttpMetrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    seconds: Family<RequestLabels, Histogram>,
}

impl HttpMetrics {
    pub(crate) fn new() -> HttpMetrics {
        let mut root = Registry::default();
        let registry = root.sub_registry_with_prefix("sluice_http");
        let requests = Family::<RequestLabels, Counter>::default();
        // 1 ms to about 33 s: an HTTP request waits on the broker at least once.
        let seconds = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        registry.register("requests", "HTTP requests answered", requests.clone());
        registry.register(
            "request_duration_seconds",
            "Time from an HTTP request's arrival to its answer's headers (a stream's first bytes)",
            seconds.clone(),
        );
        HttpMetrics {
            registry: root,
            requests,
            seconds,
        }
    }

    /// OpenMetrics text of these metrics, ending in `# EOF`.
    pub(crate) fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// Middleware: counts and times every request by method, route and status.
pub(crate) async fn track(
    State(metrics): State<Arc<HttpMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = std::time::Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_string();
    let response = next.run(request).await;
    let labels = RequestLabels {
        method,
        route,
        status: response.status().as_u16(),
    };
    metrics.requests.get_or_create(&labels).inc();
    metrics
        .seconds
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}

/// A method as a label: the standard ones by name, any other (a client may send any token)
/// as `other`, so a client cannot make series without bound.
fn method_label(method: &axum::http::Method) -> &'static str {
    const KNOWN: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
    KNOWN
        .into_iter()
        .find(|name| *name == method.as_str())
        .unwrap_or("other")
}

/// One OpenMetrics text followed by another, as one exposition (the broker's, then the
/// views', then the HTTP API's): the first's closing `# EOF` is dropped so that only the last
/// one remains.
pub fn join(broker: &str, http: &str) -> String {
    let broker = broker.trim_end();
    let broker = broker.strip_suffix("# EOF").unwrap_or(broker);
    format!("{broker}{http}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_standard_ones_share_one_label() {
        let odd = axum::http::Method::from_bytes(b"FROBNICATE").unwrap();
        assert_eq!(method_label(&odd), "other");
        assert_eq!(method_label(&axum::http::Method::PATCH), "PATCH");
    }

    #[test]
    fn one_eof_at_the_end() {
        let metrics = HttpMetrics::new();
        metrics
            .requests
            .get_or_create(&RequestLabels {
                method: "GET",
                route: "/v1/topics".into(),
                status: 200,
            })
            .inc();
        let joined = join("# TYPE a counter\na_total 1\n# EOF\n", &metrics.render());
        assert_eq!(joined.matches("# EOF").count(), 1);
        assert!(joined.trim_end().ends_with("# EOF"));
        assert!(joined.contains(
            "sluice_http_requests_total{method=\"GET\",route=\"/v1/topics\",status=\"200\"} 1"
        ));
        assert!(joined.starts_with("# TYPE a counter\na_total 1\n# HELP sluice_http"));
    }
}
