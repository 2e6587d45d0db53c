mod helper;
fn main() { let v: Vec<i32> = (1..=7).collect(); println!("sum={} twice={}", helper::add(2, 3), helper::twice(v.len() as i32)); }
