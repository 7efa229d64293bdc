-- The current record of each patient: the latest change per patient id; a tombstone (an
-- erased record) removes it.
CREATE TABLE patients FROM TOPIC 'patient-records';

-- Occupancy per ward, kept as patients are admitted, moved and discharged.
CREATE MATERIALIZED VIEW per_ward AS
  SELECT ward, COUNT(*) AS patients
  FROM patients
  WHERE status = 'admitted'
  GROUP BY ward;
