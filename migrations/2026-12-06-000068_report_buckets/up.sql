-- The analytics report's buckets, as functions: PL/pgSQL keeps each statement's plan for
-- the session, so a report no longer plans them on every call (the report's statement
-- took 2.1 ms to plan of its 17, bench/run's busy workspace).

-- The starts of the buckets (`field`: day, week or month, PostgreSQL's `date_trunc`) of
-- the range [since, until) in time zone `tz`, ascending: each the first instant whose local
-- time is the bucket's local midnight. Where the clocks go back over midnight, PostgreSQL
-- reads a local time as its second occurrence, so the half hour and hour before are tried.
CREATE FUNCTION report_buckets(since timestamptz, until timestamptz, tz text, field text)
RETURNS timestamptz[]
LANGUAGE plpgsql STABLE AS
$$
BEGIN
    RETURN (
        SELECT array_agg(s.start ORDER BY g)
        FROM generate_series(date_trunc(field, since AT TIME ZONE tz),
                             (until AT TIME ZONE tz) - interval '1 microsecond',
                             ('1 ' || field)::interval) g,
             LATERAL (SELECT min(t) AS start
                      FROM unnest(ARRAY[g AT TIME ZONE tz,
                                        (g AT TIME ZONE tz) - interval '30 minutes',
                                        (g AT TIME ZONE tz) - interval '1 hour']) t
                      WHERE t AT TIME ZONE tz >= g) s);
END
$$;
REVOKE ALL ON FUNCTION report_buckets(timestamptz, timestamptz, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION report_buckets(timestamptz, timestamptz, text, text) TO linkai_app;

-- For each UTC day of [since, until) and each bucket of `starts` it overlaps (one or two;
-- three where a 23-hour day fits inside it), the day's hours that start in the range and
-- in the bucket, as a mask (bit h: hour h, UTC), as contact_days keeps them (000066). An
-- hour belongs to the bucket it starts in, as in the hourly counts.
CREATE FUNCTION report_day_masks(starts timestamptz[], since timestamptz, until timestamptz)
RETURNS TABLE (day date, n integer, mask integer)
LANGUAGE plpgsql STABLE ROWS 200 AS
$$
BEGIN
    RETURN QUERY
    SELECT s.day, p.n, ((1 << h.last) - 1) & ~((1 << h.first) - 1)
    FROM generate_series(0, ((until - interval '1 microsecond') AT TIME ZONE 'UTC')::date
                            - (since AT TIME ZONE 'UTC')::date) AS k (k),
         LATERAL (SELECT (since AT TIME ZONE 'UTC')::date + k.k AS day) s,
         LATERAL (SELECT s.day::timestamp AT TIME ZONE 'UTC' AS at) u,
         LATERAL (SELECT width_bucket(u.at, starts) AS first,
                         width_bucket(u.at + interval '23 hours', starts) AS last) o,
         LATERAL unnest(ARRAY[o.first, o.first + 1, o.first + 2]) AS p (n),
         LATERAL (SELECT ceil(date_part('epoch', greatest(starts[p.n], u.at, since) - u.at)
                              / 3600)::int AS first,
                         ceil(date_part('epoch', least(COALESCE(starts[p.n + 1], until),
                                                       u.at + interval '24 hours', until) - u.at)
                              / 3600)::int AS last) h
    WHERE p.n BETWEEN greatest(o.first, 1) AND least(o.last, cardinality(starts))
      AND h.last > h.first;
END
$$;
REVOKE ALL ON FUNCTION report_day_masks(timestamptz[], timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION report_day_masks(timestamptz[], timestamptz, timestamptz) TO linkai_app;
