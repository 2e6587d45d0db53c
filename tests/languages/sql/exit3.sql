.output stderr
SELECT 'failing on purpose';
.exit 3
