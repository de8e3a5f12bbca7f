/// The shared database's schema: named migrations, applied in order and
/// recorded in `schema_migrations` (`FleetDatabase.migrate`). Never edit
/// one that has shipped; add the next.
public enum FleetSchema {
    /// The notification channel of Lockbox deadline changes (`FleetDatabase.listen`).
    public static let lockboxChannel = "gatehouse_lockbox"

    public static let migrations: [FleetDatabase.Migration] = [
        .init("2026-12-06-lockbox-requests", [
            """
            CREATE TABLE lockbox_request (
                id BIGSERIAL PRIMARY KEY,
                requester TEXT NOT NULL,
                role TEXT NOT NULL,
                scope TEXT NOT NULL,
                duration_s BIGINT NOT NULL,
                reason TEXT NOT NULL,
                ticket TEXT,
                state TEXT NOT NULL,
                needs_customer BOOLEAN NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                deadline DOUBLE PRECISION,
                manager_approver TEXT,
                manager_comment TEXT,
                customer_approver TEXT,
                customer_comment TEXT,
                approved_at DOUBLE PRECISION,
                secret_salt BYTEA,
                secret_hash BYTEA,
                credential_issued_at DOUBLE PRECISION,
                session TEXT,
                activated_at DOUBLE PRECISION,
                expires_at DOUBLE PRECISION,
                ended_at DOUBLE PRECISION,
                ended_by TEXT,
                end_reason TEXT)
            """,
            "CREATE INDEX lockbox_request_session_state ON lockbox_request(session, state)",
            "CREATE INDEX lockbox_request_state_deadline ON lockbox_request(state, deadline)",
            "CREATE INDEX lockbox_request_requester ON lockbox_request(requester, id)",
        ]),
        // Grants know their node: the node whose session redeemed it.
        .init("2026-12-06-lockbox-request-node", [
            "ALTER TABLE lockbox_request ADD COLUMN node TEXT",
        ]),
        // Second-factor failures of every node, so a lockout holds fleet-wide.
        .init("2026-12-06-user-lockout-failures", [
            """
            CREATE TABLE user_lockout_failure (
                user_name TEXT NOT NULL,
                at DOUBLE PRECISION NOT NULL,
                node TEXT NOT NULL)
            """,
            "CREATE INDEX user_lockout_failure_user_at ON user_lockout_failure(user_name, at)",
        ]),
        // The review index of every node's audit log, keyed by (node, seq).
        .init("2026-12-06-audit-index", [
            """
            CREATE TABLE audit_index_progress (
                node TEXT PRIMARY KEY, log_path TEXT NOT NULL, byte_offset BIGINT NOT NULL, last_hash TEXT NOT NULL)
            """,
            """
            CREATE TABLE audit_session (
                node TEXT NOT NULL, id TEXT NOT NULL, user_name TEXT, client TEXT,
                started DOUBLE PRECISION, ended DOUBLE PRECISION, end_reason TEXT,
                start_seq BIGINT, end_seq BIGINT, commands BIGINT NOT NULL DEFAULT 0, denied BIGINT NOT NULL DEFAULT 0,
                log_path TEXT NOT NULL,
                PRIMARY KEY (node, id))
            """,
            "CREATE INDEX audit_session_user_started ON audit_session(user_name, started)",
            """
            CREATE TABLE audit_command (
                node TEXT NOT NULL, seq BIGINT NOT NULL, session TEXT, user_name TEXT, time DOUBLE PRECISION NOT NULL,
                cmdlet TEXT, line TEXT, decision TEXT NOT NULL, role TEXT, reason TEXT, stage TEXT, scope TEXT,
                request_id BIGINT, argv TEXT, parameters TEXT, exit_status BIGINT, duration_ms BIGINT,
                stdout_bytes BIGINT, stderr_bytes BIGINT, finished_seq BIGINT, log_path TEXT NOT NULL,
                PRIMARY KEY (node, seq))
            """,
            "CREATE INDEX audit_command_user_time ON audit_command(user_name, time)",
            "CREATE INDEX audit_command_cmdlet_time ON audit_command(lower(cmdlet), time)",
            "CREATE INDEX audit_command_session ON audit_command(node, session, seq)",
            """
            CREATE TABLE audit_parameter (
                node TEXT NOT NULL, command_seq BIGINT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL)
            """,
            "CREATE INDEX audit_parameter_name_value ON audit_parameter(lower(name), value)",
        ]),
        // Every node's Lockbox sweeper sleeps until the earliest deadline; a
        // change on another node that sets an earlier one must wake it. The
        // trigger notifies in the changing transaction (delivered at COMMIT,
        // once per transaction), so no node's code can forget it.
        .init("2026-12-06-lockbox-deadline-notify", [
            """
            CREATE FUNCTION gatehouse_lockbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_notify('\(lockboxChannel)', '');
                RETURN NULL;
            END $$
            """,
            """
            CREATE TRIGGER lockbox_request_deadline AFTER INSERT OR UPDATE OF deadline ON lockbox_request
            FOR EACH STATEMENT EXECUTE FUNCTION gatehouse_lockbox_notify()
            """,
        ]),
    ]
}
