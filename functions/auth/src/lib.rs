//! The auth function: users, sessions, tenants and memberships.

use axum::routing::get;
use axum::Router;
use eshtarek_core::http::health;
use eshtarek_core::AppContext;

pub const NAME: &str = "auth";

/// Every route of the auth function, ready to merge into the local server or run under Lambda.
pub fn router(ctx: AppContext) -> Router {
    Router::new()
        .route("/v1/auth/health", get(|state| health(NAME, state)))
        .with_state(ctx)
}
