DROP FUNCTION easel_manage_updated_at(regclass);
DROP FUNCTION easel_set_updated_at();
