ALTER TABLE usage_alerts DROP CONSTRAINT usage_alerts_pkey;
ALTER TABLE usage_alerts ADD PRIMARY KEY (id);
