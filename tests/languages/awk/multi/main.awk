@include "helper.awk"

BEGIN { printf "sum=%d twice=%d\n", add(2, 3), twice(7) }
