//! Authentication and authorization: passwords, tokens, sessions, the `Caller` extractor and
//! the role rules.

pub mod caller;
#[cfg(feature = "dynamodb")]
pub mod key_sources;
pub mod keys;
pub mod password;
pub mod ratelimit;
pub mod refresh;
pub mod service;
pub mod sessions;
pub mod tokens;
pub mod verification;

use serde::{Deserialize, Serialize};

pub use caller::{Caller, ClientIp, MaybeCaller};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, platform-wide.
    PlatformAdmin,
    /// Manages one tenant.
    TenantAdmin,
    /// Reads its tenant's data.
    TenantUser,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::PlatformAdmin => "platform_admin",
            Role::TenantAdmin => "tenant_admin",
            Role::TenantUser => "tenant_user",
        }
    }

    /// A membership role (platform_admin is never a tenant membership).
    pub fn parse_member_role(text: &str) -> Option<Self> {
        match text {
            "tenant_admin" => Some(Role::TenantAdmin),
            "tenant_user" => Some(Role::TenantUser),
            _ => None,
        }
    }
}
