pub fn add(a: i32, b: i32) -> i32 { a + b }
pub fn twice(x: i32) -> i32 { 2 * x }
