#include <stdio.h>
#include <stdlib.h>
int main(void) { fprintf(stderr, "failing on purpose\n"); exit(3); }
