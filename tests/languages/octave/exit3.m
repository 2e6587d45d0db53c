fprintf(stderr, "failing on purpose\n");
exit(3);
