ALTER TABLE deliveries
    ADD CONSTRAINT deliveries_member_id_fkey FOREIGN KEY (member_id) REFERENCES members (id) ON DELETE CASCADE;
