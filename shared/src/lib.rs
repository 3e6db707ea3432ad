//! Eshtarek's core: domain types, services (business rules), the storage port and its adapters,
//! and the HTTP conventions every function shares (problem documents, JSON extraction).

pub mod clock;
pub mod context;
pub mod error;
pub mod http;
pub mod store;
pub mod telemetry;

pub use context::AppContext;
pub use error::ApiError;
