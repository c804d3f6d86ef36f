-- Users. The id is a UUID v7 made by the server (time-ordered, so inserts
-- land at the right edge of the primary key and keyset pages follow creation
-- order). version is the row version behind strong ETags; every update bumps
-- it. Emails are stored lower-cased, which makes the unique index
-- case-insensitive without citext.
CREATE TABLE users (
    id uuid PRIMARY KEY,
    email text NOT NULL,
    name text NOT NULL,
    version bigint NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_email_lower CHECK (email = lower(email)),
    CONSTRAINT users_email_len CHECK (char_length(email) BETWEEN 3 AND 254),
    CONSTRAINT users_name_len CHECK (char_length(name) BETWEEN 1 AND 100)
);
