DO $$
BEGIN
    EXECUTE 'ALTER TABLE import_chunks ALTER COLUMN data SET COMPRESSION default';
EXCEPTION
    WHEN syntax_error OR feature_not_supported OR invalid_parameter_value THEN
        NULL;
END
$$;
