package Helper;
use strict;
use warnings;

sub add { my ($a, $b) = @_; return $a + $b }
sub twice { my ($x) = @_; return 2 * $x }

1;
