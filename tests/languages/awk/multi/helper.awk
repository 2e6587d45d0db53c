function add(a, b) { return a + b }
function twice(x) { return 2 * x }
