<?php
function add(int $a, int $b): int { return $a + $b; }
function twice(int $x): int { return 2 * $x; }
