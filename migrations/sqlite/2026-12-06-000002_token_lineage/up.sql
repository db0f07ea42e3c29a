-- Token lineage: the token that made a token through the API (NULL for a token an operator made
-- at the command line). A token never outlives, nor survives the revocation of, its ancestors.
ALTER TABLE api_tokens ADD COLUMN parent_id BIGINT REFERENCES api_tokens (id) ON DELETE CASCADE;
CREATE INDEX api_tokens_parent ON api_tokens (parent_id);
