-- Which run of a worker holds an import: set when it takes the import, required by every chunk it
-- commits and by its release, so a worker that lost the import (its lease lapsed and another took
-- over) can neither apply a chunk nor free the other's lease.
ALTER TABLE imports ADD COLUMN claim BIGINT;
