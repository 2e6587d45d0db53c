-- stdin is imported whole as one field (ASCII mode separates fields and rows
-- by control characters that text does not contain), then printed with no
-- row separator, so it comes out byte for byte.
CREATE TABLE input (data TEXT);
.import --ascii /dev/stdin input
.separator "" ""
SELECT data FROM input;
