-- Authentication of people and the audit log, MySQL/MariaDB flavour. Times are BIGINT
-- microseconds since the Unix epoch (UTC). Session ids and token hashes are SHA-256 hex of the
-- secret the client holds: a leaked database does not yield usable sessions or tokens.
-- Foreign keys are table constraints because MySQL ignores inline REFERENCES.

CREATE TABLE sessions (
    id            VARCHAR(64) NOT NULL PRIMARY KEY,
    user_id       BIGINT NOT NULL,
    csrf_token    VARCHAR(255) NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE api_tokens (
    id            BIGINT AUTO_INCREMENT PRIMARY KEY,
    user_id       BIGINT NOT NULL,
    name          VARCHAR(255) NOT NULL,
    token_hash    VARCHAR(64)  NOT NULL UNIQUE,
    scope         VARCHAR(16)  NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    revoked_at    BIGINT,
    last_used_at  BIGINT,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE audit_log (
    id       BIGINT AUTO_INCREMENT PRIMARY KEY,
    at       BIGINT NOT NULL,
    user_id  BIGINT,
    actor    VARCHAR(255) NOT NULL,
    action   VARCHAR(64)  NOT NULL,
    target   VARCHAR(255) NOT NULL,
    detail   TEXT   NOT NULL,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
