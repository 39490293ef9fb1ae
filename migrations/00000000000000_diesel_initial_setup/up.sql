-- Shared machinery used by every later migration.
--
-- easel_set_updated_at(): BEFORE UPDATE trigger function. It sets NEW.updated_at to now()
-- when the row actually changed and the statement did not set updated_at itself.
--
-- easel_manage_updated_at(tbl): attaches that trigger to a table, e.g.
--   SELECT easel_manage_updated_at('users');

CREATE OR REPLACE FUNCTION easel_set_updated_at() RETURNS trigger AS $$
BEGIN
    IF (
        NEW IS DISTINCT FROM OLD AND
        NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at
    ) THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION easel_manage_updated_at(_tbl regclass) RETURNS void AS $$
BEGIN
    EXECUTE format(
        'CREATE TRIGGER set_updated_at BEFORE UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION easel_set_updated_at()',
        _tbl
    );
END;
$$ LANGUAGE plpgsql;
