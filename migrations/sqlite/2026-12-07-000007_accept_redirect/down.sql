DROP INDEX acceptance_handovers_member;
DROP TABLE acceptance_handovers;
ALTER TABLE workspaces DROP COLUMN accept_redirect_url;
