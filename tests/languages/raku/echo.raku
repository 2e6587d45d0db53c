$*IN.encoding(Nil);
$*OUT.encoding(Nil);
$*OUT.write($*IN.slurp(:bin));
