-- Lifeboat catalog, schema version 2: users, sessions and API tokens.
--
-- Identical on SQLite and PostgreSQL (no binary columns). Conventions as in
-- 0001. Credentials are never stored: passwords as argon2id PHC strings,
-- session and API tokens as the hex SHA-256 of the random token.

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    email          TEXT NOT NULL,
    -- The sign-in identifier: lower-cased email, unique across Lifeboat
    -- because signing in names no account.
    email_key      TEXT NOT NULL UNIQUE,
    display_name   TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    last_login_at  BIGINT,
    disabled       BIGINT NOT NULL,
    UNIQUE (account_id, id)
);
CREATE INDEX users_account ON users(account_id, created_at);

CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,
    token_hash    TEXT NOT NULL UNIQUE,
    account_id    TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    csrf_token    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    revoked_at    BIGINT,
    UNIQUE (account_id, id),
    FOREIGN KEY (account_id, user_id) REFERENCES users(account_id, id) ON DELETE CASCADE
);
CREATE INDEX sessions_user ON sessions(account_id, user_id);

CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    prefix        TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL,
    created_by    TEXT,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT,
    revoked_at    BIGINT,
    UNIQUE (account_id, id)
);
CREATE INDEX api_tokens_account ON api_tokens(account_id, created_at);
