//! Members of a workspace and their roles: listing, changing roles, removing, and
//! transferring ownership.
//!
//! Rules: exactly one Owner per workspace, always (a partial unique index allows at most one;
//! a deferred constraint trigger requires one at every commit). Only the Owner changes
//! roles; promoting someone to Owner is a transfer, and the old Owner becomes Admin in the
//! same transaction. Owners and Admins remove members; nobody removes the Owner. Every
//! change takes the workspace's row lock first (`lock_for_membership_change`), so concurrent
//! changes serialise and re-check the rules against the current roles.

pub mod graphql;
pub mod model;
