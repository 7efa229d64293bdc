-- Balances: a fold over every payment, kept exactly once (event sourcing), read by key (CQRS).
CREATE MATERIALIZED VIEW balances AS
  SELECT account, SUM(amount) AS balance, COUNT(*) AS payments
  FROM payments
  GROUP BY account;

-- Fraud: three withdrawals or more by one account within 60 seconds raise one alert.
CREATE STREAM fraud_alerts AS
  SELECT account, COUNT(*) AS withdrawals, SUM(amount) AS total
  FROM payments WINDOW SLIDING (SIZE 60 SECONDS)
  WHERE amount < 0
  GROUP BY account
  HAVING COUNT(*) >= 3;
