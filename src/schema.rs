//! Diesel table definitions, kept by hand in step with `migrations/`.
//! (`tests/it/catalog.rs` checks the live catalog against the rules the tables must keep.)

diesel::table! {
    users (id) {
        id -> Uuid,
        email -> Text,
        name -> Text,
        password_hash -> Text,
        email_verified_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        active_workspace_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    workspaces (id) {
        id -> Uuid,
        name -> Text,
        created_at -> Timestamptz,
        trial_ends_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
        plan -> Nullable<Text>,
        subscription_status -> Nullable<Text>,
        payment_failed_at -> Nullable<Timestamptz>,
        grace_notice_at -> Nullable<Timestamptz>,
        time_zone -> Text,
        conversation_retention_days -> Nullable<Int4>,
    }
}

diesel::table! {
    memberships (workspace_id, user_id) {
        workspace_id -> Uuid,
        user_id -> Uuid,
        role -> Text,
        joined_at -> Timestamptz,
    }
}

diesel::table! {
    access_tokens (id) {
        id -> Uuid,
        user_id -> Uuid,
        kind -> Text,
        name -> Text,
        token_hash -> Bytea,
        created_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        last_used_at -> Nullable<Timestamptz>,
        expires_at -> Nullable<Timestamptz>,
        read_only -> Bool,
        workspace_ids -> Nullable<Array<Uuid>>,
        user_agent -> Nullable<Text>,
    }
}

diesel::joinable!(memberships -> users (user_id));
diesel::joinable!(memberships -> workspaces (workspace_id));
diesel::joinable!(access_tokens -> users (user_id));

diesel::table! {
    account_notices (id) {
        id -> Uuid,
        user_id -> Nullable<Uuid>,
        email -> Text,
        name -> Text,
        kind -> Text,
        detail -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(account_notices -> users (user_id));

diesel::table! {
    sign_in_networks (user_id, network) {
        user_id -> Uuid,
        network -> Text,
        last_signed_in_at -> Timestamptz,
    }
}

diesel::joinable!(sign_in_networks -> users (user_id));

diesel::table! {
    sign_up_requests (id) {
        id -> Uuid,
        email -> Text,
        name -> Text,
        password_hash -> Text,
        requested_at -> Timestamptz,
        expires_at -> Timestamptz,
        token_hash -> Nullable<Bytea>,
        claimed_at -> Nullable<Timestamptz>,
        sent_at -> Nullable<Timestamptz>,
        link_hashes -> Array<Bytea>,
    }
}

diesel::table! {
    scheduled_rounds (name) {
        name -> Text,
        next_at -> Timestamptz,
        claimed_by -> Nullable<Text>,
    }
}

diesel::table! {
    password_reset_requests (id) {
        id -> Uuid,
        email_lower -> Text,
        requested_at -> Timestamptz,
        processed_at -> Nullable<Timestamptz>,
        account_token_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    invitations (workspace_id, id) {
        id -> Uuid,
        workspace_id -> Uuid,
        email -> Text,
        role -> Text,
        invited_by -> Nullable<Uuid>,
        status -> Text,
        token_hash -> Nullable<Bytea>,
        delivery -> Int4,
        delivered -> Int4,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        responded_at -> Nullable<Timestamptz>,
        link_hashes -> Array<Bytea>,
    }
}

diesel::table! {
    invitation_sends (workspace_id, id) {
        invitation_id -> Uuid,
        workspace_id -> Uuid,
        email_lower -> Text,
        sent_at -> Timestamptz,
        id -> Int8,
    }
}

diesel::table! {
    account_tokens (id) {
        id -> Uuid,
        user_id -> Uuid,
        purpose -> Text,
        token_hash -> Nullable<Bytea>,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        sent_at -> Nullable<Timestamptz>,
        used_at -> Nullable<Timestamptz>,
        new_email -> Nullable<Text>,
        link_hashes -> Array<Bytea>,
    }
}

diesel::table! {
    outbox (id) {
        id -> Int8,
        job -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    resources (workspace_id, id) {
        id -> Uuid,
        workspace_id -> Uuid,
        kind -> Text,
        name -> Text,
        data -> Jsonb,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    usage_events (workspace_id, idempotency_key) {
        workspace_id -> Uuid,
        idempotency_key -> Text,
        metric -> Text,
        quantity -> Int4,
        period_start -> Timestamptz,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    usage_counters (workspace_id, period_start, metric) {
        workspace_id -> Uuid,
        period_start -> Timestamptz,
        metric -> Text,
        total -> Int8,
    }
}

diesel::table! {
    usage_alerts (workspace_id, id) {
        id -> Uuid,
        workspace_id -> Uuid,
        period_start -> Timestamptz,
        metric -> Text,
        threshold -> Int2,
        limit_value -> Int4,
        used -> Int8,
        created_at -> Timestamptz,
        emailed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    service_tokens (id) {
        id -> Uuid,
        name -> Text,
        token_hash -> Bytea,
        created_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    conversations (workspace_id, id) {
        id -> Uuid,
        workspace_id -> Uuid,
        external_id -> Text,
        agent_id -> Nullable<Uuid>,
        contact_id -> Nullable<Uuid>,
        channel -> Text,
        status -> Text,
        started_at -> Timestamptz,
        last_activity_at -> Timestamptz,
        closed_at -> Nullable<Timestamptz>,
        duration_seconds -> Nullable<Int4>,
        message_count -> Int4,
        first_inbound_at -> Nullable<Timestamptz>,
        first_reply_at -> Nullable<Timestamptz>,
        service_token_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
        // Not declared (diesel's tables take 16 columns): `first_response_seconds` and
        // `close_seconds` (migration 000062), kept by a trigger and read only by the
        // analytics statement (src/conversations/analytics.rs).
    }
}

diesel::table! {
    messages (workspace_id, id) {
        id -> Uuid,
        workspace_id -> Uuid,
        conversation_id -> Uuid,
        external_id -> Text,
        direction -> Text,
        body -> Text,
        sent_at -> Timestamptz,
        segments -> Nullable<Int2>,
    }
}

diesel::joinable!(resources -> workspaces (workspace_id));
diesel::joinable!(invitations -> workspaces (workspace_id));
diesel::joinable!(account_tokens -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(
    users,
    workspaces,
    memberships,
    access_tokens,
    account_notices,
    sign_in_networks,
    password_reset_requests,
    sign_up_requests,
    scheduled_rounds,
    invitations,
    invitation_sends,
    account_tokens,
    outbox,
    resources,
    usage_events,
    usage_counters,
    trial_notices,
    billing_accounts,
    billing_operations,
    stripe_events,
    plan_prices,
    invoices,
    payment_methods,
    card_notices,
    audit_events,
    security_events,
    service_tokens,
    usage_alerts,
    conversations,
    messages,
);

diesel::table! {
    trial_notices (workspace_id, notice) {
        workspace_id -> Uuid,
        notice -> Text,
        due_at -> Timestamptz,
        emailed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    billing_accounts (workspace_id) {
        workspace_id -> Uuid,
        stripe_customer_id -> Text,
        subscription_id -> Nullable<Text>,
        subscription_status -> Nullable<Text>,
        current_period_end -> Nullable<Timestamptz>,
        cancel_at_period_end -> Bool,
        updated_at -> Timestamptz,
        current_period_start -> Nullable<Timestamptz>,
        details -> Nullable<Jsonb>,
        phone_numbers_item_id -> Nullable<Text>,
        stripe_state_at -> Nullable<Timestamptz>,
        synced_at -> Nullable<Timestamptz>,
        ended_by_deletion -> Bool,
    }
}

diesel::table! {
    workspace_exports (workspace_id, id) {
        id -> Uuid,
        workspace_id -> Uuid,
        requested_by -> Uuid,
        requested_at -> Timestamptz,
        document -> Nullable<Jsonb>,
        ready_at -> Nullable<Timestamptz>,
        expires_at -> Nullable<Timestamptz>,
        token_hash -> Nullable<Bytea>,
        link_hashes -> Array<Bytea>,
        sent_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    purged_workspaces (id) {
        id -> Uuid,
        deleted_at -> Timestamptz,
        purged_at -> Timestamptz,
        rows_deleted -> Int8,
        stripe_customer_id -> Nullable<Text>,
    }
}

diesel::table! {
    billing_operations (workspace_id, id) {
        id -> Uuid,
        workspace_id -> Uuid,
        kind -> Text,
        intent -> Jsonb,
        client_key -> Nullable<Text>,
        state -> Text,
        stripe_subscription_id -> Nullable<Text>,
        answer -> Nullable<Jsonb>,
        created_at -> Timestamptz,
        leased_until -> Timestamptz,
        settled_at -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(billing_operations -> workspaces (workspace_id));

diesel::table! {
    stripe_events (id) {
        id -> Text,
        #[sql_name = "type"]
        event_type -> Text,
        payload -> Jsonb,
        received_at -> Timestamptz,
        stripe_customer_id -> Nullable<Text>,
    }
}

diesel::table! {
    plan_prices (plan) {
        plan -> Text,
        stripe_price_id -> Text,
        name -> Text,
        monthly_price_cents -> Int4,
        messages -> Int4,
        sms -> Int4,
        agents -> Int4,
        phone_numbers -> Int4,
        synced_at -> Timestamptz,
        phone_number_price_id -> Nullable<Text>,
    }
}

diesel::table! {
    invoices (workspace_id, id) {
        id -> Text,
        workspace_id -> Uuid,
        number -> Nullable<Text>,
        status -> Text,
        amount_due_cents -> Int8,
        currency -> Text,
        created_at -> Timestamptz,
        hosted_invoice_url -> Nullable<Text>,
        synced_at -> Timestamptz,
        invoice_pdf -> Nullable<Text>,
    }
}

diesel::table! {
    payment_methods (workspace_id, id) {
        id -> Text,
        workspace_id -> Uuid,
        brand -> Text,
        last4 -> Text,
        exp_month -> Int4,
        exp_year -> Int4,
        is_default -> Bool,
        created_at -> Timestamptz,
        synced_at -> Timestamptz,
    }
}

diesel::table! {
    card_notices (workspace_id, id) {
        id -> Uuid,
        workspace_id -> Uuid,
        payment_method_id -> Text,
        exp_month -> Int4,
        exp_year -> Int4,
        notice -> Text,
        created_at -> Timestamptz,
        emailed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    audit_events (workspace_id, id) {
        id -> Uuid,
        workspace_id -> Uuid,
        at -> Timestamptz,
        actor_kind -> Text,
        actor_id -> Nullable<Uuid>,
        action -> Text,
        target_kind -> Text,
        target_id -> Text,
        changes -> Jsonb,
        request_id -> Nullable<Uuid>,
        client -> Nullable<Text>,
        seq -> Nullable<Int8>,
    }
}

diesel::table! {
    security_events (id) {
        id -> Uuid,
        user_id -> Uuid,
        at -> Timestamptz,
        action -> Text,
        token_id -> Nullable<Uuid>,
        details -> Jsonb,
        request_id -> Nullable<Uuid>,
        client -> Nullable<Text>,
        user_agent -> Nullable<Text>,
    }
}
