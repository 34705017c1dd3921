//! What every resolver can reach for the current request: the database handle, the caller
//! and the caller's memberships, read once per request.

use async_graphql::{Context, ID};
use uuid::Uuid;

use crate::auth::Caller;
use crate::db::Db;
use crate::error::{ApiError, ApiResult};
use crate::workspaces::loader::{CallerMembership, Memberships};

pub struct RequestContext {
    pub db: Db,
    pub caller: Option<Caller>,
    /// The service whose token the request came with (the agent runtime).
    pub service: Option<crate::auth::service_tokens::Service>,
    /// Stripe, when configured: shared, since every request and socket holds its own
    /// context (inline, the client was over half of one).
    pub stripe: Option<std::sync::Arc<crate::billing::stripe::StripeApi>>,
    /// The server's password hasher, shared by its requests (a clone of the server's: a
    /// new one per request would cost a semaphore and a read of the CPU quota each time).
    pub passwords: crate::auth::password::Passwords,
    /// The client's address: the peer's, or the one a trusted proxy forwarded.
    pub client: Option<std::net::IpAddr>,
    /// The request's `User-Agent`, printable and at most 256 characters.
    pub user_agent: Option<String>,
    /// This request's id, carried by the audit events it writes: the `X-Request-Id` in
    /// scope (src/http/request_id.rs), read when the first event is written.
    request_id: std::sync::OnceLock<Uuid>,
    /// A resource kind whose application-level workspace filter is switched off, to prove
    /// row-level security alone keeps tenants apart (tests only: the `rls-proof` feature).
    #[cfg(feature = "rls-proof")]
    pub unfiltered_kind: Option<String>,
    memberships: Memberships,
}

impl RequestContext {
    pub fn new(
        db: Db,
        caller: Option<Caller>,
        service: Option<crate::auth::service_tokens::Service>,
        passwords: crate::auth::password::Passwords,
    ) -> Self {
        let memberships = Memberships::new(
            db.clone(),
            caller.as_ref().map(|c| c.user_id),
            caller.as_ref().and_then(|c| c.workspaces.clone()),
        );
        Self {
            db,
            caller,
            service,
            stripe: None,
            passwords,
            client: None,
            user_agent: None,
            request_id: std::sync::OnceLock::new(),
            #[cfg(feature = "rls-proof")]
            unfiltered_kind: None,
            memberships,
        }
    }

    /// The caller's membership in a live workspace, loaded at most once per request however
    /// many fields ask, and batched with other workspaces asked for at the same time.
    pub async fn membership(&self, workspace_id: Uuid) -> ApiResult<Option<CallerMembership>> {
        self.memberships.get(workspace_id).await
    }

    /// Reads the caller's membership in `workspace_id` again at its next use: a
    /// subscription's context lives as long as its socket, and each event is answered with
    /// the role the caller has when it is delivered (src/live/graphql.rs).
    pub fn forget_membership(&self, workspace_id: Uuid) {
        self.memberships.forget(workspace_id);
    }

    /// Whether resource queries of `kind` add their own `workspace_id` condition.
    pub fn tenant_filter(&self, kind: &str) -> bool {
        #[cfg(feature = "rls-proof")]
        if self.unfiltered_kind.as_deref() == Some(kind) {
            return false;
        }
        let _ = kind;
        true
    }

    pub fn caller(&self) -> ApiResult<&Caller> {
        self.caller.as_ref().ok_or_else(ApiError::unauthenticated)
    }

    /// This request's id (the same for every event it writes): its `X-Request-Id`, or a new
    /// one where no request is in scope.
    pub fn request_id(&self) -> Uuid {
        *self.request_id.get_or_init(|| {
            linkai_jobs::request::current().map_or_else(Uuid::new_v4, |origin| origin.request_id)
        })
    }

    /// Where this request came from, for the security events it writes.
    pub fn origin(&self) -> crate::auth::security::Origin {
        crate::auth::security::Origin {
            request_id: Some(self.request_id()),
            client: self.client,
            user_agent: self.user_agent.clone(),
        }
    }

    /// A person acting through a link sent to them (declining an invitation, signing up
    /// with one), signed in or not: the caller if any.
    pub fn link_holder_trail(&self) -> crate::audit::Trail {
        crate::audit::Trail {
            kind: crate::audit::PrincipalKind::User,
            actor_id: self.caller.as_ref().map(|caller| caller.user_id),
            request_id: Some(self.request_id()),
            client: self.client,
        }
    }

    /// Who acts in this request, for the audit events it writes: the signed-in person (a
    /// session or their access token), or else the service holding a service token.
    pub fn trail(&self) -> ApiResult<crate::audit::Trail> {
        use crate::audit::PrincipalKind;
        let (kind, actor_id) = match (&self.caller, self.service.is_some()) {
            (Some(caller), _) if caller.session => (PrincipalKind::User, Some(caller.user_id)),
            (Some(caller), _) => (PrincipalKind::AccessToken, Some(caller.user_id)),
            (None, true) => (PrincipalKind::Service, None),
            (None, false) => return Err(ApiError::unauthenticated()),
        };
        Ok(crate::audit::Trail {
            kind,
            actor_id,
            request_id: Some(self.request_id()),
            client: self.client,
        })
    }
}

/// The request's context; `serve` always puts one in, so a missing one is a wiring bug.
pub fn request<'a>(ctx: &Context<'a>) -> &'a RequestContext {
    ctx.data_unchecked::<RequestContext>()
}

/// Parses a GraphQL `ID` holding one of our UUIDs.
pub fn parse_id(id: &ID) -> ApiResult<Uuid> {
    Uuid::parse_str(id.as_str())
        .map_err(|_| ApiError::bad_input(format!("`{}` is not a valid id.", id.as_str())))
}
