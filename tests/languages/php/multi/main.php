<?php
require __DIR__ . "/helper.php";
printf("sum=%d twice=%d\n", add(2, 3), twice(7));
