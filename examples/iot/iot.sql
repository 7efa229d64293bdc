-- The alert path: readings over 80 degrees, keyed by device, as a topic of their own.
CREATE STREAM overheating AS
  SELECT device, site, temperature
  FROM readings
  WHERE temperature > 80
  PARTITION BY device;

-- The history: per-minute averages per device, kept for a week (as the readings are).
CREATE MATERIALIZED VIEW per_minute WITH (retention = INTERVAL '7' DAY) AS
  SELECT device, AVG(temperature) AS mean, MAX(temperature) AS peak, COUNT(*) AS readings
  FROM readings
  GROUP BY device, TUMBLE(_ts, INTERVAL '1' MINUTE);
