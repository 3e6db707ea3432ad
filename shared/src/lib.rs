//! Eshtarek's core: domain types, services (business rules), the storage port and its adapters,
//! and the HTTP conventions every function shares (problem documents, JSON extraction).

pub mod access;
pub mod accounts;
pub mod audit;
pub mod auth;
pub mod billing;
pub mod clock;
pub mod context;
pub mod entitlements;
pub mod error;
pub mod hardening;
pub mod http;
pub mod idempotency;
pub mod identity;
pub mod ids;
pub mod invitations;
pub mod jobs;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod mail;
pub mod money;
pub mod notifications;
pub mod openapi;
pub mod plans;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod tenants;
pub mod text;
pub mod time;
pub mod usage;
pub mod webhooks;

pub use context::AppContext;
pub use error::ApiError;
