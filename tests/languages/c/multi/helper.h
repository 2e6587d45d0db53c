int add(int a, int b);
double twice(double x);
