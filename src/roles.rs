//! Roles and the permission table of DESIGN.md, as pure functions.
//!
//! Field-level rules ("this mutation needs at least ADMIN") are declared on each GraphQL
//! field with `require_role!` (see `graphql::guard`). The rules here are the ones that also
//! depend on the rows involved: who may remove whom, who may invite as Owner, who may delete
//! an item. The table test at the bottom mirrors DESIGN.md's role table line by line.

/// A member's role in a workspace, from most to least powerful (GraphQL's `Role` is its
/// mirror, `graphql::guard::GqlRole`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Exactly one per workspace: everything, including roles, billing and deletion.
    Owner,
    /// Manages members, invitations, billing and every item; cannot change roles or delete the workspace.
    Admin,
    /// Creates and edits items; deletes only the items they created.
    Member,
    /// Reads agents, conversations, usage and analytics.
    Viewer,
}

impl Role {
    fn rank(self) -> u8 {
        match self {
            Role::Owner => 3,
            Role::Admin => 2,
            Role::Member => 1,
            Role::Viewer => 0,
        }
    }

    /// Whether this role includes everything `required` may do.
    pub fn at_least(self, required: Role) -> bool {
        self.rank() >= required.rank()
    }

    pub fn as_db(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }

    /// For people: "Owner", "Admin", ...
    pub fn title(self) -> &'static str {
        match self {
            Role::Owner => "Owner",
            Role::Admin => "Admin",
            Role::Member => "Member",
            Role::Viewer => "Viewer",
        }
    }

    pub fn from_db(value: &str) -> Option<Role> {
        match value {
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

/// What someone may want to do inside a workspace (reading needs only membership). Each action has the least role that may
/// do it ([`Action::least_role`]): the one place roles are stated. The GraphQL guard and
/// the `@requireRole` directive of a field are both derived from its action, and the
/// domain functions check the same actions against the role they read under the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create or edit resources.
    CreateOrEdit,
    /// Delete an item; `own` says whether the actor created it.
    DeleteItem {
        own: bool,
    },
    /// Invite, resend, revoke, remove members.
    ManageMembers,
    ChangeRoles,
    TransferOwnership,
    /// Read and change the plan, cards, details and invoices.
    ManageBilling,
    ReadAuditLog,
    /// Rename the workspace, change its settings (its time zone).
    ChangeSettings,
    DeleteWorkspace,
    /// Ask for an export of all the workspace's data.
    ExportWorkspace,
    Leave,
}

impl Action {
    /// The least role that may do it (DESIGN.md's role table).
    pub const fn least_role(self) -> Role {
        match self {
            Action::Leave => Role::Viewer,
            Action::CreateOrEdit | Action::DeleteItem { own: true } => Role::Member,
            Action::DeleteItem { own: false }
            | Action::ManageMembers
            | Action::ManageBilling
            | Action::ReadAuditLog
            | Action::ChangeSettings => Role::Admin,
            Action::ChangeRoles
            | Action::TransferOwnership
            | Action::DeleteWorkspace
            | Action::ExportWorkspace => Role::Owner,
        }
    }
}

/// The role table of DESIGN.md: the action's least role or higher, except that the Owner
/// cannot leave (they transfer ownership or delete the workspace first).
pub fn allows(role: Role, action: Action) -> bool {
    match action {
        Action::Leave => role != Role::Owner,
        _ => role.at_least(action.least_role()),
    }
}

/// Whether `actor` may remove a member whose role is `target`: Owners and Admins remove
/// members, nobody removes the Owner.
pub fn may_remove(actor: Role, target: Role) -> bool {
    allows(actor, Action::ManageMembers) && target != Role::Owner
}

/// Whether `actor` may invite someone with `role`: only the Owner hands ownership over.
pub fn may_invite_as(actor: Role, role: Role) -> bool {
    allows(actor, Action::ManageMembers) && (role != Role::Owner || actor == Role::Owner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Role::*;

    #[test]
    fn role_table_matches_design() {
        // Role, create/edit, delete any, delete own, members, roles, billing, delete workspace
        let table = [
            (Owner, true, true, true, true, true, true, true),
            (Admin, true, true, true, true, false, true, false),
            (Member, true, false, true, false, false, false, false),
            (Viewer, false, false, false, false, false, false, false),
        ];
        for (role, edit, delete_any, delete_own, members, roles, billing, delete_ws) in table {
            assert_eq!(allows(role, Action::CreateOrEdit), edit, "{role:?} edit");
            let delete_other = Action::DeleteItem { own: false };
            assert_eq!(allows(role, delete_other), delete_any, "{role:?} delete");
            let delete_own_item = Action::DeleteItem { own: true };
            assert_eq!(allows(role, delete_own_item), delete_own, "{role:?} own");
            assert_eq!(allows(role, Action::ManageMembers), members, "{role:?}");
            assert_eq!(allows(role, Action::ChangeRoles), roles, "{role:?} roles");
            assert_eq!(allows(role, Action::ManageBilling), billing, "{role:?}");
            assert_eq!(allows(role, Action::DeleteWorkspace), delete_ws, "{role:?}");
            assert_eq!(allows(role, Action::ChangeSettings), members, "{role:?}");
            assert_eq!(allows(role, Action::ReadAuditLog), members, "{role:?} log");
            assert_eq!(
                allows(role, Action::TransferOwnership),
                delete_ws,
                "{role:?}"
            );
            assert_eq!(allows(role, Action::Leave), role != Owner, "{role:?} leave");
        }
    }

    #[test]
    fn nobody_removes_the_owner() {
        for actor in [Owner, Admin, Member, Viewer] {
            assert!(!may_remove(actor, Owner));
        }
        assert!(may_remove(Owner, Admin));
        assert!(may_remove(Admin, Admin));
        assert!(may_remove(Admin, Viewer));
        assert!(!may_remove(Member, Viewer));
    }

    #[test]
    fn only_the_owner_invites_an_owner() {
        assert!(may_invite_as(Owner, Owner));
        assert!(!may_invite_as(Admin, Owner));
        assert!(may_invite_as(Admin, Admin));
        assert!(!may_invite_as(Member, Viewer));
    }

    #[test]
    fn roles_round_trip_through_the_database_names() {
        for role in [Owner, Admin, Member, Viewer] {
            assert_eq!(Role::from_db(role.as_db()), Some(role));
        }
        assert_eq!(Role::from_db("root"), None);
    }
}
