//! Invitations: the only way into a tenant besides creating one. A tenant admin invites an
//! email; nothing joins until the owner of that address accepts — signed in to a verified
//! account with that email, or through the link mailed to it (which proves the address). The
//! answer to an invitation never says whether the email has an account.
//!
//! Items: the invitation is the tenant's (`TENANT#<id>#INVITES` / `INV#<id>`, the truth),
//! indexed for "my invitations" on GSI1 under `IDX#INVITEE#<email>`, so inviting and closing
//! write the tenant's items only, with its credentials (as memberships are). One invitation per (tenant, email): its
//! id is derived from both, so inviting again replaces it (a new link, the old one dead).
//!
//! One file per actor: `record` (the stored invitation, closing it, joining through it),
//! `send` (the tenant admin's side), `respond` (the signed-in invitee's), `link` (the mailed
//! link's).

mod link;
mod record;
mod respond;
mod send;

pub use link::{accept_link, mark_verified, AcceptLinkRequest};
pub use record::InvitationView;
pub use respond::{accept, decline, pending_for, PendingInvitation};
pub use send::{invite, list, revoke, withdraw_sent_by, InviteRequest, InviteResponse};
