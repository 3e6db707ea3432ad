//! Subscriptions, one file per use case: `record` (the stored subscription, its keys and the
//! commit-and-reload step), `subscribe`, `change`, `cancel`, `pay`, `renewal` (renew, dunning,
//! recover), `expiry` and `admin` (migrate, override). Every status change goes through
//! `state::Status::apply`; every write of a subscription is conditional on its revision, so
//! two concurrent changes cannot both win.

mod admin;
mod cancel;
mod change;
mod coupon;
mod credits;
mod expiry;
mod grant;
mod metered;
mod pay;
mod record;
mod renewal;
mod seats;
mod subscribe;
mod top_up;
mod upcoming;

pub use admin::{
    admin_get, admin_override, migrate, MigrateRequest, MigrateResult, OverrideRequest,
};
pub use cancel::{cancel, resume, CancelRequest};
pub use change::{
    cancel_scheduled_change, change, preview, ChangePreview, ChangeRequest, Effective,
};
pub use coupon::{apply_coupon, ApplyCouponRequest};
pub use credits::{adjust_credit, admin_credits, credits, AdjustCreditRequest, CreditsView};
pub use expiry::{expire, expiry_due, Expiry};
pub use grant::{grant, GrantRequest};
pub use metered::recurring_price;
pub use pay::{pay_invoice, PayRequest};
pub use record::load_version as terms_of_version;
pub use record::{
    live, load, renewal_partitions, renewal_shard, DiscountView, ScheduledChange, Sub,
    SubscriptionView, RENEWAL_SHARDS,
};
pub use renewal::{renew, Renewal};
pub use seats::{seats_added, set_seats, SetSeatsRequest};
pub use subscribe::{create, current, get, list, CreateSubscriptionRequest, SubscriptionResult};
pub use top_up::{buy_top_up, TopUpRequest, TopUpResult};
pub use upcoming::{admin_upcoming, upcoming, UpcomingInvoiceView};
