-- Expand only: the prompt template a job's prompt was rendered from (LOGO briefs), and its
-- version. Old releases neither read nor write them.
ALTER TABLE generation_jobs
    ADD COLUMN prompt_template         text,
    ADD COLUMN prompt_template_version text;
