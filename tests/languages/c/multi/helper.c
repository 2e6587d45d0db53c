#include "helper.h"
int add(int a, int b) { return a + b; }
double twice(double x) { return 2 * x; }
