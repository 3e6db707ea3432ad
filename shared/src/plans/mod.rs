//! Plans: the catalog (plans, immutable versions, terms; `catalog`), what platform admins do
//! to it (`admin`), and the limit policies versions snapshot (`policies`).

mod admin;
mod catalog;
pub mod features;
pub mod policies;
pub mod rates;

pub use admin::{create, delete, patch, set_active, CreatePlanRequest, PatchPlanRequest};
pub use catalog::{
    get, list, plan_key, plan_subs_index, plan_subs_version_prefix, terms_of, version, version_key,
    versions, BillingCycle, PlanVersionView, PlanView, VersionTerms,
};
