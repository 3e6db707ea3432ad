//! Running a function's router under `lambda_http`: the problem fallbacks, and the client
//! address from the API Gateway request context (for rate limits), never from a header.

use axum::extract::Request;
use axum::Router;
use lambda_http::request::RequestContext;

use crate::auth::ClientIp;
use crate::http::finish;
use crate::AppContext;

pub async fn run(ctx: AppContext, router: Router) -> Result<(), lambda_http::Error> {
    let app = finish(router, &ctx).layer(axum::middleware::map_request(client_ip));
    lambda_http::run(app).await
}

async fn client_ip(mut request: Request) -> Request {
    let ip = match request.extensions().get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV2(context)) => context
            .http
            .source_ip
            .as_deref()
            .and_then(|ip| ip.parse().ok()),
        _ => None,
    };
    request.extensions_mut().insert(ClientIp(ip));
    request
}
