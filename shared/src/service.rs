//! The finished HTTP service: a router (one function's, or all of them locally) behind what
//! every function shares: the body cap, the request timeout, `Idempotency-Key`, the security
//! headers and, when configured, CORS.
//!
//! One service around the router rather than one `Router::layer` per concern: a router layer
//! wraps every route on its own, and each such layer clones a boxed copy of the route and boxes
//! its future on every request. With seven of them that was a fifth of the usage hot path's CPU
//! (measured with `perf`); here a request costs one boxed future.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower::{BoxError, Layer, Service, ServiceExt};
use tower_http::cors::Cors;

use crate::hardening::{self, MAX_BODY_BYTES};
use crate::AppContext;

type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// The finished application around merged function routers.
pub fn finish(router: Router, ctx: &AppContext) -> HttpApp {
    HttpApp::new(router, ctx)
}

/// Something done to every request before routing (e.g. on Lambda: the client address from
/// the API Gateway context).
pub type Prepare = fn(&mut Request);

/// The application as one `tower::Service`: what `axum::serve` and `lambda_http::run` run, and
/// what tests call with `oneshot`.
#[derive(Clone)]
pub struct HttpApp {
    core: Core,
    cors: Option<Cors<Core>>,
}

#[derive(Clone)]
struct Core(Arc<Parts>);

struct Parts {
    router: Router,
    ctx: AppContext,
    body_limit: DefaultBodyLimit,
    headers: [(HeaderName, HeaderValue); 5],
    prepare: Option<Prepare>,
}

impl HttpApp {
    /// `router` (the problem fallbacks added) behind the shared HTTP hygiene, with the settings
    /// in `ctx.http`.
    pub fn new(router: Router, ctx: &AppContext) -> Self {
        Self::build(router, ctx, None)
    }

    /// The same, running `prepare` on each request before it is routed.
    pub fn preparing(router: Router, ctx: &AppContext, prepare: Prepare) -> Self {
        Self::build(router, ctx, Some(prepare))
    }

    fn build(router: Router, ctx: &AppContext, prepare: Option<Prepare>) -> Self {
        let core = Core(Arc::new(Parts {
            router: crate::http::with_fallbacks(router),
            ctx: ctx.clone(),
            body_limit: DefaultBodyLimit::max(MAX_BODY_BYTES),
            headers: hardening::security_headers(),
            prepare,
        }));
        let cors = hardening::cors(&ctx.http).map(|layer| layer.layer(core.clone()));
        Self { core, cors }
    }
}

impl Core {
    async fn serve(self, mut request: Request) -> Response {
        let parts = &*self.0;
        parts.body_limit.apply(&mut request);
        if let Some(prepare) = parts.prepare {
            prepare(&mut request);
        }
        let limit = parts.ctx.http.request_timeout;
        let routed = async move {
            // The tenant's plan rate for this API comes first: a refused call does nothing.
            let admission = crate::usage::api_rate::admit(&parts.ctx, &mut request).await;
            let (rate_headers, refused) = match admission {
                Some(a) => (a.headers, a.refused),
                None => (Vec::new(), None),
            };
            let mut response = match refused {
                Some(refused) => refused.into_response(),
                None => {
                    let answered = crate::idempotency::around(&parts.ctx, request, |request| {
                        let mut router = parts.router.clone();
                        async move {
                            match router.call(request).await {
                                Ok(response) => response,
                                Err(never) => match never {},
                            }
                        }
                    });
                    as_problem(answered.await).await
                }
            };
            response.headers_mut().extend(rate_headers);
            response
        };
        let mut response = match tokio::time::timeout(limit, routed).await {
            Ok(response) => response,
            Err(_) => hardening::timed_out(limit),
        };
        let headers = response.headers_mut();
        for (name, value) in &parts.headers {
            if !headers.contains_key(name) {
                headers.insert(name.clone(), value.clone());
            }
        }
        response
    }
}

/// A refusal written as plain text by an extractor (a path segment that is not UTF-8, say)
/// becomes a problem document like every other error.
async fn as_problem(response: Response) -> Response {
    let plain = response.status().is_client_error()
        && response
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/plain"));
    if !plain {
        return response;
    }
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .unwrap_or_default();
    let title = status.canonical_reason().unwrap_or("Bad request");
    crate::error::ApiError::new(status, "invalid-request", title)
        .detail(String::from_utf8_lossy(&bytes).into_owned())
        .into_response()
}

impl Service<Request> for Core {
    type Response = Response;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let core = self.clone();
        Box::pin(async move { Ok(core.serve(request).await) })
    }
}

impl<B> Service<axum::http::Request<B>> for HttpApp
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        let request = request.map(Body::new);
        match &self.cors {
            None => self.core.call(request),
            Some(cors) => Box::pin(cors.clone().oneshot(request)),
        }
    }
}
