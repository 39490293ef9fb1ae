ALTER TABLE generation_jobs
    DROP COLUMN prompt_template_version,
    DROP COLUMN prompt_template;
