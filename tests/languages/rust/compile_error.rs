fn main() { let x: i32 = "string"; println!("{}", x); }
