//! Subscriptions and billing: periods, the state machine, proration, payment methods, the mock
//! payment gateway, invoices, and the renewal service the scheduled job calls.

pub mod charges;
pub mod coupons;
pub mod discount;
pub mod events;
pub mod gateway;
pub mod grants;
pub mod invoices;
pub mod overview;
pub mod payment_methods;
pub mod period;
pub mod pricing;
pub mod proration;
pub mod settings;
pub mod state;
pub mod subscriptions;
pub mod trials;
