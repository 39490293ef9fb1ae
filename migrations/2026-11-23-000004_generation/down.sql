ALTER TABLE credit_transactions DROP CONSTRAINT credit_transactions_job_id_fkey;
ALTER TABLE images DROP CONSTRAINT images_job_id_fkey;
DROP TABLE job_events;
DROP TABLE generation_jobs;
