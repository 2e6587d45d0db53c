use strict;
use warnings;
use Helper;

printf "sum=%d twice=%d\n", Helper::add(2, 3), Helper::twice(7);
