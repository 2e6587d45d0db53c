#include <stdio.h>
#include <math.h>
#include "helper.h"
int main(void) { printf("sum=%d twice=%d\n", add(2, 3), (int)sqrt(twice(98.0))); return 0; }
