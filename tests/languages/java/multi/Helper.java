public class Helper { static int add(int a, int b) { return a + b; } static int twice(int x) { return 2 * x; } }
