DROP TABLE import_email_tallies;
