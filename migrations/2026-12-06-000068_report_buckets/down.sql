DROP FUNCTION report_day_masks(timestamptz[], timestamptz, timestamptz);
DROP FUNCTION report_buckets(timestamptz, timestamptz, text, text);
