.read schema.sql
SELECT format('sum=%d twice=%d', sum(n), 2 * max(n)) FROM numbers;
