-- The first statement of every write batch the server sends (src/db/pool.c).
--
-- A batch is pipelined behind others on its connection, so PostgreSQL may
-- start it well after it was sent. If its request's deadline has passed by
-- then, the client has already been told the request failed: the batch must
-- do nothing, so the guard raises and the implicit transaction rolls back.
-- Otherwise the batch's statements get exactly the time that is left
-- (statement_timeout, local to the batch's transaction), and optionally a
-- lock_timeout.
--
-- deadline_us is the deadline in PostgreSQL's clock (microseconds since the
-- Unix epoch): the server measures the offset between its clock and this
-- one with every heartbeat. SQLSTATE 57A01 is ours, so the server can tell
-- "too late to start" from a cancel (57014).
CREATE FUNCTION api_batch_begin(deadline_us bigint, lock_timeout_ms integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    left_ms bigint := (deadline_us - (extract(epoch FROM clock_timestamp()) * 1000000)::bigint) / 1000;
BEGIN
    IF left_ms <= 0 THEN
        RAISE EXCEPTION 'the request''s deadline passed before this batch started'
            USING ERRCODE = '57A01';
    END IF;
    PERFORM set_config('statement_timeout', least(left_ms, 2147483647)::text, true);
    IF lock_timeout_ms > 0 THEN
        PERFORM set_config('lock_timeout', lock_timeout_ms::text, true);
    END IF;
END
$$;
