//! Diesel table definitions, shared by the PostgreSQL and SQLite migrations.

diesel::table! {
    workspaces (id) {
        id -> BigInt,
        slug -> Text,
        name -> Text,
        created_at -> Timestamp,
        accept_redirect_url -> Nullable<Text>,
    }
}

diesel::table! {
    accounts (id) {
        id -> BigInt,
        email -> Text,
        activated_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> BigInt,
        account_id -> BigInt,
        token_hash -> Binary,
        created_at -> Timestamp,
        workspace_id -> Nullable<BigInt>,
        name -> Text,
        prefix -> Text,
        expires_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
        parent_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    groups (id) {
        id -> BigInt,
        workspace_id -> BigInt,
        name -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    imports (id) {
        id -> BigInt,
        workspace_id -> BigInt,
        created_by -> BigInt,
        file_name -> Text,
        file_size -> BigInt,
        idempotency_key -> Nullable<Text>,
        status -> Text,
        error -> Nullable<Text>,
        warnings -> Nullable<Text>,
        rows_total -> BigInt,
        rows_processed -> BigInt,
        rows_invited -> BigInt,
        rows_skipped -> BigInt,
        rows_invalid -> BigInt,
        checkpoint_offset -> BigInt,
        checkpoint_row -> BigInt,
        lease_until -> Nullable<Timestamp>,
        requeued_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        started_at -> Nullable<Timestamp>,
        finished_at -> Nullable<Timestamp>,
        claim -> Nullable<BigInt>,
        dry_run -> Bool,
        upload_deleted_at -> Nullable<Timestamp>,
        worker_id -> Nullable<BigInt>,
        cancelled_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    import_chunks (import_id, seq) {
        import_id -> BigInt,
        seq -> Integer,
        data -> Binary,
    }
}

diesel::table! {
    members (id) {
        id -> BigInt,
        workspace_id -> BigInt,
        account_id -> BigInt,
        role -> Text,
        status -> Text,
        metadata -> Nullable<Text>,
        import_id -> Nullable<BigInt>,
        invited_by -> Nullable<BigInt>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        first_name -> Nullable<Text>,
        last_name -> Nullable<Text>,
        last_support_action_at -> Nullable<Timestamp>,
        last_reminded_at -> Nullable<Timestamp>,
        reminder_count -> Integer,
        search_text -> Text,
        suppressed_reason -> Nullable<Text>,
        suppressed_at -> Nullable<Timestamp>,
        address_changed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    member_groups (member_id, group_id) {
        member_id -> BigInt,
        group_id -> BigInt,
    }
}

diesel::table! {
    invitations (id) {
        id -> BigInt,
        member_id -> BigInt,
        accepted_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        opened_at -> Nullable<Timestamp>,
        cause -> Nullable<Text>,
    }
}

diesel::table! {
    invitation_links (token_hash) {
        token_hash -> Binary,
        invitation_id -> BigInt,
        expires_at -> Timestamp,
        created_at -> Timestamp,
    }
}

diesel::table! {
    acceptance_handovers (token_hash) {
        token_hash -> Binary,
        member_id -> BigInt,
        accepted_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    audit_events (id) {
        id -> BigInt,
        workspace_id -> BigInt,
        actor_account_id -> Nullable<BigInt>,
        action -> Text,
        target -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    deliveries (id) {
        id -> BigInt,
        invitation_id -> BigInt,
        member_id -> BigInt,
        import_id -> Nullable<BigInt>,
        state -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        first_attempt_at -> Nullable<Timestamp>,
        lease_until -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        last_reply -> Nullable<Text>,
        sent_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        claim -> Nullable<BigInt>,
        message_id -> Nullable<Text>,
        worker_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    bounce_reports (id) {
        id -> BigInt,
        digest -> Text,
        delivery_id -> BigInt,
        kind -> Text,
        status -> Nullable<Text>,
        diagnostic -> Nullable<Text>,
        received_at -> Timestamp,
    }
}

diesel::table! {
    delivery_attempts (id) {
        id -> BigInt,
        delivery_id -> BigInt,
        at -> Timestamp,
        reply -> Text,
        temporary -> Bool,
    }
}

diesel::table! {
    workers (id) {
        id -> BigInt,
        name -> Text,
        started_at -> Timestamp,
        heartbeat_at -> Timestamp,
    }
}

diesel::table! {
    import_rows (import_id, row_number) {
        import_id -> BigInt,
        row_number -> BigInt,
        email -> Nullable<Text>,
        outcome -> Text,
        reason -> Nullable<Text>,
        member_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    import_email_tallies (import_id, shard) {
        import_id -> BigInt,
        shard -> SmallInt,
        unsent -> BigInt,
        sent -> BigInt,
        failed -> BigInt,
        bounced -> BigInt,
        complained -> BigInt,
    }
}

diesel::table! {
    workspace_daily_emails (workspace_id, day) {
        workspace_id -> BigInt,
        day -> Date,
        sent -> BigInt,
    }
}

diesel::table! {
    data_upgrades (name) {
        name -> Text,
    }
}

diesel::joinable!(api_tokens -> accounts (account_id));
diesel::joinable!(api_tokens -> workspaces (workspace_id));
diesel::joinable!(groups -> workspaces (workspace_id));
diesel::table! {
    webhook_endpoints (id) {
        id -> BigInt,
        workspace_id -> BigInt,
        url -> Text,
        description -> Text,
        events -> Text,
        secret -> Text,
        created_at -> Timestamp,
        disabled_at -> Nullable<Timestamp>,
        disabled_reason -> Nullable<Text>,
        failing_since -> Nullable<Timestamp>,
    }
}

diesel::table! {
    webhook_messages (id) {
        id -> BigInt,
        workspace_id -> BigInt,
        msg_id -> Text,
        event_type -> Text,
        payload -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> BigInt,
        message_id -> BigInt,
        endpoint_id -> BigInt,
        state -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        first_attempt_at -> Nullable<Timestamp>,
        claim -> Nullable<BigInt>,
        lease_until -> Nullable<Timestamp>,
        last_status -> Nullable<Text>,
        delivered_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    webhook_attempts (id) {
        id -> BigInt,
        delivery_id -> BigInt,
        endpoint_id -> BigInt,
        at -> Timestamp,
        http_status -> Nullable<Integer>,
        error -> Nullable<Text>,
        latency_ms -> BigInt,
        response -> Nullable<Text>,
    }
}

diesel::joinable!(imports -> workspaces (workspace_id));
diesel::joinable!(import_chunks -> imports (import_id));
diesel::joinable!(members -> workspaces (workspace_id));
diesel::joinable!(members -> accounts (account_id));
diesel::joinable!(member_groups -> members (member_id));
diesel::joinable!(member_groups -> groups (group_id));
diesel::joinable!(invitations -> members (member_id));
diesel::joinable!(invitation_links -> invitations (invitation_id));
diesel::joinable!(acceptance_handovers -> members (member_id));
diesel::joinable!(deliveries -> invitations (invitation_id));
diesel::joinable!(deliveries -> members (member_id));
diesel::joinable!(delivery_attempts -> deliveries (delivery_id));
diesel::joinable!(bounce_reports -> deliveries (delivery_id));
diesel::joinable!(import_rows -> imports (import_id));
diesel::joinable!(import_email_tallies -> imports (import_id));

diesel::joinable!(audit_events -> workspaces (workspace_id));
diesel::joinable!(audit_events -> accounts (actor_account_id));
diesel::joinable!(workspace_daily_emails -> workspaces (workspace_id));

diesel::joinable!(webhook_endpoints -> workspaces (workspace_id));
diesel::joinable!(webhook_messages -> workspaces (workspace_id));
diesel::joinable!(webhook_deliveries -> webhook_messages (message_id));
diesel::joinable!(webhook_deliveries -> webhook_endpoints (endpoint_id));
diesel::joinable!(webhook_attempts -> webhook_deliveries (delivery_id));

diesel::allow_tables_to_appear_in_same_query!(
    audit_events,
    data_upgrades,
    workspaces,
    accounts,
    api_tokens,
    groups,
    imports,
    import_chunks,
    members,
    member_groups,
    invitations,
    invitation_links,
    acceptance_handovers,
    deliveries,
    delivery_attempts,
    bounce_reports,
    import_rows,
    import_email_tallies,
    workspace_daily_emails,
    workers,
    webhook_endpoints,
    webhook_messages,
    webhook_deliveries,
    webhook_attempts,
);
