binmode STDIN;
binmode STDOUT;
print while <STDIN>;
