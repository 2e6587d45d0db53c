#include "helper.h"
namespace helper { int add(int a, int b) { return a + b; } int twice(int x) { return 2 * x; } }
