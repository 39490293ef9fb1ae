ALTER TABLE generation_jobs DROP CONSTRAINT generation_jobs_thread_id_fkey;
DROP TABLE feedback;
DROP TABLE invite_tokens;
DROP TABLE referrals;
DROP TABLE chat_messages;
DROP TABLE chat_threads;
