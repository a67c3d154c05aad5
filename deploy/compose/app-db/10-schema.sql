-- The example application database for deploy/compose.yaml (PostgreSQL): the tables that
-- examples/config.yaml names, with a few hundred rows so that `retention plan` has something
-- due, something not yet due and something held (account 4411, see examples/holds.yaml).

CREATE TABLE accounts (
    id                   bigint PRIMARY KEY,
    email                text NOT NULL,
    password_hash        text NOT NULL,
    created_at           timestamptz NOT NULL,
    last_login_at        timestamptz,
    closed_at            timestamptz,
    contract_ended_at    timestamptz,
    erasure_requested_at timestamptz
);

CREATE TABLE support_tickets (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id      bigint NOT NULL REFERENCES accounts (id),
    status          text NOT NULL,
    subject         text NOT NULL,
    created_at      timestamptz NOT NULL,
    requester_email text,
    requester_name  text,
    client_ip       text
);
CREATE INDEX support_tickets_account_id ON support_tickets (account_id);
CREATE INDEX support_tickets_created_at ON support_tickets (created_at);

CREATE TABLE login_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES accounts (id),
    created_at timestamptz NOT NULL,
    ip_address text,
    user_agent text
);
CREATE INDEX login_events_account_id ON login_events (account_id);
CREATE INDEX login_events_created_at ON login_events (created_at);

-- 400 accounts; every fourth one closed between about 24 and 11 months ago.
INSERT INTO accounts (id, email, password_hash, created_at, last_login_at, closed_at,
                      contract_ended_at)
SELECT g,
       'user' || g || '@example.com',
       md5(g::text),
       now() - interval '4 years' + g * interval '1 day',
       now() - (g % 30) * interval '1 day',
       CASE WHEN g % 4 = 0 THEN now() - interval '730 days' + g * interval '1 day' END,
       CASE WHEN g % 4 = 0 THEN now() - interval '730 days' + g * interval '1 day' END
FROM generate_series(1, 400) AS g;

-- The customer in the legal dispute: closed two years ago, so due, but held.
INSERT INTO accounts (id, email, password_hash, created_at, last_login_at, closed_at,
                      contract_ended_at)
VALUES (4411, 'disputed@example.com', md5('4411'), now() - interval '5 years',
        now() - interval '2 years', now() - interval '2 years', now() - interval '2 years');

INSERT INTO support_tickets (account_id, status, subject, created_at, requester_email,
                             requester_name, client_ip)
SELECT a.id,
       CASE WHEN k = 3 THEN 'open' ELSE 'closed' END,
       'Ticket ' || k || ' of account ' || a.id,
       a.created_at + k * interval '30 days',
       a.email,
       'Customer ' || a.id,
       '203.0.113.' || (a.id % 250 + 1)
FROM accounts AS a CROSS JOIN generate_series(1, 3) AS k;

-- Ten logins per account over the last 126 days: the oldest three are past the 90-day rule
-- (30%, under the example's limits.max_fraction of 50%, so a live run is not refused).
INSERT INTO login_events (account_id, created_at, ip_address, user_agent)
SELECT a.id,
       now() - (k * 12 + a.id % 7) * interval '1 day',
       '198.51.100.' || (a.id % 250 + 1),
       'Mozilla/5.0 (example)'
FROM accounts AS a CROSS JOIN generate_series(1, 10) AS k;
