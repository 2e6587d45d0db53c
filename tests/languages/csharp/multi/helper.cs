static class Helper { public static int Add(int a, int b) => a + b; public static int Twice(int x) => 2 * x; }
