CREATE TABLE numbers (n INTEGER);
INSERT INTO numbers VALUES (2), (3), (7);
